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
 * delegated responder certificate the issuer signed with EKU id-kp-OCSPSigning (RFC 6960 4.2.2.2),
 * whose SingleResponse CertID matches the certificate (RFC 6960 4.1.1), whose thisUpdate is not in
 * the future and whose nextUpdate (when present) has not passed (RFC 6960 3.2, with 5 minutes of
 * clock skew as `openssl ocsp` allows); or a CRL signed by the issuer, naming it as issuer, current
 * (thisUpdate/nextUpdate as above) and without an unsupported critical extension (RFC 5280 6.3.3).
 * A response that fails any of these is ignored ENTIRELY, whatever status it claims: a forged
 * "revoked" does not reject (anyone able to forge answers could otherwise deny service to any
 * client), it counts as "no answer" like a forged "good".
 *
 * Which certificates: the leaf; with `checkWholePath`, also every further certificate of the path
 * that names an OCSP responder or a CRL distribution point, up to (not including) a configured
 * trust anchor or a self-issued root. Each certificate's issuer is found among chain + anchors by
 * name (byte-equal DER) and signature. `ocspUrlOverride` replaces the AIA OCSP URLs of every
 * certificate checked; the CRL distribution points stay the certificate's own.
 *
 * Caching: verdicts are keyed by issuer (hash of its public key and name) + serial, never by subject
 * DN (two CAs can issue the same DN), bounded in entries, kept at most `cacheTtlMs` milliseconds
 * and never past the answer's nextUpdate. Network failures and invalid answers are never cached.
 * Concurrent checks of one certificate share one lookup. CRLs are downloaded (at most 10 MiB),
 * verified and turned into a serial set once, kept in a small bounded cache keyed by URL + issuer;
 * a large CRL's signature is checked on the thread pool and its entries are read in slices with
 * yields to the event loop in between.
 *
 * Certificates are read by `certificate.ts`, CRLs and OCSP by `revocation-der.ts` (not pkijs: see
 * there for why), both on the strict DER reader of `der.ts`; requests go through `http.ts`.
 *
 * `timeoutMs` is in milliseconds and applies to each responder request (an OCSP responder that
 * hangs costs `timeoutMs`, then the CRL fallback gets its own `timeoutMs`).
 */
import { createHash, randomBytes, verify as verifySignatureBytes, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { BoundedCache } from './cache.js';
import {
  authorityInfoAccessUris, crlDistributionPointUris, parseCertificate, subjectPublicKey, subjectPublicKeyBits,
  thumbprintS256, type ParsedCertificate,
} from './certificate.js';
import { DerError, integerHex, type AlgorithmIdentifier } from './der.js';
import { fail, ok, type Result } from './errors.js';
import { describeNetworkError, HttpError, httpRequest } from './http.js';
import * as der from './revocation-der.js';

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
  check(chain: readonly Uint8Array[], anchors: readonly Uint8Array[]): Promise<Result<RevocationOutcome>>;
}

type Definitive = { readonly status: 'good' | 'revoked'; readonly source: 'ocsp' | 'crl'; readonly responder: string };
type Verdict = Definitive | { readonly status: 'unknown'; readonly detail: string };
/** One responder's answer: proven status (with the time it stops being current) or why there is none. */
type Answer = { readonly status: 'good' | 'revoked'; readonly notAfter?: number } | { readonly status: 'none'; readonly why: string };

interface CrlSnapshot {
  readonly serials: ReadonlySet<string>;
  readonly nextUpdate?: number;
  readonly onlyUserCerts: boolean;
  readonly onlyCaCerts: boolean;
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
  rsaPss: '1.2.840.113549.1.1.10',
} as const;

const HASH_BY_OID: Readonly<Record<string, string>> = {
  '1.3.14.3.2.26': 'sha1', '2.16.840.1.101.3.4.2.4': 'sha224', '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384', '2.16.840.1.101.3.4.2.3': 'sha512',
};
/** Signature algorithm OID -> [key type, digest] (RFC 3279, 4055, 5758, 8410). */
const SIGNATURE_ALGORITHMS: Readonly<Record<string, readonly [string, string | null]>> = {
  '1.2.840.113549.1.1.5': ['rsa', 'sha1'], '1.2.840.113549.1.1.14': ['rsa', 'sha224'],
  '1.2.840.113549.1.1.11': ['rsa', 'sha256'], '1.2.840.113549.1.1.12': ['rsa', 'sha384'],
  '1.2.840.113549.1.1.13': ['rsa', 'sha512'],
  '1.2.840.10045.4.1': ['ec', 'sha1'], '1.2.840.10045.4.3.1': ['ec', 'sha224'], '1.2.840.10045.4.3.2': ['ec', 'sha256'],
  '1.2.840.10045.4.3.3': ['ec', 'sha384'], '1.2.840.10045.4.3.4': ['ec', 'sha512'],
  '1.3.101.112': ['ed25519', null], '1.3.101.113': ['ed448', null],
};

/** Clock skew tolerated on thisUpdate / nextUpdate (openssl's default MAX_VALIDITY_PERIOD). */
const SKEW_MS = 5 * 60 * 1000;
const MAX_OCSP_BYTES = 256 * 1024;
const DEFAULT_MAX_CRL_BYTES = 10 * 1024 * 1024;
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

/**
 * How node:crypto verifies a signature under an X.509 AlgorithmIdentifier (RFC 5280 4.1.1.2):
 * digest and key options, or null when the algorithm is unknown or does not fit the key type.
 */
function verifierFor(algorithm: AlgorithmIdentifier, key: KeyObject): { digest: string | null; key: KeyObject | VerifyKeyObjectInput } | null {
  const keyType = key.asymmetricKeyType ?? '';
  if (algorithm.oid === OID.rsaPss) {
    if (keyType !== 'rsa' && keyType !== 'rsa-pss') return null;
    const params = der.pssParams(algorithm.parameters);
    const digest = HASH_BY_OID[params.hashOid];
    if (digest === undefined) return null;
    return { digest, key: { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: params.saltLength } };
  }
  const known = SIGNATURE_ALGORITHMS[algorithm.oid];
  if (known === undefined || known[0] !== keyType) return null;
  return { digest: known[1], key };
}

function signatureValid(data: Uint8Array, algorithm: AlgorithmIdentifier, signature: Uint8Array, key: KeyObject): boolean {
  try {
    const verifier = verifierFor(algorithm, key);
    return verifier !== null && verifySignatureBytes(verifier.digest, data, verifier.key, signature);
  } catch {
    return false;
  }
}

/** The same, hashing on libuv's thread pool: used for CRLs, which can be megabytes long. */
function signatureValidAsync(data: Uint8Array, algorithm: AlgorithmIdentifier, signature: Uint8Array, key: KeyObject): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const verifier = verifierFor(algorithm, key);
      if (verifier === null) {
        resolve(false);
        return;
      }
      verifySignatureBytes(verifier.digest, data, verifier.key, signature, (error, valid) => resolve(error === null && valid));
    } catch {
      resolve(false);
    }
  });
}

/** A certificate read once: what revocation checking needs from it, its key, and issuer checks done so far. */
class ParsedCert {
  /** x5t#S256 of the DER. */
  readonly id: string;
  readonly cert: ParsedCertificate;
  /** serialNumber as lower-case hex, the form CRL entries and OCSP CertIDs are compared in. */
  readonly serialHex: string;
  /** subjectPublicKey bits (OCSP CertID issuerKeyHash input). */
  readonly keyBits: Uint8Array;
  readonly ocspUrls: readonly URL[];
  readonly crlUrls: readonly URL[];
  readonly isCa: boolean;
  readonly purposes: readonly string[];
  #key: KeyObject | undefined;
  #issuerId: string | undefined;
  readonly #issuedBy = new Map<string, boolean>();

  /** Throws when `bytes` is not a certificate this verifier can read. */
  constructor(bytes: Uint8Array, id: string) {
    const parsed = parseCertificate(Buffer.from(bytes)); // a copy: `bytes` may be a view into a whole OCSP response
    if (!parsed.ok) throw new DerError(parsed.error.detail);
    this.id = id;
    this.cert = parsed.value;
    this.serialHex = integerHex(this.cert.serial);
    this.keyBits = subjectPublicKeyBits(this.cert);
    this.ocspUrls = httpUrls(authorityInfoAccessUris(this.cert, OID.adOcsp));
    this.crlUrls = httpUrls(crlDistributionPointUris(this.cert));
    this.isCa = this.cert.basicConstraints?.ca ?? false;
    this.purposes = this.cert.extKeyUsage ?? [];
  }

  /** Subject DN for failure details. */
  get subject(): string {
    return this.cert.subject.text;
  }

  /** DER of the subject Name (issuerNameHash input, CRL and responder name comparisons). */
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

  /** RFC 5280 6.1.3 (a)(1)/(a)(4): `issuer` is named as this certificate's issuer and signed it. */
  isIssuedBy(issuer: ParsedCert): boolean {
    let verdict = this.#issuedBy.get(issuer.id);
    if (verdict === undefined) {
      verdict = bytesEqual(this.cert.issuer.der, issuer.subjectDer) && issuer.hasUsableKey
        && signatureValid(this.cert.tbs, this.cert.signatureAlgorithm, this.cert.signature, issuer.key);
      if (this.#issuedBy.size < 16) this.#issuedBy.set(issuer.id, verdict);
    }
    return verdict;
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

/** RFC 6960 3.2 items 5/6 and RFC 5280 6.3.3 (a): the answer is current at `now`. */
function currencyProblem(thisUpdate: number, nextUpdate: number | undefined, now: number): string | null {
  if (!Number.isFinite(thisUpdate) || thisUpdate > now + SKEW_MS) return 'thisUpdate is in the future';
  if (nextUpdate !== undefined && (!Number.isFinite(nextUpdate) || nextUpdate + SKEW_MS < now)) return 'nextUpdate has passed (stale)';
  return null;
}

export class RevocationChecker implements RevocationLookup {
  readonly #options: RevocationOptions;
  readonly #now: () => number;
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
    this.#verdicts = new BoundedCache({ maxEntries: options.cacheSize, ttlMs: options.cacheTtlMs, now: this.#now });
    this.#crls = new BoundedCache({
      maxEntries: Math.min(options.cacheSize, CRL_CACHE_ENTRIES), ttlMs: options.cacheTtlMs, now: this.#now,
    });
    this.#parsed = new BoundedCache({ maxEntries: PARSED_CACHE_ENTRIES, ttlMs: 3600 * 1000 });
  }

  /**
   * Checks the revocation status of `chain` (DER, leaf first, already validated) according to the
   * mode. `anchors` are the configured trust anchors (DER); each certificate's issuer is found
   * among chain + anchors by name and signature. Never throws; an unexpected exception is
   * `internal_error` in every mode.
   */
  async check(chain: readonly Uint8Array[], anchors: readonly Uint8Array[]): Promise<Result<RevocationOutcome>> {
    if (this.#options.mode === 'SKIP') return ok({ checked: 0, source: 'skipped' });
    try {
      return await this.#check(chain, anchors);
    } catch (error) {
      const name = error instanceof Error ? error.name : typeof error;
      return fail('internal_error', `revocation check failed unexpectedly (${name})`);
    }
  }

  /** Verdict cache hits and misses, responder requests made, and checks that joined one in flight. */
  stats(): { hits: number; misses: number; fetches: number; coalesced: number } {
    return { hits: this.#hits, misses: this.#misses, fetches: this.#fetches, coalesced: this.#coalesced };
  }

  #parse(bytes: Uint8Array): ParsedCert {
    const id = thumbprintS256(bytes);
    let parsed = this.#parsed.get(id);
    if (parsed === undefined) {
      parsed = new ParsedCert(bytes, id);
      this.#parsed.set(id, parsed);
    }
    return parsed;
  }

  async #check(chain: readonly Uint8Array[], anchors: readonly Uint8Array[]): Promise<Result<RevocationOutcome>> {
    const strict = this.#options.mode === 'STRICT';
    if (chain.length === 0) return fail('internal_error', 'revocation check called without a certificate');
    // The leaf must be readable (a failure here is internal_error); any other certificate this
    // reader cannot parse simply cannot serve as an issuer.
    const leafCert = this.#parse(chain[0] as Uint8Array);
    const readable = (list: readonly Uint8Array[]): ParsedCert[] => list.flatMap((c) => {
      try {
        return [this.#parse(c)];
      } catch {
        return [];
      }
    });
    const path = [leafCert, ...readable(chain.slice(1))];
    const anchorCerts = readable(anchors);
    const anchorIds = new Set(anchorCerts.map((a) => a.id));
    const candidates = [...path, ...anchorCerts];

    // Walk leaf -> issuer -> ... and collect [certificate, issuer] pairs to check. The walk stops at
    // a trust anchor above the leaf (trusted by configuration, never checked) or a self-issued
    // certificate. The leaf is always checked, even when it is itself pinned as an anchor.
    const toCheck: Array<{ cert: ParsedCert; issuer: ParsedCert }> = [];
    let current = leafCert;
    for (let depth = 0; depth < candidates.length; depth++) {
      if (depth > 0 && anchorIds.has(current.id)) break;
      const subject = current;
      const issuer = candidates.find((c) => c.id !== subject.id && subject.isIssuedBy(c));
      if (issuer === undefined) {
        if (depth === 0) {
          const detail = `revocation status of ${current.subject} unknown: its issuer is not among the chain and trust anchors`;
          return strict ? fail('revocation_unknown', detail) : ok({ checked: 0, source: 'none', detail });
        }
        break;
      }
      const hasInfo = current.ocspUrls.length > 0 || current.crlUrls.length > 0;
      if (depth === 0 || hasInfo) toCheck.push({ cert: current, issuer });
      if (this.#options.checkWholePath !== true || issuer.isIssuedBy(issuer)) break;
      current = issuer;
    }
    if (toCheck.length === 0) return fail('internal_error', 'revocation check found no certificate to check');

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
    const leaf = verdicts[0]?.verdict;
    if (leaf === undefined || leaf.status !== 'good') return fail('internal_error', 'revocation verdict missing');
    const allCached = verdicts.every((v) => v.cached);
    return ok({ checked: verdicts.length, source: allCached ? 'cache' : leaf.source, responder: leaf.responder });
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
    const attempts: Array<[URL, 'ocsp' | 'crl']> = [
      ...ocspUrls.map((u): [URL, 'ocsp'] => [u, 'ocsp']),
      ...cert.crlUrls.map((u): [URL, 'crl'] => [u, 'crl']),
    ];
    if (attempts.length === 0) {
      return { status: 'unknown', detail: `revocation status of ${cert.subject} unknown: it names no OCSP responder and no CRL distribution point` };
    }
    const reasons: string[] = [];
    for (const [url, kind] of attempts) {
      const answer = kind === 'ocsp' ? await this.#askOcsp(url, cert, issuer) : await this.#askCrl(url, cert, issuer);
      if (answer.status === 'none') {
        reasons.push(`${kind.toUpperCase()} ${responderHost(url)}: ${answer.why}`);
        continue;
      }
      const verdict: Definitive = { status: answer.status, source: kind, responder: responderHost(url) };
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

  /** RFC 6960 4.1: POST one request (SHA-1 CertID, as RFC 5019 2.1.1 requires, plus a nonce) and validate the answer. */
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
    // the issuer signed for id-kp-OCSPSigning. No other signer is accepted.
    const now = this.#now();
    const matchesResponderId = (c: ParsedCert): boolean => (basic.responderName !== null
      ? bytesEqual(basic.responderName, c.subjectDer)
      : basic.responderKeyHash !== null && bytesEqual(basic.responderKeyHash, sha('sha1', c.keyBits)));
    const signers: ParsedCert[] = [];
    if (matchesResponderId(issuer)) signers.push(issuer);
    for (const embedded of basic.certs) {
      let candidate: ParsedCert;
      try {
        candidate = this.#parse(embedded);
      } catch {
        continue; // an unreadable extra certificate cannot authorise anything
      }
      if (candidate.id === issuer.id || !matchesResponderId(candidate)) continue;
      const { notBeforeMs, notAfterMs } = candidate.cert;
      if (!(notBeforeMs <= now + SKEW_MS && now <= notAfterMs)) continue;
      if (candidate.isIssuedBy(issuer) && candidate.purposes.includes(OID.kpOcspSigning)) signers.push(candidate);
    }
    if (!signers.some((s) => s.hasUsableKey && signatureValid(basic.tbs, basic.signatureAlgorithm, basic.signature, s.key))) {
      return { status: 'none', why: 'response is not signed by the issuer or a responder it authorised (ignored)' };
    }

    // RFC 8954 / RFC 6960 4.4.1: a nonce, when echoed, must be ours; a responder may omit it.
    const echoed = basic.extensions.find((e) => e.oid === OID.ocspNonce);
    if (echoed !== undefined && !bytesEqual(echoed.value, der.encodeNonce(nonce))) {
      return { status: 'none', why: 'response nonce does not match the request (ignored)' };
    }

    // RFC 6960 4.1.1: the SingleResponse for this certificate, whatever CertID hash it uses.
    const single = basic.responses.find((r) => {
      const digest = HASH_BY_OID[r.hashOid];
      return digest !== undefined && r.serialHex === cert.serialHex
        && bytesEqual(r.issuerNameHash, sha(digest, issuer.subjectDer))
        && bytesEqual(r.issuerKeyHash, sha(digest, issuer.keyBits));
    });
    if (single === undefined) return { status: 'none', why: 'response has no status for this certificate' };
    const problem = currencyProblem(single.thisUpdate, single.nextUpdate, now);
    if (problem !== null) return { status: 'none', why: `response ${problem} (ignored)` };

    const notAfter = single.nextUpdate !== undefined ? { notAfter: single.nextUpdate } : {};
    if (single.status === 'good' || single.status === 'revoked') return { status: single.status, ...notAfter };
    if (single.status === 'unknown') return { status: 'none', why: 'responder does not know this certificate' };
    return { status: 'none', why: 'response has an invalid certificate status' };
  }

  /** RFC 5280 6.3.3: the CRL at `url`, verified for `issuer`, says whether `cert` is listed. */
  async #askCrl(url: URL, cert: ParsedCert, issuer: ParsedCert): Promise<Answer> {
    const key = `${url.href}|${issuer.issuerId}`;
    let crl = this.#crls.get(key);
    if (crl === undefined) {
      let pending = this.#crlInflight.get(key);
      if (pending === undefined) {
        pending = this.#downloadCrl(url, issuer).finally(() => this.#crlInflight.delete(key));
        this.#crlInflight.set(key, pending);
      }
      const fetched = await pending;
      if (!fetched.ok) return { status: 'none', why: fetched.why };
      crl = fetched.crl;
      this.#crls.set(key, crl, crl.nextUpdate);
    }
    if (crl.nextUpdate !== undefined && crl.nextUpdate + SKEW_MS < this.#now()) {
      return { status: 'none', why: 'CRL nextUpdate has passed (stale) (ignored)' };
    }
    // RFC 5280 5.2.5: a CRL scoped to CA (or end-entity) certificates says nothing about the others.
    if ((crl.onlyCaCerts && !cert.isCa) || (crl.onlyUserCerts && cert.isCa)) {
      return { status: 'none', why: 'CRL scope does not cover this certificate' };
    }
    const notAfter = crl.nextUpdate !== undefined ? { notAfter: crl.nextUpdate } : {};
    return { status: crl.serials.has(cert.serialHex) ? 'revoked' : 'good', ...notAfter };
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
    if (!bytesEqual(crl.issuer, issuer.subjectDer)) return { ok: false, why: 'CRL issuer is not the certificate issuer (ignored)' };
    if (!(await signatureValidAsync(crl.tbs, crl.signatureAlgorithm, crl.signature, issuer.key))) {
      return { ok: false, why: 'CRL is not signed by the issuer (ignored)' };
    }
    const problem = currencyProblem(crl.thisUpdate, crl.nextUpdate, this.#now());
    if (problem !== null) return { ok: false, why: `CRL ${problem} (ignored)` };

    let flags: der.IdpFlags | null = null;
    for (const ext of crl.extensions) {
      if (ext.oid === OID.issuingDistributionPoint) {
        flags = der.issuingDistributionPoint(ext.value);
        if (flags.indirectCrl || flags.onlySomeReasons || flags.onlyAttributeCerts) {
          return { ok: false, why: 'indirect or partitioned CRLs are not supported (ignored)' };
        }
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
        serials, onlyUserCerts: flags?.onlyUserCerts ?? false, onlyCaCerts: flags?.onlyCaCerts ?? false,
        ...(crl.nextUpdate !== undefined ? { nextUpdate: crl.nextUpdate } : {}),
      },
    };
  }
}
