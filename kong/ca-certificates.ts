/**
 * Resolves Kong CA certificate entities (`ca_certificates` UUIDs) to PEM through the Admin API.
 *
 * There is no PDK function for CA certificate entities, so the plugin reads
 * `GET {admin_api_url}/ca_certificates/{id}` (field `cert`). Results are cached for `ttlMs` and
 * refreshed on demand; concurrent refreshes share one round of requests. When a refresh fails the
 * last good answer is used for at most `staleMs` more; after that, or when there never was a good
 * answer, the result is a failure and requests are rejected (fail closed). A 404 is not an outage
 * but Kong's answer that the entity is gone: the last good answer is dropped at once, so a CA
 * deleted from Kong stops being trusted within the TTL. After a failure the Admin API is left
 * alone for a backoff (1 s, doubling, at most 5 s): requests meanwhile get the stale answer or the
 * last failure at once instead of a request (and a timeout) each.
 */
import { FailureBackoff } from '../src/backoff.js';
import { fail, ok, type Result } from '../src/errors.js';
import { getJson, HttpError, describeOrigin } from '../src/http.js';
import type { MtlsPopConfig } from '../src/config.js';
import { trustAnchorsFromPem, type TrustAnchorProvider, type TrustAnchors } from '../src/verifier.js';

export interface CaResolverOptions {
  readonly adminApiUrl: string;
  readonly timeoutMs: number;
  readonly ttlMs?: number;
  readonly staleMs?: number;
  readonly now?: () => number;
}

interface Snapshot {
  readonly pems: readonly string[];
  readonly fetchedAt: number;
}

export class KongCaCertificates {
  readonly #options: CaResolverOptions;
  readonly #ids: readonly string[];
  #snapshot: Snapshot | null = null;
  #inFlight: Promise<Result<readonly string[]>> | null = null;
  #lastError: string | null = null;
  readonly #backoff = new FailureBackoff();

  constructor(ids: readonly string[], options: CaResolverOptions) {
    this.#ids = [...ids];
    this.#options = options;
  }

  get lastError(): string | null {
    return this.#lastError;
  }

  /** PEM of every configured CA, in config order. */
  async resolve(): Promise<Result<readonly string[]>> {
    const now = (this.#options.now ?? Date.now)();
    const ttl = this.#options.ttlMs ?? 60_000;
    if (this.#snapshot !== null && now - this.#snapshot.fetchedAt < ttl) return ok(this.#snapshot.pems);
    if (this.#inFlight === null && !this.#backoff.mayTry(now)) return this.#fallback(now);
    this.#inFlight ??= this.#refresh().finally(() => { this.#inFlight = null; });
    return this.#inFlight;
  }

  /** After a failed refresh: the last good answer within the stale window, else the failure. */
  #fallback(now: number): Result<readonly string[]> {
    const stale = this.#options.staleMs ?? 300_000;
    if (this.#snapshot !== null && now - this.#snapshot.fetchedAt < stale) return ok(this.#snapshot.pems);
    return fail('trust_anchors_unavailable', `CA certificates could not be read from the Kong Admin API: ${this.#lastError ?? 'unknown error'}`);
  }

  async #refresh(): Promise<Result<readonly string[]>> {
    const now = (this.#options.now ?? Date.now)();
    try {
      const pems = await Promise.all(this.#ids.map((id) => this.#fetchOne(id)));
      this.#snapshot = { pems, fetchedAt: now };
      this.#lastError = null;
      this.#backoff.succeeded();
      return ok(pems);
    } catch (error) {
      this.#lastError = error instanceof HttpError || error instanceof CaEntityError ? error.message : 'unexpected error';
      if (error instanceof HttpError && error.status === 404) this.#snapshot = null;
      // From the end of the failed attempt: a hanging Admin API must not be asked again at once.
      const failedAt = (this.#options.now ?? Date.now)();
      this.#backoff.failed(failedAt);
      return this.#fallback(failedAt);
    }
  }

  async #fetchOne(id: string): Promise<string> {
    const base = this.#options.adminApiUrl.replace(/\/+$/, '');
    const url = `${base}/ca_certificates/${encodeURIComponent(id)}`;
    const entity = await getJson(url, { timeoutMs: this.#options.timeoutMs, maxBytes: 1024 * 1024 });
    const cert = typeof entity === 'object' && entity !== null ? (entity as Record<string, unknown>)['cert'] : undefined;
    if (typeof cert !== 'string' || !cert.includes('-----BEGIN CERTIFICATE-----')) {
      throw new CaEntityError(`${describeOrigin(url)} returned no PEM for ca_certificates ${id}`);
    }
    return cert;
  }
}

class CaEntityError extends Error {
  override readonly name = 'CaEntityError';
}

/**
 * Trust anchors for the verifier from `ca_certificates_pem` plus the resolved CA entities. The
 * path validator is rebuilt only when the set of PEMs changes (its verdict cache goes with it).
 */
export function kongTrustAnchors(
  config: MtlsPopConfig, entities: KongCaCertificates | null, now?: () => number,
): TrustAnchorProvider {
  const configured = config.proof_of_possession_mtls_from_header?.ca_certificates_pem ?? [];
  let current: { key: string; anchors: Result<TrustAnchors> } | null = null;
  return async () => {
    const resolved = entities === null ? ok<readonly string[]>([]) : await entities.resolve();
    if (!resolved.ok) return resolved;
    const pems = [...configured, ...resolved.value];
    const key = pems.join('\n');
    if (current === null || current.key !== key) current = { key, anchors: trustAnchorsFromPem(pems, config, now) };
    return current.anchors;
  };
}
