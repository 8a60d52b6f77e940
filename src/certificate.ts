/**
 * One X.509 certificate: its thumbprint and the facts the rest of the verifier needs.
 *
 * The parser reads the DER structure of RFC 5280 section 4.1 directly (strict DER: definite,
 * minimal lengths, no trailing bytes) and decodes only what path validation and logging use:
 * names, serial, validity, the public key bytes and the extensions of section 4.2.1. It never
 * verifies anything itself; `chain.ts` does that. Anything it cannot read is `certificate_malformed`.
 */
import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { fail, ok, type Result } from './errors.js';

export interface CertificateFacts {
  /** x5t#S256: base64url (no padding) of SHA-256 over the DER (RFC 8705 section 3.1). */
  readonly thumbprint: string;
  /** Distinguished name, attributes in certificate order, RFC 4514 value escaping: "CN=client-1,O=mtls-pop tests". */
  readonly subject: string;
  readonly issuer: string;
  /** Upper-case hex of the serial number, no leading zero bytes (as `openssl x509 -serial` and node print it). */
  readonly serialNumber: string;
  /** "DNS:client-1.example", "IP:127.0.0.1", "URI:spiffe://...", "email:a@b", "DirName:CN=x", ... */
  readonly subjectAltNames: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Set by path validation: the earliest notAfter on the validated path (the verdict's end). */
  readonly pathNotAfter?: Date;
}

/** x5t#S256 of a certificate: base64url without padding of SHA-256 over its DER (RFC 8705 section 3.1). */
export function thumbprintS256(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

/** The facts of one certificate, or `certificate_malformed` when it is not a DER X.509 certificate. */
export function certificateFacts(der: Uint8Array): Result<CertificateFacts> {
  const parsed = parseCertificate(der);
  return parsed.ok ? ok(parsed.value.facts) : parsed;
}

// ---------------------------------------------------------------------------------------------
// Parsed form used by path validation (chain.ts).

/** One attribute of a relative distinguished name. */
export interface NameAttribute {
  readonly oid: string;
  /** Decoded text for directory string types, null for other value types. */
  readonly text: string | null;
  /** The attribute value's whole DER (tag, length, content). */
  readonly valueDer: Uint8Array;
}

export interface DistinguishedName {
  readonly rdns: readonly (readonly NameAttribute[])[];
  /** Comparison key: RFC 5280 section 7.1 style (string values trimmed, inner spaces collapsed, ASCII case folded). */
  readonly key: string;
  /** Per-RDN comparison keys, for directoryName subtree matching (RFC 5280 section 4.2.1.10). */
  readonly rdnKeys: readonly string[];
  readonly text: string;
}

/** GeneralName (RFC 5280 section 4.2.1.6), as far as validation needs it. */
export type GeneralName =
  | { readonly type: 'dns'; readonly value: string }
  | { readonly type: 'email'; readonly value: string }
  | { readonly type: 'uri'; readonly value: string }
  | { readonly type: 'ip'; readonly bytes: Uint8Array }
  | { readonly type: 'dir'; readonly name: DistinguishedName }
  | { readonly type: 'other' | 'x400' | 'edi' | 'rid'; readonly label: string };

export interface NameConstraints {
  readonly permitted: readonly GeneralName[];
  readonly excluded: readonly GeneralName[];
}

export interface ParsedExtension {
  readonly oid: string;
  readonly critical: boolean;
}

/** keyUsage bits (RFC 5280 section 4.2.1.3), as flags: bit n of the BIT STRING is `1 << n`. */
export const KEY_USAGE = {
  digitalSignature: 1 << 0,
  nonRepudiation: 1 << 1,
  keyEncipherment: 1 << 2,
  dataEncipherment: 1 << 3,
  keyAgreement: 1 << 4,
  keyCertSign: 1 << 5,
  cRLSign: 1 << 6,
} as const;

export interface ParsedCertificate {
  readonly der: Uint8Array;
  readonly facts: CertificateFacts;
  readonly version: number;
  /** The signed part (tbsCertificate) as encoded. */
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: { readonly oid: string; readonly parameters: Uint8Array | null };
  readonly signature: Uint8Array;
  readonly issuer: DistinguishedName;
  readonly subject: DistinguishedName;
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array;
  readonly extensions: readonly ParsedExtension[];
  /** basicConstraints (RFC 5280 section 4.2.1.9); null when absent. */
  readonly basicConstraints: { readonly ca: boolean; readonly pathLen: number | null } | null;
  /** keyUsage flags (KEY_USAGE); null when absent. */
  readonly keyUsage: number | null;
  /** extKeyUsage OIDs (RFC 5280 section 4.2.1.12); null when absent. */
  readonly extKeyUsage: readonly string[] | null;
  readonly subjectAltNames: readonly GeneralName[];
  readonly nameConstraints: NameConstraints | null;
  readonly subjectKeyId: Uint8Array | null;
  readonly authorityKeyId: Uint8Array | null;
}

export const OID = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  nameConstraints: '2.5.29.30',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  anyExtendedKeyUsage: '2.5.29.37.0',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  commonName: '2.5.4.3',
  emailAddress: '1.2.840.113549.1.9.1',
} as const;

/** Parses a DER certificate; `certificate_malformed` (with a short reason) when it is not one. */
export function parseCertificate(der: Uint8Array): Result<ParsedCertificate> {
  try {
    return ok(parse(der));
  } catch (error) {
    if (error instanceof DerError) return fail('certificate_malformed', `the certificate is not valid DER X.509: ${error.message}`);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Strict DER reader (X.690 section 10).

class DerError extends Error {}

interface Tlv {
  readonly tag: number;
  /** Offset of the tag byte. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly body: number;
  /** Offset just past the content. */
  readonly end: number;
}

function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated element');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('unsupported high tag number');
  let len = buf[pos + 1]!;
  let body = pos + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0) throw new DerError('indefinite length');
    if (count > 4) throw new DerError('length too large');
    if (body + count > limit) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + buf[body + i]!;
    if (buf[body] === 0 || len < 0x80) throw new DerError('non-minimal length');
    body += count;
  }
  const end = body + len;
  if (end > limit) throw new DerError('element runs past its container');
  return { tag, start: pos, body, end };
}

function expect(buf: Uint8Array, pos: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, pos, limit);
  if (tlv.tag !== tag) throw new DerError(`${what}: unexpected tag 0x${tlv.tag.toString(16)}`);
  return tlv;
}

function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.body;
  while (pos < parent.end) {
    const tlv = readTlv(buf, pos, parent.end);
    out.push(tlv);
    pos = tlv.end;
  }
  return out;
}

function content(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.body, tlv.end);
}

function whole(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.start, tlv.end);
}

const TAG = {
  boolean: 0x01, integer: 0x02, bitString: 0x03, octetString: 0x04, null: 0x05, oid: 0x06,
  utf8String: 0x0c, sequence: 0x30, set: 0x31, printableString: 0x13, teletexString: 0x14,
  ia5String: 0x16, utcTime: 0x17, generalizedTime: 0x18, visibleString: 0x1a,
  universalString: 0x1c, bmpString: 0x1e, numericString: 0x12,
} as const;

function decodeOid(bytes: Uint8Array): string {
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

function decodeBoolean(buf: Uint8Array, tlv: Tlv): boolean {
  if (tlv.end - tlv.body !== 1) throw new DerError('bad BOOLEAN');
  const v = buf[tlv.body]!;
  if (v !== 0 && v !== 0xff) throw new DerError('non-DER BOOLEAN');
  return v === 0xff;
}

/** A non-negative INTEGER that fits comfortably in a number (versions, pathLen). */
function decodeSmallInteger(buf: Uint8Array, tlv: Tlv, what: string): number {
  const bytes = content(buf, tlv);
  if (bytes.length === 0 || bytes.length > 4) throw new DerError(`${what} out of range`);
  if (bytes[0]! & 0x80) throw new DerError(`negative ${what}`);
  if (bytes.length > 1 && bytes[0] === 0 && (bytes[1]! & 0x80) === 0) throw new DerError(`non-minimal ${what}`);
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return n;
}

function serialHex(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new DerError('empty serial number');
  if (bytes.length > 1 && ((bytes[0] === 0 && (bytes[1]! & 0x80) === 0) || (bytes[0] === 0xff && (bytes[1]! & 0x80) !== 0))) {
    throw new DerError('non-minimal serial number');
  }
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex').toUpperCase();
  if ((bytes[0]! & 0x80) === 0) return bytes.length > 1 && bytes[0] === 0 ? hex.slice(2) : hex;
  // A negative serial (not allowed by RFC 5280 section 4.1.2.2, but seen): minus its magnitude.
  let out = ((1n << BigInt(bytes.length * 8)) - BigInt(`0x${hex}`)).toString(16).toUpperCase();
  if (out.length % 2 === 1) out = `0${out}`;
  return `-${out}`;
}

function decodeTime(buf: Uint8Array, tlv: Tlv): number {
  const text = Buffer.from(content(buf, tlv)).toString('latin1');
  let m: RegExpExecArray | null;
  let year: number;
  if (tlv.tag === TAG.utcTime) {
    m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
    if (m === null) throw new DerError('bad UTCTime');
    const yy = Number(m[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy; // RFC 5280 section 4.1.2.5.1
  } else if (tlv.tag === TAG.generalizedTime) {
    m = /^(\d\d\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(text);
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
// Names (RFC 5280 section 4.1.2.4) and their RFC 4514-style text.

const ATTRIBUTE_NAMES: Record<string, string> = {
  '2.5.4.3': 'CN', '2.5.4.4': 'SN', '2.5.4.5': 'serialNumber', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST',
  '2.5.4.9': 'STREET', '2.5.4.10': 'O', '2.5.4.11': 'OU', '2.5.4.12': 'title', '2.5.4.42': 'GN', '2.5.4.43': 'initials',
  '2.5.4.46': 'dnQualifier', '2.5.4.65': 'pseudonym', '2.5.4.97': 'organizationIdentifier',
  '0.9.2342.19200300.100.1.25': 'DC', '0.9.2342.19200300.100.1.1': 'UID', '1.2.840.113549.1.9.1': 'emailAddress',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeDirectoryString(tag: number, bytes: Uint8Array): string | null {
  switch (tag) {
    case TAG.utf8String:
      try {
        return utf8.decode(bytes);
      } catch {
        throw new DerError('invalid UTF-8 in a name');
      }
    case TAG.printableString:
    case TAG.ia5String:
    case TAG.numericString:
    case TAG.visibleString:
    case TAG.teletexString:
      return Buffer.from(bytes).toString('latin1');
    case TAG.bmpString: {
      if (bytes.length % 2 !== 0) throw new DerError('bad BMPString');
      let s = '';
      for (let i = 0; i < bytes.length; i += 2) s += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
      return s;
    }
    case TAG.universalString: {
      if (bytes.length % 4 !== 0) throw new DerError('bad UniversalString');
      let s = '';
      for (let i = 0; i < bytes.length; i += 4) {
        const cp = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
        if (cp > 0x10ffff) throw new DerError('bad UniversalString');
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    default:
      return null;
  }
}

/** ASCII-only case folding, so that no Unicode case mapping can make two different names equal. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

function canonicalValue(attr: NameAttribute): string {
  if (attr.text === null) return `#${Buffer.from(attr.valueDer).toString('hex')}`;
  return asciiLower(attr.text.trim().replace(/\s+/g, ' '));
}

/** RFC 4514 section 2.4 escaping; control characters as \XX so the text is safe in logs and headers. */
function escapeDnValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    const code = ch.charCodeAt(0);
    if (code < 0x20 || code === 0x7f) {
      out += `\\${code.toString(16).toUpperCase().padStart(2, '0')}`;
    } else if ('"+,;<>\\'.includes(ch) || (i === 0 && (ch === '#' || ch === ' ')) || (i === value.length - 1 && ch === ' ')) {
      out += `\\${ch}`;
    } else {
      out += ch;
    }
  }
  return out;
}

function parseName(buf: Uint8Array, tlv: Tlv): DistinguishedName {
  if (tlv.tag !== TAG.sequence) throw new DerError('Name is not a SEQUENCE');
  const rdns: NameAttribute[][] = [];
  for (const rdnTlv of children(buf, tlv)) {
    if (rdnTlv.tag !== TAG.set) throw new DerError('RDN is not a SET');
    const rdn: NameAttribute[] = [];
    for (const avaTlv of children(buf, rdnTlv)) {
      if (avaTlv.tag !== TAG.sequence) throw new DerError('attribute is not a SEQUENCE');
      const parts = children(buf, avaTlv);
      if (parts.length !== 2 || parts[0]!.tag !== TAG.oid) throw new DerError('bad attribute');
      const valueTlv = parts[1]!;
      rdn.push({
        oid: decodeOid(content(buf, parts[0]!)),
        text: decodeDirectoryString(valueTlv.tag, content(buf, valueTlv)),
        valueDer: whole(buf, valueTlv),
      });
    }
    if (rdn.length === 0) throw new DerError('empty RDN');
    rdns.push(rdn);
  }
  const rdnKeys = rdns.map((rdn) => rdn.map((a) => `${a.oid}=${canonicalValue(a)}`).sort().join('+'));
  const text = rdns.map((rdn) => rdn.map((a) => {
    const type = ATTRIBUTE_NAMES[a.oid] ?? a.oid;
    return a.text === null ? `${type}=#${Buffer.from(a.valueDer).toString('hex')}` : `${type}=${escapeDnValue(a.text)}`;
  }).join('+')).join(',');
  return { rdns, rdnKeys, key: JSON.stringify(rdnKeys), text };
}

// ---------------------------------------------------------------------------------------------
// GeneralName (RFC 5280 section 4.2.1.6).

function ia5(bytes: Uint8Array): string {
  for (const b of bytes) if (b > 0x7f) throw new DerError('non-ASCII IA5String');
  return Buffer.from(bytes).toString('latin1');
}

function parseGeneralName(buf: Uint8Array, tlv: Tlv): GeneralName {
  switch (tlv.tag) {
    case 0xa0: {
      const parts = children(buf, tlv);
      const oid = parts[0] !== undefined && parts[0].tag === TAG.oid ? decodeOid(content(buf, parts[0])) : '?';
      return { type: 'other', label: oid };
    }
    case 0x81: return { type: 'email', value: ia5(content(buf, tlv)) };
    case 0x82: return { type: 'dns', value: ia5(content(buf, tlv)) };
    case 0xa3: return { type: 'x400', label: 'x400Address' };
    case 0xa4: {
      const parts = children(buf, tlv);
      if (parts.length !== 1) throw new DerError('bad directoryName');
      return { type: 'dir', name: parseName(buf, parts[0]!) };
    }
    case 0xa5: return { type: 'edi', label: 'ediPartyName' };
    case 0x86: return { type: 'uri', value: ia5(content(buf, tlv)) };
    case 0x87: return { type: 'ip', bytes: content(buf, tlv) };
    case 0x88: return { type: 'rid', label: decodeOid(content(buf, tlv)) };
    default: throw new DerError(`unknown GeneralName tag 0x${tlv.tag.toString(16)}`);
  }
}

function printable(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) return `#${Buffer.from(bytes).toString('hex')}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function formatGeneralName(name: GeneralName): string {
  switch (name.type) {
    case 'dns': return `DNS:${printable(name.value)}`;
    case 'email': return `email:${printable(name.value)}`;
    case 'uri': return `URI:${printable(name.value)}`;
    case 'ip': return `IP:${formatIp(name.bytes)}`;
    case 'dir': return `DirName:${name.name.text}`;
    case 'other': return `othername:${name.label}`;
    case 'rid': return `RID:${name.label}`;
    case 'x400': return 'X400Name:<unsupported>';
    case 'edi': return 'EdiPartyName:<unsupported>';
  }
}

function parseGeneralNames(buf: Uint8Array, tlv: Tlv): GeneralName[] {
  if (tlv.tag !== TAG.sequence) throw new DerError('GeneralNames is not a SEQUENCE');
  const names = children(buf, tlv).map((t) => parseGeneralName(buf, t));
  if (names.length === 0) throw new DerError('empty GeneralNames');
  return names;
}

// ---------------------------------------------------------------------------------------------
// Extensions (RFC 5280 section 4.2.1).

interface ExtensionFields {
  basicConstraints: ParsedCertificate['basicConstraints'];
  keyUsage: number | null;
  extKeyUsage: string[] | null;
  subjectAltNames: GeneralName[];
  nameConstraints: NameConstraints | null;
  subjectKeyId: Uint8Array | null;
  authorityKeyId: Uint8Array | null;
}

function parseExtensionValue(oid: string, buf: Uint8Array, fields: ExtensionFields): void {
  const top = readTlv(buf, 0, buf.length);
  if (top.end !== buf.length) throw new DerError(`trailing bytes in extension ${oid}`);
  switch (oid) {
    case OID.basicConstraints: {
      if (top.tag !== TAG.sequence) throw new DerError('bad basicConstraints');
      const parts = children(buf, top);
      let k = 0;
      // cA BOOLEAN DEFAULT FALSE (an explicit FALSE is BER, seen in the wild, and accepted).
      const ca = parts[k]?.tag === TAG.boolean ? decodeBoolean(buf, parts[k++]!) : false;
      const pathLen = parts[k]?.tag === TAG.integer ? decodeSmallInteger(buf, parts[k++]!, 'pathLenConstraint') : null;
      if (k !== parts.length) throw new DerError('bad basicConstraints');
      fields.basicConstraints = { ca, pathLen };
      return;
    }
    case OID.keyUsage: {
      if (top.tag !== TAG.bitString) throw new DerError('bad keyUsage');
      const bytes = content(buf, top);
      if (bytes.length < 1 || bytes[0]! > 7 || (bytes.length === 1 && bytes[0] !== 0)) throw new DerError('bad keyUsage');
      let flags = 0;
      for (let bit = 0; bit < (bytes.length - 1) * 8 && bit < 16; bit++) {
        if ((bytes[1 + (bit >> 3)]! >> (7 - (bit & 7))) & 1) flags |= 1 << bit;
      }
      fields.keyUsage = flags;
      return;
    }
    case OID.extKeyUsage: {
      if (top.tag !== TAG.sequence) throw new DerError('bad extKeyUsage');
      const oids = children(buf, top).map((t) => {
        if (t.tag !== TAG.oid) throw new DerError('bad extKeyUsage');
        return decodeOid(content(buf, t));
      });
      if (oids.length === 0) throw new DerError('empty extKeyUsage');
      fields.extKeyUsage = oids;
      return;
    }
    case OID.subjectAltName:
      fields.subjectAltNames = parseGeneralNames(buf, top);
      return;
    case OID.nameConstraints: {
      if (top.tag !== TAG.sequence) throw new DerError('bad nameConstraints');
      const permitted: GeneralName[] = [];
      const excluded: GeneralName[] = [];
      for (const part of children(buf, top)) {
        const target = part.tag === 0xa0 ? permitted : part.tag === 0xa1 ? excluded : null;
        if (target === null) throw new DerError('bad nameConstraints');
        for (const subtree of children(buf, part)) {
          if (subtree.tag !== TAG.sequence) throw new DerError('bad GeneralSubtree');
          const [base, ...rest] = children(buf, subtree);
          if (base === undefined) throw new DerError('bad GeneralSubtree');
          // RFC 5280 section 4.2.1.10: minimum MUST be zero and maximum MUST be absent.
          for (const r of rest) {
            if (r.tag !== 0x80 || decodeSmallInteger(buf, r, 'minimum') !== 0) {
              throw new DerError('GeneralSubtree minimum/maximum are not supported');
            }
          }
          target.push(parseGeneralName(buf, base));
        }
      }
      fields.nameConstraints = { permitted, excluded };
      return;
    }
    case OID.subjectKeyIdentifier:
      if (top.tag !== TAG.octetString) throw new DerError('bad subjectKeyIdentifier');
      fields.subjectKeyId = content(buf, top);
      return;
    case OID.authorityKeyIdentifier: {
      if (top.tag !== TAG.sequence) throw new DerError('bad authorityKeyIdentifier');
      for (const part of children(buf, top)) {
        if (part.tag === 0x80) fields.authorityKeyId = content(buf, part);
      }
      return;
    }
    default:
      return;
  }
}

// ---------------------------------------------------------------------------------------------

function parse(der: Uint8Array): ParsedCertificate {
  const buf = der;
  const cert = expect(buf, 0, buf.length, TAG.sequence, 'Certificate');
  if (cert.end !== buf.length) throw new DerError('trailing bytes after the certificate');
  const [tbsTlv, sigAlgTlv, sigTlv, ...extra] = children(buf, cert);
  if (tbsTlv === undefined || sigAlgTlv === undefined || sigTlv === undefined || extra.length > 0) {
    throw new DerError('Certificate must have three parts');
  }
  if (tbsTlv.tag !== TAG.sequence || sigAlgTlv.tag !== TAG.sequence || sigTlv.tag !== TAG.bitString) {
    throw new DerError('bad Certificate structure');
  }
  const sigBits = content(buf, sigTlv);
  if (sigBits.length < 1 || sigBits[0] !== 0) throw new DerError('bad signature BIT STRING');

  const tbs = children(buf, tbsTlv);
  let i = 0;
  let version = 1;
  if (tbs[i]?.tag === 0xa0) {
    const inner = children(buf, tbs[i]!);
    if (inner.length !== 1 || inner[0]!.tag !== TAG.integer) throw new DerError('bad version');
    version = decodeSmallInteger(buf, inner[0]!, 'version') + 1;
    if (version > 3) throw new DerError('unknown version');
    i++;
  }
  const serialTlv = tbs[i++];
  const innerSigAlg = tbs[i++];
  const issuerTlv = tbs[i++];
  const validityTlv = tbs[i++];
  const subjectTlv = tbs[i++];
  const spkiTlv = tbs[i++];
  if (serialTlv?.tag !== TAG.integer || innerSigAlg?.tag !== TAG.sequence || issuerTlv === undefined
    || validityTlv?.tag !== TAG.sequence || subjectTlv === undefined || spkiTlv?.tag !== TAG.sequence) {
    throw new DerError('bad tbsCertificate');
  }
  // RFC 5280 section 4.1.1.2: signatureAlgorithm MUST equal tbsCertificate.signature.
  if (!Buffer.from(whole(buf, innerSigAlg)).equals(whole(buf, sigAlgTlv))) throw new DerError('signature algorithm mismatch');
  const algParts = children(buf, sigAlgTlv);
  if (algParts[0]?.tag !== TAG.oid || algParts.length > 2) throw new DerError('bad AlgorithmIdentifier');
  const signatureAlgorithm = {
    oid: decodeOid(content(buf, algParts[0])),
    parameters: algParts[1] !== undefined ? whole(buf, algParts[1]) : null,
  };

  const [nbTlv, naTlv, ...moreTimes] = children(buf, validityTlv);
  if (nbTlv === undefined || naTlv === undefined || moreTimes.length > 0) throw new DerError('bad validity');
  const notBeforeMs = decodeTime(buf, nbTlv);
  const notAfterMs = decodeTime(buf, naTlv);

  const issuer = parseName(buf, issuerTlv);
  const subject = parseName(buf, subjectTlv);

  const fields: ExtensionFields = {
    basicConstraints: null, keyUsage: null, extKeyUsage: null, subjectAltNames: [], nameConstraints: null,
    subjectKeyId: null, authorityKeyId: null,
  };
  const extensions: ParsedExtension[] = [];
  for (; i < tbs.length; i++) {
    const t = tbs[i]!;
    if (t.tag === 0x81 || t.tag === 0x82) {
      if (version < 2) throw new DerError('unique identifiers need version 2 or 3');
      continue;
    }
    if (t.tag !== 0xa3 || i !== tbs.length - 1) throw new DerError('unexpected field in tbsCertificate');
    if (version !== 3) throw new DerError('extensions need version 3');
    const [list, ...rest] = children(buf, t);
    if (list?.tag !== TAG.sequence || rest.length > 0) throw new DerError('bad extensions');
    const seen = new Set<string>();
    for (const extTlv of children(buf, list)) {
      if (extTlv.tag !== TAG.sequence) throw new DerError('bad extension');
      const parts = children(buf, extTlv);
      const oidTlv = parts[0];
      let critical = false;
      let valueTlv = parts[1];
      if (valueTlv?.tag === TAG.boolean) {
        critical = decodeBoolean(buf, valueTlv); // an explicit FALSE is BER but common; accepted
        valueTlv = parts[2];
        if (parts.length !== 3) throw new DerError('bad extension');
      } else if (parts.length !== 2) {
        throw new DerError('bad extension');
      }
      if (oidTlv?.tag !== TAG.oid || valueTlv?.tag !== TAG.octetString) throw new DerError('bad extension');
      const oid = decodeOid(content(buf, oidTlv));
      // RFC 5280 section 4.2: a certificate MUST NOT include more than one instance of an extension.
      if (seen.has(oid)) throw new DerError(`duplicate extension ${oid}`);
      seen.add(oid);
      extensions.push({ oid, critical });
      parseExtensionValue(oid, content(buf, valueTlv), fields);
    }
  }

  const facts: CertificateFacts = Object.freeze({
    thumbprint: thumbprintS256(der),
    subject: subject.text,
    issuer: issuer.text,
    serialNumber: serialHex(content(buf, serialTlv)),
    subjectAltNames: Object.freeze(fields.subjectAltNames.map(formatGeneralName)),
    notBefore: new Date(notBeforeMs),
    notAfter: new Date(notAfterMs),
  });
  return {
    der,
    facts,
    version,
    tbs: whole(buf, tbsTlv),
    signatureAlgorithm,
    signature: sigBits.subarray(1),
    issuer,
    subject,
    notBeforeMs,
    notAfterMs,
    spki: whole(buf, spkiTlv),
    extensions,
    ...fields,
  };
}

// ---------------------------------------------------------------------------------------------
// Public keys (RFC 5280 section 4.1.2.7).

const CURVES: Record<string, { readonly crv: string; readonly size: number }> = {
  '1.2.840.10045.3.1.7': { crv: 'P-256', size: 32 },
  '1.3.132.0.34': { crv: 'P-384', size: 48 },
  '1.3.132.0.35': { crv: 'P-521', size: 66 },
};

function unsignedB64url(bytes: Uint8Array): string {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return Buffer.from(bytes.subarray(start)).toString('base64url');
}

/** The JWK form of common SPKIs: importing a JWK is several times faster than decoding SPKI DER on OpenSSL 3. */
function spkiToJwk(spki: Uint8Array): JsonWebKey | null {
  const top = expect(spki, 0, spki.length, TAG.sequence, 'SubjectPublicKeyInfo');
  const [alg, bits] = children(spki, top);
  if (alg?.tag !== TAG.sequence || bits?.tag !== TAG.bitString || top.end !== spki.length) return null;
  const [oidTlv, params] = children(spki, alg);
  if (oidTlv?.tag !== TAG.oid) return null;
  const oid = decodeOid(content(spki, oidTlv));
  const key = content(spki, bits);
  if (key[0] !== 0) return null;
  const point = key.subarray(1);
  if (oid === '1.2.840.113549.1.1.1') {
    const seq = readTlv(point, 0, point.length);
    if (seq.tag !== TAG.sequence || seq.end !== point.length) return null;
    const [n, e, ...rest] = children(point, seq);
    if (n?.tag !== TAG.integer || e?.tag !== TAG.integer || rest.length > 0) return null;
    return { kty: 'RSA', n: unsignedB64url(content(point, n)), e: unsignedB64url(content(point, e)) };
  }
  if (oid === '1.2.840.10045.2.1' && params?.tag === TAG.oid) {
    const curve = CURVES[decodeOid(content(spki, params))];
    if (curve === undefined || point.length !== 1 + 2 * curve.size || point[0] !== 4) return null;
    const x = Buffer.from(point.subarray(1, 1 + curve.size)).toString('base64url');
    const y = Buffer.from(point.subarray(1 + curve.size)).toString('base64url');
    return { kty: 'EC', crv: curve.crv, x, y };
  }
  if ((oid === '1.3.101.112' && point.length === 32) || (oid === '1.3.101.113' && point.length === 57)) {
    return { kty: 'OKP', crv: oid === '1.3.101.112' ? 'Ed25519' : 'Ed448', x: Buffer.from(point).toString('base64url') };
  }
  return null;
}

/** The certificate's subject public key; throws when node cannot import it. */
export function subjectPublicKey(cert: ParsedCertificate): KeyObject {
  let jwk: JsonWebKey | null = null;
  try {
    jwk = spkiToJwk(cert.spki);
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
  }
  if (jwk !== null) return createPublicKey({ key: jwk, format: 'jwk' });
  return createPublicKey({ key: Buffer.from(cert.spki), format: 'der', type: 'spki' });
}
