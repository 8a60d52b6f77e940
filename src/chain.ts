/**
 * Certification path validation against configured trust anchors (RFC 5280 section 6).
 *
 * The path is built from the leaf through the untrusted certificates of the header (any order,
 * junk and loops tolerated, search bounded) to a configured anchor, checking each signature on
 * the way. Every complete path found is then checked; the first that passes wins, else the first
 * failure is reported:
 *   - leaf: not a CA (`certificate_is_ca`); extKeyUsage, when present, allows clientAuth or
 *     anyExtendedKeyUsage, and keyUsage, when present, allows digitalSignature or keyAgreement
 *     (`certificate_not_for_client_auth`, OpenSSL's "SSL client" purpose);
 *   - every certificate: no critical extension we do not process (section 4.2);
 *   - every issuer, the anchor included: basicConstraints cA, keyUsage keyCertSign when present,
 *     pathLenConstraint (section 6.1.4 (k), (l), (n)), extKeyUsage allowing clientAuth when present;
 *   - name constraints of every CA on the path, the anchor included, for all subordinate
 *     certificates except self-issued intermediates (section 6.1.3 (b), (c));
 *   - validity now of every certificate, the anchor included (section 6.1.3 (a)(2)).
 * `certificate_chain_invalid` covers the structural failures; time failures are reported last.
 *
 * Trust (OpenSSL's X509_V_FLAG_PARTIAL_CHAIN semantics): without `allowPartialChain` a path must
 * end at a configured self-signed certificate (a root); a configured intermediate is only a step on
 * the way. With it, any configured certificate ends the path, even the leaf itself. Unlike
 * OpenSSL, a configured self-signed leaf is not accepted without `allowPartialChain`.
 *
 * Not supported, rejected rather than ignored: the policy extensions policyConstraints (always),
 * policyMappings and inhibitAnyPolicy (when critical), and name constraints on otherName,
 * x400Address, ediPartyName and registeredID. Policies themselves are accepted as with an
 * initial policy set of anyPolicy and no explicit policy required (section 6.1.1 (c), (f)), in
 * which case they cannot make a path fail. SHA-1 and MD5 signatures are not accepted, whatever
 * the scheme (RSASSA-PSS included). Anchors need basicConstraints cA too (no X.509 v1 roots).
 *
 * Issuer and signature: one rule, `issuedBy` of `signature.ts` (name match under RFC 5280 section
 * 7.1, key identifiers, signature), which revocation uses too. `validatePath` returns the accepted
 * path itself, so revocation checks the certificates validated here and no others.
 *
 * Engine: our own path builder over `certificate.ts` and `signature.ts` (node:crypto). pkijs's
 * CertificateChainValidationEngine was measured against it (test/bench/chain-engines.ts): it is
 * about ten times slower and misses pathLenConstraint, extKeyUsage, a CA leaf, unknown critical
 * extensions on the leaf, the partial-chain switch (any trusted certificate ends its path), and
 * never returns on a cross-signed loop.
 *
 * Verdicts (successes and failures) are cached by a hash of the presented certificates. A success
 * never outlives the earliest notAfter on its path; a failure lives at most a minute and never past
 * the moment a not-yet-valid certificate becomes valid.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { BoundedCache } from './cache.js';
import {
  KEY_USAGE, OID, UnsupportedKeyError, parseCertificate, subjectPublicKey,
  type CertificateFacts, type DistinguishedName, type ParsedCertificate,
} from './certificate.js';
import { fail, failure, ok, type AuthFailure, type Result } from './errors.js';
import { pemCertificates } from './pem.js';
import { issuedBy, issuerMatches } from './signature.js';
import { verificationCost } from './key-bounds.js';
import { ComparisonBudget, nameConstraintViolation, unsupportedConstraint } from './name-constraints.js';

/**
 * What validation accepted: the leaf's facts and the very path that was checked, so that revocation
 * checks exactly these certificates (and takes OCSP / CRL URLs only from them).
 */
export interface ValidatedPath {
  /** The leaf's facts, `pathNotAfter` set. */
  readonly facts: CertificateFacts;
  /**
   * Leaf first, each certificate issued by the next (`issuedBy` of signature.ts), a configured trust
   * anchor last; just the leaf when it is itself a configured certificate (allowPartialChain).
   */
  readonly certificates: readonly ParsedCertificate[];
  /** Parallel to `certificates`: whether each is a configured trust anchor. */
  readonly trusted: readonly boolean[];
  /**
   * Only when the path is the leaf alone: its issuer, found by the same `issuedBy` rule among the
   * presented certificates and the anchors (revocation needs the issuer's name and key); else null.
   */
  readonly leafIssuer: ParsedCertificate | null;
}

export interface ChainOptions {
  readonly allowPartialChain: boolean;
  /** Most verdicts cached; 0 disables caching (of verdicts and of issuer public keys). */
  readonly cacheSize: number;
  /** Verdict TTL in milliseconds; never past the notAfter of any certificate on the path. */
  readonly cacheTtlMs: number;
  /** Clock (epoch milliseconds), for tests. */
  readonly now?: () => number;
}

/** More presented certificates than this is refused outright (the header parser normally bounds it). */
const MAX_CERTIFICATES = 100;
/** Longest path tried, leaf and anchor included. */
const MAX_PATH_LENGTH = 10;
/** Signature checks (each may import a public key) allowed while searching one chain. */
const MAX_SIGNATURE_CHECKS = 24;
/**
 * Their cost (key-bounds.ts `verificationCost`, in P-256 verifications) allowed while searching one
 * chain: 24 P-256 or Ed25519 checks, 5 under P-384 keys, 3 under P-521 (a P-521 leaf, intermediate
 * and root take 2).
 */
const MAX_SIGNATURE_COST = 64;
/** Complete paths evaluated before giving up. */
const MAX_PATHS = 8;
/** Longest life of a cached failure. */
const FAILURE_TTL_MS = 60_000;
/** Issuer public keys cached (by SPKI bytes) at most. */
const MAX_CACHED_KEYS = 256;

/** Extensions whose criticality we honour because we process them (or, for policies, see above). */
const PROCESSED_EXTENSIONS: ReadonlySet<string> = new Set([
  OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectAltName, OID.nameConstraints,
  OID.subjectKeyIdentifier, OID.authorityKeyIdentifier, OID.certificatePolicies,
]);
/** policyConstraints can require an explicit policy, which we do not evaluate: refused even non-critical. */
const POLICY_CONSTRAINTS = '2.5.29.36';

/** A certificate that can sit on a path. Anchors are built once; header certificates per request. */
interface PathNode {
  readonly cert: ParsedCertificate;
  readonly anchor: boolean;
  /** Anchors only: self-issued and verifying under its own key. */
  readonly selfSigned: boolean;
  /** Anchors only: the public key, imported at construction. */
  readonly key: KeyObject | null;
}

/** What one search through the presented certificates found. */
interface SearchState {
  readonly now: number;
  pathsTried: number;
  firstFailure: AuthFailure | null;
  validPath: readonly PathNode[] | null;
  signatureChecks: number;
  /** Sum of verificationCost over the checks made. */
  signatureCost: number;
  limitReached: boolean;
  weakSignature: boolean;
  /** A configured intermediate reached while partial chains are not allowed. */
  partialAnchor: PathNode | null;
  /** The first issuer key refused by key-bounds.ts (algorithm or size), for the failure detail. */
  refusedKey: string | null;
  readonly verified: Map<string, boolean>;
  readonly ids: Map<PathNode, number>;
}

function nameLabel(name: DistinguishedName): string {
  const text = name.text === '' ? '(empty name)' : name.text;
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

function label(cert: ParsedCertificate): string {
  return cert.subject.text === '' ? `serial ${cert.facts.serialNumber}` : nameLabel(cert.subject);
}

function describe(index: number, cert: ParsedCertificate, isAnchor: boolean): string {
  if (index === 0) return `the client certificate (${label(cert)})`;
  return `${isAnchor ? 'the trust anchor' : 'the CA certificate'} ${label(cert)}`;
}

function selfIssued(cert: ParsedCertificate): boolean {
  return cert.subject.key === cert.issuer.key;
}

function allowsClientAuth(cert: ParsedCertificate): boolean {
  const eku = cert.extKeyUsage;
  return eku === null || eku.includes(OID.clientAuth) || eku.includes(OID.anyExtendedKeyUsage);
}

/** Cache key: SHA-256 over each certificate prefixed by its length, so boundaries are unambiguous. */
function verdictKey(certificates: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  const length = Buffer.alloc(4);
  for (const der of certificates) {
    length.writeUInt32BE(der.length);
    hash.update(length);
    hash.update(der);
  }
  return hash.digest('base64url');
}

export class ChainValidator {
  readonly #partial: boolean;
  readonly #now: () => number;
  readonly #anchors: readonly PathNode[];
  /** Anchors by subject comparison key. */
  readonly #anchorsBySubject: ReadonlyMap<string, readonly PathNode[]>;
  /** Anchors by thumbprint, to recognise an anchor sent in the header. */
  readonly #anchorsByThumbprint: ReadonlyMap<string, PathNode>;
  readonly #verdicts: BoundedCache<Result<ValidatedPath>>;
  readonly #keys: BoundedCache<KeyObject>;

  private constructor(anchors: readonly PathNode[], options: ChainOptions) {
    this.#partial = options.allowPartialChain;
    this.#now = options.now ?? Date.now;
    this.#anchors = anchors;
    const bySubject = new Map<string, PathNode[]>();
    const byThumbprint = new Map<string, PathNode>();
    for (const anchor of anchors) {
      const list = bySubject.get(anchor.cert.subject.key) ?? [];
      list.push(anchor);
      bySubject.set(anchor.cert.subject.key, list);
      byThumbprint.set(anchor.cert.facts.thumbprint, anchor);
    }
    this.#anchorsBySubject = bySubject;
    this.#anchorsByThumbprint = byThumbprint;
    const cacheOptions = { ttlMs: options.cacheTtlMs, ...(options.now === undefined ? {} : { now: options.now }) };
    this.#verdicts = new BoundedCache({ ...cacheOptions, maxEntries: options.cacheSize });
    this.#keys = new BoundedCache({ ...cacheOptions, maxEntries: Math.min(options.cacheSize, MAX_CACHED_KEYS) });
  }

  /**
   * Parses PEM trust anchors (several blocks per string allowed), once. A string without a
   * certificate block, a block that is not a certificate, or no anchors at all ->
   * `trust_anchors_unavailable`, naming the position (1-based).
   */
  static fromPem(anchorsPem: readonly string[], options: ChainOptions): Result<ChainValidator> {
    const anchors: PathNode[] = [];
    const seen = new Set<string>();
    for (const [index, pem] of anchorsPem.entries()) {
      const where = `trust anchor ${index + 1}`;
      if (typeof pem !== 'string') return fail('trust_anchors_unavailable', `${where} is not a PEM string`);
      const blocks = pemCertificates(pem);
      if (!blocks.ok) return fail('trust_anchors_unavailable', `${where}: ${blocks.error.detail}`);
      if (blocks.value.length === 0) return fail('trust_anchors_unavailable', `${where} contains no PEM certificate`);
      for (const [blockIndex, der] of blocks.value.entries()) {
        const at = `${where}, PEM block ${blockIndex + 1}`;
        const parsed = parseCertificate(der);
        if (!parsed.ok) return fail('trust_anchors_unavailable', `${at}: ${parsed.error.detail}`);
        const cert = parsed.value;
        if (seen.has(cert.facts.thumbprint)) continue;
        seen.add(cert.facts.thumbprint);
        let key: KeyObject;
        try {
          key = subjectPublicKey(cert);
        } catch (error) {
          const why = error instanceof UnsupportedKeyError ? `: it is ${error.message}` : '';
          return fail('trust_anchors_unavailable', `${at}: the public key of ${label(cert)} is not supported${why}`);
        }
        // An anchor's own signature proves nothing (it is trusted by configuration), so a SHA-1 self-signature still counts.
        const selfSigned = selfIssued(cert) && issuedBy(cert, cert, key, true) === 'valid';
        anchors.push({ cert, anchor: true, selfSigned, key });
      }
    }
    if (anchors.length === 0) return fail('trust_anchors_unavailable', 'no trust anchors are configured');
    return ok(new ChainValidator(anchors, options));
  }

  /**
   * Validates `certificates` (DER, leaf first, then untrusted intermediates in any order) and
   * returns the facts of the leaf. Never throws: an unexpected exception is `internal_error`.
   */
  async validate(certificates: readonly Uint8Array[]): Promise<Result<CertificateFacts>> {
    const validated = await this.validatePath(certificates);
    return validated.ok ? ok(validated.value.facts) : validated;
  }

  /** The same, returning the path that was accepted (what revocation must check). */
  async validatePath(certificates: readonly Uint8Array[]): Promise<Result<ValidatedPath>> {
    try {
      return this.#validate(certificates);
    } catch (error) {
      const name = error instanceof Error ? error.name : typeof error;
      return fail('internal_error', `certificate chain validation failed unexpectedly (${name})`);
    }
  }

  /** DER of the configured anchors (duplicates dropped), e.g. to find issuers for revocation checks. */
  get anchorsDer(): readonly Uint8Array[] {
    return this.#anchors.map((anchor) => anchor.cert.der);
  }

  /** Verdict cache counters. */
  stats(): { hits: number; misses: number; size: number } {
    return this.#verdicts.stats();
  }

  #validate(certificates: readonly Uint8Array[]): Result<ValidatedPath> {
    if (certificates.length === 0) return fail('certificate_missing', 'no client certificate was presented');
    if (certificates.length > MAX_CERTIFICATES) {
      return fail('certificate_too_many', `${certificates.length} certificates were presented; at most ${MAX_CERTIFICATES} are examined`);
    }
    const key = verdictKey(certificates);
    const cached = this.#verdicts.get(key);
    if (cached !== undefined) return cached;

    const now = this.#now();
    const { verdict, expiresAt } = this.#evaluate(certificates, now);
    // Failures: short-lived, and gone when a not-yet-valid certificate becomes valid.
    this.#verdicts.set(key, verdict, verdict.ok ? expiresAt : Math.min(expiresAt, now + FAILURE_TTL_MS));
    return verdict;
  }

  /** The verdict, and the moment it may stop being true. */
  #evaluate(certificates: readonly Uint8Array[], now: number): { verdict: Result<ValidatedPath>; expiresAt: number } {
    const parsed: ParsedCertificate[] = [];
    for (const [index, der] of certificates.entries()) {
      const result = parseCertificate(der);
      if (!result.ok) {
        const which = index === 0 ? 'the client certificate' : `chain certificate ${index + 1}`;
        return { verdict: fail('certificate_malformed', `${which}: ${result.error.detail}`), expiresAt: Number.POSITIVE_INFINITY };
      }
      parsed.push(result.value);
    }
    let becomesValidAt = Number.POSITIVE_INFINITY;
    for (const cert of [...parsed, ...this.#anchors.map((a) => a.cert)]) {
      if (cert.notBeforeMs > now) becomesValidAt = Math.min(becomesValidAt, cert.notBeforeMs);
    }

    const leafCert = parsed[0]!;
    const leaf: PathNode = this.#anchorsByThumbprint.get(leafCert.facts.thumbprint)
      ?? { cert: leafCert, anchor: false, selfSigned: false, key: null };
    // The header certificates as path nodes: duplicates dropped, configured anchors recognised.
    const bySubject = new Map<string, PathNode[]>();
    const seen = new Set<string>([leafCert.facts.thumbprint]);
    for (const cert of parsed.slice(1)) {
      if (seen.has(cert.facts.thumbprint)) continue;
      seen.add(cert.facts.thumbprint);
      if (this.#anchorsByThumbprint.has(cert.facts.thumbprint)) continue; // found among the anchors anyway
      const list = bySubject.get(cert.subject.key) ?? [];
      list.push({ cert, anchor: false, selfSigned: false, key: null });
      bySubject.set(cert.subject.key, list);
    }

    const state: SearchState = {
      now, signatureChecks: 0, signatureCost: 0, limitReached: false, weakSignature: false, partialAnchor: null, refusedKey: null,
      verified: new Map(), ids: new Map(), pathsTried: 0, firstFailure: null, validPath: null,
    };
    this.#search([leaf], bySubject, state);

    if (state.validPath !== null) {
      const expiresAt = Math.min(...state.validPath.map((n) => n.cert.notAfterMs));
      const facts = Object.freeze({ ...leafCert.facts, pathNotAfter: new Date(expiresAt) });
      const leafIssuer = state.validPath.length === 1 ? this.#issuerOf(leaf, [...bySubject.values()].flat(), state) : null;
      return {
        verdict: ok(Object.freeze({
          facts, certificates: state.validPath.map((n) => n.cert), trusted: state.validPath.map((n) => n.anchor), leafIssuer,
        })),
        expiresAt,
      };
    }
    return { verdict: { ok: false, error: state.firstFailure ?? untrustedFailure(leafCert, state) }, expiresAt: becomesValidAt };
  }

  /**
   * Depth-first path building. Each complete path is checked at once; returns true to stop the
   * search (a valid path was found, or enough paths were tried).
   */
  #search(path: PathNode[], headerBySubject: ReadonlyMap<string, readonly PathNode[]>, state: SearchState): boolean {
    const current = path[path.length - 1]!;
    if (current.anchor) {
      // OpenSSL partial-chain semantics; a configured leaf counts only with partial chains.
      if (this.#partial || (current.selfSigned && path.length > 1)) {
        state.pathsTried++;
        const problem = checkPath(path, state.now);
        if (problem === null) {
          state.validPath = [...path];
          return true;
        }
        state.firstFailure ??= problem;
        return state.pathsTried >= MAX_PATHS;
      }
      if (path.length > 1) state.partialAnchor ??= current;
    }
    if (path.length >= MAX_PATH_LENGTH) {
      state.limitReached = true;
      return false;
    }
    const issuerKey = current.cert.issuer.key;
    const candidates = [...(this.#anchorsBySubject.get(issuerKey) ?? []), ...(headerBySubject.get(issuerKey) ?? [])]
      .filter((candidate) => !path.includes(candidate) && issuerMatches(current.cert, candidate.cert));
    // Anchors first (shortest paths), then certificates valid now, so an expired cross-certificate does not hide a good one.
    const { now } = state;
    const rank = (n: PathNode): number => (n.anchor ? 0 : 2) + (n.cert.notBeforeMs <= now && now <= n.cert.notAfterMs ? 0 : 1);
    candidates.sort((a, b) => rank(a) - rank(b));
    for (const candidate of candidates) {
      const signed = this.#issuedBy(current, candidate, state);
      if (state.limitReached) return false;
      if (!signed) continue;
      path.push(candidate);
      const done = this.#search(path, headerBySubject, state);
      path.pop();
      if (done || state.limitReached) return done;
    }
    return false;
  }

  /** Whether `issuer`'s key verifies `child`'s signature; memoised, and counted against the search budget. */
  #issuedBy(child: PathNode, issuer: PathNode, state: SearchState): boolean {
    const id = (n: PathNode): number => {
      let value = state.ids.get(n);
      if (value === undefined) {
        value = state.ids.size;
        state.ids.set(n, value);
      }
      return value;
    };
    const memoKey = `${id(child)}>${id(issuer)}`;
    const memo = state.verified.get(memoKey);
    if (memo !== undefined) return memo;
    if (state.signatureChecks >= MAX_SIGNATURE_CHECKS) {
      state.limitReached = true;
      return false;
    }
    state.signatureChecks++;
    const key = issuer.key ?? this.#publicKey(issuer.cert, state);
    if (key !== null) {
      state.signatureCost += verificationCost(key);
      if (state.signatureCost > MAX_SIGNATURE_COST) {
        state.limitReached = true;
        return false;
      }
    }
    const outcome = key === null ? 'invalid' : issuedBy(child.cert, issuer.cert, key);
    if (outcome === 'weak') state.weakSignature = true;
    state.verified.set(memoKey, outcome === 'valid');
    return outcome === 'valid';
  }

  /** The issuer of a leaf that is itself the whole path, among the header certificates and the anchors; null when none. */
  #issuerOf(leaf: PathNode, header: readonly PathNode[], state: SearchState): ParsedCertificate | null {
    const candidates = [...(this.#anchorsBySubject.get(leaf.cert.issuer.key) ?? []), ...header]
      .filter((c) => c !== leaf && c.cert.facts.thumbprint !== leaf.cert.facts.thumbprint && issuerMatches(leaf.cert, c.cert));
    for (const candidate of candidates) {
      if (state.limitReached) return null;
      if (this.#issuedBy(leaf, candidate, state)) return candidate.cert;
    }
    return null;
  }

  /** The public key of a header certificate, cached by its SPKI bytes; null when node cannot import it. */
  #publicKey(cert: ParsedCertificate, state: SearchState): KeyObject | null {
    const cacheKey = Buffer.from(cert.spki).toString('base64');
    const cached = this.#keys.get(cacheKey);
    if (cached !== undefined) return cached;
    try {
      const key = subjectPublicKey(cert);
      this.#keys.set(cacheKey, key);
      return key;
    } catch (error) {
      if (error instanceof UnsupportedKeyError) state.refusedKey ??= `${label(cert)} has ${error.message}`;
      return null;
    }
  }
}

function untrustedFailure(leaf: ParsedCertificate, state: SearchState): AuthFailure {
  let detail: string;
  if (state.partialAnchor !== null) {
    detail = `the chain reaches the configured intermediate ${label(state.partialAnchor.cert)}, but partial chains are not allowed and no configured root CA completes it`;
  } else if (selfIssued(leaf)) {
    detail = `the client certificate (${label(leaf)}) is self-issued and not trusted`;
  } else {
    detail = `no path from the client certificate (${label(leaf)}) to a configured trust anchor; its issuer is ${nameLabel(leaf.issuer)}`;
  }
  if (state.limitReached) detail += ' (path search limit reached)';
  if (state.weakSignature) detail += ' (a SHA-1 or MD5 signature was refused)';
  if (state.refusedKey !== null) detail += ` (a key was refused: ${state.refusedKey})`;
  return failure('certificate_untrusted', detail);
}

/** The first rule a complete path (leaf first, anchor last) breaks, or null when it is valid. */
function checkPath(path: readonly PathNode[], now: number): AuthFailure | null {
  const leaf = path[0]!.cert;
  const name = (i: number): string => describe(i, path[i]!.cert, path[i]!.anchor);

  // The end entity (RFC 5280 section 4.2.1.9, 4.2.1.3, 4.2.1.12).
  if (leaf.basicConstraints?.ca === true) {
    return failure('certificate_is_ca', `${name(0)} is a CA certificate (basicConstraints cA is TRUE)`);
  }
  if (!allowsClientAuth(leaf)) {
    return failure('certificate_not_for_client_auth', `${name(0)} has an extendedKeyUsage without clientAuth`);
  }
  if (leaf.keyUsage !== null && (leaf.keyUsage & (KEY_USAGE.digitalSignature | KEY_USAGE.keyAgreement)) === 0) {
    return failure('certificate_not_for_client_auth', `${name(0)} has a keyUsage without digitalSignature or keyAgreement`);
  }

  // Extensions we cannot process (section 4.2: unrecognised critical extension -> reject).
  for (const [i, node] of path.entries()) {
    for (const extension of node.cert.extensions) {
      if (extension.oid === POLICY_CONSTRAINTS) {
        return failure('certificate_chain_invalid', `${name(i)} has policyConstraints, which are not supported`);
      }
      if (extension.critical && !PROCESSED_EXTENSIONS.has(extension.oid)) {
        return failure('certificate_chain_invalid', `${name(i)} has an unsupported critical extension ${extension.oid}`);
      }
    }
  }

  // Issuers (section 6.1.4 (k), (l), (m), (n)).
  let intermediatesBelow = 0;
  for (let i = 1; i < path.length; i++) {
    const cert = path[i]!.cert;
    if (cert.basicConstraints?.ca !== true) {
      return failure('certificate_chain_invalid', `${name(i)} issued a certificate but is not a CA (basicConstraints cA is not TRUE)`);
    }
    if (cert.keyUsage !== null && (cert.keyUsage & KEY_USAGE.keyCertSign) === 0) {
      return failure('certificate_chain_invalid', `${name(i)} issued a certificate but its keyUsage lacks keyCertSign`);
    }
    const pathLen = cert.basicConstraints.pathLen;
    if (pathLen !== null && intermediatesBelow > pathLen) {
      return failure('certificate_chain_invalid', `${name(i)} allows ${pathLen} intermediate CA(s) below it (pathLenConstraint), the path has ${intermediatesBelow}`);
    }
    if (!allowsClientAuth(cert)) {
      return failure('certificate_not_for_client_auth', `${name(i)} has an extendedKeyUsage without clientAuth`);
    }
    if (!selfIssued(cert)) intermediatesBelow++;
  }

  // Name constraints (section 6.1.3 (b), (c); 6.1.4 (g)), in name-constraints.ts.
  const comparisons = new ComparisonBudget();
  for (let k = 1; k < path.length; k++) {
    const constraints = path[k]!.cert.nameConstraints;
    if (constraints === null) continue;
    const unsupported = unsupportedConstraint(constraints);
    if (unsupported !== null) {
      return failure('certificate_chain_invalid', `${name(k)} has name constraints of a form that is not supported (${unsupported})`);
    }
    for (let j = 0; j < k; j++) {
      const subordinate = path[j]!.cert;
      if (j > 0 && selfIssued(subordinate)) continue;
      const violation = nameConstraintViolation(subordinate, j === 0, constraints, comparisons);
      if (violation !== null) {
        return failure('certificate_chain_invalid', `${name(j)} violates the name constraints of ${label(path[k]!.cert)}: ${violation}`);
      }
    }
  }

  // Validity now, for every certificate including the anchor (section 6.1.3 (a)(2)).
  for (const [i, node] of path.entries()) {
    if (now < node.cert.notBeforeMs) {
      return failure('certificate_not_yet_valid', `${name(i)} is not valid before ${new Date(node.cert.notBeforeMs).toISOString()}`);
    }
    if (now > node.cert.notAfterMs) {
      return failure('certificate_expired', `${name(i)} expired at ${new Date(node.cert.notAfterMs).toISOString()}`);
    }
  }
  return null;
}
