/**
 * The IdP's signing keys: OpenID Connect Discovery 1.0 (section 4) to find `jwks_uri`, then the
 * JWK Set (RFC 7517 section 5), cached, refreshed on demand and shared by concurrent callers.
 *
 * Keys come only from the configured issuer or JWKS URL, never from a token: `jku`, `x5u`, `jwk`
 * and `x5c` header parameters (RFC 7515 4.1.2-4.1.6) are ignored, because a token cannot vouch
 * for the key that verifies it.
 *
 * Refresh rules (all times from the injected clock):
 * - First use fetches (discovery, then the JWKS; `jwksUri` skips discovery).
 * - An unknown `kid` refetches at most once per `rediscoveryLifetimeS` after the last successful
 *   fetch (Kong's `rediscovery_lifetime`). Concurrent callers share ONE in-flight fetch.
 * - Keys older than `maxAgeS` (default 600 s) are refreshed in the background on use; the cached
 *   key is returned without waiting, so a slow IdP never delays requests whose key is known.
 * - A failed fetch never replaces cached keys. Cached keys stay usable until `maxAgeS + staleMaxS`
 *   after their fetch (default 600 s + 3600 s); after that, requests fail with `jwks_unavailable`.
 * - A discovery document fetched over https must advertise an https `jwks_uri`.
 * - After a failure the next fetch waits 1 s, then 2 s, 4 s, at most 5 s between attempts
 *   (consecutive failures), so a dead IdP sees at most one attempt every 5 s and a recovered IdP
 *   is noticed within 5 s.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { FailureBackoff } from './backoff.js';
import { fail, ok, type AuthFailure, type Result } from './errors.js';
import { describeNetworkError, HttpError, httpRequest } from './http.js';

export interface JwksOptions {
  /** Discovery: issuer (trailing slashes trimmed) + `/.well-known/openid-configuration` gives `jwks_uri`. */
  readonly issuer: string | null;
  /** Used directly when set (takes precedence over discovery). */
  readonly jwksUri: string | null;
  /** Deadline for each HTTP request (connect, TLS, headers and body), in milliseconds. */
  readonly timeoutMs: number;
  /** An unknown kid refetches at most once per this many seconds. */
  readonly rediscoveryLifetimeS: number;
  /** Verify the IdP's TLS certificate. */
  readonly sslVerify: boolean;
  /** Extra CAs trusted for the IdP (private CA), added to Node's bundled roots. */
  readonly caPem: readonly string[];
  /** Largest response accepted, in bytes (default 1 MiB); bigger ones are aborted. */
  readonly maxResponseBytes?: number;
  /** Serve cached keys after they are due for refresh and refreshing fails, for at most this long (default 3600 s). */
  readonly staleMaxS?: number;
  /** Cached keys are refreshed (in the background) once they are this old (default 600 s). */
  readonly maxAgeS?: number;
  /** Clock in epoch milliseconds, for tests. */
  readonly now?: () => number;
}

const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_STALE_MAX_S = 3600;
const DEFAULT_MAX_AGE_S = 600;
/** Keys considered per JWK Set; real sets hold a handful. Bounds the import work for a hostile response. */
const MAX_KEYS = 100;
const DISCOVERY_PATH = '/.well-known/openid-configuration';

/** A public key from the JWK Set, imported once. */
interface SigningKey {
  readonly kid: string | undefined;
  readonly alg: string | undefined;
  readonly key: KeyObject;
  /** 'rsa', 'ed25519' or the EC curve name ('prime256v1', 'secp384r1', 'secp521r1'). */
  readonly shape: string;
}

/** Which key shape each JWS algorithm (RFC 7518 3.1, RFC 8037 3.1, RFC 9864) verifies with. */
const SHAPE_FOR_ALG: ReadonlyMap<string, string> = new Map([
  ['RS256', 'rsa'], ['RS384', 'rsa'], ['RS512', 'rsa'], ['PS256', 'rsa'], ['PS384', 'rsa'], ['PS512', 'rsa'],
  ['ES256', 'prime256v1'], ['ES384', 'secp384r1'], ['ES512', 'secp521r1'],
  ['EdDSA', 'ed25519'], ['Ed25519', 'ed25519'],
]);
const KEY_SHAPES: ReadonlySet<string> = new Set(SHAPE_FOR_ALG.values());

export class JwksSource {
  readonly #issuer: string | null;
  readonly #jwksUri: string | null;
  readonly #timeoutMs: number;
  readonly #rediscoveryMs: number;
  readonly #sslVerify: boolean;
  readonly #caPem: readonly string[];
  readonly #maxBytes: number;
  readonly #staleMs: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;

  #keys: readonly SigningKey[] | null = null;
  /** When #keys was fetched. */
  #fetchedAt = 0;
  /** Wait after consecutive failures: 1 s, 2 s, 4 s, then 5 s. */
  readonly #backoff = new FailureBackoff();
  #lastRefreshFailed = false;
  #lastFailure: AuthFailure = { reason: 'jwks_unavailable', detail: 'the JWKS has not been fetched yet' };
  #inFlight: Promise<void> | null = null;
  #fetches = 0;
  #failures = 0;

  constructor(options: JwksOptions) {
    this.#issuer = options.issuer;
    this.#jwksUri = options.jwksUri;
    this.#timeoutMs = Math.max(1, options.timeoutMs);
    this.#rediscoveryMs = Math.max(0, options.rediscoveryLifetimeS) * 1000;
    this.#sslVerify = options.sslVerify;
    this.#caPem = options.caPem;
    this.#maxBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#staleMs = Math.max(0, options.staleMaxS ?? DEFAULT_STALE_MAX_S) * 1000;
    this.#maxAgeMs = Math.max(0, options.maxAgeS ?? DEFAULT_MAX_AGE_S) * 1000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The verification key for a JWS header (RFC 7515 4.1.4 `kid`, 4.1.1 `alg`), fetching or
   * refetching the JWK Set as the rules above allow. Never rejects.
   * - `token_key_not_found`: the set (fresh enough) has no key with that kid fitting that alg,
   *   or several keys fit a header without kid.
   * - `jwks_unavailable`: the set could not be fetched and no usable cached key answers.
   */
  async getKey(header: { kid?: string; alg?: string }): Promise<Result<KeyObject>> {
    try {
      return await this.#getKey(header);
    } catch {
      return fail('internal_error', 'unexpected error while selecting the verification key');
    }
  }

  /** Fetch cycles started (discovery + JWKS count as one) and how many of them failed. */
  stats(): { fetches: number; failures: number } {
    return { fetches: this.#fetches, failures: this.#failures };
  }

  async #getKey(header: { kid?: string; alg?: string }): Promise<Result<KeyObject>> {
    const { kid, alg } = header;
    if (typeof alg !== 'string' || !SHAPE_FOR_ALG.has(alg)) {
      return fail('token_algorithm_not_allowed', 'the token header alg has no asymmetric key type');
    }
    if (kid !== undefined && typeof kid !== 'string') return fail('token_malformed', 'the token header kid is not a string');

    const now = this.#now();
    const cached = this.#usableKeys(now);
    if (cached !== null) {
      const found = selectKey(cached, kid, alg);
      if (found.kind === 'found') {
        if (now - this.#fetchedAt >= this.#maxAgeMs && this.#mayFetch(now)) void this.#refresh();
        return ok(found.key);
      }
      if (found.kind === 'ambiguous') return ambiguous(found.count, kid, alg);
      // Unknown kid: refetch unless the set was fetched within rediscovery_lifetime.
      if (this.#inFlight === null) {
        if (now - this.#fetchedAt < this.#rediscoveryMs) return notFound(kid, alg);
        if (!this.#mayFetch(now)) return { ok: false, error: this.#lastFailure };
      }
    } else if (this.#inFlight === null && !this.#mayFetch(now)) {
      return { ok: false, error: this.#lastFailure };
    }

    await this.#refresh();
    const keys = this.#usableKeys(this.#now());
    if (keys === null) return { ok: false, error: this.#lastFailure };
    const found = selectKey(keys, kid, alg);
    if (found.kind === 'found') return ok(found.key);
    if (found.kind === 'ambiguous') return ambiguous(found.count, kid, alg);
    // The set could not be refreshed: an unknown kid may be a new key we could not see.
    return this.#lastRefreshFailed ? { ok: false, error: this.#lastFailure } : notFound(kid, alg);
  }

  #usableKeys(now: number): readonly SigningKey[] | null {
    if (this.#keys === null) return null;
    return now - this.#fetchedAt < this.#maxAgeMs + this.#staleMs ? this.#keys : null;
  }

  /** No fetch in flight and the backoff after the last failure has passed. */
  #mayFetch(now: number): boolean {
    if (this.#inFlight !== null) return false;
    return this.#backoff.mayTry(now);
  }

  /** Starts a fetch, or joins the one in flight. Never rejects. */
  #refresh(): Promise<void> {
    if (this.#inFlight === null) {
      this.#inFlight = this.#load().finally(() => { this.#inFlight = null; });
    }
    return this.#inFlight;
  }

  async #load(): Promise<void> {
    this.#fetches++;
    let result: Result<SigningKey[]>;
    try {
      result = await this.#download();
    } catch {
      result = fail('jwks_unavailable', 'unexpected error while fetching the JWKS');
    }
    const now = this.#now();
    if (result.ok) {
      this.#keys = result.value;
      this.#fetchedAt = now;
      this.#backoff.succeeded();
      this.#lastRefreshFailed = false;
    } else {
      this.#failures++;
      this.#backoff.failed(now);
      this.#lastRefreshFailed = true;
      this.#lastFailure = result.error;
    }
  }

  async #download(): Promise<Result<SigningKey[]>> {
    let jwksUrl: URL;
    if (this.#jwksUri !== null) {
      const parsed = parseHttpUrl(this.#jwksUri);
      if (parsed === null) return fail('jwks_unavailable', 'the configured JWKS endpoint is not an http(s) URL');
      jwksUrl = parsed;
    } else if (this.#issuer !== null) {
      const discoveryUrl = parseHttpUrl(this.#issuer.replace(/\/+$/, '') + DISCOVERY_PATH);
      if (discoveryUrl === null) return fail('jwks_unavailable', 'the configured issuer is not an http(s) URL');
      const discovery = await this.#getJson(discoveryUrl, 'discovery');
      if (!discovery.ok) return discovery;
      const uri = isObject(discovery.value) ? discovery.value['jwks_uri'] : undefined;
      const parsed = typeof uri === 'string' ? parseHttpUrl(uri) : null;
      if (parsed === null) {
        return fail('jwks_unavailable', `discovery at ${discoveryUrl.host} has no http(s) jwks_uri`);
      }
      // Keys fetched in clear after an authenticated discovery would undo the TLS protection.
      if (discoveryUrl.protocol === 'https:' && parsed.protocol !== 'https:') {
        return fail('jwks_unavailable', `discovery at ${discoveryUrl.host} advertises a jwks_uri without https`);
      }
      jwksUrl = parsed;
    } else {
      return fail('jwks_unavailable', 'neither an issuer nor a JWKS endpoint is configured');
    }
    const body = await this.#getJson(jwksUrl, 'JWKS');
    if (!body.ok) return body;
    const keys = parseJwks(body.value);
    if (keys.length === 0) return fail('jwks_unavailable', `JWKS from ${jwksUrl.host} has no usable signature keys`);
    return ok(keys);
  }

  /** One GET with a total deadline, a size cap, our TLS settings and no redirects (`http.ts`). */
  async #getJson(url: URL, what: string): Promise<Result<unknown>> {
    const failWith = (problem: string): Result<unknown> => fail('jwks_unavailable', `${what} request to ${url.host} ${problem}`);
    let body: Buffer;
    try {
      body = (await httpRequest(url, {
        headers: { accept: 'application/json, application/jwk-set+json', 'accept-encoding': 'identity', 'user-agent': 'mtls-pop' },
        timeoutMs: this.#timeoutMs, maxBytes: this.#maxBytes, tlsVerify: this.#sslVerify, caPem: this.#caPem, expectStatus: 200,
      })).body;
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return failWith(fetchProblem(error, this.#timeoutMs, this.#maxBytes));
    }
    try {
      return ok(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)));
    } catch {
      return failWith('returned a body that is not JSON');
    }
  }
}

/** What went wrong with a discovery or JWKS request, after "<what> request to <host>". */
function fetchProblem(error: HttpError, timeoutMs: number, maxBytes: number): string {
  switch (error.code) {
    case 'timeout': return `timed out after ${timeoutMs} ms`;
    case 'status': {
      const status = error.status ?? 0;
      return `returned HTTP ${status}${status >= 300 && status < 400 ? ' (redirects are not followed)' : ''}`;
    }
    case 'too_large': return `returned more than ${maxBytes} bytes`;
    case 'cut_off': return 'was cut off';
    case 'network': return `failed: ${describeNetworkError(error.errorCode)}`;
    case 'bad_url': return `failed: ${error.message}`;
  }
}

function notFound(kid: string | undefined, alg: string): Result<KeyObject> {
  return fail('token_key_not_found', `the JWKS has no ${alg} key ${describeKid(kid)}`);
}

function ambiguous(count: number, kid: string | undefined, alg: string): Result<KeyObject> {
  return fail('token_key_not_found', `${count} JWKS keys fit this ${alg} token ${describeKid(kid)}; refusing to guess`);
}

function describeKid(kid: string | undefined): string {
  return kid === undefined ? 'without kid' : `with kid "${kid.replace(/[^\x20-\x7e]|["\\]/g, '?').slice(0, 64)}"`;
}

type Selection =
  | { readonly kind: 'found'; readonly key: KeyObject }
  | { readonly kind: 'none' }
  | { readonly kind: 'ambiguous'; readonly count: number };

/**
 * RFC 7515 4.1.4 / RFC 7517 4: the key whose kid equals the header's (any key when the header has
 * none), whose type fits the algorithm and whose `alg`, when present, equals it.
 */
function selectKey(keys: readonly SigningKey[], kid: string | undefined, alg: string): Selection {
  const shape = SHAPE_FOR_ALG.get(alg);
  let match: SigningKey | undefined;
  let count = 0;
  for (const candidate of keys) {
    if (kid !== undefined && candidate.kid !== kid) continue;
    if (candidate.shape !== shape || (candidate.alg !== undefined && candidate.alg !== alg)) continue;
    match ??= candidate;
    count++;
  }
  if (match === undefined) return { kind: 'none' };
  return count > 1 ? { kind: 'ambiguous', count } : { kind: 'found', key: match.key };
}

/** RFC 7517 5: the signature keys of a JWK Set; entries that are not usable are skipped, not fatal. */
function parseJwks(body: unknown): SigningKey[] {
  const entries = isObject(body) && Array.isArray(body['keys']) ? (body['keys'] as unknown[]) : [];
  const keys: SigningKey[] = [];
  for (const entry of entries.slice(0, MAX_KEYS)) {
    const key = importSigningKey(entry);
    if (key !== null) keys.push(key);
  }
  return keys;
}

function importSigningKey(jwk: unknown): SigningKey | null {
  if (!isObject(jwk)) return null;
  const { kty, kid, alg, use, key_ops: keyOps, ext } = jwk;
  // RFC 7517 4.2 / 4.3: a key meant for encryption is not a verification key; key_ops is a set of
  // strings (no duplicates) that must include verify. RFC 7517 4.9 / WebCrypto: ext is a boolean.
  if (use !== undefined && use !== 'sig') return null;
  if (keyOps !== undefined && !isVerifyKeyOps(keyOps)) return null;
  if (ext !== undefined && typeof ext !== 'boolean') return null;
  if (kid !== undefined && typeof kid !== 'string') return null;
  if (alg !== undefined && (typeof alg !== 'string' || !SHAPE_FOR_ALG.has(alg))) return null;
  // A published private key (RFC 7518 6.2.2, 6.3.2, RFC 8037 2) means anyone can sign: the entry is
  // refused, as jose refuses it, rather than stripped to its public half.
  if (PRIVATE_MEMBERS.some((name) => jwk[name] !== undefined)) return null;
  let publicJwk: JsonWebKey;
  if (kty === 'RSA') publicJwk = { kty, n: jwk['n'], e: jwk['e'] } as JsonWebKey;
  else if (kty === 'EC') publicJwk = { kty, crv: jwk['crv'], x: jwk['x'], y: jwk['y'] } as JsonWebKey;
  else if (kty === 'OKP') publicJwk = { kty, crv: jwk['crv'], x: jwk['x'] } as JsonWebKey;
  else return null;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: publicJwk, format: 'jwk' });
  } catch {
    return null;
  }
  let shape: string;
  if (key.asymmetricKeyType === 'rsa') {
    // RFC 7518 3.3: RSA keys of 2048 bits or larger; an odd public exponent of at least 3 (with
    // e = 1 a signature is its own encoded message, which anyone can write).
    const exponent = key.asymmetricKeyDetails?.publicExponent ?? 0n;
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048 || exponent < 3n || exponent % 2n === 0n) return null;
    shape = 'rsa';
  } else if (key.asymmetricKeyType === 'ec') {
    shape = key.asymmetricKeyDetails?.namedCurve ?? '';
  } else if (key.asymmetricKeyType === 'ed25519') {
    shape = 'ed25519';
  } else {
    return null;
  }
  if (!KEY_SHAPES.has(shape)) return null;
  if (alg !== undefined && SHAPE_FOR_ALG.get(alg) !== shape) return null;
  return { kid, alg, key, shape };
}

/** Private key members of RSA, EC and OKP JWKs, and `k` of a symmetric one. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

function isVerifyKeyOps(keyOps: unknown): boolean {
  if (!Array.isArray(keyOps) || !keyOps.includes('verify')) return false;
  return keyOps.every((op: unknown, index) => typeof op === 'string' && keyOps.indexOf(op) === index);
}

function parseHttpUrl(text: string): URL | null {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
  } catch {
    return null;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
