/**
 * Revocation checking of an already validated client certificate path: OCSP first (RFC 6960),
 * the CRL distribution point as fallback (RFC 5280 sections 5 and 6.3), with Kong's three modes.
 *
 * Modes (`revocation_check_mode`):
 * - `SKIP`: nothing is checked.
 * - `IGNORE_CA_ERROR` (default): a certificate proven revoked is rejected; when no responder gives
 *   a usable answer (down, slow, HTTP error, invalid/forged/stale answer, no revocation info in the
 *   certificate) the request passes.
 * - `STRICT`: the status must be proven good; "no usable answer" rejects with `revocation_unknown`.
 * A certificate proven revoked is rejected in every mode except SKIP (`certificate_revoked`).
 *
 * What counts as an answer: an OCSP response that is `successful`, signed by the issuer or by a
 * delegated responder certificate the issuer issued with EKU id-kp-OCSPSigning (RFC 6960 4.2.2.2),
 * whose SingleResponse CertID matches the certificate (RFC 6960 4.1.1), and that is current (below);
 * or a CRL whose issuer name matches the certificate's issuer (RFC 5280 6.3.3 (b)(1)), signed by the
 * issuer's key (whose keyUsage, when present, allows cRLSign: 6.3.3 (f)), current, in scope for the
 * certificate (6.3.3 (b)(2): the issuingDistributionPoint names the distribution point the CRL was
 * fetched from, onlyContainsUserCerts / onlyContainsCACerts fit the certificate), and without an
 * unsupported critical extension. Indirect CRLs and CRLs of attribute certificates are not used at
 * all; a CRL limited to some revocation reasons (onlySomeReasons) can prove "revoked" but never
 * "good". A response that fails any of these is ignored ENTIRELY, whatever status it claims: a
 * forged "revoked" does not reject (anyone able to forge answers could otherwise deny service to
 * any client), it counts as "no answer" like a forged "good".
 *
 * Current (RFC 6960 3.2 items 4-6, RFC 5280 6.3.3 (a)): thisUpdate is not in the future; nextUpdate,
 * when present, has not passed; without nextUpdate, thisUpdate is at most `maxAgeMs` old (a replayed
 * old "good" is not current). All with 5 minutes of clock skew, as `openssl ocsp` allows.
 *
 * Names and signatures: issuers, CRL issuers and OCSP ResponderIDs byName are compared under RFC
 * 5280 section 7.1 (`DistinguishedName.key`: string type and ASCII case do not matter), and every
 * signature (certificates, CRLs, OCSP responses) is checked by `signature.ts`, the same code and the
 * same algorithm list as path validation: SHA-1 and MD5 are refused in every scheme.
 *
 * Which certificates: exactly the path chain validation accepted (`ValidatedPath` of chain.ts),
 * never one rebuilt from the header, so that no presented certificate off that path is ever looked
 * at and no URL from it is ever fetched. The leaf is always checked (with its issuer on the path, or
 * `leafIssuer` when the leaf alone is a configured certificate); with `checkWholePath`, also every
 * further certificate of the path that names an OCSP responder or a CRL distribution point, up to
 * (not including) the first configured trust anchor. `ocspUrlOverride` replaces the AIA OCSP URLs
 * of every certificate checked; the CRL distribution points stay the certificate's own.
 *
 * Caching: verdicts are keyed by issuer (hash of its public key and name) + serial, never by subject
 * DN (two CAs can issue the same DN), bounded in entries, kept at most `cacheTtlMs` milliseconds
 * and never past the answer's nextUpdate (or thisUpdate + `maxAgeMs` without one). Network
 * failures and invalid answers are never cached.
 * Concurrent checks of one certificate share one lookup. CRLs are downloaded (at most 10 MiB),
 * verified and turned into a serial set once, kept in a small bounded cache keyed by URL + issuer;
 * a large CRL's signature is checked on the thread pool and its entries are read in slices with
 * yields to the event loop in between.
 *
 * Certificates are read by `certificate.ts`, CRLs and OCSP by `revocation-der.ts` (not pkijs: see
 * there for why), both on the strict DER reader of `der.ts`; signatures are checked by
 * `signature.ts`; requests go through `http.ts`.
 *
 * `timeoutMs` is in milliseconds and applies to each responder request (an OCSP responder that
 * hangs costs `timeoutMs`, then the CRL fallback gets its own `timeoutMs`).
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { BoundedCache } from './cache.js';
import {
  KEY_USAGE, authorityInfoAccessUris, crlDistributionPoints, distributionPointNames, parseCertificate, parseDistinguishedName,
  sameGeneralName, subjectPublicKey, subjectPublicKeyBits, type GeneralName, type ParsedCertificate,
} from './certificate.js';
import type { ValidatedPath } from './chain.js';
import { DerError, integerHex } from './der.js';
import { fail, ok, type Result } from './errors.js';
import { describeNetworkError, HttpError, httpRequest } from './http.js';
import * as der from './revocation-der.js';
import { issuedBy, verifySigned, verifySignedAsync, type SignatureVerdict } from './signature.js';

export interface RevocationOptions {
  readonly mode: 'SKIP' | 'IGNORE_CA_ERROR' | 'STRICT';
  /** Deadline for each responder request, in milliseconds (`http_timeout`). */
  readonly timeoutMs: number;
  /** Longest a verdict is cached, in milliseconds (`cert_cache_ttl`); never past nextUpdate. */
  readonly cacheTtlMs: number;
  /** Most verdicts cached; 0 disables caching. */
  readonly cacheSize: number;
  /** Verify the TLS certificate of https responders (`ssl_verify`). */
  readonly sslVerify: boolean;
  /** Extra PEM CAs trusted for https responders, in addition to Node's bundled roots. */
  readonly caPem?: readonly string[];
  /** OCSP responder used instead of the certificates' AIA id-ad-ocsp URLs. */
  readonly ocspUrlOverride?: string | null;
  /** `http://host:port` proxy for plain-http responders (https responders are reached directly). */
  readonly httpProxy?: string | null;
  /** Check every certificate of the path that carries revocation info, not only the leaf. */
  readonly checkWholePath?: boolean;
  /** Largest CRL accepted, in bytes (default 10 MiB). */
  readonly maxCrlBytes?: number;
  /**
   * Oldest thisUpdate accepted, in milliseconds before now, for an OCSP response or CRL without
   * nextUpdate (`revocation_max_age`; default one day).
   */
  readonly maxAgeMs?: number;
  /** Clock in epoch milliseconds, for tests. */
  readonly now?: () => number;
}

export interface RevocationOutcome {
  /** Certificates whose status was proven good. */
  readonly checked: number;
  /**
   * Where the verdict came from: 'ocsp' / 'crl' (the leaf's fresh answer), 'cache' (every
   * certificate answered from the cache), 'none' (IGNORE_CA_ERROR let it through without an
   * answer for at least one certificate), 'skipped' (mode SKIP).
   */
  readonly source: 'ocsp' | 'crl' | 'cache' | 'none' | 'skipped';
  /** host:port of the responder that answered for the leaf. */
  readonly responder?: string;
  /** With source 'none': why no answer was obtained (safe to log). */
  readonly detail?: string;
}

/** What the verifier needs of a revocation checker (explain.ts shares one answer per run). */
export interface RevocationLookup {
  /** The status of the certificates of `path`, exactly the path chain validation accepted. */
  check(path: ValidatedPath): Promise<Result<RevocationOutcome>>;
}

type Definitive = { readonly status: 'good' | 'revoked'; readonly source: 'ocsp' | 'crl'; readonly responder: string };
type Verdict = Definitive | { readonly status: 'unknown'; readonly detail: string };
/** One responder's answer: proven status (with the time it stops being current) or why there is none. */
type Answer = { readonly status: 'good' | 'revoked'; readonly notAfter?: number } | { readonly status: 'none'; readonly why: string };

/** A verified CRL, reduced to what answering needs; scope and currency are checked per use. */
interface CrlSnapshot {
  readonly serials: ReadonlySet<string>;
  readonly thisUpdate: number;
  readonly nextUpdate?: number;
  /** issuingDistributionPoint distributionPoint names; null when the CRL does not limit itself to a point. */
  readonly scopeNames: readonly GeneralName[] | null;
  readonly onlyUserCerts: boolean;
  readonly onlyCaCerts: boolean;
  readonly onlySomeReasons: boolean;
}
type FetchResult = { readonly ok: true; readonly body: Buffer } | { readonly ok: false; readonly error: string };
type CrlFetch = { readonly ok: true; readonly crl: CrlSnapshot } | { readonly ok: false; readonly why: string };

const OID = {
  sha1: '1.3.14.3.2.26',
  ocspBasic: '1.3.6.1.5.5.7.48.1.1',
  ocspNonce: '1.3.6.1.5.5.7.48.1.2',
  adOcsp: '1.3.6.1.5.5.7.48.1',
  kpOcspSigning: '1.3.6.1.5.5.7.3.9',
  issuingDistributionPoint: '2.5.29.28',
} as const;

/** CertID hash algorithms (RFC 6960 4.1.1; not signatures, so SHA-1 is fine here: RFC 5019 requires it). */
const HASH_BY_OID: Readonly<Record<string, string>> = {
  '1.3.14.3.2.26': 'sha1', '2.16.840.1.101.3.4.2.4': 'sha224', '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384', '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** Clock skew tolerated on thisUpdate / nextUpdate (openssl's default MAX_VALIDITY_PERIOD). */
const SKEW_MS = 5 * 60 * 1000;
const MAX_OCSP_BYTES = 256 * 1024;
const DEFAULT_MAX_CRL_BYTES = 10 * 1024 * 1024;
/** Default `maxAgeMs`: one day. */
export const DEFAULT_REVOCATION_MAX_AGE_MS = 24 * 3600 * 1000;
const CRL_CACHE_ENTRIES = 16;
/** CRL entries read between two yields to the event loop. */
const CRL_ENTRIES_PER_SLICE = 1024;
/** Parsed certificates (and their issuer signature checks) kept across checks. */
const PARSED_CACHE_ENTRIES = 1024;
/** Most responder URLs tried per certificate and per kind (OCSP, CRL). */
const MAX_URLS = 3;

const sha = (alg: string, data: Uint8Array): Buffer => createHash(alg).update(data).digest();
const hex = (data: Uint8Array): string => Buffer.from(data).toString('hex');
const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength)
  .equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Why a signature of a responder is not accepted, for details. */
function signatureProblem(verdict: SignatureVerdict, what: string, signer: string): string {
  return verdict === 'weak' ? `${what} is signed with SHA-1 or MD5, which is refused (ignored)` : `${what} is not signed by ${signer} (ignored)`;
}

/** A CRL distribution point to fetch: one http(s) URL and every name of its point (for the CRL's scope check). */
interface CrlPoint {
  readonly url: URL;
  readonly names: readonly GeneralName[];
}

/** A certificate prepared once: what revocation checking needs from it, and its public key. */
class ParsedCert {
  /** x5t#S256 of the DER. */
  readonly id: string;
  readonly cert: ParsedCertificate;
  /** serialNumber as lower-case hex, the form CRL entries and OCSP CertIDs are compared in. */
  readonly serialHex: string;
  /** subjectPublicKey bits (OCSP CertID issuerKeyHash input). */
  readonly keyBits: Uint8Array;
  readonly ocspUrls: readonly URL[];
  readonly crlPoints: readonly CrlPoint[];
  /**
   * The authorityInfoAccess or cRLDistributionPoints extension is malformed DER. Path validation
   * does not read them (so that revocation SKIP never fails on them); here the certificate has no
   * usable pointer, and its status is unknown (RFC 5280 6.3: no CRL or OCSP answer can be found).
   */
  readonly pointersMalformed: boolean;
  readonly isCa: boolean;
  readonly purposes: readonly string[];
  #key: KeyObject | undefined;
  #issuerId: string | undefined;

  constructor(cert: ParsedCertificate) {
    this.id = cert.facts.thumbprint;
    this.cert = cert;
    this.serialHex = integerHex(cert.serial);
    this.keyBits = subjectPublicKeyBits(cert);
    let ocspUrls: readonly URL[] = [];
    const points: CrlPoint[] = [];
    let malformed = false;
    try {
      ocspUrls = httpUrls(authorityInfoAccessUris(cert, OID.adOcsp));
      for (const point of crlDistributionPoints(cert)) {
        for (const url of httpUrls(point.uris)) if (points.length < MAX_URLS) points.push({ url, names: point.names });
      }
    } catch (error) {
      if (!(error instanceof DerError)) throw error;
      malformed = true;
      ocspUrls = [];
      points.length = 0;
    }
    this.ocspUrls = ocspUrls;
    this.crlPoints = points;
    this.pointersMalformed = malformed;
    this.isCa = cert.basicConstraints?.ca ?? false;
    this.purposes = cert.extKeyUsage ?? [];
  }

  /** Subject DN for failure details. */
  get subject(): string {
    return this.cert.subject.text;
  }

  /** DER of the subject Name as encoded (OCSP issuerNameHash input, as `openssl ocsp` computes it). */
  get subjectDer(): Uint8Array {
    return this.cert.subject.der;
  }

  /** Identifies this certificate as an issuer: SHA-256 of its key bits and of its name (cache keys). */
  get issuerId(): string {
    this.#issuerId ??= `${hex(sha('sha256', this.keyBits))}:${hex(sha('sha256', this.subjectDer)).slice(0, 32)}`;
    return this.#issuerId;
  }

  get key(): KeyObject {
    this.#key ??= subjectPublicKey(this.cert);
    return this.#key;
  }

  /** Whether `key` can be used: false for a key outside the bounds of key-bounds.ts or one node cannot import. */
  get hasUsableKey(): boolean {
    try {
      return this.key !== undefined;
    } catch {
      return false;
    }
  }
}

/** `host:port` of a responder URL: what failure details name (no path, no query, no credentials). */
function responderHost(url: URL): string {
  return url.host !== '' ? url.host : '(no host)';
}

/** Why a responder request gave no answer, safe to log (never a body). */
function fetchProblem(error: HttpError, timeoutMs: number, maxBytes: number): string {
  const via = error.proxy !== null ? ` (via proxy ${error.proxy})` : '';
  switch (error.code) {
    case 'bad_url': return error.message;
    case 'status': return `answered HTTP ${error.status}${via}`;
    case 'too_large': return error.declaredBytes !== null
      ? `answer of ${error.declaredBytes} bytes exceeds the ${maxBytes}-byte limit`
      : `answer exceeds the ${maxBytes}-byte limit`;
    case 'timeout': return `no answer within ${timeoutMs} ms${via}`;
    case 'cut_off': return `${error.errorCode !== null ? describeNetworkError(error.errorCode) : 'connection closed mid-answer'}${via}`;
    case 'network': return `${describeNetworkError(error.errorCode)}${via}`;
  }
}

/** Keeps http(s) URLs (ldap:// and other schemes are ignored), at most MAX_URLS. */
function httpUrls(values: readonly string[]): URL[] {
  const urls: URL[] = [];
  for (const value of values) {
    try {
      const url = new URL(value);
      if ((url.protocol === 'http:' || url.protocol === 'https:') && urls.length < MAX_URLS) urls.push(url);
    } catch {
      // not a URL: ignored
    }
  }
  return urls;
}

/**
 * RFC 6960 3.2 items 4-6 and RFC 5280 6.3.3 (a): the answer is current at `now`. Without nextUpdate,
 * thisUpdate may be at most `maxAgeMs` old.
 */
function currencyProblem(thisUpdate: number, nextUpdate: number | undefined, now: number, maxAgeMs: number): string | null {
  if (!Number.isFinite(thisUpdate) || thisUpdate > now + SKEW_MS) return 'thisUpdate is in the future';
  if (nextUpdate !== undefined && (!Number.isFinite(nextUpdate) || nextUpdate + SKEW_MS < now)) return 'nextUpdate has passed (stale)';
  if (nextUpdate === undefined && thisUpdate + maxAgeMs + SKEW_MS < now) {
    return `has no nextUpdate and its thisUpdate is more than ${Math.round(maxAgeMs / 1000)} s old (stale)`;
  }
  return null;
}

/** Until when an answer may be used (and cached): nextUpdate, else thisUpdate + `maxAgeMs`. */
function usableUntil(thisUpdate: number, nextUpdate: number | undefined, maxAgeMs: number): number {
  return nextUpdate ?? thisUpdate + maxAgeMs;
}

export class RevocationChecker implements RevocationLookup {
  readonly #options: RevocationOptions;
  readonly #now: () => number;
  readonly #maxAgeMs: number;
  readonly #verdicts: BoundedCache<Definitive>;
  readonly #crls: BoundedCache<CrlSnapshot>;
  readonly #parsed: BoundedCache<ParsedCert>;
  readonly #inflight = new Map<string, Promise<Verdict>>();
  readonly #crlInflight = new Map<string, Promise<CrlFetch>>();
  #hits = 0;
  #misses = 0;
  #fetches = 0;
  #coalesced = 0;

  constructor(options: RevocationOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_REVOCATION_MAX_AGE_MS;
    this.#verdicts = new BoundedCache({ maxEntries: options.cacheSize, ttlMs: options.cacheTtlMs, now: this.#now });
    this.#crls = new BoundedCache({
      maxEntries: Math.min(options.cacheSize, CRL_CACHE_ENTRIES), ttlMs: options.cacheTtlMs, now: this.#now,
    });
    this.#parsed = new BoundedCache({ maxEntries: PARSED_CACHE_ENTRIES, ttlMs: 3600 * 1000 });
  }

  /**
   * Checks the revocation status of the certificates of `path` (what chain validation accepted)
   * according to the mode. Never throws; an unexpected exception is `internal_error` in every mode.
   */
  async check(path: ValidatedPath): Promise<Result<RevocationOutcome>> {
    if (this.#options.mode === 'SKIP') return ok({ checked: 0, source: 'skipped' });
    try {
      return await this.#check(path);
    } catch (error) {
      const name = error instanceof Error ? error.name : typeof error;
      return fail('internal_error', `revocation check failed unexpectedly (${name})`);
    }
  }

  /** Verdict cache hits and misses, responder requests made, and checks that joined one in flight. */
  stats(): { hits: number; misses: number; fetches: number; coalesced: number } {
    return { hits: this.#hits, misses: this.#misses, fetches: this.#fetches, coalesced: this.#coalesced };
  }

  /** The prepared form of a certificate, shared across checks (by thumbprint). Throws DerError on a malformed pointer. */
  #prepare(cert: ParsedCertificate): ParsedCert {
    const id = cert.facts.thumbprint;
    let prepared = this.#parsed.get(id);
    if (prepared === undefined) {
      prepared = new ParsedCert(cert);
      this.#parsed.set(id, prepared);
    }
    return prepared;
  }

  async #check(path: ValidatedPath): Promise<Result<RevocationOutcome>> {
    const strict = this.#options.mode === 'STRICT';
    const certs = path.certificates;
    const leafCert = certs[0];
    if (leafCert === undefined) return fail('internal_error', 'revocation check called without a certificate');
    const leaf = this.#prepare(leafCert);
    const leafIssuer = certs[1] ?? path.leafIssuer;
    if (leafIssuer === null) {
      const detail = `revocation status of ${leaf.subject} unknown: the validated path is the client certificate alone `
        + '(a configured certificate) and its issuer is not among the presented certificates and trust anchors';
      return strict ? fail('revocation_unknown', detail) : ok({ checked: 0, source: 'none', detail });
    }
    // The leaf, always; then, with checkWholePath, each further certificate with revocation info,
    // up to (not including) the first configured trust anchor.
    const toCheck: Array<{ cert: ParsedCert; issuer: ParsedCert }> = [{ cert: leaf, issuer: this.#prepare(leafIssuer) }];
    if (this.#options.checkWholePath === true) {
      for (let i = 1; i + 1 < certs.length && path.trusted[i] !== true; i++) {
        const cert = this.#prepare(certs[i]!);
        if (cert.ocspUrls.length > 0 || cert.crlPoints.length > 0 || cert.pointersMalformed) toCheck.push({ cert, issuer: this.#prepare(certs[i + 1]!) });
      }
    }

    const verdicts = await Promise.all(toCheck.map(async ({ cert, issuer }) => ({ cert, ...(await this.#statusOf(cert, issuer)) })));
    for (const { cert, verdict } of verdicts) {
      if (verdict.status === 'revoked') {
        return fail('certificate_revoked', `certificate ${cert.subject} (serial ${cert.serialHex}) is revoked `
          + `according to ${verdict.source === 'ocsp' ? 'OCSP responder' : 'the CRL at'} ${verdict.responder}`);
      }
    }
    const unknown = verdicts.flatMap((v) => (v.verdict.status === 'unknown' ? [v.verdict.detail] : []));
    if (unknown.length > 0) {
      const detail = unknown.join('; ');
      return strict ? fail('revocation_unknown', detail) : ok({ checked: verdicts.length - unknown.length, source: 'none', detail });
    }
    const first = verdicts[0]?.verdict;
    if (first === undefined || first.status !== 'good') return fail('internal_error', 'revocation verdict missing');
    const allCached = verdicts.every((v) => v.cached);
    return ok({ checked: verdicts.length, source: allCached ? 'cache' : first.source, responder: first.responder });
  }

  /** The verdict for one certificate: from the cache, from a lookup already running, or a new lookup. */
  async #statusOf(cert: ParsedCert, issuer: ParsedCert): Promise<{ verdict: Verdict; cached: boolean }> {
    // Keyed by issuer (key and name) + serial: RFC 5280 4.1.2.2 makes the serial unique per issuer only.
    const key = `${issuer.issuerId}:${cert.serialHex}`;
    const cached = this.#verdicts.get(key);
    if (cached !== undefined) {
      this.#hits++;
      return { verdict: cached, cached: true };
    }
    this.#misses++;
    let pending = this.#inflight.get(key);
    if (pending !== undefined) {
      this.#coalesced++;
    } else {
      pending = this.#lookup(cert, issuer, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return { verdict: await pending, cached: false };
  }

  /** OCSP responders first, then CRL distribution points; the first valid answer wins. */
  async #lookup(cert: ParsedCert, issuer: ParsedCert, key: string): Promise<Verdict> {
    const override = this.#options.ocspUrlOverride;
    let ocspUrls: readonly URL[] = cert.ocspUrls;
    if (override !== undefined && override !== null && override !== '') {
      const url = URL.canParse(override) ? new URL(override) : null;
      ocspUrls = url !== null ? [url] : [];
    }
    const attempts: Array<{ kind: 'ocsp'; url: URL } | { kind: 'crl'; url: URL; point: CrlPoint }> = [
      ...ocspUrls.map((url) => ({ kind: 'ocsp' as const, url })),
      ...cert.crlPoints.map((point) => ({ kind: 'crl' as const, url: point.url, point })),
    ];
    if (attempts.length === 0) {
      const why = cert.pointersMalformed
        ? 'its authorityInfoAccess or cRLDistributionPoints extension is malformed'
        : 'it names no OCSP responder and no CRL distribution point';
      return { status: 'unknown', detail: `revocation status of ${cert.subject} unknown: ${why}` };
    }
    const reasons: string[] = [];
    for (const attempt of attempts) {
      const answer = attempt.kind === 'ocsp' ? await this.#askOcsp(attempt.url, cert, issuer) : await this.#askCrl(attempt.point, cert, issuer);
      if (answer.status === 'none') {
        reasons.push(`${attempt.kind.toUpperCase()} ${responderHost(attempt.url)}: ${answer.why}`);
        continue;
      }
      const verdict: Definitive = { status: answer.status, source: attempt.kind, responder: responderHost(attempt.url) };
      this.#verdicts.set(key, verdict, answer.notAfter);
      return verdict;
    }
    return { status: 'unknown', detail: `revocation status of ${cert.subject} unknown: ${reasons.join(', ')}` };
  }

  /** One responder request (OCSP POST with `body`, else CRL GET): HTTP 200 within the deadline and size cap. */
  async #fetch(url: URL, maxBytes: number, body?: Uint8Array): Promise<FetchResult> {
    this.#fetches++;
    const o = this.#options;
    const timeoutMs = o.timeoutMs;
    try {
      const response = await httpRequest(url, {
        method: body === undefined ? 'GET' : 'POST',
        headers: body === undefined ? { accept: 'application/pkix-crl' }
          : { accept: 'application/ocsp-response', 'content-type': 'application/ocsp-request' },
        ...(body !== undefined ? { body } : {}),
        timeoutMs, maxBytes, tlsVerify: o.sslVerify, expectStatus: 200,
        ...(o.caPem !== undefined ? { caPem: o.caPem } : {}),
        ...(o.httpProxy !== undefined ? { httpProxy: o.httpProxy } : {}),
      });
      return { ok: true, body: response.body };
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      return { ok: false, error: fetchProblem(error, timeoutMs, maxBytes) };
    }
  }

  /**
   * RFC 6960 4.1: POST one request and validate the answer. The CertID is SHA-1 (RFC 5019 2.1.1)
   * over the issuer's subject as the issuer certificate encodes it, as `openssl ocsp` does; plus a nonce.
   */
  async #askOcsp(url: URL, cert: ParsedCert, issuer: ParsedCert): Promise<Answer> {
    const nonce = randomBytes(16);
    const body = der.encodeOcspRequest({
      hashOid: OID.sha1, issuerNameHash: sha('sha1', issuer.subjectDer), issuerKeyHash: sha('sha1', issuer.keyBits),
      serial: cert.cert.serial,
    }, nonce);
    const fetched = await this.#fetch(url, MAX_OCSP_BYTES, body);
    if (!fetched.ok) return { status: 'none', why: fetched.error };
    let response: der.OcspResponseFields;
    try {
      response = der.parseOcspResponse(fetched.body);
    } catch {
      return { status: 'none', why: 'response is not a well-formed OCSP response' };
    }
    return this.#validateOcsp(response, cert, issuer, nonce);
  }

  #validateOcsp(response: der.OcspResponseFields, cert: ParsedCert, issuer: ParsedCert, nonce: Uint8Array): Answer {
    // RFC 6960 4.2.1: only `successful` (0) carries a response.
    if (response.status !== 0) return { status: 'none', why: `responder status ${response.status} (not successful)` };
    const basic = response.basic;
    if (basic === null) return { status: 'none', why: 'response is not a BasicOCSPResponse' };

    // RFC 6960 4.2.2.2: signed by the issuer itself, or by a currently valid responder certificate
    // the issuer issued for id-kp-OCSPSigning. No other signer is accepted. ResponderID byName is
    // compared as names are (RFC 5280 7.1), byKey as SHA-1 of the key bits (RFC 6960 4.2.1).
    const now = this.#now();
    let responderNameKey: string | null = null;
    if (basic.responderName !== null) {
      try {
        responderNameKey = parseDistinguishedName(basic.responderName).key;
      } catch {
        return { status: 'none', why: 'response has a malformed ResponderID (ignored)' };
      }
    }
    const matchesResponderId = (c: ParsedCert): boolean => (responderNameKey !== null
      ? responderNameKey === c.cert.subject.key
      : basic.responderKeyHash !== null && bytesEqual(basic.responderKeyHash, sha('sha1', c.keyBits)));
    const signers: ParsedCert[] = [];
    if (matchesResponderId(issuer)) signers.push(issuer);
    for (const embedded of basic.certs) {
      let candidate: ParsedCert;
      try {
        const parsed = parseCertificate(Buffer.from(embedded)); // a copy: `embedded` is a view into the whole response
        if (!parsed.ok) continue;
        candidate = this.#prepare(parsed.value);
      } catch {
        continue; // an unreadable extra certificate cannot authorise anything
      }
      if (candidate.id === issuer.id || !matchesResponderId(candidate)) continue;
      const { notBeforeMs, notAfterMs } = candidate.cert;
      if (!(notBeforeMs <= now + SKEW_MS && now <= notAfterMs)) continue;
      if (candidate.purposes.includes(OID.kpOcspSigning) && candidate.hasUsableKey
        && issuedBy(candidate.cert, issuer.cert, issuer.key) === 'valid') signers.push(candidate);
    }
    let verdict: SignatureVerdict = 'invalid';
    for (const signer of signers) {
      const outcome = verifySigned(basic, signer.key);
      if (outcome === 'valid') {
        verdict = 'valid';
        break;
      }
      if (outcome === 'weak') verdict = 'weak';
    }
    if (verdict !== 'valid') return { status: 'none', why: signatureProblem(verdict, 'response', 'the issuer or a responder it authorised') };

    // RFC 8954 / RFC 6960 4.4.1: a nonce, when echoed, must be ours; a responder may omit it.
    const echoed = basic.extensions.find((e) => e.oid === OID.ocspNonce);
    if (echoed !== undefined && !bytesEqual(echoed.value, der.encodeNonce(nonce))) {
      return { status: 'none', why: 'response nonce does not match the request (ignored)' };
    }

    // RFC 6960 4.1.1: the SingleResponse for this certificate, whatever CertID hash it uses; the
    // issuer name may be hashed as the certificate encodes it (the RFC's wording) or as the issuer does.
    const single = basic.responses.find((r) => {
      const digest = HASH_BY_OID[r.hashOid];
      if (digest === undefined || r.serialHex !== cert.serialHex || !bytesEqual(r.issuerKeyHash, sha(digest, issuer.keyBits))) return false;
      return bytesEqual(r.issuerNameHash, sha(digest, issuer.subjectDer)) || bytesEqual(r.issuerNameHash, sha(digest, cert.cert.issuer.der));
    });
    if (single === undefined) return { status: 'none', why: 'response has no status for this certificate' };
    const problem = currencyProblem(single.thisUpdate, single.nextUpdate, now, this.#maxAgeMs);
    if (problem !== null) return { status: 'none', why: `response ${problem} (ignored)` };

    const notAfter = usableUntil(single.thisUpdate, single.nextUpdate, this.#maxAgeMs);
    if (single.status === 'good' || single.status === 'revoked') return { status: single.status, notAfter };
    if (single.status === 'unknown') return { status: 'none', why: 'responder does not know this certificate' };
    return { status: 'none', why: 'response has an invalid certificate status' };
  }

  /** RFC 5280 6.3.3: the CRL of distribution point `point`, verified for `issuer`, says whether `cert` is listed. */
  async #askCrl(point: CrlPoint, cert: ParsedCert, issuer: ParsedCert): Promise<Answer> {
    const key = `${point.url.href}|${issuer.issuerId}`;
    let crl = this.#crls.get(key);
    if (crl === undefined) {
      let pending = this.#crlInflight.get(key);
      if (pending === undefined) {
        pending = this.#downloadCrl(point.url, issuer).finally(() => this.#crlInflight.delete(key));
        this.#crlInflight.set(key, pending);
      }
      const fetched = await pending;
      if (!fetched.ok) return { status: 'none', why: fetched.why };
      crl = fetched.crl;
      this.#crls.set(key, crl, usableUntil(crl.thisUpdate, crl.nextUpdate, this.#maxAgeMs));
    }
    const problem = currencyProblem(crl.thisUpdate, crl.nextUpdate, this.#now(), this.#maxAgeMs);
    if (problem !== null) return { status: 'none', why: `CRL ${problem} (ignored)` };
    // RFC 5280 6.3.3 (b)(2)(i): a CRL for one distribution point says nothing about the others.
    if (crl.scopeNames !== null && !crl.scopeNames.some((a) => point.names.some((b) => sameGeneralName(a, b)))) {
      return { status: 'none', why: 'CRL scope (issuingDistributionPoint) is another distribution point than the certificate\'s (ignored)' };
    }
    // RFC 5280 6.3.3 (b)(2)(ii), (iii): a CRL scoped to CA (or end-entity) certificates says nothing about the others.
    if ((crl.onlyCaCerts && !cert.isCa) || (crl.onlyUserCerts && cert.isCa)) {
      return { status: 'none', why: `CRL scope covers only ${crl.onlyCaCerts ? 'CA' : 'end-entity'} certificates (ignored)` };
    }
    const notAfter = usableUntil(crl.thisUpdate, crl.nextUpdate, this.#maxAgeMs);
    if (crl.serials.has(cert.serialHex)) return { status: 'revoked', notAfter };
    // RFC 5280 6.3.3 (d), (j): a CRL covering only some reasons cannot show that none applies.
    if (crl.onlySomeReasons) return { status: 'none', why: 'CRL covers only some revocation reasons and cannot prove the certificate good' };
    return { status: 'good', notAfter };
  }

  async #downloadCrl(url: URL, issuer: ParsedCert): Promise<CrlFetch> {
    const fetched = await this.#fetch(url, this.#options.maxCrlBytes ?? DEFAULT_MAX_CRL_BYTES);
    if (!fetched.ok) return { ok: false, why: fetched.error };
    try {
      return await this.#validateCrl(fetched.body, issuer);
    } catch {
      return { ok: false, why: 'response is not a well-formed CRL' };
    }
  }

  async #validateCrl(body: Buffer, issuer: ParsedCert): Promise<CrlFetch> {
    let bytes: Uint8Array = body;
    // RFC 5280 4.2.1.13 says DER; a PEM-armoured CRL is accepted too.
    if (body.subarray(0, 24).toString('latin1') === '-----BEGIN X509 CRL-----') {
      bytes = Buffer.from(body.toString('latin1').replace(/-----(BEGIN|END) X509 CRL-----/g, ''), 'base64');
    }
    const crl = der.parseCrl(bytes);
    // RFC 5280 6.3.3 (b)(1): the CRL issuer matches the certificate's issuer, compared as names are (7.1).
    const crlIssuer = parseDistinguishedName(crl.issuer);
    if (crlIssuer.key !== issuer.cert.subject.key) return { ok: false, why: 'CRL issuer is not the certificate issuer (ignored)' };
    // RFC 5280 6.3.3 (f): an issuer whose keyUsage is present must have cRLSign.
    const keyUsage = issuer.cert.keyUsage;
    if (keyUsage !== null && (keyUsage & KEY_USAGE.cRLSign) === 0) return { ok: false, why: 'CRL issuer\'s keyUsage lacks cRLSign (ignored)' };
    const signature = await verifySignedAsync(crl, issuer.key);
    if (signature !== 'valid') return { ok: false, why: signatureProblem(signature, 'CRL', 'the issuer') };
    const problem = currencyProblem(crl.thisUpdate, crl.nextUpdate, this.#now(), this.#maxAgeMs);
    if (problem !== null) return { ok: false, why: `CRL ${problem} (ignored)` };

    let idp: der.IdpFields | null = null;
    let scopeNames: GeneralName[] | null = null;
    for (const ext of crl.extensions) {
      if (ext.oid === OID.issuingDistributionPoint) {
        idp = der.issuingDistributionPoint(ext.value);
        if (idp.indirectCrl) return { ok: false, why: 'indirect CRLs are not supported (ignored)' };
        if (idp.onlyAttributeCerts) return { ok: false, why: 'CRL covers only attribute certificates (ignored)' };
        if (idp.distributionPoint !== null) scopeNames = distributionPointNames(ext.value, idp.distributionPoint, crlIssuer);
      } else if (ext.critical) {
        // RFC 5280 5.2: a critical extension we do not process (a delta CRL indicator, for one).
        return { ok: false, why: `CRL has an unsupported critical extension ${ext.oid} (ignored)` };
      }
    }
    const serials = new Set<string>();
    let unsupported: string | null = null;
    const visit = (serial: string, critical: string | null): void => {
      // A critical entry extension (certificateIssuer of an indirect CRL, for one) is not understood.
      if (critical !== null) unsupported ??= critical;
      serials.add(serial);
    };
    while (!crl.visitEntries(CRL_ENTRIES_PER_SLICE, visit)) await yieldToEventLoop();
    if (unsupported !== null) return { ok: false, why: `CRL entry has an unsupported critical extension ${unsupported} (ignored)` };
    return {
      ok: true,
      crl: {
        serials, thisUpdate: crl.thisUpdate, scopeNames,
        onlyUserCerts: idp?.onlyUserCerts ?? false, onlyCaCerts: idp?.onlyCaCerts ?? false, onlySomeReasons: idp?.onlySomeReasons ?? false,
        ...(crl.nextUpdate !== undefined ? { nextUpdate: crl.nextUpdate } : {}),
      },
    };
  }
}
