/**
 * One X.509 certificate: its thumbprint and the facts the rest of the verifier needs.
 *
 * The parser reads the DER structure of RFC 5280 section 4.1 directly with the strict reader of
 * `der.ts` and decodes only what path validation, revocation and logging use: names, serial,
 * validity, the public key bytes and the extensions of section 4.2.1 (the values of the others are
 * kept, undecoded). It never verifies anything itself; `chain.ts` and `revocation.ts` do that.
 * Anything it cannot read is `certificate_malformed`.
 */
import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import {
  DerError, TAG, algorithmOf, ctx, ctxPrim, bitStringBytes, children, content, decodeBoolean, decodeOid, decodeSmallInteger,
  decodeTime, encode, expectTag, oidOf, readExtensions, readTlv, readWhole, whole, type AlgorithmIdentifier, type Tlv,
} from './der.js';
import { fail, ok, type Result } from './errors.js';
import { publicKeyProblem } from './key-bounds.js';

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
  /** The Name's whole DER, as encoded (byte comparison, OCSP issuerNameHash). */
  readonly der: Uint8Array;
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
  /** Contents of extnValue: the DER of the extension's own structure. */
  readonly value: Uint8Array;
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
  /** serialNumber INTEGER contents exactly as encoded (OCSP CertID, CRL entries). */
  readonly serial: Uint8Array;
  /** The signed part (tbsCertificate) as encoded. */
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: AlgorithmIdentifier;
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
  crlDistributionPoints: '2.5.29.31',
  extKeyUsage: '2.5.29.37',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
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
// Serial numbers (RFC 5280 section 4.1.2.2).

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
  return { rdns, rdnKeys, key: JSON.stringify(rdnKeys), text, der: whole(buf, tlv) };
}

/**
 * A Name read on its own (a CRL issuer, an OCSP ResponderID byName), comparable with certificate
 * names through `key`. Throws DerError when malformed.
 */
export function parseDistinguishedName(der: Uint8Array): DistinguishedName {
  return parseName(der, readWhole(der, TAG.sequence, 'Name'));
}

// ---------------------------------------------------------------------------------------------
// GeneralName (RFC 5280 section 4.2.1.6).

/**
 * Whether two GeneralNames name the same thing (RFC 5280 section 7: directory names as in section
 * 7.1, DNS names and email domains ASCII case-insensitively, URIs and everything else exactly).
 * Forms this verifier does not decode never match.
 */
export function sameGeneralName(a: GeneralName, b: GeneralName): boolean {
  switch (a.type) {
    case 'dns': return b.type === 'dns' && asciiLower(a.value) === asciiLower(b.value);
    case 'email': return b.type === 'email' && a.value === b.value;
    case 'uri': return b.type === 'uri' && a.value === b.value;
    case 'ip': return b.type === 'ip' && Buffer.from(a.bytes).equals(b.bytes);
    case 'dir': return b.type === 'dir' && a.name.key === b.name.key;
    default: return false;
  }
}

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
// Revocation pointers, read on demand by revocation.ts (so that a malformed one does not fail path
// validation when revocation checking is off). Both throw DerError when malformed.

function extensionValue(cert: ParsedCertificate, oid: string): Uint8Array | null {
  return cert.extensions.find((e) => e.oid === oid)?.value ?? null;
}

function uris(buf: Uint8Array, names: readonly Tlv[]): string[] {
  return names.map((tlv) => parseGeneralName(buf, tlv)).flatMap((name) => (name.type === 'uri' ? [name.value] : []));
}

/** AuthorityInfoAccess (RFC 5280 section 4.2.2.1): the accessLocation URIs for `method` (e.g. id-ad-ocsp). */
export function authorityInfoAccessUris(cert: ParsedCertificate, method: string): string[] {
  const value = extensionValue(cert, OID.authorityInfoAccess);
  if (value === null) return [];
  const out: string[] = [];
  for (const description of children(value, readWhole(value, TAG.sequence, 'AuthorityInfoAccess'))) {
    const [accessMethod, location] = children(value, expectTag(description, TAG.sequence, 'AccessDescription'));
    if (location !== undefined && oidOf(value, accessMethod, 'accessMethod') === method) out.push(...uris(value, [location]));
  }
  return out;
}

/**
 * DistributionPointName (RFC 5280 sections 4.2.1.13, 5.2.5) as a list of names: the fullName
 * GeneralNames, or nameRelativeToCRLIssuer appended to `crlIssuer` as one directoryName. `field` is
 * the `[0] distributionPoint` element holding the CHOICE. Throws DerError when malformed.
 */
export function distributionPointNames(buf: Uint8Array, field: Tlv, crlIssuer: DistinguishedName): GeneralName[] {
  const [choice, ...rest] = children(buf, field);
  if (choice === undefined || rest.length > 0) throw new DerError('bad DistributionPointName');
  if (choice.tag === ctx(0)) return children(buf, choice).map((t) => parseGeneralName(buf, t)); // fullName [0] IMPLICIT GeneralNames
  if (choice.tag !== ctx(1)) throw new DerError('bad DistributionPointName');
  // nameRelativeToCRLIssuer [1] IMPLICIT RelativeDistinguishedName: the issuer's RDNs, then this one.
  const issuerDer = crlIssuer.der;
  const rdns = content(issuerDer, readWhole(issuerDer, TAG.sequence, 'Name'));
  const joined = encode(TAG.sequence, rdns, encode(TAG.set, content(buf, choice)));
  return [{ type: 'dir', name: parseDistinguishedName(joined) }];
}

/** One CRL distribution point of a certificate: where to fetch (http URIs first among them) and all its names. */
export interface CrlDistributionPoint {
  readonly uris: readonly string[];
  readonly names: readonly GeneralName[];
}

/**
 * CRLDistributionPoints (RFC 5280 section 4.2.1.13): the points that have a distributionPoint name
 * and neither `reasons` nor `cRLIssuer` (partitioned-by-reason and indirect CRLs are not supported).
 */
export function crlDistributionPoints(cert: ParsedCertificate): CrlDistributionPoint[] {
  const value = extensionValue(cert, OID.crlDistributionPoints);
  if (value === null) return [];
  const out: CrlDistributionPoint[] = [];
  for (const point of children(value, readWhole(value, TAG.sequence, 'CRLDistributionPoints'))) {
    const parts = children(value, expectTag(point, TAG.sequence, 'DistributionPoint'));
    if (parts.some((p) => p.tag === ctxPrim(1) || p.tag === ctx(1) || p.tag === ctx(2))) continue;
    const name = parts.find((p) => p.tag === ctx(0));
    if (name === undefined) continue;
    const names = distributionPointNames(value, name, cert.issuer);
    out.push({ uris: names.flatMap((n) => (n.type === 'uri' ? [n.value] : [])), names });
  }
  return out;
}

/** The fullName URIs of `crlDistributionPoints`. */
export function crlDistributionPointUris(cert: ParsedCertificate): string[] {
  return crlDistributionPoints(cert).flatMap((point) => point.uris);
}

// ---------------------------------------------------------------------------------------------

function parse(der: Uint8Array): ParsedCertificate {
  const buf = der;
  const cert = readWhole(buf, TAG.sequence, 'the certificate');
  const [tbsTlv, sigAlgTlv, sigTlv, ...extra] = children(buf, cert);
  if (tbsTlv === undefined || sigAlgTlv === undefined || sigTlv === undefined || extra.length > 0) {
    throw new DerError('Certificate must have three parts');
  }
  if (tbsTlv.tag !== TAG.sequence || sigAlgTlv.tag !== TAG.sequence || sigTlv.tag !== TAG.bitString) {
    throw new DerError('bad Certificate structure');
  }
  const signature = bitStringBytes(buf, sigTlv, 'signature');

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
  const serial = content(buf, serialTlv);
  // RFC 5280 section 4.1.1.2: signatureAlgorithm MUST equal tbsCertificate.signature.
  if (!Buffer.from(whole(buf, innerSigAlg)).equals(whole(buf, sigAlgTlv))) throw new DerError('signature algorithm mismatch');
  const signatureAlgorithm = algorithmOf(buf, sigAlgTlv);

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
    if (rest.length > 0) throw new DerError('bad extensions');
    const seen = new Set<string>();
    for (const extension of readExtensions(buf, list)) {
      // RFC 5280 section 4.2: a certificate MUST NOT include more than one instance of an extension.
      if (seen.has(extension.oid)) throw new DerError(`duplicate extension ${extension.oid}`);
      seen.add(extension.oid);
      extensions.push(extension);
      parseExtensionValue(extension.oid, extension.value, fields);
    }
  }

  const facts: CertificateFacts = Object.freeze({
    thumbprint: thumbprintS256(der),
    subject: subject.text,
    issuer: issuer.text,
    serialNumber: serialHex(serial),
    subjectAltNames: Object.freeze(fields.subjectAltNames.map(formatGeneralName)),
    notBefore: new Date(notBeforeMs),
    notAfter: new Date(notAfterMs),
  });
  return {
    der,
    facts,
    version,
    serial,
    tbs: whole(buf, tbsTlv),
    signatureAlgorithm,
    signature,
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

/** SubjectPublicKeyInfo: the algorithm and the subjectPublicKey bits (whole octets). Throws DerError. */
function readSpki(spki: Uint8Array): { readonly algorithm: AlgorithmIdentifier; readonly key: Uint8Array } {
  const [alg, bits, ...rest] = children(spki, readWhole(spki, TAG.sequence, 'SubjectPublicKeyInfo'));
  if (rest.length > 0) throw new DerError('bad SubjectPublicKeyInfo');
  return { algorithm: algorithmOf(spki, alg), key: bitStringBytes(spki, expectTag(bits, TAG.bitString, 'subjectPublicKey'), 'subjectPublicKey') };
}

/** The subjectPublicKey bits (the input of an OCSP CertID issuerKeyHash, RFC 6960 section 4.1.1). Throws DerError. */
export function subjectPublicKeyBits(cert: ParsedCertificate): Uint8Array {
  return readSpki(cert.spki).key;
}

/** The JWK form of common SPKIs: importing a JWK is several times faster than decoding SPKI DER on OpenSSL 3. */
function spkiToJwk(spki: Uint8Array): JsonWebKey | null {
  const { algorithm, key: point } = readSpki(spki);
  const { oid, parameters } = algorithm;
  if (oid === '1.2.840.113549.1.1.1') {
    const [n, e, ...rest] = children(point, readWhole(point, TAG.sequence, 'RSAPublicKey'));
    if (n?.tag !== TAG.integer || e?.tag !== TAG.integer || rest.length > 0) return null;
    return { kty: 'RSA', n: unsignedB64url(content(point, n)), e: unsignedB64url(content(point, e)) };
  }
  if (oid === '1.2.840.10045.2.1' && parameters?.[0] === TAG.oid) {
    const curve = CURVES[oidOf(parameters, readWhole(parameters, TAG.oid, 'namedCurve'))];
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

/** A certificate public key refused by `key-bounds.ts` (algorithm or size); the message says which. */
export class UnsupportedKeyError extends Error {
  override readonly name = 'UnsupportedKeyError';
}

/**
 * The certificate's subject public key; throws `UnsupportedKeyError` when its algorithm or size is
 * outside the bounds of `key-bounds.ts` (checked on the DER, before any import), or another error
 * when node cannot import it.
 */
export function subjectPublicKey(cert: ParsedCertificate): KeyObject {
  let problem: string | null;
  try {
    problem = publicKeyProblem(cert.spki);
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
    problem = `a malformed public key (${error.message})`;
  }
  if (problem !== null) throw new UnsupportedKeyError(problem);
  let jwk: JsonWebKey | null = null;
  try {
    jwk = spkiToJwk(cert.spki);
  } catch (error) {
    if (!(error instanceof DerError)) throw error;
  }
  if (jwk !== null) return createPublicKey({ key: jwk, format: 'jwk' });
  return createPublicKey({ key: Buffer.from(cert.spki), format: 'der', type: 'spki' });
}
