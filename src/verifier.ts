/**
 * The verifier: request facts in, decision out. Nothing here knows about Kong.
 *
 * Order of checks (each step in its own module), cheapest and credential first:
 *   bearer.ts      Authorization header -> one bearer token (RFC 6750 section 2.1)
 *   (strict)       the certificate header is present once, from a trusted peer (no parsing)
 *   token.ts       JWT signature and claims against the issuer's (cached) JWKS (RFC 7519, RFC 9068)
 *   binding.ts     cnf x5t#S256 present (strict) and equal to the leaf's thumbprint (RFC 8705 section 3)
 *   header.ts      certificate header -> DER certificates, leaf first
 *   chain.ts       path validation to a configured CA (RFC 5280 section 6)
 *   revocation.ts  OCSP / CRL (RFC 6960, RFC 5280 section 5) of the path chain.ts accepted
 *   response.ts    rejection -> 400/401/403 with an RFC 6750 challenge
 *
 * A request without a valid token never costs more than one token signature check: trust
 * anchors are not resolved, no path is built and no revocation request is made for it, and a
 * token bound to another certificate stops right after the header is decoded (issue 11 item 4).
 * A request with both a bad token and a bad certificate is refused with the token's reason
 * (strict mode: unless the certificate header is missing, duplicated or from an untrusted peer,
 * which is reported first). Every one of these reasons is a 401 `invalid_token` but
 * `request_headers_too_many`, `authorization_*` (400) and the scope reasons (403).
 *
 * Revocation comes last on purpose: it is the only step that makes network requests to addresses
 * that come from certificates (a CA's, but still), so only a request that would otherwise be
 * allowed (valid token, bound to this certificate) can make the plugin fetch anything.
 */
import { hash, randomBytes } from 'node:crypto';
import type { MtlsPopConfig, PopMode } from './config.js';
import { BoundedCache } from './cache.js';
import { fail, failure, ok, type AuthFailure, type Result } from './errors.js';
import { extractBearerToken } from './bearer.js';
import { decodeCertificateHeader } from './header.js';
import { ChainValidator, type ValidatedPath } from './chain.js';
import { thumbprintS256, type CertificateFacts } from './certificate.js';
import { JwksSource, type JwksOptions } from './jwks.js';
import { TokenVerifier, checkTimes, type TokenPolicy } from './token.js';
import { boundThumbprint, checkBinding, requiresCertificate } from './binding.js';
import { toHttpResponse, type HttpRejection } from './response.js';
import { RevocationChecker, type RevocationLookup, type RevocationOptions } from './revocation.js';

/** What the adapter knows about a request. Header arrays hold every value received (Kong multimap). */
export interface RequestFacts {
  /** Every `Authorization` header value; [] when absent. */
  readonly authorization: readonly string[];
  /** Every value of the configured certificate header; [] when absent. */
  readonly certificateHeader: readonly string[];
  /** Every value of the configured chain header (rfc9440 `Client-Cert-Chain`); [] when absent. */
  readonly certificateChainHeader?: readonly string[];
  /** Whether the direct peer is a trusted proxy (Kong `kong.ip.is_trusted(kong.client.get_ip())`). */
  readonly peerTrusted: boolean;
  /** Request host, the default realm. */
  readonly host?: string | null;
  /**
   * True when the gateway may have handed over only some of the request's headers (Kong's
   * `get_headers` stops at its limit, and its "truncated" second return value never reaches a
   * plugin server). Always a rejection: a header the plugin cannot see could be a second
   * Authorization or certificate header, the very duplicates it must refuse.
   */
  readonly headersTruncated?: boolean;
}

/** Something an operator should see in the log, without secrets. */
export type Note = 'certificate_header_ignored_untrusted_peer';

export type Decision =
  | {
    readonly allow: true;
    readonly claims: Readonly<Record<string, unknown>>;
    /** The verified client certificate, or null when the mode did not require one. */
    readonly certificate: CertificateFacts | null;
    readonly notes: readonly Note[];
  }
  | {
    readonly allow: false;
    readonly failure: AuthFailure;
    readonly response: HttpRejection;
    readonly certificate: CertificateFacts | null;
    readonly notes: readonly Note[];
  };

/** Trust anchors ready for use: the path validator and the anchors' DER (for revocation). */
export interface TrustAnchors {
  readonly validator: ChainValidator;
  readonly anchorsDer: readonly Uint8Array[];
}

/** Supplies the current trust anchors; the Kong adapter resolves CA certificate entities here. */
export type TrustAnchorProvider = () => Promise<Result<TrustAnchors>>;

export interface VerifierDependencies {
  /** Defaults to the PEM anchors of `ca_certificates_pem`. */
  readonly trustAnchors?: TrustAnchorProvider;
  /** Defaults to a JwksSource built from the config. */
  readonly jwks?: JwksSource;
  /** Defaults to a RevocationChecker built from the config (none with revocation_check_mode SKIP). */
  readonly revocation?: RevocationLookup | null;
  readonly now?: () => number;
}

// ---------------------------------------------------------------------------------------------
// The options each module gets from the config (shared with the diagnostics in explain.ts).

const withClock = (now: (() => number) | undefined): { now?: () => number } => (now === undefined ? {} : { now });

/** How the IdP's keys are fetched: discovery from `issuer` or `jwks_endpoint`, with the IdP TLS settings. */
export function jwksOptionsFrom(config: MtlsPopConfig, now?: () => number): JwksOptions {
  return {
    issuer: config.issuer,
    jwksUri: config.jwks_endpoint,
    timeoutMs: config.timeout,
    rediscoveryLifetimeS: config.rediscovery_lifetime,
    sslVerify: config.ssl_verify,
    caPem: config.idp_ca_certificates_pem,
    ...withClock(now),
  };
}

/** What a token must satisfy; `issuers_allowed` defaults to the configured `issuer`. */
export function tokenPolicyFrom(config: MtlsPopConfig, now?: () => number): TokenPolicy {
  return {
    issuersAllowed: config.issuers_allowed ?? (config.issuer === null ? [] : [config.issuer]),
    algorithms: config.signing_algorithms,
    leewayS: config.leeway,
    audienceRequired: config.audience_required,
    scopesRequired: config.scopes_required,
    cacheSize: config.cache_size,
    cacheTtlS: config.cache_ttl,
    cacheSalt: config.cache_tokens_salt,
    ...withClock(now),
  };
}

/** How revocation is checked; null when no certificate header is configured. */
export function revocationOptionsFrom(config: MtlsPopConfig, now?: () => number): RevocationOptions | null {
  const fromHeader = config.proof_of_possession_mtls_from_header;
  if (fromHeader === null) return null;
  return {
    mode: fromHeader.revocation_check_mode,
    timeoutMs: fromHeader.http_timeout,
    cacheTtlMs: fromHeader.cert_cache_ttl,
    cacheSize: config.cache_size,
    sslVerify: fromHeader.ssl_verify,
    ocspUrlOverride: fromHeader.ocsp_responder_url,
    httpProxy: fromHeader.http_proxy_host === null || fromHeader.http_proxy_port === null
      ? null
      : `http://${fromHeader.http_proxy_host}:${fromHeader.http_proxy_port}`,
    checkWholePath: fromHeader.revocation_check_whole_chain,
    maxAgeMs: fromHeader.revocation_max_age * 1000,
    ...withClock(now),
  };
}

/** Builds trust anchors from PEM strings (several blocks per string allowed). */
export function trustAnchorsFromPem(pems: readonly string[], config: MtlsPopConfig, now?: () => number): Result<TrustAnchors> {
  const fromHeader = config.proof_of_possession_mtls_from_header;
  const validator = ChainValidator.fromPem(pems, {
    allowPartialChain: fromHeader?.allow_partial_chain ?? false,
    cacheSize: config.cache_size,
    cacheTtlMs: fromHeader?.cert_cache_ttl ?? 60_000,
    ...(now === undefined ? {} : { now }),
  });
  if (!validator.ok) return validator;
  return ok({ validator: validator.value, anchorsDer: validator.value.anchorsDer });
}

/** A TrustAnchorProvider over fixed PEM anchors, built once. */
export function staticTrustAnchors(config: MtlsPopConfig, now?: () => number): TrustAnchorProvider {
  const fromHeader = config.proof_of_possession_mtls_from_header;
  if (fromHeader !== null && fromHeader.ca_certificates.length > 0) {
    const result = fail<TrustAnchors>('trust_anchors_unavailable',
      'ca_certificates (Kong CA certificate entities) need the Kong adapter to be resolved');
    return () => Promise.resolve(result);
  }
  const result = trustAnchorsFromPem(fromHeader?.ca_certificates_pem ?? [], config, now);
  return () => Promise.resolve(result);
}

/** The certificate header value(s) of a request, as received (one of each at most). */
interface PresentedCertificate {
  readonly value: string;
  readonly chainValue: string | null;
}

/** A decision-cache entry: what the approval returned, and the trust anchors it relied on (null: none). */
interface ApprovedDecision {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly certificate: CertificateFacts | null;
  readonly anchors: TrustAnchors | null;
}

/** A mismatch-cache entry: the refusal as the full path made it, and what it relied on. */
interface RefusedDecision {
  readonly decision: Decision & { readonly allow: false };
  readonly claims: Readonly<Record<string, unknown>>;
  readonly anchors: TrustAnchors | null;
}

type CacheStats = { hits: number; misses: number; size: number };

/** A validated certificate; `unchecked` is set when its revocation check (and cache entry) is still to come. */
interface ValidatedCertificate {
  readonly facts: CertificateFacts;
  readonly unchecked: { readonly path: ValidatedPath; readonly anchors: TrustAnchors; readonly key: string } | null;
}

export class Verifier {
  readonly #config: MtlsPopConfig;
  readonly #tokens: TokenVerifier;
  readonly #trustAnchors: TrustAnchorProvider;
  readonly #revocation: RevocationLookup | null;
  /**
   * Verified certificates by hash of the raw header value(s): a repeat request skips decoding,
   * path validation and the revocation lookup. Only successes are kept, for at most
   * `cert_cache_ttl` and never past the leaf's notAfter; an entry is only used with the trust
   * anchors it was verified against.
   */
  readonly #certificates: BoundedCache<{ readonly anchors: TrustAnchors; readonly facts: CertificateFacts }>;
  /**
   * Approved decisions by one salted hash of the request's Authorization value and certificate
   * header value(s): a repeat request costs one SHA-256 and a lookup instead of the bearer parse,
   * two hashes, two lookups and the binding check. Kept for at most min(`cache_ttl`,
   * `cert_cache_ttl`), never past the token's exp or the certificate path's notAfter; used only
   * with the trust anchors it was decided under, and only for requests whose other facts cannot
   * change the outcome (one value per header, trusted peer or secure_source off).
   */
  readonly #decisions: BoundedCache<ApprovedDecision>;
  /**
   * Thumbprint mismatches by the same key: a verified token presented with a certificate it is not
   * bound to (RFC 8705 section 3) is refused the same way on every repeat while the token is valid,
   * so the repeat costs what an approval from the cache costs, not a token and a certificate
   * lookup. Same bounds as the approvals, in its own LRU so refusals never evict approvals; no
   * other rejection is kept (a forged or expired token is checked again every time).
   */
  readonly #mismatches: BoundedCache<RefusedDecision>;
  readonly #decisionSalt: string;
  readonly #now: () => number;

  constructor(config: MtlsPopConfig, deps: VerifierDependencies = {}) {
    this.#config = config;
    this.#now = deps.now ?? Date.now;
    this.#decisionSalt = config.cache_tokens_salt ?? randomBytes(32).toString('base64');
    const decisionCache = {
      maxEntries: config.cache_size,
      ttlMs: Math.min(Math.max(0, config.cache_ttl) * 1000, config.proof_of_possession_mtls_from_header?.cert_cache_ttl ?? 0),
      now: this.#now,
    };
    this.#decisions = new BoundedCache(decisionCache);
    this.#mismatches = new BoundedCache(decisionCache);
    this.#certificates = new BoundedCache({
      maxEntries: config.cache_size,
      ttlMs: config.proof_of_possession_mtls_from_header?.cert_cache_ttl ?? 0,
      ...(deps.now === undefined ? {} : { now: deps.now }),
    });
    const jwks = deps.jwks ?? new JwksSource(jwksOptionsFrom(config, deps.now));
    this.#tokens = new TokenVerifier(tokenPolicyFrom(config, deps.now), jwks);
    this.#trustAnchors = deps.trustAnchors ?? staticTrustAnchors(config, deps.now);
    const revocation = revocationOptionsFrom(config, deps.now);
    this.#revocation = deps.revocation !== undefined ? deps.revocation
      : revocation === null || revocation.mode === 'SKIP' ? null : new RevocationChecker(revocation);
  }

  /** Decides one request. Never throws: an unexpected error is a rejection (`internal_error`). */
  async verify(facts: RequestFacts): Promise<Decision> {
    const notes: Note[] = [];
    let certificate: CertificateFacts | null = null;
    let validated: ValidatedCertificate | null = null;
    try {
      if (facts.headersTruncated === true) {
        return this.#deny(failure('request_headers_too_many', 'the request has more header lines than the gateway hands to the plugin'), facts, null, notes);
      }
      const decisionKey = this.#decisionKey(facts);
      if (decisionKey !== null) {
        const approved = this.#decisions.get(decisionKey);
        if (approved !== undefined) {
          if (await this.#stillHolds(approved)) {
            return { allow: true, claims: approved.claims, certificate: approved.certificate, notes };
          }
          this.#decisions.delete(decisionKey);
        } else {
          const refused = this.#mismatches.get(decisionKey);
          if (refused !== undefined) {
            if (await this.#stillHolds(refused)) return refused.decision;
            this.#mismatches.delete(decisionKey);
          }
        }
      }
      const used: { anchors: TrustAnchors | null } = { anchors: null };

      const token = extractBearerToken(facts.authorization);
      if (!token.ok) return this.#deny(token.error, facts, null, notes);

      const mode = this.#config.proof_of_possession_mtls;
      // strict: the certificate header's presence checks first (no crypto, no I/O), so a request
      // without a usable header is told so whatever its token.
      let presented: Result<PresentedCertificate> | null = mode === 'strict' ? this.#presented(facts, notes) : null;
      if (presented !== null && !presented.ok) return this.#deny(presented.error, facts, null, notes);

      // The token before any certificate work: an unauthenticated request costs one signature check
      // under the cached JWKS and never resolves trust anchors, builds a path or reaches revocation.
      const verified = await this.#tokens.verify(token.value);
      if (!verified.ok) return this.#deny(verified.error, facts, null, notes);
      const claims = verified.value.claims;

      const bound = boundThumbprint(claims);
      if (!bound.ok) return this.#deny(bound.error, facts, null, notes);
      if (mode === 'strict' && bound.value === null) {
        const unbound = checkBinding(mode, null, null);
        if (!unbound.ok) return this.#deny(unbound.error, facts, null, notes);
      }

      if (requiresCertificate(mode, bound.value)) {
        presented ??= this.#presented(facts, notes);
        if (!presented.ok) return this.#deny(presented.error, facts, null, notes);
        const cert = await this.#certificate(presented.value, used, mode, bound.value);
        if (!cert.ok) {
          const refused = this.#deny(cert.error, facts, null, notes);
          return this.#rememberMismatch(decisionKey, refused, claims, used.anchors, verified.value.expiresAt);
        }
        validated = cert.value;
        certificate = cert.value.facts;
      }

      const binding = checkBinding(mode, bound.value, certificate?.thumbprint ?? null);
      if (!binding.ok) {
        const refused = this.#deny(binding.error, facts, certificate, notes);
        return this.#rememberMismatch(decisionKey, refused, claims, used.anchors, verified.value.expiresAt);
      }

      if (validated !== null) {
        const revocation = await this.#revocationChecked(validated);
        if (!revocation.ok) return this.#deny(revocation.error, facts, null, notes);
      }
      if (decisionKey !== null) {
        const certificateEnd = certificate === null ? Number.POSITIVE_INFINITY : (certificate.pathNotAfter ?? certificate.notAfter).getTime();
        const tokenEnd = verified.value.expiresAt ?? Number.NEGATIVE_INFINITY;
        this.#decisions.set(decisionKey, { claims, certificate, anchors: used.anchors }, Math.min(tokenEnd, certificateEnd));
      }
      return { allow: true, claims, certificate, notes };
    } catch (error) {
      const name = error instanceof Error ? error.name : typeof error;
      return this.#deny(failure('internal_error', `unexpected ${name} while verifying`), facts, certificate, notes);
    }
  }

  /**
   * The certificate header as presented, before any work on it: missing (or from an untrusted
   * peer, which counts as missing) -> `certificate_missing`; sent twice ->
   * `certificate_header_multiple`.
   */
  #presented(facts: RequestFacts, notes: Note[]): Result<PresentedCertificate> {
    const fromHeader = this.#config.proof_of_possession_mtls_from_header;
    if (fromHeader === null) return fail('certificate_missing', 'no certificate header is configured');
    const values = facts.certificateHeader;
    if (values.length > 0 && fromHeader.secure_source && !facts.peerTrusted) {
      notes.push('certificate_header_ignored_untrusted_peer');
      return fail('certificate_missing',
        'the certificate header was ignored: the request did not come from a trusted proxy');
    }
    if (values.length === 0) return fail('certificate_missing', 'no client certificate was presented');
    if (values.length > 1) {
      return fail('certificate_header_multiple', `the certificate header was sent ${values.length} times`);
    }
    const chainValues = facts.certificateChainHeader ?? [];
    if (chainValues.length > 1) {
      return fail('certificate_header_multiple', `the certificate chain header was sent ${chainValues.length} times`);
    }
    return ok({ value: values[0] ?? '', chainValue: chainValues[0] ?? null });
  }

  /**
   * The presented client certificate, validated (not yet checked for revocation unless it comes
   * from the certificate cache). With a bound thumbprint (`cnf` x5t#S256 of a
   * verified token), a leaf of another thumbprint is refused right after decoding, before path
   * validation: only a certificate the token was issued to is worth a path search.
   */
  async #certificate(presented: PresentedCertificate, used: { anchors: TrustAnchors | null }, mode: PopMode,
    bound: string | null): Promise<Result<ValidatedCertificate>> {
    const fromHeader = this.#config.proof_of_possession_mtls_from_header;
    if (fromHeader === null) return fail('certificate_missing', 'no certificate header is configured');
    const { value, chainValue } = presented;
    const anchors = await this.#trustAnchors();
    if (!anchors.ok) return anchors;
    used.anchors = anchors.value;
    const key = hash('sha256', chainValue === null ? value : `${value}\u0000${chainValue}`, 'base64');
    const cached = this.#certificates.get(key);
    if (cached !== undefined && cached.anchors === anchors.value) return ok({ facts: cached.facts, unchecked: null });

    const decoded = decodeCertificateHeader(value, fromHeader.certificate_header_format, {
      maxHeaderSize: fromHeader.max_header_size,
      maxChainLength: fromHeader.max_chain_length,
      xfccElements: fromHeader.xfcc_element_count,
    }, chainValue);
    if (!decoded.ok) return decoded;
    const leaf = decoded.value[0];
    if (bound !== null && leaf !== undefined) {
      const binding = checkBinding(mode, bound, thumbprintS256(leaf));
      if (!binding.ok) return binding;
    }
    const validated = await anchors.value.validator.validatePath(decoded.value);
    if (!validated.ok) return validated;
    return ok({ facts: validated.value.facts, unchecked: { path: validated.value, anchors: anchors.value, key } });
  }

  /**
   * Revocation of exactly the path chain validation accepted (never a path rebuilt from the
   * header), then the certificate cache entry. A certificate from the cache was checked already.
   */
  async #revocationChecked(validated: ValidatedCertificate): Promise<Result<true>> {
    const pending = validated.unchecked;
    if (pending === null) return ok(true);
    if (this.#revocation !== null) {
      const revocation = await this.#revocation.check(pending.path);
      if (!revocation.ok) return revocation;
    }
    const facts = validated.facts;
    this.#certificates.set(pending.key, { anchors: pending.anchors, facts }, (facts.pathNotAfter ?? facts.notAfter).getTime());
    return ok(true);
  }


  /**
   * The decision-cache key, or null when the request's other facts could change the outcome: more
   * than one Authorization or certificate value (rejected by the full path), a chain header sent
   * twice, or a certificate header from an untrusted peer while secure_source is on. Values are
   * length-prefixed so no two requests share a key.
   */
  #decisionKey(facts: RequestFacts): string | null {
    const fromHeader = this.#config.proof_of_possession_mtls_from_header;
    if (fromHeader === null || this.#config.cache_size === 0) return null;
    if (facts.authorization.length !== 1 || facts.certificateHeader.length !== 1) return null;
    if (fromHeader.secure_source && !facts.peerTrusted) return null;
    const chain = facts.certificateChainHeader ?? [];
    if (chain.length > 1) return null;
    const authorization = facts.authorization[0] as string;
    const value = facts.certificateHeader[0] as string;
    const chainValue = chain[0];
    if (typeof authorization !== 'string' || typeof value !== 'string') return null;
    return hash('sha256', `${this.#decisionSalt}${authorization.length}:${authorization}${value.length}:${value}` +
      (chainValue === undefined ? '-' : `${chainValue.length}:${chainValue}`), 'base64');
  }

  /**
   * Keeps a thumbprint mismatch of a verified token (and nothing else) under the decision key, until
   * the token's exp at the latest; returns the refusal.
   */
  #rememberMismatch(key: string | null, refused: Decision, claims: Readonly<Record<string, unknown>>,
    anchors: TrustAnchors | null, expiresAt: number | null): Decision {
    if (key !== null && !refused.allow && refused.failure.reason === 'certificate_thumbprint_mismatch' && refused.notes.length === 0) {
      this.#mismatches.set(key, { decision: refused, claims, anchors }, expiresAt ?? Number.NEGATIVE_INFINITY);
    }
    return refused;
  }

  /**
   * A cached decision still holds: same trust anchors, token times (exp, nbf, iat with leeway) still
   * fine; otherwise the full path decides again.
   */
  async #stillHolds(cached: ApprovedDecision | RefusedDecision): Promise<boolean> {
    if (cached.anchors !== null) {
      const anchors = await this.#trustAnchors();
      if (!anchors.ok || anchors.value !== cached.anchors) return false;
    }
    return checkTimes(cached.claims, this.#now(), this.#config.leeway).ok;
  }

  #deny(rejection: AuthFailure, facts: RequestFacts, certificate: CertificateFacts | null, notes: Note[]): Decision {
    const response = toHttpResponse(rejection, {
      realm: this.#config.realm ?? facts.host ?? 'kong',
      unauthorizedMessage: this.#config.unauthorized_error_message,
      forbiddenMessage: this.#config.forbidden_error_message,
      displayErrors: this.#config.display_errors,
    });
    return { allow: false, failure: rejection, response, certificate, notes };
  }

  /**
   * Cache statistics, for metrics and benchmarks. `decisions` counts the approvals and the mismatch
   * refusals together: a hit is a request answered by either, a miss one answered by neither.
   */
  stats(): { tokens: CacheStats; certificates: CacheStats; decisions: CacheStats } {
    const approved = this.#decisions.stats();
    const refused = this.#mismatches.stats();
    return {
      tokens: this.#tokens.stats(),
      certificates: this.#certificates.stats(),
      decisions: { hits: approved.hits + refused.hits, misses: refused.misses, size: approved.size + refused.size },
    };
  }
}
