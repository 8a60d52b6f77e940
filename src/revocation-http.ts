/**
 * The one outbound request revocation checking makes: an OCSP POST (RFC 6960 appendix A.1) or a
 * CRL GET (RFC 5280 section 4.2.1.13), bounded in time and size.
 *
 * - `timeoutMs` is a total deadline in milliseconds (connect + TLS + full body), not an idle timeout.
 * - The body is capped at `maxBytes`; a larger answer is abandoned as soon as it is noticed.
 * - Redirects are not followed; anything but HTTP 200 is a failure.
 * - https verifies the responder's certificate unless `sslVerify` is false; `caPem` adds PEM CAs to
 *   Node's bundled roots.
 * - `httpProxy` (an `http://host:port` URL) is used for plain-http responders only: the request goes
 *   to the proxy in absolute form (RFC 9112 section 3.2.2). https responders are always reached
 *   directly (no CONNECT tunnelling).
 *
 * Never rejects: every outcome is a `FetchResult` whose error text is safe to log (never a body;
 * the caller names the responder, see `responderHost`).
 */
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';

export interface BoundedFetchOptions {
  readonly method: 'GET' | 'POST';
  readonly body?: Uint8Array;
  readonly contentType?: string;
  readonly accept?: string;
  /** Total deadline in milliseconds. */
  readonly timeoutMs: number;
  /** Largest accepted body in bytes. */
  readonly maxBytes: number;
  readonly sslVerify: boolean;
  readonly caPem?: readonly string[];
  readonly httpProxy?: string | null;
}

export type FetchResult =
  | { readonly ok: true; readonly body: Buffer }
  | { readonly ok: false; readonly error: string };

/** `host:port` of a responder URL: what failure details name (no path, no query, no credentials). */
export function responderHost(url: URL): string {
  return url.host !== '' ? url.host : '(no host)';
}

function describeError(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused';
    case 'ECONNRESET': return 'connection reset';
    case 'ENOTFOUND': case 'EAI_AGAIN': return 'host name not resolved';
    case 'EHOSTUNREACH': case 'ENETUNREACH': return 'host unreachable';
    default:
      if (/^ERR_(TLS|SSL)|CERT|SIGNATURE|ISSUER|SELF_SIGNED|^DEPTH_ZERO/.test(code)) {
        return `TLS verification failed (${code})`;
      }
      return code !== '' ? `network error (${code})` : 'network error';
  }
}

export function fetchBounded(url: URL, options: BoundedFetchOptions): Promise<FetchResult> {
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') {
    return Promise.resolve({ ok: false, error: `unsupported URL scheme ${url.protocol}` });
  }
  let proxy: URL | null = null;
  if (!secure && options.httpProxy !== undefined && options.httpProxy !== null && options.httpProxy !== '') {
    try {
      proxy = new URL(options.httpProxy);
    } catch {
      return Promise.resolve({ ok: false, error: 'invalid http_proxy URL' });
    }
    if (proxy.protocol !== 'http:') return Promise.resolve({ ok: false, error: 'http_proxy must be an http:// URL' });
  }

  const headers: Record<string, string> = { host: url.host, connection: 'close' };
  if (options.accept !== undefined) headers['accept'] = options.accept;
  if (options.body !== undefined) {
    headers['content-type'] = options.contentType ?? 'application/octet-stream';
    headers['content-length'] = String(options.body.byteLength);
  }
  if (proxy !== null && proxy.username !== '') {
    const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }

  const requestOptions: https.RequestOptions = proxy !== null
    ? { host: proxy.hostname.replace(/^\[|\]$/g, ''), port: proxy.port !== '' ? Number(proxy.port) : 80,
        path: url.href, method: options.method, headers, agent: false }
    : { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port !== '' ? Number(url.port) : undefined,
        path: `${url.pathname}${url.search}`, method: options.method, headers, agent: false };
  if (secure) {
    requestOptions.rejectUnauthorized = options.sslVerify;
    if (options.caPem !== undefined && options.caPem.length > 0) {
      requestOptions.ca = [...rootCertificates, ...options.caPem];
    }
  }

  return new Promise<FetchResult>((resolve) => {
    let settled = false;
    const finish = (result: FetchResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (!result.ok) request.destroy();
      resolve(result);
    };
    const via = proxy !== null ? ` (via proxy ${proxy.host})` : '';
    const request = (secure ? https : http).request(requestOptions, (response) => {
      const status = response.statusCode ?? 0;
      if (status !== 200) {
        response.resume();
        finish({ ok: false, error: `answered HTTP ${status}${via}` });
        return;
      }
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        finish({ ok: false, error: `answer of ${declared} bytes exceeds the ${options.maxBytes}-byte limit` });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) {
          finish({ ok: false, error: `answer exceeds the ${options.maxBytes}-byte limit` });
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => finish({ ok: true, body: Buffer.concat(chunks, size) }));
      response.on('error', (error) => finish({ ok: false, error: `${describeError(error)}${via}` }));
      response.on('close', () => finish({ ok: false, error: `connection closed mid-answer${via}` }));
    });
    const deadline = setTimeout(() => {
      finish({ ok: false, error: `no answer within ${options.timeoutMs} ms${via}` });
    }, options.timeoutMs);
    request.on('error', (error) => finish({ ok: false, error: `${describeError(error)}${via}` }));
    request.end(options.body);
  });
}
