/**
 * A small, bounded HTTP(S) client for the few outbound requests the verifier makes (JWKS,
 * discovery, Kong Admin API, revocation responders). Every request has a total deadline and a
 * response size cap, never follows redirects, and verifies TLS unless told otherwise.
 */
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';

export interface HttpRequestOptions {
  readonly method?: 'GET' | 'POST';
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
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** Why a request produced no usable response; safe to log (no bodies, no credentials). */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(readonly code: 'timeout' | 'too_large' | 'network' | 'bad_url', message: string) {
    super(message);
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

export function httpRequest(url: string, options: HttpRequestOptions): Promise<HttpResponse> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.reject(new HttpError('bad_url', 'invalid URL'));
  }
  const secure = target.protocol === 'https:';
  if (!secure && target.protocol !== 'http:') {
    return Promise.reject(new HttpError('bad_url', `unsupported scheme ${target.protocol}`));
  }
  const origin = target.origin;
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
    const requestOptions: https.RequestOptions = {
      method: options.method ?? 'GET',
      headers: { accept: 'application/json', ...options.headers },
      agent: false,
    };
    if (secure) {
      requestOptions.rejectUnauthorized = options.tlsVerify ?? true;
      if (options.caPem !== undefined && options.caPem.length > 0) {
        requestOptions.ca = [...rootCertificates, ...options.caPem];
      }
    }
    const request = (secure ? https : http).request(target, requestOptions, (response) => {
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        finish(new HttpError('too_large', `${origin} answered with ${declared} bytes (limit ${options.maxBytes})`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) {
          finish(new HttpError('too_large', `${origin} sent more than ${options.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => finish(null, {
        status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks),
      }));
      response.on('error', (error) => finish(new HttpError('network', `${origin}: ${error.message}`)));
    });
    const deadline = setTimeout(() => {
      finish(new HttpError('timeout', `${origin} did not answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    request.on('error', (error) => finish(new HttpError('network', `${origin}: ${error.message}`)));
    request.end(options.body);
  });
}

/** GET a JSON document; rejects with HttpError on transport failure, non-2xx or invalid JSON. */
export async function getJson(url: string, options: HttpRequestOptions): Promise<unknown> {
  const response = await httpRequest(url, options);
  if (response.status < 200 || response.status > 299) {
    throw new HttpError('network', `${describeOrigin(url)} answered HTTP ${response.status}`);
  }
  try {
    return JSON.parse(response.body.toString('utf8')) as unknown;
  } catch {
    throw new HttpError('network', `${describeOrigin(url)} did not answer with JSON`);
  }
}
