/**
 * Certificate header decoding: the value a TLS-terminating load balancer forwards, turned into DER
 * certificates, leaf first. Nothing here trusts the certificates: chain validation comes later.
 * This module only answers "which bytes did the terminator hand over?", strictly, in linear time,
 * without throwing and without echoing the header in a failure detail.
 *
 * Formats (`certificate_header_format`):
 * - `base64_encoded`: standard base64 (RFC 4648 section 4) of DER. HAProxy `%[ssl_c_der,base64]`,
 *   Cloudflare, Azure send one item; Traefik v3 `passTLSClientCert` sends a comma-separated list,
 *   leaf first. An item may also hold several DER certificates back to back, which is what
 *   HAProxy's `%[ssl_c_chain_der,base64]` produces, so `%[ssl_c_der,base64],%[ssl_c_chain_der,base64]`
 *   carries the whole chain. Empty list items are ignored (RFC 9110 section 5.6.1.2): that is what
 *   HAProxy sends for a client without intermediates. No other leniency: the url-safe alphabet,
 *   whitespace inside an item, wrong padding and non-zero pad bits are rejected.
 * - `url_encoded`: percent-encoded PEM (nginx `$ssl_client_escaped_cert`, AWS ALB
 *   `X-Amzn-Mtls-Clientcert`). Only `%XX` is decoded; a `+` stays a `+` because ALB leaves `+ / =`
 *   unescaped. Every PEM block counts: the first is the leaf, the rest intermediates.
 * - `pem`: PEM as is. Whitespace inside the base64 body is ignored (RFC 7468 section 3 lax
 *   parsing), so this also accepts nginx's deprecated `$ssl_client_cert` (every line after the first
 *   starts with a TAB), the same after obs-fold unfolding (RFC 9112 section 5.2: each fold becomes
 *   SP) and PEM whose line breaks a proxy replaced by spaces. The armour lines themselves must be
 *   exact, and only whitespace may appear outside the blocks, so nothing is ever guessed.
 * - `xfcc`: Envoy/Istio `x-forwarded-client-cert`. The header must hold exactly
 *   `xfcc_element_count` elements (default 1: Envoy's SANITIZE_SET), and the FIRST is used: the one
 *   the client-facing Envoy wrote; later hops (APPEND_FORWARD) append after it. Envoy writes SAN
 *   values unquoted and unescaped, so a client certificate's SAN can add `,` and `;` structure:
 *   every element must look exactly like one Envoy writes (see the xfcc section below), or the
 *   header is refused. `Chain=` (URL-encoded PEM, leaf included) wins over `Cert=` (URL-encoded
 *   PEM leaf); when both are present they must agree on the leaf, and `Hash=` (hex SHA-256 of the
 *   leaf DER) must match when present.
 * - `rfc9440`: `Client-Cert` (RFC 9440 section 2.2) is a Structured Field Byte Sequence
 *   (RFC 8941 section 3.3.5) holding the leaf DER; `Client-Cert-Chain` (section 2.3) is a List of
 *   Byte Sequences, leaf excluded, in TLS order. Item parameters (RFC 8941 section 3.1.2) are
 *   parsed and ignored: RFC 9440 defines none, and a Structured Field parser must still accept
 *   them. Per RFC 8941 section 4.2.7, missing `=` padding and non-zero pad bits are tolerated here.
 *
 * Every certificate's outer DER is checked here with the strict reader of `der.ts` (one
 * definite-length SEQUENCE of tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE and
 * signatureValue BIT STRING, with minimal lengths and no trailing bytes; RFC 5280 section 4.1,
 * X.690 section 10.1) so that junk is rejected cheaply; the full parse happens in chain validation.
 */
import { createHash } from 'node:crypto';
import type { HeaderFormat } from './config.js';
import { DerError, HIGH_TAG_NUMBER, readTlv, TAG, type Tlv } from './der.js';
import { fail, ok, type Result } from './errors.js';

export interface HeaderLimits {
  /** Largest accepted header value (plus chain header value), in characters. */
  readonly maxHeaderSize: number;
  /** Most certificates accepted, leaf included. */
  readonly maxChainLength: number;
  /** xfcc only: the exact number of elements the deployment's proxies write (default 1). */
  readonly xfccElements?: number;
}

/**
 * Decodes the certificate header value(s) into DER certificates, leaf first. Never throws.
 *
 * `chainValue` is only read for `rfc9440` (the `Client-Cert-Chain` value). The size limit counts
 * UTF-16 code units, which equal bytes for the ASCII every valid header consists of; it is checked
 * before any other work. Each returned Buffer owns its memory exactly (byteOffset 0, not pooled),
 * so handing `der.buffer` to an ASN.1 library is safe.
 */
export function decodeCertificateHeader(
  value: string, format: HeaderFormat, limits: HeaderLimits, chainValue?: string | null,
): Result<readonly Buffer[]> {
  try {
    if (typeof value !== 'string') return fail('certificate_missing', 'no certificate header value');
    const chain = typeof chainValue === 'string' && format === 'rfc9440' ? chainValue : '';
    if (value.length + chain.length > limits.maxHeaderSize) {
      return fail('certificate_header_too_large',
        `certificate header is ${value.length + chain.length} characters, more than the ${limits.maxHeaderSize} allowed`);
    }
    if (isBlank(value)) return fail('certificate_missing', 'the certificate header is empty');
    const certs = new CertificateList(limits.maxChainLength);
    const outcome = decodeFormat(value, format, chain, limits.xfccElements ?? 1, certs);
    if (outcome !== undefined) return { ok: false, error: outcome };
    if (certs.items.length === 0) return fail('certificate_missing', 'the certificate header holds no certificate');
    return ok(certs.items);
  } catch {
    // Unreachable by design (every step returns its failure); if it ever happens, still reject.
    return fail('internal_error', 'the certificate header decoder failed unexpectedly');
  }
}

interface Failure { readonly reason: 'certificate_missing' | 'certificate_header_malformed' | 'certificate_too_many' | 'certificate_malformed'; readonly detail: string }

function malformed(detail: string): Failure {
  return { reason: 'certificate_header_malformed', detail };
}

function decodeFormat(
  value: string, format: HeaderFormat, chain: string, xfccElements: number, certs: CertificateList,
): Failure | undefined {
  switch (format) {
    case 'base64_encoded': return decodeBase64List(value, certs);
    case 'url_encoded': return decodeUrlEncodedPem(value, 'the header', certs);
    case 'pem': return decodePem(value, 'the header', certs);
    case 'xfcc': return decodeXfcc(value, xfccElements, certs);
    case 'rfc9440': return decodeRfc9440(value, chain, certs);
    default: return malformed('unknown certificate header format');
  }
}

// ---------------------------------------------------------------------------------------------
// Collected certificates: counts against max_chain_length and checks each one's outer DER.

class CertificateList {
  readonly items: Buffer[] = [];
  constructor(private readonly max: number) {}

  /** Fails when one more certificate would exceed the limit (checked before decoding it). */
  room(): Failure | undefined {
    return this.items.length >= this.max
      ? { reason: 'certificate_too_many', detail: `the certificate header holds more than ${this.max} certificates` }
      : undefined;
  }

  /** Adds exactly one DER certificate (`der` must be nothing else). */
  add(der: Uint8Array): Failure | undefined {
    const full = this.room();
    if (full !== undefined) return full;
    const position = this.items.length + 1;
    const shape = readCertificate(der, 0);
    if (typeof shape === 'string') return notCertificate(position, shape, der);
    if (shape !== der.length) {
      return notCertificate(position, `${der.length - shape} trailing byte(s) after the certificate SEQUENCE`, der);
    }
    this.items.push(ownedCopy(der));
    return undefined;
  }

  /** Adds DER certificates concatenated back to back (HAProxy `ssl_c_chain_der`). */
  addConcatenated(der: Uint8Array): Failure | undefined {
    if (der.length === 0) return notCertificate(this.items.length + 1, 'it is empty', der);
    let offset = 0;
    while (offset < der.length) {
      const full = this.room();
      if (full !== undefined) return full;
      const end = readCertificate(der, offset);
      if (typeof end === 'string') {
        if (offset === 0) return notCertificate(this.items.length + 1, end, der);
        return {
          reason: 'certificate_malformed',
          detail: `${der.length - offset} trailing byte(s) after certificate ${this.items.length} are not a DER X.509 certificate: ${end}`,
        };
      }
      this.items.push(ownedCopy(der.subarray(offset, end)));
      offset = end;
    }
    return undefined;
  }
}

/** A pointer to the likely right format when a value plainly is another one (names no content). */
function formatHint(text: string, format: HeaderFormat): string {
  let likely: HeaderFormat | undefined;
  if (text.startsWith('-----BEGIN%20') || text.startsWith('-----BEGIN+')) likely = 'url_encoded';
  else if (text.startsWith(BEGIN_ANY)) likely = 'pem';
  else if (text.startsWith('MII')) likely = 'base64_encoded';
  else if (text.startsWith(':MII')) likely = 'rfc9440';
  return likely !== undefined && likely !== format ? ` (it looks like ${likely}: check certificate_header_format)` : '';
}

function notCertificate(position: number, why: string, bytes: Uint8Array): Failure {
  const role = position === 1 ? 'leaf' : 'intermediate';
  const hint = startsWithAscii(bytes, '-----BEGIN') ? ' (the bytes are PEM text, not DER: check certificate_header_format)' : '';
  return { reason: 'certificate_malformed', detail: `certificate ${position} (${role}) is not a DER X.509 certificate: ${why}${hint}` };
}

function ownedCopy(view: Uint8Array): Buffer {
  const copy = new Uint8Array(view.length);
  copy.set(view);
  return Buffer.from(copy.buffer, 0, copy.length);
}

function startsWithAscii(bytes: Uint8Array, prefix: string): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix.charCodeAt(i)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Outer DER shape of a Certificate (RFC 5280 section 4.1; DER per X.690 section 10.1).

/** The DER element at `offset`, or why there is none. */
function tlvAt(der: Uint8Array, offset: number, limit: number): Tlv | string {
  try {
    return readTlv(der, offset, limit);
  } catch (error) {
    if (error instanceof DerError) return error.message;
    throw error;
  }
}

const NOT_A_SEQUENCE = 'it does not start with a SEQUENCE';

/** Checks a Certificate SEQUENCE starting at `offset`; returns its end offset or why it is not one. */
function readCertificate(der: Uint8Array, offset: number): number | string {
  const outer = tlvAt(der, offset, der.length);
  if (typeof outer === 'string') return outer === HIGH_TAG_NUMBER ? NOT_A_SEQUENCE : outer;
  if (outer.tag !== TAG.sequence) return NOT_A_SEQUENCE;
  const tbs = tlvAt(der, outer.body, outer.end);
  if (typeof tbs === 'string' || tbs.tag !== TAG.sequence) return 'a SEQUENCE, but its first element is not a tbsCertificate SEQUENCE';
  const algorithm = tlvAt(der, tbs.end, outer.end);
  if (typeof algorithm === 'string' || algorithm.tag !== TAG.sequence) return 'a SEQUENCE, but its second element is not an AlgorithmIdentifier SEQUENCE';
  const signature = tlvAt(der, algorithm.end, outer.end);
  if (typeof signature === 'string' || signature.tag !== TAG.bitString || signature.end === signature.body) {
    return 'a SEQUENCE, but its third element is not a signature BIT STRING';
  }
  if (signature.end !== outer.end) return 'a SEQUENCE with more than three elements';
  return outer.end;
}

// ---------------------------------------------------------------------------------------------
// Small lexical helpers.

const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;

function isWhitespace(code: number): boolean {
  return code === SP || code === HTAB || code === LF || code === CR;
}

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (!isWhitespace(text.charCodeAt(i))) return false;
  return true;
}

/** Skips HTTP optional whitespace (SP / HTAB, RFC 9110 section 5.6.3). */
function skipOws(text: string, index: number): number {
  let i = index;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code !== SP && code !== HTAB) break;
    i++;
  }
  return i;
}

function trimOws(text: string): string {
  const start = skipOws(text, 0);
  let end = text.length;
  while (end > start) {
    const code = text.charCodeAt(end - 1);
    if (code !== SP && code !== HTAB) break;
    end--;
  }
  return text.slice(start, end);
}

const BASE64_BODY = /^[A-Za-z0-9+/]*$/;
const BASE64_VALUES = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/**
 * Strict standard base64 (RFC 4648 section 4): padding optional but, when present, exactly right.
 * Pad bits must be zero (section 3.5) unless `allowNonZeroPadBits` (RFC 8941 section 4.2.7).
 * Returns the bytes or why the text is not base64.
 */
function decodeBase64(text: string, allowNonZeroPadBits: boolean): Buffer | string {
  let padding = 0;
  while (padding < 2 && text.charCodeAt(text.length - 1 - padding) === 0x3d) padding++;
  const body = padding === 0 ? text : text.slice(0, text.length - padding);
  if (!BASE64_BODY.test(body)) return 'a character outside the standard base64 alphabet';
  const remainder = body.length % 4;
  if (remainder === 1) return 'a length no base64 encoding has';
  if (padding > 0 && (remainder === 0 || remainder + padding !== 4)) return 'wrong "=" padding';
  if (remainder !== 0 && !allowNonZeroPadBits) {
    const last = BASE64_VALUES.indexOf(body.charAt(body.length - 1));
    if ((last & (remainder === 2 ? 0x0f : 0x03)) !== 0) return 'non-zero pad bits (not canonical base64)';
  }
  return Buffer.from(body, 'base64');
}

// ---------------------------------------------------------------------------------------------
// base64_encoded: one item, or a comma-separated list (Traefik), each item DER (maybe concatenated).

function decodeBase64List(value: string, certs: CertificateList): Failure | undefined {
  const items = value.split(',');
  let position = 0;
  for (const raw of items) {
    const item = trimOws(raw);
    if (item.length === 0) continue; // RFC 9110 section 5.6.1.2: empty list elements are ignored
    position++;
    const full = certs.room();
    if (full !== undefined) return full;
    const der = decodeBase64(item, false);
    if (typeof der === 'string') {
      return malformed(`base64 item ${position} is not valid standard base64: ${der}${formatHint(item, 'base64_encoded')}`);
    }
    const failed = certs.addConcatenated(der);
    if (failed !== undefined) return failed;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// PEM (RFC 7468) and its percent-encoded form.

const BEGIN_ANY = '-----BEGIN ';
const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';
const DASHES = '-----';
const PEM_WHITESPACE = /[ \t\r\n]+/g;

/** Reads every PEM CERTIFICATE block of `text` (`where` names the source in details). */
function decodePem(text: string, where: string, certs: CertificateList): Failure | undefined {
  let index = skipWhitespace(text, 0);
  let block = 0;
  if (index >= text.length) return malformed(`${where} holds no PEM certificate`);
  while (index < text.length) {
    block++;
    if (!text.startsWith(BEGIN_ANY, index)) {
      return malformed(block === 1
        ? `${where} does not start with a PEM "-----BEGIN CERTIFICATE-----" line${formatHint(text.slice(index), 'pem')}`
        : `${where} has text after PEM block ${block - 1} that is not another PEM block`);
    }
    if (!text.startsWith(BEGIN, index)) return malformed(`PEM block ${block} in ${where} is not a CERTIFICATE block`);
    const bodyStart = index + BEGIN.length;
    const bodyEnd = text.indexOf(DASHES, bodyStart);
    if (bodyEnd < 0) return malformed(`PEM block ${block} in ${where} has no "-----END CERTIFICATE-----" line`);
    if (!text.startsWith(END, bodyEnd)) {
      return malformed(`PEM block ${block} in ${where} is not closed by "-----END CERTIFICATE-----"`);
    }
    const full = certs.room();
    if (full !== undefined) return full;
    const der = decodeBase64(text.slice(bodyStart, bodyEnd).replace(PEM_WHITESPACE, ''), false);
    if (typeof der === 'string') return malformed(`PEM block ${block} in ${where} is not valid base64: ${der}`);
    const failed = certs.add(der);
    if (failed !== undefined) return failed;
    index = skipWhitespace(text, bodyEnd + END.length);
  }
  return undefined;
}

function skipWhitespace(text: string, index: number): number {
  let i = index;
  while (i < text.length && isWhitespace(text.charCodeAt(i))) i++;
  return i;
}

/**
 * Decodes `%XX` escapes only (RFC 3986 section 2.1); `+` and every other character stay as they
 * are. A `%` not followed by two hex digits fails. Bytes are mapped one to one (Latin-1), so any
 * non-ASCII result is later rejected by the PEM reader.
 */
function percentDecode(text: string): string | undefined {
  let percent = text.indexOf('%');
  if (percent < 0) return text;
  const parts: string[] = [];
  let from = 0;
  while (percent >= 0) {
    const high = hexValue(text.charCodeAt(percent + 1));
    const low = hexValue(text.charCodeAt(percent + 2));
    if (high < 0 || low < 0) return undefined;
    parts.push(text.slice(from, percent), String.fromCharCode(high * 16 + low));
    from = percent + 3;
    percent = text.indexOf('%', from);
  }
  parts.push(text.slice(from));
  return parts.join('');
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

function decodeUrlEncodedPem(text: string, where: string, certs: CertificateList): Failure | undefined {
  let pem: string | undefined;
  try {
    // Fast path: the native decoder also decodes exactly `%XX` and leaves `+` alone.
    pem = decodeURIComponent(text);
  } catch {
    // Bad escape, or escapes that are not UTF-8: find out which, byte by byte.
    pem = percentDecode(text);
  }
  if (pem === undefined) return malformed(`${where} has a "%" that is not followed by two hex digits`);
  return decodePem(pem, where, certs);
}

// ---------------------------------------------------------------------------------------------
// xfcc: Envoy x-forwarded-client-cert.
//
// Envoy builds each element by plain concatenation (conn_manager_utility.cc,
// mutateXfccRequestHeader): `By=<its own URI SAN>` (one per SAN), `Hash=<hex SHA-256 of the peer
// leaf>`, then, as configured in set_current_client_cert_details and always in this order,
// `Cert="<url-encoded PEM>"`, `Chain="<url-encoded PEM>"`, `Subject="<RFC 2253 DN>"`, `URI=<SAN>`
// (one per URI SAN) and `DNS=<SAN>` (one per DNS SAN), joined with `;`. SANITIZE_SET replaces the
// header with that one element, APPEND_FORWARD appends it after a `,`. Cert, Chain and Subject are
// quoted (PEM is url-encoded, BoringSSL escapes `"` and `\` in the DN), but URI and DNS values are
// the certificate's bytes, neither quoted nor escaped: a client certificate whose SAN holds
// `x,Cert="..."` or `x;Cert="..."` makes Envoy write structure the client chose. What this parser
// refuses is exactly what such a SAN can add: an element count other than the configured one,
// any key but URI/DNS after a URI or DNS value, a quoted URI/DNS/By/Hash value, a key Envoy
// never writes, a certificate key twice, an empty element.

/** The keys Envoy writes (compared case-insensitively). */
type XfccKey = 'by' | 'hash' | 'cert' | 'chain' | 'subject' | 'uri' | 'dns';
const XFCC_KEYS: ReadonlySet<string> = new Set<XfccKey>(['by', 'hash', 'cert', 'chain', 'subject', 'uri', 'dns']);
/** Keys Envoy writes at most once per element. */
const XFCC_SINGLE: ReadonlySet<XfccKey> = new Set<XfccKey>(['hash', 'cert', 'chain', 'subject']);
/** Keys whose values Envoy never quotes (a leading quote came from the certificate or the client). */
const XFCC_BARE: ReadonlySet<XfccKey> = new Set<XfccKey>(['by', 'hash', 'uri', 'dns']);
const XFCC_NAMES: Readonly<Record<XfccKey, string>> = {
  by: 'By', hash: 'Hash', cert: 'Cert', chain: 'Chain', subject: 'Subject', uri: 'URI', dns: 'DNS',
};

/** The certificate fields of the element used. */
interface XfccFields {
  cert?: string;
  chain?: string;
  hash?: string;
}

interface XfccHeader {
  /** Number of elements in the header. */
  readonly elements: number;
  /** Fields of the first element: the one the client-facing proxy wrote when the count is as configured. */
  readonly first: XfccFields;
}

/**
 * Parses the whole header: elements (`,`) of `Key=Value` pairs (`;`), with optional whitespace
 * around separators. A Cert, Chain or Subject value may be a quoted string with backslash escapes.
 * Linear, and only the first element's Cert/Chain/Hash values are copied. Returns why the header
 * is refused, as a phrase, when it is not exactly what Envoy writes.
 */
function parseXfcc(text: string): XfccHeader | string {
  const first: XfccFields = {};
  let elements = 1;
  let seen = new Set<XfccKey>();
  let sanSeen = false;
  let i = skipOws(text, 0);
  const n = text.length;
  if (i >= n || text.charCodeAt(i) === 0x2c) return 'an empty element';
  for (;;) {
    const keyStart = i;
    while (i < n) {
      const code = text.charCodeAt(i);
      if (code === 0x3d /* = */ || code === 0x2c || code === 0x3b /* ; */ || code === 0x22 /* " */ || code <= SP || code >= 0x7f) break;
      i++;
    }
    if (i === keyStart || text.charCodeAt(i) !== 0x3d) return 'a pair that is not Key=Value';
    const name = text.slice(keyStart, i).toLowerCase();
    if (!XFCC_KEYS.has(name)) return 'a key Envoy does not write';
    const key = name as XfccKey;
    const san = key === 'uri' || key === 'dns';
    if (sanSeen && !san) {
      return `${XFCC_NAMES[key]}= after a URI= or DNS= value in element ${elements} (Envoy writes SANs last and unescaped: a certificate SAN injected it)`;
    }
    sanSeen ||= san;
    if (XFCC_SINGLE.has(key)) {
      if (seen.has(key)) return `${XFCC_NAMES[key]} twice in element ${elements}`;
      seen.add(key);
    }
    i++;
    const wanted = elements === 1 && (key === 'cert' || key === 'chain' || key === 'hash');
    let value = '';
    if (text.charCodeAt(i) === 0x22) {
      if (XFCC_BARE.has(key)) return `a quoted ${XFCC_NAMES[key]} value (Envoy writes it bare: the quote came from a certificate or the client)`;
      const end = skipQuoted(text, i);
      if (end < 0) return 'an unterminated quoted value';
      if (wanted) value = unescapeQuoted(text.slice(i + 1, end - 1));
      i = skipOws(text, end);
    } else {
      const valueStart = i;
      while (i < n) {
        const code = text.charCodeAt(i);
        if (code === 0x2c || code === 0x3b) break;
        if (code === 0x22) return 'a double quote inside an unquoted value';
        i++;
      }
      if (wanted) value = trimOws(text.slice(valueStart, i));
    }
    if (wanted) first[key as XfccField] = value;
    if (i >= n) break;
    const separator = text.charCodeAt(i);
    if (separator === 0x3b) {
      i = skipOws(text, i + 1);
      if (i >= n || text.charCodeAt(i) === 0x2c || text.charCodeAt(i) === 0x3b) return 'a ";" not followed by another pair';
    } else if (separator === 0x2c) {
      i = skipOws(text, i + 1);
      if (i >= n || text.charCodeAt(i) === 0x2c) return 'an empty element';
      elements++;
      seen = new Set<XfccKey>();
      sanSeen = false;
    } else {
      return 'unexpected text after a quoted value';
    }
  }
  return { elements, first };
}

type XfccField = 'cert' | 'chain' | 'hash';

/** Index just past the quoted string opening at `open`, or -1 when it never closes. */
function skipQuoted(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x5c /* \ */) i++;
    else if (code === 0x22) return i + 1;
  }
  return -1;
}

/** `\x` stands for `x` inside a quoted value. */
function unescapeQuoted(inner: string): string {
  return inner.includes('\\') ? inner.replace(/\\([\s\S])/g, '$1') : inner;
}

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

function plural(count: number): string {
  return count === 1 ? '1 element' : `${count} elements`;
}

function decodeXfcc(value: string, expectedElements: number, certs: CertificateList): Failure | undefined {
  const parsed = parseXfcc(value);
  if (typeof parsed === 'string') return malformed(`x-forwarded-client-cert has ${parsed}`);
  if (parsed.elements !== expectedElements) {
    const why = parsed.elements > expectedElements
      ? 'a certificate SAN may have injected one, or a proxy appended one the configuration does not expect'
      : 'a proxy hop the configuration expects did not add its element';
    return malformed(`x-forwarded-client-cert has ${plural(parsed.elements)}, xfcc_element_count is ${expectedElements} (${why})`);
  }
  const { cert, chain, hash } = parsed.first;
  for (const [name, field] of [['Cert', cert], ['Chain', chain], ['Hash', hash]] as const) {
    if (field === '') return malformed(`the first x-forwarded-client-cert element has an empty ${name}`);
  }
  if (cert === undefined && chain === undefined) {
    return { reason: 'certificate_missing', detail: 'the first x-forwarded-client-cert element has no Cert or Chain' };
  }
  if (hash !== undefined && !SHA256_HEX.test(hash)) {
    return malformed('the x-forwarded-client-cert Hash is not 64 hex digits (SHA-256)');
  }
  let leaf: Buffer | undefined;
  if (cert !== undefined) {
    const single = new CertificateList(1);
    const failed = decodeUrlEncodedPem(cert, 'the x-forwarded-client-cert Cert', single);
    if (failed !== undefined) {
      return failed.reason === 'certificate_too_many'
        ? malformed('the x-forwarded-client-cert Cert holds more than one certificate')
        : failed;
    }
    leaf = single.items[0];
  }
  if (chain !== undefined) {
    const failed = decodeUrlEncodedPem(chain, 'the x-forwarded-client-cert Chain', certs);
    if (failed !== undefined) return failed;
    if (leaf !== undefined && !leaf.equals(certs.items[0] as Buffer)) {
      return malformed('the x-forwarded-client-cert Chain does not start with the Cert certificate');
    }
  } else if (leaf !== undefined) {
    const failed = certs.add(leaf);
    if (failed !== undefined) return failed;
  }
  if (hash !== undefined) {
    const digest = createHash('sha256').update(certs.items[0] as Buffer).digest('hex');
    if (digest !== hash.toLowerCase()) {
      return malformed('the x-forwarded-client-cert Hash is not the SHA-256 of its certificate');
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// rfc9440: Structured Field Byte Sequences (RFC 8941).

interface SfCursor { readonly text: string; index: number }

function decodeRfc9440(value: string, chainValue: string, certs: CertificateList): Failure | undefined {
  const leafCursor: SfCursor = { text: trimOws(value), index: 0 };
  const leaf = parseByteSequenceItem(leafCursor);
  if (typeof leaf === 'string') return malformed(`Client-Cert is not a Structured Field Byte Sequence: ${leaf}`);
  if (leafCursor.index !== leafCursor.text.length) return malformed('Client-Cert has text after its Byte Sequence');
  const failed = certs.add(leaf);
  if (failed !== undefined) return failed;

  const cursor: SfCursor = { text: trimOws(chainValue), index: 0 };
  let member = 0;
  // RFC 8941 section 4.2.1: an empty List is no list at all.
  while (cursor.index < cursor.text.length) {
    member++;
    const full = certs.room();
    if (full !== undefined) return full;
    const bytes = parseByteSequenceItem(cursor);
    if (typeof bytes === 'string') return malformed(`Client-Cert-Chain member ${member} is not a Byte Sequence: ${bytes}`);
    const added = certs.add(bytes);
    if (added !== undefined) return added;
    cursor.index = skipOws(cursor.text, cursor.index);
    if (cursor.index >= cursor.text.length) break;
    if (cursor.text.charCodeAt(cursor.index) !== 0x2c) return malformed(`Client-Cert-Chain has text after member ${member}`);
    cursor.index = skipOws(cursor.text, cursor.index + 1);
    if (cursor.index >= cursor.text.length) return malformed('Client-Cert-Chain ends with a comma');
  }
  return undefined;
}

/** sf-item whose bare item is a Byte Sequence (RFC 8941 section 4.2.3); parameters are skipped. */
function parseByteSequenceItem(cursor: SfCursor): Buffer | string {
  const bytes = parseByteSequence(cursor);
  if (typeof bytes === 'string') return bytes;
  const parameters = skipParameters(cursor);
  return parameters ?? bytes;
}

/** RFC 8941 section 4.2.7. */
function parseByteSequence(cursor: SfCursor): Buffer | string {
  const { text } = cursor;
  if (text.charCodeAt(cursor.index) !== 0x3a /* : */) return 'it does not start with ":"';
  const close = text.indexOf(':', cursor.index + 1);
  if (close < 0) return 'it has no closing ":"';
  const content = text.slice(cursor.index + 1, close);
  cursor.index = close + 1;
  const bytes = decodeBase64(content, true);
  return typeof bytes === 'string' ? `its content has ${bytes}` : bytes;
}

/** RFC 8941 section 4.2.3.2: `;key[=bare-item]`, repeated. Returns why, or undefined when fine. */
function skipParameters(cursor: SfCursor): string | undefined {
  const { text } = cursor;
  while (text.charCodeAt(cursor.index) === 0x3b /* ; */) {
    cursor.index++;
    while (text.charCodeAt(cursor.index) === SP) cursor.index++;
    const first = text.charCodeAt(cursor.index);
    if (!(isLcAlpha(first) || first === 0x2a /* * */)) return 'a parameter key that is not a Structured Field key';
    cursor.index++;
    while (cursor.index < text.length && isKeyChar(text.charCodeAt(cursor.index))) cursor.index++;
    if (text.charCodeAt(cursor.index) === 0x3d /* = */) {
      cursor.index++;
      const bare = skipBareItem(cursor);
      if (bare !== undefined) return `a parameter value that is ${bare}`;
    }
  }
  return undefined;
}

function isLcAlpha(code: number): boolean {
  return code >= 0x61 && code <= 0x7a;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isAlpha(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || isLcAlpha(code);
}

function isKeyChar(code: number): boolean {
  return isLcAlpha(code) || isDigit(code) || code === 0x5f || code === 0x2d || code === 0x2e || code === 0x2a;
}

/** tchar (RFC 9110 section 5.6.2) plus ":" and "/" (RFC 8941 section 3.3.4). */
function isTokenChar(code: number): boolean {
  return isAlpha(code) || isDigit(code) || '!#$%&\'*+-.^_`|~:/'.includes(String.fromCharCode(code));
}

/** Skips one bare item (RFC 8941 section 4.2.3.1); returns why it is not one, or undefined. */
function skipBareItem(cursor: SfCursor): string | undefined {
  const { text } = cursor;
  const first = text.charCodeAt(cursor.index);
  if (first === 0x2d /* - */ || isDigit(first)) return skipNumber(cursor);
  if (first === 0x22 /* " */) {
    for (let i = cursor.index + 1; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code === 0x5c /* \ */) {
        const next = text.charCodeAt(i + 1);
        if (next !== 0x22 && next !== 0x5c) return 'a String with a bad escape';
        i++;
      } else if (code === 0x22) {
        cursor.index = i + 1;
        return undefined;
      } else if (code < SP || code > 0x7e) {
        return 'a String with a character outside printable ASCII';
      }
    }
    return 'an unterminated String';
  }
  if (first === 0x2a /* * */ || isAlpha(first)) {
    cursor.index++;
    while (cursor.index < text.length && isTokenChar(text.charCodeAt(cursor.index))) cursor.index++;
    return undefined;
  }
  if (first === 0x3a /* : */) {
    const bytes = parseByteSequence(cursor);
    return typeof bytes === 'string' ? 'a bad Byte Sequence' : undefined;
  }
  if (first === 0x3f /* ? */) {
    const value = text.charCodeAt(cursor.index + 1);
    if (value !== 0x30 && value !== 0x31) return 'a bad Boolean';
    cursor.index += 2;
    return undefined;
  }
  return 'not a Structured Field bare item';
}

/** RFC 8941 section 4.2.4: Integer (at most 15 digits) or Decimal (at most 12.3 digits). */
function skipNumber(cursor: SfCursor): string | undefined {
  const { text } = cursor;
  let i = cursor.index;
  if (text.charCodeAt(i) === 0x2d) i++;
  const integerStart = i;
  while (i < text.length && isDigit(text.charCodeAt(i))) i++;
  const integerDigits = i - integerStart;
  if (integerDigits === 0) return 'a number without digits';
  if (text.charCodeAt(i) !== 0x2e /* . */) {
    if (integerDigits > 15) return 'an Integer with too many digits';
    cursor.index = i;
    return undefined;
  }
  i++;
  const fractionStart = i;
  while (i < text.length && isDigit(text.charCodeAt(i))) i++;
  const fractionDigits = i - fractionStart;
  if (integerDigits > 12 || fractionDigits === 0 || fractionDigits > 3) return 'a malformed Decimal';
  cursor.index = i;
  return undefined;
}
