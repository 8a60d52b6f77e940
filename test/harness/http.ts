/**
 * A plain HTTP client for tests that need exact header lines (fetch merges repeated headers).
 */
import { request } from 'node:http';

export interface HttpResult {
  readonly status: number;
  /** Node's view: lower-case names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly rawHeaders: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
  json<T = unknown>(): T;
}

export interface HttpRequestOptions {
  readonly method?: string;
  /** Header lines, sent as given (repeats allowed). */
  readonly headers?: ReadonlyArray<readonly [string, string]> | Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
  readonly timeoutMs?: number;
}

export function httpRequest(url: string, options: HttpRequestOptions = {}): Promise<HttpResult> {
  const target = new URL(url);
  const lines: string[] = [];
  const given = options.headers ?? [];
  for (const [n, v] of Array.isArray(given) ? given as ReadonlyArray<readonly [string, string]> : Object.entries(given)) lines.push(n, v);
  // With raw header lines Node adds no Host header; HTTP/1.1 requires one.
  if (!lines.some((v, i) => i % 2 === 0 && v.toLowerCase() === 'host')) lines.unshift('Host', target.host);
  return new Promise((resolve, reject) => {
    const req = request({
      host: target.hostname, port: target.port, method: options.method ?? 'GET', path: `${target.pathname}${target.search}`,
      headers: lines, timeout: options.timeoutMs ?? 15_000, agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const raw: Array<[string, string]> = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) raw.push([res.rawHeaders[i] ?? '', res.rawHeaders[i + 1] ?? '']);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: raw, body, json: <T>() => JSON.parse(body) as T });
      });
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}
