/**
 * Verification of a JWT access token (RFC 7519, RFC 9068) signed with the IdP's keys.
 *
 * Order of work, cheapest first:
 * 1. verdict cache (salted SHA-256 of the token), re-checking `exp` on a hit;
 * 2. structure: JWS compact serialization (RFC 7515 7.1) with canonical base64url parts, JSON
 *    header and payload; JWE (five parts) and nested tokens are refused;
 * 3. header: `alg` in the asymmetric allow-list, no `crit`, an access-token `typ`;
 * 4. key from the JWKS (only by kid/alg; `jku`, `x5u`, `jwk`, `x5c` are ignored);
 * 5. signature on node:crypto (`jws.ts`), under the header's already-allowed alg only;
 * 6. claims: exp (required), nbf, iat, iss, aud, scope.
 * Successful verdicts are cached until min(now + cache TTL, exp); failures are never cached.
 *
 * Every check is ours; none is delegated to jose any more (its WebCrypto verify cost ~5x a
 * `crypto.verify`). `test/core/token-differential.test.ts` runs jose 6 (`compactVerify`,
 * `jwtVerify` with a local JWKS) beside this code and shows we reject everything it rejects; we
 * also refuse what it lets through on purpose: non-canonical base64url, padding or white space in
 * a part, any `crit`, an unknown `typ`, nested tokens, exp beyond a finite number, PS* signatures
 * shorter than the modulus and RSA keys with e < 3.
 */
import { hash, randomBytes } from 'node:crypto';
import { MAX_TOKEN_LENGTH } from './bearer.js';
import { checkAudience, checkIssuer, checkScopes } from './claims.js';
import { ASYMMETRIC_ALGORITHMS } from './config-schema.js';
import { BoundedCache } from './cache.js';
import { fail, ok, type Result } from './errors.js';
import type { JwksSource } from './jwks.js';
import { verifyJwsSignature } from './jws.js';

export interface TokenPolicy {
  /** Already resolved: `issuers_allowed ?? [issuer]`. */
  readonly issuersAllowed: readonly string[];
  /** Asymmetric only; anything else (none, HS*) is rejected even if listed. */
  readonly algorithms: readonly string[];
  /** Clock skew tolerated for exp, nbf and iat, in seconds. */
  readonly leewayS: number;
  readonly audienceRequired: readonly string[] | null;
  readonly scopesRequired: readonly string[] | null;
  /** Verdict cache entries (0 disables the cache). */
  readonly cacheSize: number;
  /** Verdict lifetime in seconds; never past the token's exp. */
  readonly cacheTtlS: number;
  /** Cache key = SHA-256(salt || token); null picks a random per-process salt. */
  readonly cacheSalt: string | null;
  /** Clock in epoch milliseconds, for tests. */
  readonly now?: () => number;
}

export interface VerifiedToken {
  /** The verified claims set (deeply frozen; shared between cache hits). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The token's `exp`, in epoch milliseconds (always set, since exp is required). */
  readonly expiresAt: number | null;
}

/**
 * RFC 7515 4.1.9 / RFC 9068 2.1: header `typ` values accepted for an access token, compared
 * case-insensitively. Keycloak sends `JWT` (with a claim `typ: Bearer`); RFC 9068 sends `at+jwt`.
 */
const ACCEPTED_TYP = new Set(['jwt', 'application/jwt', 'at+jwt', 'application/at+jwt']);

export class TokenVerifier {
  readonly #policy: TokenPolicy;
  readonly #jwks: JwksSource;
  readonly #algorithms: ReadonlySet<string>;
  readonly #salt: string;
  readonly #cache: BoundedCache<VerifiedToken>;
  readonly #now: () => number;

  constructor(policy: TokenPolicy, jwks: JwksSource) {
    this.#policy = policy;
    this.#jwks = jwks;
    const asymmetric: readonly string[] = ASYMMETRIC_ALGORITHMS;
    this.#algorithms = new Set(policy.algorithms.filter((alg) => asymmetric.includes(alg)));
    this.#salt = policy.cacheSalt ?? randomBytes(32).toString('hex');
    this.#now = policy.now ?? Date.now;
    this.#cache = new BoundedCache<VerifiedToken>({
      maxEntries: policy.cacheSize, ttlMs: Math.max(0, policy.cacheTtlS) * 1000, now: this.#now,
    });
  }

  /**
   * Verifies a compact JWS access token. Never rejects; unexpected errors become `internal_error`.
   * A cached verdict is answered without entering an async function (the warm path).
   */
  verify(token: string): Promise<Result<VerifiedToken>> {
    let cacheKey: string;
    try {
      const early = this.#lookup(token);
      if (typeof early !== 'string') return Promise.resolve(early);
      cacheKey = early;
    } catch {
      return Promise.resolve(fail('internal_error', 'unexpected error while verifying the token'));
    }
    return this.#verify(token, cacheKey).catch(() => fail('internal_error', 'unexpected error while verifying the token'));
  }

  /** Verdict cache hits, misses and current size. */
  stats(): { hits: number; misses: number; size: number } {
    return this.#cache.stats();
  }

  /**
   * The synchronous part: size checks and the verdict cache. Returns the decision when there is
   * one (a cached verdict, re-checked for exp/nbf/iat, or a size failure), else the cache key.
   */
  #lookup(token: string): Result<VerifiedToken> | string {
    if (typeof token !== 'string' || token === '') return fail('token_malformed', 'the token is empty');
    if (token.length > MAX_TOKEN_LENGTH) {
      return fail('token_too_large', `the token has ${token.length} characters; at most ${MAX_TOKEN_LENGTH} are accepted`);
    }
    // One-shot crypto.hash: about 3x cheaper than createHash() for a warm-path lookup.
    const cacheKey = hash('sha256', this.#salt + token, 'base64');
    const cached = this.#cache.get(cacheKey);
    if (cached === undefined) return cacheKey;
    const expired = checkTimes(cached.claims, this.#now(), this.#policy.leewayS);
    if (!expired.ok) {
      this.#cache.delete(cacheKey);
      return expired;
    }
    return ok(cached);
  }

  async #verify(token: string, cacheKey: string): Promise<Result<VerifiedToken>> {
    // RFC 7515 7.1 compact serialization; the header is judged before the rest is decoded.
    const parts = token.split('.');
    if (parts.length === 5) return fail('token_malformed', 'encrypted tokens (JWE) are not supported');
    if (parts.length !== 3) return fail('token_malformed', 'the token is not a JWS in compact serialization (three parts)');
    const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
    const header = decodeJsonObject(headerPart);
    if (header === null) return fail('token_malformed', 'the token header is not a base64url-encoded JSON object');
    const headerCheck = this.#checkHeader(header);
    if (!headerCheck.ok) return headerCheck;
    const alg = headerCheck.value;
    const payload = decodeJsonObject(payloadPart);
    if (payload === null) return fail('token_malformed', 'the token payload is not a base64url-encoded JSON object');
    const signature = decodeBase64url(signaturePart);
    if (signature === null || signature.length === 0) return fail('token_malformed', 'the token signature is missing or not base64url');
    const kid = header['kid'];

    const key = await this.#jwks.getKey(kid === undefined ? { alg } : { kid: kid as string, alg });
    if (!key.ok) return key;
    // RFC 7515 5.2 step 8: the signing input is the ASCII of the header and payload parts as sent
    // (both already checked to be base64url characters only).
    const signingInput = Buffer.from(token.slice(0, headerPart.length + 1 + payloadPart.length), 'latin1');
    switch (verifyJwsSignature(alg, key.value, signingInput, signature)) {
      case 'valid': break;
      case 'invalid': return fail('token_signature_invalid', 'the token signature does not verify with the IdP key');
      case 'key_unsuitable': return fail('token_key_not_found', 'the JWKS key does not fit the token algorithm');
      case 'unsupported': return fail('token_algorithm_not_allowed', 'the token algorithm is not allowed');
    }

    const claims = checkClaims(payload, this.#now(), this.#policy);
    if (!claims.ok) return claims;
    const exp = payload['exp'] as number;
    const verdict: VerifiedToken = { claims: deepFreeze(payload), expiresAt: exp * 1000 };
    this.#cache.set(cacheKey, verdict, exp * 1000);
    return ok(verdict);
  }

  /** RFC 7515 4.1: the protected header, before any key work. Returns the allowed alg. */
  #checkHeader(header: Record<string, unknown>): Result<string> {
    const { alg, crit, typ, cty, kid } = header;
    if (typeof alg !== 'string') return fail('token_malformed', 'the token header has no alg');
    // RFC 8725 3.1 / 3.2: never `none`, never a MAC (HS*) whose secret could be a public key.
    if (!this.#algorithms.has(alg)) {
      const shown = /^[A-Za-z0-9+-]{1,16}$/.test(alg) ? `the ${alg}` : 'the token';
      return fail('token_algorithm_not_allowed', `${shown} algorithm is not allowed`);
    }
    // RFC 7515 4.1.11: a recipient must reject critical extensions it does not understand; we understand none.
    if (crit !== undefined) return fail('token_crit_unsupported', 'the token header lists critical extensions (crit), none are supported');
    if (typ !== undefined && (typeof typ !== 'string' || !ACCEPTED_TYP.has(typ.toLowerCase()))) {
      return fail('token_type_not_allowed', 'the token header typ is not JWT or at+jwt');
    }
    // RFC 7519 5.2 / 7.2 step 8: cty JWT means a nested token.
    if (typeof cty === 'string' && ['jwt', 'application/jwt'].includes(cty.toLowerCase())) {
      return fail('token_malformed', 'nested tokens are not supported');
    }
    if (kid !== undefined && typeof kid !== 'string') return fail('token_malformed', 'the token header kid is not a string');
    return ok(alg);
  }
}

/**
 * base64url without padding (RFC 7515 2), canonical only: a part whose unused trailing bits are
 * set would decode to the same bytes as another spelling, and two spellings of one token must not
 * both be accepted.
 */
function decodeBase64url(part: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) return null;
  // A last group of 2 characters carries 8 bits (4 unused), of 3 characters 16 bits (2 unused):
  // the spelling is canonical when the unused bits of the last character are zero. (Same answer
  // as re-encoding and comparing, without the copy.)
  const rest = part.length % 4;
  if (rest === 1) return null;
  if (rest !== 0 && (sextet(part.charCodeAt(part.length - 1)) & (rest === 2 ? 0x0f : 0x03)) !== 0) return null;
  return Buffer.from(part, 'base64url');
}

/** The 6-bit value of a base64url character already checked against the alphabet. */
function sextet(code: number): number {
  if (code >= 97) return code - 71; // a-z: 26..51
  if (code === 95) return 63; // '_'
  if (code >= 65) return code - 65; // A-Z: 0..25
  if (code >= 48) return code + 4; // 0-9: 52..61
  return 62; // '-'
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeJsonObject(part: string): Record<string, unknown> | null {
  const bytes = decodeBase64url(part);
  if (bytes === null || bytes.length === 0) return null;
  try {
    const value: unknown = JSON.parse(utf8.decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * RFC 7519 4.1.4 (exp, required here: access tokens from Keycloak and oidc-provider always carry
 * it, and RFC 9068 2.2 requires it), 4.1.5 (nbf) and 4.1.6 (iat, not in the future), with leeway.
 */
export function checkTimes(claims: Readonly<Record<string, unknown>>, nowMs: number, leewayS: number): Result<void> {
  const now = Math.floor(nowMs / 1000);
  const { exp, nbf, iat } = claims;
  if (exp === undefined) return fail('token_claims_invalid', 'the token has no exp claim');
  if (!isNumericDate(exp)) return fail('token_claims_invalid', 'the exp claim is not a number');
  if (exp <= now - leewayS) return fail('token_expired', `the token expired at ${isoTime(exp)}`);
  if (nbf !== undefined) {
    if (!isNumericDate(nbf)) return fail('token_claims_invalid', 'the nbf claim is not a number');
    if (nbf > now + leewayS) return fail('token_not_yet_valid', `the token is not valid before ${isoTime(nbf)}`);
  }
  if (iat !== undefined) {
    if (!isNumericDate(iat)) return fail('token_claims_invalid', 'the iat claim is not a number');
    if (iat > now + leewayS) return fail('token_claims_invalid', 'the token was issued in the future (iat)');
  }
  return ok(undefined);
}

function checkClaims(claims: Record<string, unknown>, nowMs: number, policy: TokenPolicy): Result<void> {
  const times = checkTimes(claims, nowMs, policy.leewayS);
  if (!times.ok) return times;
  // Keycloak marks its token kinds with a `typ` claim (Bearer, ID, Refresh, Logout): only an
  // access token may be used as a bearer token. RFC 9068 access tokens carry no such claim.
  const typ = claims['typ'];
  if (typ !== undefined && (typeof typ !== 'string' || typ.toLowerCase() !== 'bearer')) {
    return fail('token_type_not_allowed', 'the token is not an access token (typ claim is not Bearer)');
  }
  const issuer = checkIssuer(claims['iss'], policy.issuersAllowed);
  if (!issuer.ok) return issuer;
  const audience = checkAudience(claims['aud'], policy.audienceRequired);
  if (!audience.ok) return audience;
  return checkScopes(claims['scope'] ?? claims['scp'], policy.scopesRequired);
}

function isNumericDate(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

/** Freezes a JSON value and everything in it (iteratively: payload depth is attacker-chosen). */
function deepFreeze<T extends object>(root: T): T {
  const stack: object[] = [root];
  while (stack.length > 0) {
    const value = stack.pop() as object;
    Object.freeze(value);
    for (const child of Object.values(value)) {
      if (typeof child === 'object' && child !== null && !Object.isFrozen(child)) stack.push(child);
    }
  }
  return root;
}
