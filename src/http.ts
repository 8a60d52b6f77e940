/**
 * The one bounded HTTP(S) client for every outbound request the verifier makes: discovery and JWKS
 * (`jwks.ts`), OCSP and CRL responders (`revocation.ts`), the Kong Admin API (`kong/ca-certificates.ts`).
 *
 * - `timeoutMs` is a total deadline in milliseconds (connect + TLS + full body), not an idle timeout.
 * - The body is capped at `maxBytes`; a larger answer is abandoned as soon as it is noticed (a
 *   declared Content-Length, or the bytes received so far).
 * - Redirects are never followed. With `expectStatus`, any other status fails without reading the body.
 * - https verifies the server's certificate unless `tlsVerify` is false; `caPem` adds PEM CAs to
 *   Node's bundled roots.
 * - `httpProxy` (an `http://[user:password@]host:port` URL) carries plain-http requests, sent to the
 *   proxy in absolute form (RFC 9112 section 3.2.2); https URLs are always reached directly (no
 *   CONNECT tunnelling).
 *
 * Failures reject with an `HttpError` whose `code` says what went wrong, with the facts callers
 * phrase their own failure details from; its message is safe to log (no body, no credentials).
 */
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';

export interface HttpRequestOptions {
  readonly method?: 'GET' | 'POST';
  /** Request headers; `accept` defaults to application/json. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Uint8Array;
  /** Total deadline for connect + response, in milliseconds. */
  readonly timeoutMs: number;
  /** Largest accepted response body, in bytes. */
  readonly maxBytes: number;
  /** Verify the server's TLS certificate (https only). */
  readonly tlsVerify?: boolean;
  /** Extra PEM CA certificates trusted for https, in addition to Node's bundled roots. */
  readonly caPem?: readonly string[];
  /** Forward proxy for plain-http URLs. */
  readonly httpProxy?: string | null;
  /** The only status accepted: any other fails with code 'status', without reading the body. */
  readonly expectStatus?: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * - `bad_url`: the URL (or the proxy URL) is not usable; no request was made.
 * - `network`: no answer: connection, DNS or TLS failure (`errorCode`).
 * - `timeout`: the deadline passed.
 * - `status`: a status other than `expectStatus` (`status`).
 * - `too_large`: the body exceeds `maxBytes` (`declaredBytes` when the Content-Length said so).
 * - `cut_off`: the connection ended in the middle of the answer (`errorCode` when there was one).
 */
export type HttpErrorCode = 'bad_url' | 'network' | 'timeout' | 'status' | 'too_large' | 'cut_off';

/** Why a request produced no usable response; safe to log (no bodies, no credentials). */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  /** HTTP status (code 'status'). */
  readonly status: number | null;
  /** Content-Length that exceeded the limit (code 'too_large'). */
  readonly declaredBytes: number | null;
  /** Socket or TLS error code such as ECONNREFUSED (codes 'network', 'cut_off'); only [A-Z0-9_]. */
  readonly errorCode: string | null;
  /** host:port of the proxy the request went through, if any. */
  readonly proxy: string | null;

  constructor(readonly code: HttpErrorCode, message: string, facts: {
    status?: number; declaredBytes?: number; errorCode?: string | null; proxy?: string | null;
  } = {}) {
    super(message);
    this.status = facts.status ?? null;
    this.declaredBytes = facts.declaredBytes ?? null;
    this.errorCode = facts.errorCode ?? null;
    this.proxy = facts.proxy ?? null;
  }
}

/** `scheme://host:port` of a URL, for log lines that must not carry paths or query strings. */
export function describeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** The code of a socket or TLS error, when it has a well-formed one (never its message). */
function errorCodeOf(error: unknown): string | null {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : null;
}

/** A short, safe description of a socket or TLS error code ("connection refused", ...). */
export function describeNetworkError(code: string | null): string {
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': case 'EPIPE': return 'connection reset';
    case 'ENOTFOUND': case 'EAI_AGAIN': return 'host name not resolved';
    case 'EHOSTUNREACH': case 'ENETUNREACH': return 'host unreachable';
    case null: return 'network error';
    default:
      if (/CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|SIGNATURE|ISSUER|^DEPTH_ZERO|^ERR_TLS|^ERR_SSL/.test(code)) {
        return `TLS certificate rejected (${code})`;
      }
      return `network error (${code})`;
  }
}

function parseProxy(target: URL, httpProxy: string | null | undefined): URL | null | HttpError {
  if (target.protocol !== 'http:' || httpProxy === undefined || httpProxy === null || httpProxy === '') return null;
  let proxy: URL;
  try {
    proxy = new URL(httpProxy);
  } catch {
    return new HttpError('bad_url', 'invalid http_proxy URL');
  }
  return proxy.protocol === 'http:' ? proxy : new HttpError('bad_url', 'http_proxy must be an http:// URL');
}

const bareHost = (url: URL): string => url.hostname.replace(/^\[|\]$/g, '');

export function httpRequest(url: string | URL, options: HttpRequestOptions): Promise<HttpResponse> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.reject(new HttpError('bad_url', 'invalid URL'));
  }
  const secure = target.protocol === 'https:';
  if (!secure && target.protocol !== 'http:') {
    return Promise.reject(new HttpError('bad_url', `unsupported URL scheme ${target.protocol}`));
  }
  const proxy = parseProxy(target, options.httpProxy);
  if (proxy instanceof HttpError) return Promise.reject(proxy);

  const headers: Record<string, string> = { accept: 'application/json', ...options.headers, host: target.host };
  if (options.body !== undefined) headers['content-length'] = String(options.body.byteLength);
  if (proxy !== null && proxy.username !== '') {
    const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  const requestOptions: https.RequestOptions = {
    ...(proxy !== null
      ? { host: bareHost(proxy), port: proxy.port !== '' ? Number(proxy.port) : 80, path: target.href }
      : { host: bareHost(target), port: target.port !== '' ? Number(target.port) : undefined, path: `${target.pathname}${target.search}` }),
    method: options.method ?? 'GET',
    headers,
    agent: false,
  };
  if (secure) {
    requestOptions.rejectUnauthorized = options.tlsVerify ?? true;
    if (options.caPem !== undefined && options.caPem.length > 0) requestOptions.ca = [...rootCertificates, ...options.caPem];
  }

  const origin = target.origin;
  const via = proxy !== null ? proxy.host : null;
  const failure = (code: HttpErrorCode, message: string, facts: ConstructorParameters<typeof HttpError>[2] = {}): HttpError =>
    new HttpError(code, message, { proxy: via, ...facts });
  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    const finish = (error: HttpError | null, response?: HttpResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (error !== null) {
        request.destroy();
        reject(error);
      } else if (response !== undefined) {
        resolve(response);
      }
    };
    const request = (secure ? https : http).request(requestOptions, (response) => {
      const status = response.statusCode ?? 0;
      if (options.expectStatus !== undefined && status !== options.expectStatus) {
        response.resume();
        finish(failure('status', `${origin} answered HTTP ${status}`, { status }));
        return;
      }
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        finish(failure('too_large', `${origin} answered with ${declared} bytes (limit ${options.maxBytes})`, { declaredBytes: declared }));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) {
          finish(failure('too_large', `${origin} sent more than ${options.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => finish(null, { status, headers: response.headers, body: Buffer.concat(chunks, size) }));
      response.on('error', (error) => finish(failure('cut_off', `${origin}: ${error.message}`, { errorCode: errorCodeOf(error) })));
      response.on('close', () => finish(failure('cut_off', `${origin} closed the connection mid-answer`)));
    });
    const deadline = setTimeout(() => {
      finish(failure('timeout', `${origin} did not answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    request.on('error', (error) => finish(failure('network', `${origin}: ${error.message}`, { errorCode: errorCodeOf(error) })));
    request.end(options.body);
  });
}

/** GET a JSON document; rejects with HttpError on transport failure, non-2xx or invalid JSON. */
export async function getJson(url: string, options: HttpRequestOptions): Promise<unknown> {
  const response = await httpRequest(url, options);
  if (response.status < 200 || response.status > 299) {
    throw new HttpError('status', `${describeOrigin(url)} answered HTTP ${response.status}`, { status: response.status });
  }
  try {
    return JSON.parse(response.body.toString('utf8')) as unknown;
  } catch {
    throw new HttpError('network', `${describeOrigin(url)} did not answer with JSON`);
  }
}
