/**
 * Strict DER (ITU-T X.690 section 10): the one reader every ASN.1 structure in the verifier goes
 * through (the certificate header's outer check in `header.ts`, certificates in `certificate.ts`,
 * CRLs and OCSP in `revocation-der.ts`), the few writers an OCSP request needs, and the X.509
 * building blocks those share (AlgorithmIdentifier, Time, Extensions; RFC 5280 section 4.1).
 *
 * Reading walks the bytes in place (offsets into the caller's buffer, no copies), so a certificate
 * takes microseconds and a CRL of 20,000 entries is one linear pass. Strict means: definite lengths
 * in their minimal form (X.690 section 10.1) of at most 4 length octets, every element inside its
 * container, no trailing bytes where one element must fill a buffer (`readWhole`), low tag numbers
 * only, and at most MAX_DEPTH levels of nesting (`children`). Anything else throws `DerError`,
 * whose message is a short reason that never quotes the bytes.
 */

export class DerError extends Error {
  override readonly name = 'DerError';
}

/** One tag-length-value; the offsets index the buffer it was read from. */
export interface Tlv {
  /** The identifier octet. */
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first contents octet. */
  readonly body: number;
  /** Offset just past the contents. */
  readonly end: number;
  /** Nesting level, set on the elements `children` returns (1 below the element reading started from). */
  readonly depth?: number;
}

export const TAG = {
  boolean: 0x01, integer: 0x02, bitString: 0x03, octetString: 0x04, null: 0x05, oid: 0x06,
  enumerated: 0x0a, utf8String: 0x0c, numericString: 0x12, printableString: 0x13, teletexString: 0x14,
  ia5String: 0x16, utcTime: 0x17, generalizedTime: 0x18, visibleString: 0x1a, universalString: 0x1c,
  bmpString: 0x1e, sequence: 0x30, set: 0x31,
} as const;

/** Context-specific tag number `n`, constructed (`[n]` EXPLICIT, or IMPLICIT over a constructed type). */
export const ctx = (n: number): number => 0xa0 | n;
/** Context-specific tag number `n`, primitive (`[n]` IMPLICIT over a primitive type). */
export const ctxPrim = (n: number): number => 0x80 | n;

/** Deepest nesting `children` descends to; real certificates, CRLs and OCSP responses stay below 10. */
export const MAX_DEPTH = 32;

/** The reason a high tag number (X.690 section 8.1.2.4) is refused with. */
export const HIGH_TAG_NUMBER = 'unsupported high tag number';

/** Where the contents of the element `scan` last read begin (read right after the call). */
let scannedBody = 0;

/**
 * Checks the identifier and length octets of the element at `offset`, which must end by `limit`;
 * returns its end and leaves the offset of its contents in `scannedBody`. (No object is built here:
 * the certificate header check on the request path reads four elements per certificate.)
 */
function scan(buf: Uint8Array, offset: number, limit: number): number {
  if (offset + 2 > limit) throw new DerError('truncated');
  const tag = buf[offset]!;
  let length = buf[offset + 1]!;
  let body = offset + 2;
  if (length & 0x80) {
    if (length === 0x80) throw new DerError('indefinite length (BER, not DER)');
    const count = length & 0x7f;
    if (count > 4) throw new DerError('length field too long');
    if (body + count > limit) throw new DerError('truncated');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[body + i]!;
    if (buf[body] === 0 || length < 0x80) throw new DerError('non-minimal length encoding (not DER)');
    body += count;
  }
  const end = body + length;
  if (end > limit) throw new DerError('truncated');
  if ((tag & 0x1f) === 0x1f) throw new DerError(HIGH_TAG_NUMBER);
  scannedBody = body;
  return end;
}

/** Reads the element at `offset`, which must end by `limit`. */
export function readTlv(buf: Uint8Array, offset = 0, limit: number = buf.length): Tlv {
  const end = scan(buf, offset, limit);
  return { tag: buf[offset]!, start: offset, body: scannedBody, end };
}

/** The one element, of tag `tag`, that fills `buf` exactly. */
export function readWhole(buf: Uint8Array, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, 0, buf.length);
  if (tlv.tag !== tag) throw new DerError(`${what}: unexpected tag 0x${tlv.tag.toString(16)}`);
  if (tlv.end !== buf.length) throw new DerError(`trailing bytes after ${what}`);
  return tlv;
}

/** The elements inside a constructed element. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const depth = (parent.depth ?? 0) + 1;
  if (depth > MAX_DEPTH) throw new DerError('nested too deeply');
  const out: Tlv[] = [];
  for (let pos = parent.body; pos < parent.end;) {
    const end = scan(buf, pos, parent.end);
    out.push({ tag: buf[pos]!, start: pos, body: scannedBody, end, depth });
    pos = end;
  }
  return out;
}

/** `tlv`, when it is there and has tag `tag`. */
export function expectTag(tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined || tlv.tag !== tag) throw new DerError(`${what} missing`);
  return tlv;
}

/** The contents octets. */
export function content(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.body, tlv.end);
}

/** The whole encoding: identifier, length and contents. */
export function whole(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.start, tlv.end);
}

// ---------------------------------------------------------------------------------------------
// Primitive values.

/** OBJECT IDENTIFIER contents (X.690 section 8.19) in dotted form; arcs beyond 2^53 are exact too. */
export function decodeOid(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new DerError('empty OID');
  const arcs: string[] = [];
  // Numbers while exact (< 2^46 before a shift by 7), BigInt beyond (e.g. 2.25.<UUID> arcs).
  let value = 0;
  let big: bigint | null = null;
  let fresh = true;
  for (const byte of bytes) {
    if (fresh && byte === 0x80) throw new DerError('non-minimal OID arc');
    if (big === null && value >= 2 ** 46) big = BigInt(value);
    if (big === null) value = value * 128 + (byte & 0x7f);
    else big = (big << 7n) | BigInt(byte & 0x7f);
    fresh = false;
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0) {
        const arc = big ?? BigInt(value);
        const first = arc < 80n ? arc / 40n : 2n;
        arcs.push(first.toString(), (arc - first * 40n).toString());
      } else {
        arcs.push(big === null ? String(value) : big.toString());
      }
      value = 0;
      big = null;
      fresh = true;
    }
  }
  if (!fresh) throw new DerError('truncated OID');
  return arcs.join('.');
}

/** The dotted OID of an OBJECT IDENTIFIER element. */
export function oidOf(buf: Uint8Array, tlv: Tlv | undefined, what = 'OID'): string {
  return decodeOid(content(buf, expectTag(tlv, TAG.oid, what)));
}

/** BOOLEAN; DER allows only 0x00 and 0xFF (X.690 section 11.1). */
export function decodeBoolean(buf: Uint8Array, tlv: Tlv): boolean {
  if (tlv.end - tlv.body !== 1) throw new DerError('bad BOOLEAN');
  const v = buf[tlv.body]!;
  if (v !== 0 && v !== 0xff) throw new DerError('non-DER BOOLEAN');
  return v === 0xff;
}

/** A non-negative INTEGER (or ENUMERATED) that fits comfortably in a number (versions, pathLen, statuses). */
export function decodeSmallInteger(buf: Uint8Array, tlv: Tlv, what: string): number {
  const bytes = content(buf, tlv);
  if (bytes.length === 0 || bytes.length > 4) throw new DerError(`${what} out of range`);
  if (bytes[0]! & 0x80) throw new DerError(`negative ${what}`);
  if (bytes.length > 1 && bytes[0] === 0 && (bytes[1]! & 0x80) === 0) throw new DerError(`non-minimal ${what}`);
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return n;
}

const HEX_OCTETS = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * INTEGER contents (all of `contents`, or [start, end)) as lower-case hex without leading zero octets: the form revocation compares
 * serial numbers in (certificate, CRL entry, OCSP CertID alike). Fast enough for CRL entry loops.
 */
export function integerHex(contents: Uint8Array, start = 0, end = contents.length): string {
  if (end <= start) throw new DerError('empty INTEGER');
  let i = start;
  while (i < end - 1 && contents[i] === 0) i++;
  let out = '';
  for (; i < end; i++) out += HEX_OCTETS[contents[i]!]!;
  return out;
}

/** BIT STRING contents of whole octets (keys, signatures): the unused-bits octet must be 0. */
export function bitStringBytes(buf: Uint8Array, tlv: Tlv, what: string): Uint8Array {
  if (tlv.tag !== TAG.bitString || tlv.end === tlv.body || buf[tlv.body] !== 0) throw new DerError(`bad ${what} BIT STRING`);
  return buf.subarray(tlv.body + 1, tlv.end);
}

/**
 * UTCTime / GeneralizedTime (RFC 5280 section 4.1.2.5) in epoch milliseconds: UTC ("Z"), seconds
 * present, a real calendar date. `fractionalSeconds` also accepts (and drops) a GeneralizedTime
 * fraction, which some OCSP responders and CRL issuers send.
 */
export function decodeTime(buf: Uint8Array, tlv: Tlv, fractionalSeconds = false): number {
  const text = Buffer.from(content(buf, tlv)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (tlv.tag === TAG.utcTime) {
    m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
    if (m === null) throw new DerError('bad UTCTime');
    const yy = Number(m[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy; // RFC 5280 section 4.1.2.5.1
  } else if (tlv.tag === TAG.generalizedTime) {
    m = (fractionalSeconds ? /^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.\d+)?Z$/ : /^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/).exec(text);
    if (m === null) throw new DerError('bad GeneralizedTime');
    year = Number(m[1]);
  } else {
    throw new DerError('bad time type');
  }
  const [month, day, hour, minute, second] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  if (year < 100 || check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day
    || hour > 23 || minute > 59 || second > 59) {
    throw new DerError('impossible date');
  }
  return ms;
}

// ---------------------------------------------------------------------------------------------
// X.509 building blocks shared by certificates, CRLs and OCSP (RFC 5280 section 4.1, RFC 6960 4).

export interface AlgorithmIdentifier {
  readonly oid: string;
  /** DER of the parameters, when present. */
  readonly parameters: Uint8Array | null;
}

export function algorithmOf(buf: Uint8Array, tlv: Tlv | undefined, what = 'AlgorithmIdentifier'): AlgorithmIdentifier {
  const parts = children(buf, expectTag(tlv, TAG.sequence, what));
  if (parts[0]?.tag !== TAG.oid || parts.length > 2) throw new DerError(`bad ${what}`);
  return { oid: oidOf(buf, parts[0]), parameters: parts[1] !== undefined ? whole(buf, parts[1]) : null };
}

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  /** Contents of extnValue: the DER of the extension's own structure. */
  readonly value: Uint8Array;
}

/** Extensions ::= SEQUENCE OF Extension (RFC 5280 section 4.1). */
export function readExtensions(buf: Uint8Array, list: Tlv | undefined, what = 'extensions'): Extension[] {
  return children(buf, expectTag(list, TAG.sequence, what)).map((ext) => {
    const parts = children(buf, expectTag(ext, TAG.sequence, 'extension'));
    let critical = false;
    let valueTlv = parts[1];
    if (valueTlv?.tag === TAG.boolean) {
      critical = decodeBoolean(buf, valueTlv); // an explicit FALSE is BER but common; accepted
      valueTlv = parts[2];
      if (parts.length !== 3) throw new DerError('bad extension');
    } else if (parts.length !== 2) {
      throw new DerError('bad extension');
    }
    if (parts[0]?.tag !== TAG.oid || valueTlv?.tag !== TAG.octetString) throw new DerError('bad extension');
    return { oid: oidOf(buf, parts[0]), critical, value: content(buf, valueTlv) };
  });
}

// ---------------------------------------------------------------------------------------------
// Writing (DER, X.690 section 10).

function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Uint8Array.of(0x80 | octets.length, ...octets);
}

/** One element with the given tag around the concatenated contents. */
export function encode(tag: number, ...contents: readonly Uint8Array[]): Uint8Array {
  const body = Buffer.concat(contents);
  return Buffer.concat([Uint8Array.of(tag), encodeLength(body.length), body]);
}

/** OBJECT IDENTIFIER element for a dotted OID (arcs up to 2^53). */
export function encodeOid(oid: string): Uint8Array {
  const [first = 0, second = 0, ...rest] = oid.split('.').map(Number);
  const octets: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const chunk = [arc % 128];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v % 128) | 0x80);
    octets.push(...chunk);
  }
  return encode(TAG.oid, Uint8Array.from(octets));
}
