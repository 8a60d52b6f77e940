/**
 * Shared pieces of the adversarial tests (matrix.test.ts, outages.test.ts): expected RFC 6750
 * challenges written out independently of `src/response.ts`, claims for bound tokens, a bounded
 * concurrency pool and small response readers.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { KongResponse } from '../harness/kong-emulator.js';
import type { HttpResult } from '../harness/http.js';
import type { Issued } from '../helpers/pki.js';

/** RFC 8705 3.1 x5t#S256 of a certificate, computed here (not with src/certificate.ts). */
export function x5t(cert: Issued): string {
  return createHash('sha256').update(cert.der).digest('base64url');
}

/** Claims of an access token bound to `cert` (exp in 10 minutes unless overridden). */
export function boundClaims(issuer: string, cert: Issued | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: issuer, sub: 'svc', iat: now, exp: now + 600, typ: 'Bearer', jti: `${now}-${Math.random()}`,
    ...(cert === null ? {} : { cnf: { 'x5t#S256': x5t(cert) } }),
    ...extra,
  };
}

/** HAProxy `%[ssl_c_der,base64],%[ssl_c_chain_der,base64]`: leaf, then the chain. */
export function base64Chain(...certs: readonly Issued[]): string {
  return certs.map((c) => c.der.toString('base64')).join(',');
}

/** What a rejection must look like, in the words of RFC 6750 section 3. */
export interface Rejection {
  readonly status: 400 | 401 | 403;
  /** Reason code (src/errors.ts REASONS), shown in the body with display_errors. */
  readonly reason: string;
  /** The failure detail, exactly. */
  readonly detail: string;
}

const ERROR_FOR_STATUS = { 400: 'invalid_request', 401: 'invalid_token', 403: 'insufficient_scope' } as const;

/**
 * The exact challenge: RFC 6750 3 (`Bearer realm=...`), 3.1 (no error code when the request has no
 * credentials at all, i.e. token_missing). Quoted-string content cannot hold `"` or `\`: the
 * plugin replaces them with `?` (RFC 6750 3: %x20-21 / %x23-5B / %x5D-7E).
 */
export function expectedChallenge(realm: string, rejection: Rejection): string {
  if (rejection.reason === 'token_missing') return `Bearer realm="${realm}"`;
  const description = rejection.detail.replace(/["\\]/g, '?');
  return `Bearer realm="${realm}", error="${ERROR_FOR_STATUS[rejection.status]}", error_description="${description}"`;
}

/** The body with display_errors: Kong's message plus `(reason: detail)`. */
export function expectedMessage(rejection: Rejection): string {
  return `${rejection.status === 403 ? 'Forbidden' : 'Unauthorized'} (${rejection.reason}: ${rejection.detail})`;
}

/** Asserts an HTTP response is exactly this rejection (status, challenge, body). */
export function assertHttpRejection(res: HttpResult, realm: string, rejection: Rejection, label: string): void {
  assert.equal(res.status, rejection.status, `${label}: status (body ${res.body.slice(0, 300)})`);
  assert.equal(res.headers['www-authenticate'], expectedChallenge(realm, rejection), `${label}: WWW-Authenticate`);
  assert.deepEqual(JSON.parse(res.body), { message: expectedMessage(rejection) }, `${label}: body`);
}

/** Asserts a response Kong produced in the access phase (emulator runAccess) is exactly this rejection. */
export function assertKongRejection(response: KongResponse | undefined, realm: string, rejection: Rejection, label: string): void {
  assert.ok(response !== undefined, `${label}: Kong produced no response of its own, the request would be proxied`);
  const challenge = response.headers.find(([n]) => n.toLowerCase() === 'www-authenticate')?.[1];
  assert.equal(response.status, rejection.status, `${label}: status`);
  assert.equal(challenge, expectedChallenge(realm, rejection), `${label}: WWW-Authenticate`);
  assert.deepEqual(JSON.parse(response.body.toString('utf8')), { message: expectedMessage(rejection) }, `${label}: body`);
}

/** Runs `task` for every item, at most `width` at a time; results in input order. */
export async function pool<T, R>(items: readonly T[], width: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

/** p50 / p99 / max of a list of numbers. */
export function summary(values: readonly number[]): { n: number; p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** RFC 3339 time of a NumericDate, as the plugin prints it. */
export function isoSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}
