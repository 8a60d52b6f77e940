/**
 * The verifier: request facts in, decision out. Nothing here knows about Kong.
 *
 * Order of checks (each step in its own module):
 *   bearer.ts      Authorization header -> one bearer token (RFC 6750 section 2.1)
 *   header.ts      certificate header -> DER certificates, leaf first (only from a trusted peer)
 *   chain.ts       path validation to a configured CA (RFC 5280 section 6)
 *   revocation.ts  OCSP / CRL (RFC 6960, RFC 5280 section 5)
 *   token.ts       JWT signature and claims against the issuer's JWKS (RFC 7519, RFC 9068)
 *   binding.ts     cnf x5t#S256 == thumbprint of the certificate (RFC 8705 section 3)
 *   response.ts    rejection -> 400/401/403 with an RFC 6750 challenge
 */
import { hash } from 'node:crypto';
import type { MtlsPopConfig } from './config.js';
import { BoundedCache } from './cache.js';
import { fail, failure, ok, type AuthFailure, type Result } from './errors.js';
import { extractBearerToken } from './bearer.js';
import { decodeCertificateHeader } from './header.js';
import { ChainValidator } from './chain.js';
import type { CertificateFacts } from './certificate.js';
import { JwksSource } from './jwks.js';
import { TokenVerifier } from './token.js';
import { boundThumbprint, checkBinding, requiresCertificate } from './binding.js';
import { toHttpResponse, type HttpRejection } from './response.js';
import { RevocationChecker } from './revocation.js';
import { pemBlocksToDer } from './pem.js';

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
  readonly now?: () => number;
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
  const anchorsDer = pems.flatMap((pem) => pemBlocksToDer(pem));
  return ok({ validator: validator.value, anchorsDer });
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

export class Verifier {
  readonly #config: MtlsPopConfig;
  readonly #tokens: TokenVerifier;
  readonly #trustAnchors: TrustAnchorProvider;
  readonly #revocation: RevocationChecker | null;
  /**
   * Verified certificates by hash of the raw header value(s): a repeat request skips decoding,
   * path validation and the revocation lookup. Only successes are kept, for at most
   * `cert_cache_ttl` and never past the leaf's notAfter; an entry is only used with the trust
   * anchors it was verified against.
   */
  readonly #certificates: BoundedCache<{ readonly anchors: TrustAnchors; readonly facts: CertificateFacts }>;

  constructor(config: MtlsPopConfig, deps: VerifierDependencies = {}) {
    this.#config = config;
    this.#certificates = new BoundedCache({
      maxEntries: config.cache_size,
      ttlMs: config.proof_of_possession_mtls_from_header?.cert_cache_ttl ?? 0,
      ...(deps.now === undefined ? {} : { now: deps.now }),
    });
    const jwks = deps.jwks ?? new JwksSource({
      issuer: config.issuer,
      jwksUri: config.jwks_endpoint,
      timeoutMs: config.timeout,
      rediscoveryLifetimeS: config.rediscovery_lifetime,
      sslVerify: config.ssl_verify,
      caPem: config.idp_ca_certificates_pem,
      ...(deps.now === undefined ? {} : { now: deps.now }),
    });
    this.#tokens = new TokenVerifier({
      issuersAllowed: config.issuers_allowed ?? (config.issuer === null ? [] : [config.issuer]),
      algorithms: config.signing_algorithms,
      leewayS: config.leeway,
      audienceRequired: config.audience_required,
      scopesRequired: config.scopes_required,
      cacheSize: config.cache_size,
      cacheTtlS: config.cache_ttl,
      cacheSalt: config.cache_tokens_salt,
      ...(deps.now === undefined ? {} : { now: deps.now }),
    }, jwks);
    this.#trustAnchors = deps.trustAnchors ?? staticTrustAnchors(config, deps.now);
    const fromHeader = config.proof_of_possession_mtls_from_header;
    this.#revocation = fromHeader === null || fromHeader.revocation_check_mode === 'SKIP'
      ? null
      : new RevocationChecker({
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
        ...(deps.now === undefined ? {} : { now: deps.now }),
      });
  }

  /** Decides one request. Never throws: an unexpected error is a rejection (`internal_error`). */
  async verify(facts: RequestFacts): Promise<Decision> {
    const notes: Note[] = [];
    let certificate: CertificateFacts | null = null;
    try {
      const token = extractBearerToken(facts.authorization);
      if (!token.ok) return this.#deny(token.error, facts, null, notes);

      const mode = this.#config.proof_of_possession_mtls;
      let certificateChecked = false;
      // strict: the certificate is always required, so check it before spending a signature check.
      if (mode === 'strict') {
        const cert = await this.#certificate(facts, notes);
        if (!cert.ok) return this.#deny(cert.error, facts, null, notes);
        certificate = cert.value;
        certificateChecked = true;
      }

      const verified = await this.#tokens.verify(token.value);
      if (!verified.ok) return this.#deny(verified.error, facts, certificate, notes);
      const claims = verified.value.claims;

      const bound = boundThumbprint(claims);
      if (!bound.ok) return this.#deny(bound.error, facts, certificate, notes);

      if (!certificateChecked && requiresCertificate(mode, bound.value)) {
        const cert = await this.#certificate(facts, notes);
        if (!cert.ok) return this.#deny(cert.error, facts, null, notes);
        certificate = cert.value;
      }

      const binding = checkBinding(mode, bound.value, certificate?.thumbprint ?? null);
      if (!binding.ok) return this.#deny(binding.error, facts, certificate, notes);
      return { allow: true, claims, certificate, notes };
    } catch (error) {
      const name = error instanceof Error ? error.name : typeof error;
      return this.#deny(failure('internal_error', `unexpected ${name} while verifying`), facts, certificate, notes);
    }
  }

  /**
   * The client certificate from the header, validated. Missing (or from an untrusted peer, which
   * counts as missing) -> `certificate_missing`.
   */
  async #certificate(facts: RequestFacts, notes: Note[]): Promise<Result<CertificateFacts>> {
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
    const value = values[0] ?? '';
    const chainValue = chainValues[0] ?? null;
    const anchors = await this.#trustAnchors();
    if (!anchors.ok) return anchors;
    const key = hash('sha256', chainValue === null ? value : `${value}\u0000${chainValue}`, 'base64');
    const cached = this.#certificates.get(key);
    if (cached !== undefined && cached.anchors === anchors.value) return ok(cached.facts);

    const decoded = decodeCertificateHeader(value, fromHeader.certificate_header_format, {
      maxHeaderSize: fromHeader.max_header_size,
      maxChainLength: fromHeader.max_chain_length,
    }, chainValue);
    if (!decoded.ok) return decoded;
    const validated = await anchors.value.validator.validate(decoded.value);
    if (!validated.ok) return validated;
    if (this.#revocation !== null) {
      const revocation = await this.#revocation.check(decoded.value, anchors.value.anchorsDer);
      if (!revocation.ok) return revocation;
    }
    this.#certificates.set(key, { anchors: anchors.value, facts: validated.value }, (validated.value.pathNotAfter ?? validated.value.notAfter).getTime());
    return validated;
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

  /** Cache statistics, for metrics and benchmarks. */
  stats(): { tokens: { hits: number; misses: number; size: number }; certificates: { hits: number; misses: number; size: number } } {
    return { tokens: this.#tokens.stats(), certificates: this.#certificates.stats() };
  }
}
