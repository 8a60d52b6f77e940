/**
 * Why a request is (or would be) rejected: the plugin's checks, one step at a time, as data.
 *
 * `explain()` runs the same modules as the verifier, in the same configuration, on one
 * certificate + token pair, and records every check with its values (dates, thumbprints, claims)
 * instead of stopping at the first failure. The verdict does NOT come from these steps: it comes
 * from running the real `Verifier` on the same request facts (`peerTrusted: true`), so the
 * explanation can never pass what the plugin rejects. When a step disagrees with the verdict the
 * report says so (`inconsistencies`) and the verdict wins.
 *
 * Steps, in report order (the plugin itself checks the token before the certificate, refuses a
 * token bound to another certificate before path validation, and asks about revocation last, once
 * the token and its binding passed: see `verifier.ts`; here the chain step shows revocation
 * whatever the token):
 *   1. header   certificate header value -> DER certificates (`header.ts`), exactly as received,
 *               or the certificates from files encoded the way the configured format carries them;
 *   2. chain    path validation to the configured CAs (`chain.ts`), revocation (`revocation.ts`),
 *               with the path, dates, CA flags, clientAuth EKU and signatures spelled out;
 *   3. token    bearer syntax (`bearer.ts`), JWS header, JWKS key (`jwks.ts`), signature and claims
 *               (`token.ts`, `claims.ts`), each with its value;
 *   4. binding  cnf x5t#S256 vs the certificate thumbprint (`binding.ts`, RFC 8705 section 3.1), in
 *               base64url and hex, recognising hex, padded and standard-base64 look-alikes;
 *   then the verdict and the HTTP response the plugin would send (`response.ts`).
 *
 * Nothing here prints: the CLI (`bin/mtls-pop.ts`) formats the report. The report never holds the
 * token itself or its signature, only the decoded header and claims.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { HeaderFormat, MtlsPopConfig } from './config.js';
import type { AuthFailure, ReasonCode, Result } from './errors.js';
import { extractBearerToken } from './bearer.js';
import { decodeCertificateHeader } from './header.js';
import {
  certificateFacts, OID, parseCertificate, subjectPublicKey, thumbprintS256, KEY_USAGE,
  type CertificateFacts, type ParsedCertificate,
} from './certificate.js';
import { JwksSource } from './jwks.js';
import { verifyJwsSignature } from './jws.js';
import { TokenVerifier, type TokenPolicy } from './token.js';
import { checkAudience, checkIssuer, checkScopes } from './claims.js';
import { boundThumbprint, checkBinding, requiresCertificate } from './binding.js';
import { RevocationChecker, type RevocationLookup, type RevocationOutcome } from './revocation.js';
import { parsePemBlocks, toPem } from './pem.js';
import {
  jwksOptionsFrom, revocationOptionsFrom, tokenPolicyFrom, trustAnchorsFromPem, Verifier, type RequestFacts,
} from './verifier.js';
import type { HttpRejection } from './response.js';

export type StepStatus = 'PASS' | 'FAIL' | 'SKIP';
export type StepId = 'header' | 'chain' | 'token' | 'binding';

/** One check inside a step, with the values it looked at. */
export interface CheckLine {
  /** Stable name: header: decode; chain: path, validity, ca, eku, signature, revocation; token: bearer, header, key, signature, exp, nbf, iat, iss, aud, scope; binding: cnf, certificate, match. */
  readonly name: string;
  /** Human label. */
  readonly label: string;
  status: StepStatus;
  /** What was checked and what was found. */
  text: string;
  /** Further lines (one per certificate, hints). */
  readonly notes: string[];
}

export interface ExplainStep {
  readonly id: StepId;
  readonly title: string;
  status: StepStatus;
  /** One line: what the step concluded. */
  summary: string;
  /** The failure the plugin's module returned for this step (null when it passed or was skipped). */
  failure: AuthFailure | null;
  /** What to change, when the step failed. */
  fix: string | null;
  readonly checks: CheckLine[];
}

export interface CertificateSummary {
  /** 'leaf', 'intermediate 1', ... as presented. */
  readonly role: string;
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** x5t#S256 (base64url, no padding). */
  readonly thumbprint: string;
  /** The same SHA-256, in lower-case hex. */
  readonly sha256Hex: string;
}

export interface ExplainVerdict {
  /** From the real Verifier. */
  readonly allow: boolean;
  readonly reason: ReasonCode | null;
  readonly detail: string | null;
  /** The response the plugin would send; null when the request would pass. */
  readonly response: HttpRejection | null;
  readonly fix: string | null;
  readonly notes: readonly string[];
}

export interface ExplainReport {
  readonly mode: MtlsPopConfig['proof_of_possession_mtls'];
  readonly steps: readonly ExplainStep[];
  readonly verdict: ExplainVerdict;
  /** The presented certificates (from the header or the files), leaf first. */
  readonly certificates: readonly CertificateSummary[];
  /** The decoded token header and claims (never the token or its signature); null when not decodable. */
  readonly token: { readonly header: Record<string, unknown> | null; readonly claims: Record<string, unknown> | null };
  /** Where a step disagrees with the verdict; empty when the explanation and the verifier agree. */
  readonly inconsistencies: readonly string[];
  readonly elapsedMs: number;
}

/** The certificate as the plugin would receive it: a header value, or certificates to encode. */
export type CertificateInput =
  | { readonly kind: 'header'; readonly value: string; readonly chainValue?: string | null }
  | { readonly kind: 'certificates'; readonly certificates: readonly Uint8Array[] };

export interface ExplainInput {
  readonly config: MtlsPopConfig;
  /** The bearer token, or a whole `Authorization` value ("Bearer ..."). */
  readonly token: string;
  readonly certificate: CertificateInput;
  /** A certificate the operator expects the header to carry (`--cert` next to `--header-value`). */
  readonly expectedLeaf?: Uint8Array | null;
  /** Shared key source (tests); by default one built from the config, as the plugin builds it. */
  readonly jwks?: JwksSource;
  /** Request host (the default realm). */
  readonly host?: string | null;
  readonly now?: () => number;
}

// ---------------------------------------------------------------------------------------------
// Fixes: what an operator changes for each reason.

const FIXES: Partial<Record<ReasonCode, string>> = {
  request_headers_too_many: 'send fewer than 1000 header lines: Kong hands a plugin at most 1000, and the plugin refuses what it cannot see whole',
  token_missing: 'send the access token in "Authorization: Bearer <token>"',
  authorization_multiple: 'send exactly one Authorization header carrying one Bearer token',
  authorization_malformed: 'send "Authorization: Bearer <token>" with the JWT as is (base64url parts joined by dots)',
  token_malformed: 'the access token must be a signed JWT (JWS compact serialization, three base64url parts); opaque and encrypted tokens are not supported',
  token_too_large: 'the token is larger than any real access token; check what the client sends',
  token_algorithm_not_allowed: 'have the IdP sign access tokens with an asymmetric algorithm (RS256, PS256, ES256, EdDSA) listed in signing_algorithms, or add its algorithm there',
  token_type_not_allowed: 'the token header typ must be JWT or at+jwt (RFC 9068); check the IdP client settings',
  token_crit_unsupported: 'the IdP marks header extensions as critical (crit); no extension is supported, so issue tokens without crit',
  token_signature_invalid: 'the token was not signed by a key of the configured IdP (or it was altered): check that issuer / jwks_endpoint (--issuer / --jwks) name the IdP that issued it',
  token_key_not_found: 'the IdP key set has no key with the token kid: check that issuer / jwks_endpoint name the IdP and realm that issued the token (after a key rotation the plugin refetches at most once per rediscovery_lifetime)',
  token_expired: 'get a fresh token; if it was fresh, compare the clocks of the IdP and the gateway (NTP) or allow some leeway',
  token_not_yet_valid: 'the IdP clock is ahead of the gateway: synchronise clocks (NTP) or allow some leeway',
  token_issuer_not_allowed: 'set issuer (or issuers_allowed) to the token iss exactly (trailing slashes aside), e.g. with the realm path',
  token_claims_invalid: 'the IdP must issue tokens with a numeric exp (and nbf/iat, when present, numeric and not in the future)',
  jwks_unavailable: 'the gateway must reach the IdP key set: check issuer / jwks_endpoint, the network path, TLS trust (ssl_verify, idp_ca_certificates_pem) and timeout',
  audience_not_allowed: 'request the token for one of audience_required (an audience mapper on the IdP), or add the token aud to audience_required',
  scope_insufficient: 'request the token with every scope of one scopes_required entry',
  certificate_missing: 'the load balancer must forward the client certificate in the configured header, and Kong must trust the load balancer address (trusted_ips) when secure_source is on',
  certificate_header_multiple: 'the certificate header must appear once: make the load balancer replace, not append, the header',
  certificate_header_malformed: 'set certificate_header_format to what the load balancer sends: base64_encoded (HAProxy ssl_c_der,base64; Traefik; Cloudflare), url_encoded (nginx $ssl_client_escaped_cert; AWS ALB), pem, xfcc (Envoy/Istio), rfc9440; for xfcc, xfcc_element_count must equal the number of elements the proxies write, and client certificates must not carry , ; or \" in URI/DNS SANs',
  certificate_header_too_large: 'raise max_header_size (and the proxy header buffers, e.g. nginx large_client_header_buffers) or forward fewer certificates',
  certificate_too_many: 'raise max_chain_length or forward fewer certificates',
  certificate_malformed: 'the header does not carry a DER X.509 certificate: check certificate_header_format and what the load balancer puts in the header',
  certificate_untrusted: 'configure the CA that issued the client certificate (ca_certificates / ca_certificates_pem, --ca) and have the load balancer forward the intermediates; allow_partial_chain only if an intermediate is your trust anchor',
  certificate_expired: 'renew the expired certificate (dates above)',
  certificate_not_yet_valid: 'the certificate is not valid yet: wait, or fix the clock of the CA or the gateway',
  certificate_chain_invalid: 'the chain breaks an RFC 5280 rule named above: reissue the offending CA or client certificate',
  certificate_is_ca: 'the client must present its own end-entity certificate, not a CA certificate',
  certificate_not_for_client_auth: 'issue the client certificate with extendedKeyUsage clientAuth and keyUsage digitalSignature (and no CA on the path may restrict EKU without clientAuth)',
  trust_anchors_unavailable: 'configure the trust anchors as PEM certificates (ca_certificates_pem, --ca); Kong CA certificate entities must exist and be readable',
  certificate_revoked: 'the client certificate was revoked by its CA: issue a new one',
  revocation_unknown: 'no OCSP responder or CRL gave a usable answer: check the responder URLs in the certificate and the network, or use revocation_check_mode IGNORE_CA_ERROR',
  token_not_bound: 'the IdP must issue certificate-bound tokens (RFC 8705: the client authenticates with its certificate at the token endpoint; Keycloak: "OAuth 2.0 Mutual TLS Certificate Bound Access Tokens Enabled"), or use proof_of_possession_mtls optional during migration',
  token_cnf_malformed: 'cnf["x5t#S256"] must be the base64url (no padding) SHA-256 of the certificate DER (RFC 8705 section 3.1)',
  token_cnf_unsupported: 'the token is bound by a confirmation this route does not check (DPoP jkt, jwk, ..., or x5t#S256 with proof_of_possession_mtls off): issue it without that confirmation, or use proof_of_possession_mtls optional/strict for x5t#S256',
  consumer_not_found: 'create a Kong consumer whose username, custom_id or id (consumer_by) equals the consumer_claim value of the token, or set consumer_optional or anonymous',
  certificate_thumbprint_mismatch: 'the token was issued for another certificate: obtain the token over mTLS with this client certificate, and make sure the load balancer forwards the certificate the client presented',
  internal_error: 'unexpected failure: please report it with the --json output (it holds no token)',
};

export function fixFor(reason: ReasonCode): string {
  return FIXES[reason] ?? 'see the failure detail';
}

/** Which step a reason belongs to (certificate_missing and certificate_malformed occur in two). */
const REASON_STEPS: Readonly<Record<string, readonly StepId[]>> = {
  certificate_missing: ['header', 'binding'],
  certificate_header_multiple: ['header'],
  certificate_header_malformed: ['header'],
  certificate_header_too_large: ['header'],
  certificate_too_many: ['header', 'chain'],
  certificate_malformed: ['header', 'chain'],
  certificate_untrusted: ['chain'], certificate_expired: ['chain'], certificate_not_yet_valid: ['chain'],
  certificate_chain_invalid: ['chain'], certificate_is_ca: ['chain'], certificate_not_for_client_auth: ['chain'],
  trust_anchors_unavailable: ['chain'], certificate_revoked: ['chain'], revocation_unknown: ['chain'],
  token_not_bound: ['binding'], token_cnf_malformed: ['binding'], token_cnf_unsupported: ['binding'],
  certificate_thumbprint_mismatch: ['binding'],
};

function stepsOf(reason: ReasonCode): readonly StepId[] {
  return REASON_STEPS[reason] ?? (reason === 'internal_error' ? ['header', 'chain', 'token', 'binding'] : ['token']);
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

function sha256Hex(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

function iso(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString().replace('.000Z', 'Z');
}

/** "in 4 min", "3 h ago": relative to now, coarse. */
function relative(ms: number, now: number): string {
  const delta = ms - now;
  const abs = Math.abs(delta);
  let text: string;
  if (abs < 90_000) text = `${Math.round(abs / 1000)} s`;
  else if (abs < 90 * 60_000) text = `${Math.round(abs / 60_000)} min`;
  else if (abs < 48 * 3600_000) text = `${Math.round(abs / 3600_000)} h`;
  else text = `${Math.round(abs / 86_400_000)} days`;
  return delta >= 0 ? `in ${text}` : `${text} ago`;
}

function check(name: string, label: string, status: StepStatus, text: string, notes: string[] = []): CheckLine {
  return { name, label, status, text, notes };
}

/** Marks the step failed with the failure the plugin's module returned (the verdict's side of the story). */
function failStep(step: ExplainStep, failure: AuthFailure, summarySuffix = ''): void {
  step.status = 'FAIL';
  step.failure = failure;
  step.fix = fixFor(failure.reason);
  step.summary = `${failure.reason}: ${failure.detail}${summarySuffix}`;
}

/**
 * Puts the module's failure on the check line `name`: a new FAIL line, or a line that looked fine
 * (its own text kept as a note). With `notePlugin`, a line that failed for a reason worded
 * differently also gets the module's detail as a note.
 */
function failCheck(step: ExplainStep, name: string, failure: AuthFailure, notePlugin: boolean): void {
  const line = step.checks.find((c) => c.name === name);
  if (line === undefined) {
    step.checks.push(check(name, name, 'FAIL', failure.detail));
  } else if (line.status !== 'FAIL') {
    line.notes.push(`(looked fine: ${line.text})`);
    line.status = 'FAIL';
    line.text = failure.detail;
  } else if (notePlugin && !line.text.includes(failure.detail)) {
    line.notes.push(`plugin: ${failure.detail}`);
  }
}

function summarise(role: string, der: Uint8Array, facts: CertificateFacts): CertificateSummary {
  return {
    role, subject: facts.subject, issuer: facts.issuer, serialNumber: facts.serialNumber,
    notBefore: iso(facts.notBefore.getTime()), notAfter: iso(facts.notAfter.getTime()),
    thumbprint: facts.thumbprint, sha256Hex: sha256Hex(der),
  };
}

function nameOf(cert: ParsedCertificate): string {
  const text = cert.subject.text === '' ? `(empty subject, serial ${cert.facts.serialNumber})` : cert.subject.text;
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Certificates from files or stdin.

export type CertificateRead = { readonly ok: true; readonly certificates: Buffer[] } | { readonly ok: false; readonly message: string };

/**
 * Certificates from the bytes of a file: PEM (every CERTIFICATE block; other blocks such as a
 * private key are ignored), DER, a percent-encoded PEM (nginx `$ssl_client_escaped_cert`) or one
 * line of base64 DER (HAProxy `ssl_c_der,base64`). Each must parse as X.509.
 */
export function readCertificates(data: Uint8Array): CertificateRead {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length === 0) return { ok: false, message: 'is empty' };
  let ders: Buffer[];
  if (bytes[0] === 0x30) {
    ders = [bytes];
  } else {
    let text = bytes.toString('latin1').trim();
    if (/^-----BEGIN(%20|\+)/.test(text)) {
      try {
        text = decodeURIComponent(text);
      } catch {
        return { ok: false, message: 'looks percent-encoded but has an invalid escape' };
      }
    }
    if (text.includes('-----BEGIN')) {
      const blocks = parsePemBlocks(text);
      if (blocks === null) return { ok: false, message: 'has a malformed PEM block (bad base64, or BEGIN without END)' };
      if (blocks.length === 0) return { ok: false, message: 'has no PEM "CERTIFICATE" block' };
      ders = blocks;
    } else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) {
      ders = [Buffer.from(text, 'base64')];
    } else {
      return { ok: false, message: 'is neither PEM, DER nor base64 DER' };
    }
  }
  for (const [index, der] of ders.entries()) {
    const parsed = certificateFacts(der);
    if (!parsed.ok) return { ok: false, message: `certificate ${index + 1}: ${parsed.error.detail}` };
  }
  return { ok: true, certificates: ders };
}

export interface ThumbprintInfo {
  readonly 'x5t#S256': string;
  readonly sha256_hex: string;
  readonly subject: string;
  readonly notAfter: string;
}

/** x5t#S256 and hex SHA-256 of one DER certificate, with its subject and notAfter. */
export function thumbprintInfo(der: Uint8Array): ThumbprintInfo | null {
  const facts = certificateFacts(der);
  if (!facts.ok) return null;
  return {
    'x5t#S256': thumbprintS256(der), sha256_hex: sha256Hex(der), subject: facts.value.subject,
    notAfter: iso(facts.value.notAfter.getTime()),
  };
}

/**
 * The header value(s) a load balancer would send for these certificates (leaf first) in `format`:
 * base64_encoded as a comma-separated list (Traefik), url_encoded as nginx escapes PEM, pem with
 * the line breaks folded to spaces, xfcc as Envoy (Hash, Cert, Chain), rfc9440 as
 * Client-Cert / Client-Cert-Chain.
 */
export function encodeCertificateHeader(certificates: readonly Uint8Array[], format: HeaderFormat): { value: string; chainValue: string | null } {
  const pem = (der: Uint8Array): string => toPem(der);
  const b64 = (der: Uint8Array): string => Buffer.from(der).toString('base64');
  switch (format) {
    case 'base64_encoded': return { value: certificates.map(b64).join(','), chainValue: null };
    case 'url_encoded': return { value: encodeURIComponent(certificates.map(pem).join('')), chainValue: null };
    case 'pem': return { value: certificates.map(pem).join('').replace(/\n/g, ' ').trim(), chainValue: null };
    case 'xfcc': {
      const leaf = certificates[0] ?? new Uint8Array();
      const chain = certificates.length > 1 ? `;Chain="${encodeURIComponent(certificates.map(pem).join(''))}"` : '';
      return { value: `Hash=${sha256Hex(leaf)};Cert="${encodeURIComponent(pem(leaf))}"${chain}`, chainValue: null };
    }
    case 'rfc9440': {
      const rest = certificates.slice(1);
      return {
        value: `:${b64(certificates[0] ?? new Uint8Array())}:`,
        chainValue: rest.length === 0 ? null : rest.map((der) => `:${b64(der)}:`).join(', '),
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Token parts, decoded for display only (the verification is token.ts's).

function decodeJsonPart(part: string | undefined): Record<string, unknown> | null {
  if (part === undefined || !/^[A-Za-z0-9_-]+$/.test(part)) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

function shown(value: unknown): string {
  if (value === undefined) return 'absent';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

/** The accepted `typ` values of token.ts (RFC 9068 2.1 and Keycloak's JWT), for display. */
const ACCEPTED_TYP = ['jwt', 'application/jwt', 'at+jwt', 'application/at+jwt'];

// ---------------------------------------------------------------------------------------------
// The explanation.

interface DecodedCertificates {
  readonly ders: readonly Buffer[];
  readonly parsed: readonly (ParsedCertificate | null)[];
}

export async function explain(input: ExplainInput): Promise<ExplainReport> {
  const started = performance.now();
  const { config } = input;
  const now = input.now ?? Date.now;
  const fromHeader = config.proof_of_possession_mtls_from_header;
  const mode = config.proof_of_possession_mtls;
  const jwks = input.jwks ?? new JwksSource(jwksOptionsFrom(config, now));

  // The request as the plugin would see it.
  const authorization = /^bearer[ \t]/i.test(input.token.trim()) ? input.token.trim() : `Bearer ${input.token.trim()}`;
  const format: HeaderFormat = fromHeader?.certificate_header_format ?? 'base64_encoded';
  const header = input.certificate.kind === 'header'
    ? { value: input.certificate.value, chainValue: input.certificate.chainValue ?? null }
    : encodeCertificateHeader(input.certificate.certificates, format);
  const facts: RequestFacts = {
    authorization: [authorization],
    certificateHeader: [header.value],
    certificateChainHeader: header.chainValue === null ? [] : [header.chainValue],
    peerTrusted: true,
    host: input.host ?? null,
  };

  // Token parts for display, and the binding the token claims (unverified until step 3 passes).
  const bearer = extractBearerToken(facts.authorization);
  const parts = bearer.ok ? bearer.value.split('.') : [];
  const tokenHeader = parts.length === 3 ? decodeJsonPart(parts[0]) : null;
  const claims = parts.length === 3 ? decodeJsonPart(parts[1]) : null;
  const bound = claims === null ? null : boundThumbprint(claims);
  const certificateRequired = bound === null ? mode === 'strict' : requiresCertificate(mode, bound.ok ? bound.value : null);
  const notRequired = mode === 'off'
    ? 'proof_of_possession_mtls is off: the certificate is not checked'
    : bound !== null && !bound.ok
      ? 'proof_of_possession_mtls is optional and the token cnf is malformed: the plugin rejects the token before the certificate'
      : 'proof_of_possession_mtls is optional and the token carries no cnf x5t#S256: the certificate is not checked';

  // 1. header
  const headerStep = explainHeader(header, format, input, config);
  const decoded = headerStep.decoded;
  const certificates = decoded === null ? [] : decoded.ders.map((der, i) => {
    const facts_ = decoded.parsed[i]?.facts;
    return facts_ === undefined ? null : summarise(i === 0 ? 'leaf' : `intermediate ${i}`, der, facts_);
  }).filter((c): c is CertificateSummary => c !== null);

  // 2. chain (its revocation answer is the one the verdict uses: responders are asked once)
  const revocation = revocationOnce(config, now);
  const chainStep = await explainChain(decoded, config, now, revocation);

  // 3. token
  const tokenStep = await explainToken(bearer, tokenHeader, claims, config, jwks, now);

  // 4. binding
  const leaf = decoded?.ders[0] ?? null;
  const bindingStep = explainBinding(claims, bound, leaf, decoded, config, tokenStep.status === 'PASS');

  if (!certificateRequired) {
    for (const step of [headerStep.step, chainStep]) {
      if (step.status === 'SKIP') continue;
      step.summary = `${notRequired} (it would ${step.status === 'PASS' ? 'pass' : 'fail'}: ${step.summary})`;
      step.status = 'SKIP';
      step.fix = null;
    }
  }

  // 5. the verdict, from the real verifier on the same facts.
  const verifier = new Verifier(config, { jwks, now, revocation });
  const decision = await verifier.verify(facts);
  const steps = [headerStep.step, chainStep, tokenStep, bindingStep];
  const inconsistencies: string[] = [];
  let verdict: ExplainVerdict;
  if (decision.allow) {
    verdict = { allow: true, reason: null, detail: null, response: null, fix: null, notes: [...decision.notes] };
    for (const step of steps) {
      if (step.status === 'FAIL') inconsistencies.push(`the ${step.id} step failed (${step.failure?.reason ?? 'no reason'}) but the verifier allows the request`);
    }
  } else {
    const reason = decision.failure.reason;
    const candidates = stepsOf(reason);
    const matching = steps.find((s) => s.status === 'FAIL' && s.failure?.reason === reason && candidates.includes(s.id));
    if (matching === undefined) {
      inconsistencies.push(`the verifier rejects with ${reason} but no step failed with that reason`);
    }
    verdict = {
      allow: false, reason, detail: decision.failure.detail, response: decision.response,
      fix: matching?.fix ?? fixFor(reason), notes: [...decision.notes],
    };
  }

  return {
    mode, steps, verdict, certificates,
    token: { header: tokenHeader, claims },
    inconsistencies,
    elapsedMs: Math.round(performance.now() - started),
  };
}

// ---------------------------------------------------------------------------------------------
// 1. header

function explainHeader(
  header: { value: string; chainValue: string | null }, format: HeaderFormat, input: ExplainInput, config: MtlsPopConfig,
): { step: ExplainStep; decoded: DecodedCertificates | null } {
  const fromHeader = config.proof_of_possession_mtls_from_header;
  const fromFiles = input.certificate.kind === 'certificates';
  const title = fromFiles ? 'Certificate (from files)' : 'Certificate header';
  const step: ExplainStep = { id: 'header', title, status: 'PASS', summary: '', failure: null, fix: null, checks: [] };
  if (fromHeader === null) {
    step.status = 'SKIP';
    step.summary = 'proof_of_possession_mtls_from_header is not configured';
    return { step, decoded: null };
  }
  const size = header.value.length + (header.chainValue?.length ?? 0);
  const result = decodeCertificateHeader(header.value, format, {
    maxHeaderSize: fromHeader.max_header_size, maxChainLength: fromHeader.max_chain_length,
    xfccElements: fromHeader.xfcc_element_count,
  }, header.chainValue);
  const source = fromFiles
    ? `files encoded as ${format} (${size} characters, max_header_size ${fromHeader.max_header_size})`
    : `${format} value of ${size} characters (max_header_size ${fromHeader.max_header_size})`;
  if (!result.ok) {
    failStep(step, result.error);
    step.checks.push(check('decode', 'decode', 'FAIL', `${source}: ${result.error.detail}`));
    return { step, decoded: null };
  }
  const ders = result.value;
  const parsed = ders.map((der) => {
    const p = parseCertificate(der);
    return p.ok ? p.value : null;
  });
  const leaf = parsed[0];
  const leafName = leaf === null || leaf === undefined ? '(unparsable)' : nameOf(leaf);
  step.summary = `${ders.length} certificate${ders.length === 1 ? '' : 's'}: leaf ${leafName}${ders.length > 1 ? ` + ${ders.length - 1} more` : ''}`;
  const notes = parsed.map((cert, i) => `${i === 0 ? 'leaf' : `#${i + 1}`}: ${cert === null ? '(not parsable)' : `${nameOf(cert)} (issuer ${cert.issuer.text})`}`);
  if (fromHeader.secure_source) notes.push('the plugin reads the header only from trusted proxies: the load balancer must be in Kong trusted_ips');
  if (input.expectedLeaf !== undefined && input.expectedLeaf !== null && ders[0] !== undefined) {
    notes.push(Buffer.from(input.expectedLeaf).equals(ders[0])
      ? 'the header leaf is the --cert certificate'
      : `NOTE: the header leaf (${thumbprintS256(ders[0])}) is not the --cert certificate (${thumbprintS256(input.expectedLeaf)}); the header is what the plugin checks`);
  }
  step.checks.push(check('decode', 'decode', 'PASS', `${source}: ${ders.length} certificate(s)`, notes));
  return { step, decoded: { ders, parsed } };
}

// ---------------------------------------------------------------------------------------------
// 2. chain

interface PathLink {
  readonly child: ParsedCertificate;
  readonly issuer: ParsedCertificate | null;
  readonly issuerIsAnchor: boolean;
  /** null when no certificate with the issuer's name was found. */
  readonly signatureValid: boolean | null;
}

function verifiesWith(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  try {
    return new X509Certificate(Buffer.from(child.der)).verify(subjectPublicKey(issuer));
  } catch {
    return false;
  }
}

function selfSigned(cert: ParsedCertificate): boolean {
  return cert.subject.key === cert.issuer.key && verifiesWith(cert, cert);
}

/** The path the names and signatures suggest, for display (the decision is ChainValidator's). */
function displayPath(leaf: ParsedCertificate, presented: readonly ParsedCertificate[], anchors: readonly ParsedCertificate[], partial: boolean): { links: PathLink[]; end: string } {
  const links: PathLink[] = [];
  const anchorPrints = new Set(anchors.map((a) => a.facts.thumbprint));
  const onPath = new Set<string>([leaf.facts.thumbprint]);
  let current = leaf;
  if (partial && anchorPrints.has(leaf.facts.thumbprint)) return { links, end: 'the client certificate itself is a configured CA (allow_partial_chain)' };
  for (let depth = 0; depth < 10; depth++) {
    const isAnchor = (c: ParsedCertificate): boolean => anchorPrints.has(c.facts.thumbprint);
    const candidates = [...anchors, ...presented.filter((c) => !isAnchor(c))]
      .filter((c) => c.subject.key === current.issuer.key && !onPath.has(c.facts.thumbprint));
    if (candidates.length === 0) {
      if (current.subject.key === current.issuer.key) {
        return { links, end: `${nameOf(current)} is self-issued and not a configured CA` };
      }
      return { links, end: `the issuer ${current.issuer.text} is neither configured (--ca) nor presented` };
    }
    const good = candidates.find((c) => verifiesWith(current, c));
    if (good === undefined) {
      const first = candidates[0]!;
      links.push({ child: current, issuer: first, issuerIsAnchor: isAnchor(first), signatureValid: false });
      return { links, end: `no certificate named ${current.issuer.text} verifies the signature of ${nameOf(current)}` };
    }
    links.push({ child: current, issuer: good, issuerIsAnchor: isAnchor(good), signatureValid: true });
    onPath.add(good.facts.thumbprint);
    if (isAnchor(good) && (partial || selfSigned(good))) return { links, end: '' };
    current = good;
  }
  return { links, end: 'the path is longer than 10 certificates' };
}

const CHAIN_REASON_CHECK: Readonly<Record<string, string>> = {
  certificate_untrusted: 'path', trust_anchors_unavailable: 'path', certificate_malformed: 'path', certificate_too_many: 'path',
  certificate_expired: 'validity', certificate_not_yet_valid: 'validity',
  certificate_is_ca: 'ca', certificate_chain_invalid: 'ca',
  certificate_not_for_client_auth: 'eku',
  certificate_revoked: 'revocation', revocation_unknown: 'revocation',
};

/**
 * The config's revocation checker, answering each chain once per run: the chain step and the
 * verifier's verdict ask about the same chain, and a slow or failing responder should cost one
 * wait, not two. Null when revocation is not checked.
 */
function revocationOnce(config: MtlsPopConfig, now: () => number): RevocationLookup | null {
  const options = revocationOptionsFrom(config, now);
  if (options === null || options.mode === 'SKIP') return null;
  const checker = new RevocationChecker(options);
  const answers = new Map<string, Promise<Result<RevocationOutcome>>>();
  return {
    check(path) {
      const key = `${path.certificates.map((c) => c.facts.thumbprint).join(',')}|${path.leafIssuer?.facts.thumbprint ?? ''}`;
      let answer = answers.get(key);
      if (answer === undefined) {
        answer = checker.check(path);
        answers.set(key, answer);
      }
      return answer;
    },
  };
}

async function explainChain(
  decoded: DecodedCertificates | null, config: MtlsPopConfig, now: () => number, revocationLookup: RevocationLookup | null,
): Promise<ExplainStep> {
  const step: ExplainStep = { id: 'chain', title: 'Certificate chain', status: 'SKIP', summary: '', failure: null, fix: null, checks: [] };
  const fromHeader = config.proof_of_possession_mtls_from_header;
  if (fromHeader === null) {
    step.summary = 'no certificate to validate';
    return step;
  }
  // The verifier loads the trust anchors before it decodes the header: a broken CA list fails first.
  const anchorsResult = trustAnchorsFromPem(fromHeader.ca_certificates_pem, config, now);
  if (anchorsResult.ok && decoded === null) {
    step.summary = 'no certificate to validate';
    return step;
  }
  if (!anchorsResult.ok) {
    failStep(step, anchorsResult.error);
    step.checks.push(check('path', 'trust anchors', 'FAIL', anchorsResult.error.detail));
    return step;
  }
  if (decoded === null) return step;
  const { validator, anchorsDer } = anchorsResult.value;
  const validatedPath = await validator.validatePath(decoded.ders);
  const validated: Result<CertificateFacts> = validatedPath.ok ? { ok: true, value: validatedPath.value.facts } : validatedPath;
  const revocation = validatedPath.ok && revocationLookup !== null ? await revocationLookup.check(validatedPath.value) : null;

  // The display: path, dates, flags, EKU and signatures, from the parsed certificates.
  const anchors = anchorsDer.map((der) => parseCertificate(der)).filter((r) => r.ok).map((r) => r.value);
  const presented = decoded.parsed.filter((c): c is ParsedCertificate => c !== null);
  const leaf = decoded.parsed[0] ?? null;
  const at = now();
  if (leaf !== null) {
    const { links, end } = displayPath(leaf, presented.slice(1), anchors, fromHeader.allow_partial_chain);
    const pathCerts = [leaf, ...links.filter((l) => l.signatureValid === true && l.issuer !== null).map((l) => l.issuer!)];
    const anchorOf = (c: ParsedCertificate): boolean => anchors.some((a) => a.facts.thumbprint === c.facts.thumbprint);
    const chainText = pathCerts.map((c) => `${nameOf(c)}${anchorOf(c) ? ' [configured CA]' : ''}`).join(' <- ');
    step.checks.push(check('path', 'path to a CA', end === '' ? 'PASS' : 'FAIL', end === '' ? chainText : `${chainText}: ${end}`,
      [`configured CAs: ${anchors.map(nameOf).join('; ') || '(none)'}`]));

    const dated = pathCerts.length > 0 ? pathCerts : [leaf];
    const dateProblems: string[] = [];
    const dateNotes = dated.map((c) => {
      const state = at < c.notBeforeMs ? `NOT YET VALID (valid ${relative(c.notBeforeMs, at)})`
        : at > c.notAfterMs ? `EXPIRED ${relative(c.notAfterMs, at)}` : `valid, expires ${relative(c.notAfterMs, at)}`;
      if (at < c.notBeforeMs || at > c.notAfterMs) dateProblems.push(`${nameOf(c)}: ${state}`);
      return `${nameOf(c)}: ${iso(c.notBeforeMs)} .. ${iso(c.notAfterMs)} (${state})`;
    });
    step.checks.push(check('validity', 'validity dates', dateProblems.length === 0 ? 'PASS' : 'FAIL',
      dateProblems.length === 0 ? `every certificate on the path is valid now (${iso(Math.floor(at / 1000) * 1000)})` : dateProblems.join('; '), dateNotes));

    const caProblems: string[] = [];
    if (leaf.basicConstraints?.ca === true) caProblems.push(`the client certificate ${nameOf(leaf)} is a CA (cA TRUE)`);
    for (const issuer of pathCerts.slice(1)) {
      if (issuer.basicConstraints?.ca !== true) caProblems.push(`${nameOf(issuer)} issued a certificate but is not a CA`);
      else if (issuer.keyUsage !== null && (issuer.keyUsage & KEY_USAGE.keyCertSign) === 0) caProblems.push(`${nameOf(issuer)} lacks keyUsage keyCertSign`);
    }
    step.checks.push(check('ca', 'CA flags', caProblems.length === 0 ? 'PASS' : 'FAIL', caProblems.length === 0
      ? `leaf is not a CA${pathCerts.length > 1 ? '; every issuer is a CA (cA TRUE)' : ''}`
      : caProblems.join('; ')));

    const ekuNames = (eku: readonly string[] | null): string => eku === null ? 'no extendedKeyUsage (any use)'
      : `extendedKeyUsage ${eku.map((o) => o === OID.clientAuth ? 'clientAuth' : o === '1.3.6.1.5.5.7.3.1' ? 'serverAuth' : o === OID.anyExtendedKeyUsage ? 'anyExtendedKeyUsage' : o).join(', ')}`;
    const allows = (c: ParsedCertificate): boolean => c.extKeyUsage === null || c.extKeyUsage.includes(OID.clientAuth) || c.extKeyUsage.includes(OID.anyExtendedKeyUsage);
    const ekuProblems: string[] = [];
    if (!allows(leaf)) ekuProblems.push(`the client certificate has ${ekuNames(leaf.extKeyUsage)}, without clientAuth`);
    if (leaf.keyUsage !== null && (leaf.keyUsage & (KEY_USAGE.digitalSignature | KEY_USAGE.keyAgreement)) === 0) {
      ekuProblems.push('the client certificate keyUsage has neither digitalSignature nor keyAgreement');
    }
    for (const issuer of pathCerts.slice(1)) {
      if (!allows(issuer)) ekuProblems.push(`${nameOf(issuer)} restricts extendedKeyUsage without clientAuth`);
    }
    step.checks.push(check('eku', 'EKU clientAuth', ekuProblems.length === 0 ? 'PASS' : 'FAIL',
      ekuProblems.length === 0 ? `leaf: ${ekuNames(leaf.extKeyUsage)}` : ekuProblems.join('; ')));

    if (links.length === 0) {
      step.checks.push(check('signature', 'signatures', 'SKIP', 'no issuer found to verify a signature with'));
    } else {
      const bad = links.find((l) => l.signatureValid === false);
      const notes = links.map((l) => `${nameOf(l.child)} signed by ${l.issuer === null ? '?' : nameOf(l.issuer)}: ${l.signatureValid === true ? 'valid' : 'INVALID'}`);
      step.checks.push(check('signature', 'signatures', bad === undefined ? 'PASS' : 'FAIL', bad === undefined
        ? `${links.length} signature${links.length === 1 ? '' : 's'} verified`
        : `the certificate named ${bad.child.issuer.text} does not verify the signature of ${nameOf(bad.child)}: a different key (a rogue or re-keyed CA with the same name)`, notes));
    }
  } else {
    step.checks.push(check('path', 'path to a CA', 'FAIL', 'the client certificate could not be parsed'));
  }

  if (fromHeader.revocation_check_mode === 'SKIP') {
    step.checks.push(check('revocation', 'revocation', 'SKIP', 'revocation_check_mode SKIP'));
  } else if (revocation === null) {
    step.checks.push(check('revocation', 'revocation', 'SKIP', `${fromHeader.revocation_check_mode}: not checked (the chain is not valid)`));
  } else if (revocation.ok) {
    const outcome = revocation.value;
    const text = outcome.source === 'none'
      ? `${fromHeader.revocation_check_mode}: no answer, accepted (${outcome.detail ?? 'no revocation information'})`
      : `${fromHeader.revocation_check_mode}: good (${outcome.source}${outcome.responder === undefined ? '' : ` from ${outcome.responder}`})`;
    step.checks.push(check('revocation', 'revocation', 'PASS', text));
  } else {
    step.checks.push(check('revocation', 'revocation', 'FAIL', `${fromHeader.revocation_check_mode}: ${revocation.error.detail}`));
  }

  // The step's outcome is the validator's (then revocation's), never the display's.
  const outcome = !validated.ok ? validated.error : revocation !== null && !revocation.ok ? revocation.error : null;
  if (outcome === null) {
    step.status = 'PASS';
    step.summary = validated.ok ? `valid: ${validated.value.subject}, issued by ${validated.value.issuer}` : '';
    return step;
  }
  failStep(step, outcome);
  failCheck(step, CHAIN_REASON_CHECK[outcome.reason] ?? 'path', outcome, false);
  return step;
}

// ---------------------------------------------------------------------------------------------
// 3. token

const TOKEN_REASON_CHECK: Readonly<Record<string, string>> = {
  token_missing: 'bearer', authorization_multiple: 'bearer', authorization_malformed: 'bearer', token_too_large: 'bearer',
  token_malformed: 'header', token_algorithm_not_allowed: 'header', token_type_not_allowed: 'header', token_crit_unsupported: 'header',
  token_key_not_found: 'key', jwks_unavailable: 'key',
  token_signature_invalid: 'signature', internal_error: 'signature',
  token_expired: 'exp', token_not_yet_valid: 'nbf',
  token_issuer_not_allowed: 'iss', audience_not_allowed: 'aud', scope_insufficient: 'scope',
};

function jwksLocation(config: MtlsPopConfig): string {
  if (config.jwks_endpoint !== null) return config.jwks_endpoint;
  return config.issuer === null ? '(none)' : `${config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration -> jwks_uri`;
}

async function explainToken(
  bearer: ReturnType<typeof extractBearerToken>, header: Record<string, unknown> | null, claims: Record<string, unknown> | null,
  config: MtlsPopConfig, jwks: JwksSource, now: () => number,
): Promise<ExplainStep> {
  const step: ExplainStep = { id: 'token', title: 'Access token', status: 'PASS', summary: '', failure: null, fix: null, checks: [] };
  // The plugin's policy, without its verdict cache: every run checks the token afresh.
  const policy: TokenPolicy = { ...tokenPolicyFrom(config, now), cacheSize: 0, cacheTtlS: 0, cacheSalt: null };
  const { issuersAllowed } = policy;
  if (!bearer.ok) {
    step.checks.push(check('bearer', 'bearer', 'FAIL', bearer.error.detail));
  } else {
    step.checks.push(check('bearer', 'bearer', 'PASS', `one Bearer token of ${bearer.value.length} characters`));
  }

  let verified: Awaited<ReturnType<TokenVerifier['verify']>> | null = null;
  if (bearer.ok) {
    const token = bearer.value;
    // Header: alg, kid, typ (the key lookup and signature need them).
    const alg = header?.['alg'];
    const kid = header?.['kid'];
    const typ = header?.['typ'];
    if (header === null) {
      step.checks.push(check('header', 'JWS header', 'FAIL', 'the token is not a JWS with a base64url JSON header (three parts)'));
    } else {
      const problems: string[] = [];
      if (typeof alg !== 'string') problems.push('no alg');
      else if (!(config.signing_algorithms as readonly string[]).includes(alg)) problems.push(`alg ${shown(alg)} is not in signing_algorithms (${config.signing_algorithms.join(', ')})`);
      if (typ !== undefined && (typeof typ !== 'string' || !ACCEPTED_TYP.includes(typ.toLowerCase()))) problems.push(`typ ${shown(typ)} is not JWT or at+jwt`);
      if (header['crit'] !== undefined) problems.push('crit is present (no critical extension is supported)');
      if (kid !== undefined && typeof kid !== 'string') problems.push('kid is not a string');
      step.checks.push(check('header', 'JWS header', problems.length === 0 ? 'PASS' : 'FAIL',
        problems.length === 0 ? `alg ${shown(alg)}, kid ${shown(kid)}, typ ${shown(typ)}` : problems.join('; '),
        [`header: ${JSON.stringify(header)}`]));
    }
    // Key and signature.
    if (typeof alg === 'string' && (kid === undefined || typeof kid === 'string')) {
      const key = await jwks.getKey(kid === undefined ? { alg } : { kid, alg });
      if (!key.ok) {
        step.checks.push(check('key', 'JWKS key', 'FAIL', `${key.error.detail} (JWKS: ${jwksLocation(config)})`));
        step.checks.push(check('signature', 'signature', 'SKIP', 'no key to verify with'));
      } else {
        step.checks.push(check('key', 'JWKS key', 'PASS', `${alg} key ${kid === undefined ? '(no kid)' : shown(kid)} found (JWKS: ${jwksLocation(config)})`));
        // The verifier's own signature check (`jws.ts`), over the header and payload parts as sent.
        const dot = token.lastIndexOf('.');
        const valid = dot > 0 && verifyJwsSignature(alg, key.value, Buffer.from(token.slice(0, dot), 'latin1'),
          Buffer.from(token.slice(dot + 1), 'base64url')) === 'valid';
        step.checks.push(check('signature', 'signature', valid ? 'PASS' : 'FAIL', valid
          ? `${alg} signature verifies with the IdP key`
          : `the ${alg} signature does not verify with the IdP key ${kid === undefined ? '' : shown(kid)}`.trim()));
      }
    } else {
      step.checks.push(check('key', 'JWKS key', 'SKIP', 'the header names no usable alg/kid'));
      step.checks.push(check('signature', 'signature', 'SKIP', 'no key to verify with'));
    }

    // Claims, each with its value.
    if (claims !== null) {
      const at = now();
      const leeway = config.leeway;
      const time = (name: 'exp' | 'nbf' | 'iat'): void => {
        const value = claims[name];
        if (value === undefined) {
          step.checks.push(check(name, name, name === 'exp' ? 'FAIL' : 'SKIP', name === 'exp' ? 'absent (exp is required)' : 'absent'));
          return;
        }
        if (typeof value !== 'number' || !Number.isFinite(value)) {
          step.checks.push(check(name, name, 'FAIL', `${shown(value)} is not a NumericDate`));
          return;
        }
        const ms = value * 1000;
        const nowS = Math.floor(at / 1000);
        let okay: boolean;
        let state: string;
        if (name === 'exp') {
          okay = value > nowS - leeway;
          state = okay ? `expires ${relative(ms, at)}` : `EXPIRED ${relative(ms, at)}`;
        } else if (name === 'nbf') {
          okay = value <= nowS + leeway;
          state = okay ? `valid since ${relative(ms, at)}` : `NOT VALID before ${iso(ms)} (${relative(ms, at)})`;
        } else {
          okay = value <= nowS + leeway;
          state = okay ? `issued ${relative(ms, at)}` : `issued in the future (${relative(ms, at)})`;
        }
        step.checks.push(check(name, name, okay ? 'PASS' : 'FAIL', `${value} = ${iso(ms)}, ${state}${leeway > 0 ? ` (leeway ${leeway} s)` : ''}`));
      };
      time('exp');
      time('nbf');
      time('iat');
      const iss = checkIssuer(claims['iss'], issuersAllowed);
      step.checks.push(check('iss', 'iss', iss.ok ? 'PASS' : 'FAIL',
        `${shown(claims['iss'])} ${iss.ok ? 'is allowed' : 'is not allowed'} (allowed: ${issuersAllowed.map((i) => JSON.stringify(i)).join(', ') || 'none'})`));
      const aud = checkAudience(claims['aud'], config.audience_required);
      const audRequired = config.audience_required !== null && config.audience_required.length > 0;
      step.checks.push(check('aud', 'aud', !audRequired ? 'SKIP' : aud.ok ? 'PASS' : 'FAIL',
        `${shown(claims['aud'])}${audRequired ? ` (required: one of ${JSON.stringify(config.audience_required)})` : ' (audience_required not set)'}`));
      const scopeValue = claims['scope'] ?? claims['scp'];
      const scopes = checkScopes(scopeValue, config.scopes_required);
      const scopesRequired = config.scopes_required !== null && config.scopes_required.length > 0;
      step.checks.push(check('scope', 'scope', !scopesRequired ? 'SKIP' : scopes.ok ? 'PASS' : 'FAIL',
        `${shown(scopeValue)}${scopesRequired ? ` (required: all of one of ${JSON.stringify(config.scopes_required)})` : ' (scopes_required not set)'}`));
    }

    verified = await new TokenVerifier(policy, jwks).verify(token);
  }

  const outcome = !bearer.ok ? bearer.error : verified !== null && !verified.ok ? verified.error : null;
  if (outcome === null) {
    step.summary = `valid: iss ${shown(claims?.['iss'])}, sub ${shown(claims?.['sub'])}`;
    return step;
  }
  failStep(step, outcome);
  let name = TOKEN_REASON_CHECK[outcome.reason] ?? 'header';
  if (outcome.reason === 'token_claims_invalid') name = /\biat\b/.test(outcome.detail) ? 'iat' : /\bnbf\b/.test(outcome.detail) ? 'nbf' : 'exp';
  failCheck(step, name, outcome, true);
  return step;
}

// ---------------------------------------------------------------------------------------------
// 4. binding

/** base64url of 32 bytes -> hex; null when the text is not exactly that. */
function base64urlToHex(text: string): string | null {
  if (!/^[A-Za-z0-9_-]{43}$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.length === 32 && bytes.toString('base64url') === text ? bytes.toString('hex') : null;
}

/** A cnf value in base64url and hex, saying which form it was given in when that is not base64url. */
function cnfForms(raw: string): string {
  const hex = base64urlToHex(raw);
  if (hex !== null) return `base64url ${raw}  hex ${hex}`;
  const compact = /^(?:[0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$/.test(raw) ? raw.replace(/:/g, '') : raw;
  if (/^[0-9a-fA-F]{64}$/.test(compact)) {
    return `base64url ${Buffer.from(compact, 'hex').toString('base64url')} (if read as hex)  hex ${compact.toLowerCase()} (AS GIVEN: hex, not base64url)`;
  }
  const asBase64url = raw.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const converted = base64urlToHex(asBase64url);
  if (converted !== null) {
    const form = /[+/]/.test(raw) ? 'standard base64' : 'padded base64url';
    return `base64url ${asBase64url} (AS GIVEN: ${form} ${raw})  hex ${converted}`;
  }
  return `${JSON.stringify(raw.length > 100 ? `${raw.slice(0, 100)}...` : raw)} (neither base64url nor hex of a SHA-256 digest)`;
}

/** What a cnf value that is not the certificate's x5t#S256 most likely is. */
function cnfHints(value: string, leaf: Uint8Array, others: readonly { label: string; der: Uint8Array }[]): { hints: string[]; specific: boolean } {
  const hints: string[] = [];
  const leafB64u = thumbprintS256(leaf);
  const leafHex = sha256Hex(leaf);
  const sha1 = createHash('sha1').update(leaf).digest();
  const compactHex = /^(?:[0-9a-fA-F]{2}:){31}[0-9a-fA-F]{2}$/.test(value) ? value.replace(/:/g, '') : value;
  if (/^[0-9a-fA-F]{64}$/.test(compactHex)) {
    const form = compactHex === value ? 'hex' : 'colon-separated hex (openssl -fingerprint style)';
    if (compactHex.toLowerCase() === leafHex) {
      hints.push(`cnf x5t#S256 is the ${form} SHA-256 of this certificate; RFC 8705 section 3.1 requires base64url without padding: "${leafB64u}" (fix the IdP claim mapper)`);
    } else {
      hints.push(`cnf x5t#S256 is ${form} (RFC 8705 requires base64url), and it is not the SHA-256 of this certificate either`);
    }
  }
  const asB64u = value.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  if (asB64u !== value && asB64u === leafB64u) {
    const padded = value.endsWith('=');
    const standard = /[+/]/.test(value);
    const what = standard && padded ? 'standard base64 with "=" padding' : standard ? 'standard base64 ("+" and "/")' : 'base64url with "=" padding';
    hints.push(`cnf x5t#S256 is the right digest in ${what}; RFC 8705 requires base64url without padding: "${leafB64u}"`);
  }
  if ([sha1.toString('base64url'), sha1.toString('hex'), sha1.toString('base64')].some((s) => s.toLowerCase() === value.toLowerCase() || s === asB64u)) {
    hints.push('cnf x5t#S256 holds the SHA-1 thumbprint (x5t) of this certificate; x5t#S256 is SHA-256');
  }
  for (const other of others) {
    const otherB64u = thumbprintS256(other.der);
    if (asB64u === otherB64u || compactHex.toLowerCase() === sha256Hex(other.der)) {
      hints.push(`cnf x5t#S256 is the thumbprint of ${other.label}, not of the client certificate`);
    }
  }
  if (hints.length > 0) return { hints, specific: true };
  return {
    hints: ['the token is bound to a different certificate: it was issued to a client that presented another certificate at the token endpoint (or the load balancer forwards a different certificate)'],
    specific: false,
  };
}

function explainBinding(
  claims: Record<string, unknown> | null, bound: ReturnType<typeof boundThumbprint> | null, leaf: Buffer | null,
  decoded: DecodedCertificates | null, config: MtlsPopConfig, tokenVerified: boolean,
): ExplainStep {
  const step: ExplainStep = { id: 'binding', title: 'Binding (cnf x5t#S256)', status: 'SKIP', summary: '', failure: null, fix: null, checks: [] };
  const mode = config.proof_of_possession_mtls;
  const unverified = tokenVerified ? [] : ['(the token did not verify: the plugin would stop before this step; shown for information)'];
  if (mode === 'off') {
    step.summary = 'proof_of_possession_mtls is off';
    return step;
  }
  if (claims === null || bound === null) {
    step.summary = 'the token claims could not be decoded';
    return step;
  }
  const cnf = claims['cnf'];
  const raw = typeof cnf === 'object' && cnf !== null && !Array.isArray(cnf) ? (cnf as Record<string, unknown>)['x5t#S256'] : undefined;
  const cnfNotes: string[] = [...unverified];
  if (typeof cnf === 'object' && cnf !== null && !Array.isArray(cnf)) {
    const keys = Object.keys(cnf);
    if (raw === undefined && keys.includes('x5t')) cnfNotes.push('the token has cnf.x5t (SHA-1); the plugin needs cnf["x5t#S256"]');
    const nearly = keys.find((k) => k !== 'x5t#S256' && k.toLowerCase() === 'x5t#s256');
    if (nearly !== undefined) cnfNotes.push(`the token has cnf[${JSON.stringify(nearly)}]; the member name is case-sensitive: "x5t#S256"`);
  }
  if (raw === undefined) {
    step.checks.push(check('cnf', 'cnf x5t#S256', mode === 'strict' ? 'FAIL' : 'SKIP', cnf === undefined ? 'the token has no cnf claim' : `cnf is ${shown(cnf)}`, cnfNotes));
  } else if (typeof raw === 'string') {
    step.checks.push(check('cnf', 'cnf x5t#S256', bound.ok ? 'PASS' : 'FAIL', cnfForms(raw), cnfNotes));
  } else {
    step.checks.push(check('cnf', 'cnf x5t#S256', 'FAIL', `${shown(raw)} is not a string`, cnfNotes));
  }
  if (leaf !== null) {
    step.checks.push(check('certificate', 'certificate', 'PASS', `base64url ${thumbprintS256(leaf)}  hex ${sha256Hex(leaf)}`));
  }

  const others: { label: string; der: Uint8Array }[] = [];
  if (decoded !== null) {
    decoded.ders.slice(1).forEach((der, i) => {
      const p = decoded.parsed[i + 1];
      others.push({ label: `presented certificate #${i + 2} (${p === null || p === undefined ? 'unparsable' : nameOf(p)})`, der });
    });
  }
  for (const pem of config.proof_of_possession_mtls_from_header?.ca_certificates_pem ?? []) {
    for (const der of parsePemBlocks(pem) ?? []) {
      const p = parseCertificate(der);
      others.push({ label: `the configured CA ${p.ok ? nameOf(p.value) : ''}`.trim(), der });
    }
  }

  let result: ReturnType<typeof checkBinding>;
  if (!bound.ok) {
    result = bound;
  } else if (leaf === null && requiresCertificate(mode, bound.value)) {
    step.summary = 'no certificate was decoded to compare with';
    return step;
  } else {
    result = checkBinding(mode, bound.value, leaf === null ? null : thumbprintS256(leaf));
  }
  if (result.ok) {
    if (bound.ok && bound.value === null) {
      step.summary = mode === 'optional' ? 'the token is not bound; optional mode accepts it' : 'not bound';
      step.status = 'SKIP';
    } else {
      step.status = 'PASS';
      step.summary = `cnf x5t#S256 equals the certificate thumbprint${tokenVerified ? '' : ' (token not verified: shown for information)'}`;
      step.checks.push(check('match', 'match', 'PASS', 'equal', unverified));
    }
    return step;
  }
  failStep(step, result.error, tokenVerified ? '' : ' (token not verified: shown for information)');
  const hints = typeof raw === 'string' && leaf !== null ? cnfHints(raw, leaf, others) : { hints: [], specific: false };
  step.checks.push(check('match', 'match', 'FAIL', result.error.detail, hints.hints));
  if (hints.specific && hints.hints[0] !== undefined) step.fix = hints.hints[0];
  return step;
}
