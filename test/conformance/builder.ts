/**
 * A small X.509 certificate builder for the path-validation conformance cases: DER written by hand
 * (X.690) and signed with node:crypto, so that a case can have exactly the encoding the PKITS test
 * it stands for describes (string types and whitespace in names, UTCTime before 2000 and
 * GeneralizedTime, unique identifiers, DSA keys without parameters, a broken signature), which
 * higher-level generators normalise away.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, generatePrimeSync, sign, type KeyObject } from 'node:crypto';

// ---------------------------------------------------------------------------------------------
// DER.

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const octets: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Buffer.from([0x80 | octets.length, ...octets]);
}

export function tlv(tag: number, ...contents: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.of(tag), length(body.length), body]);
}

export const seq = (...items: readonly Uint8Array[]): Buffer => tlv(0x30, ...items);
export const set = (...items: readonly Uint8Array[]): Buffer => tlv(0x31, ...items);

export function oid(dotted: string): Buffer {
  const [a = 0, b = 0, ...rest] = dotted.split('.').map(Number);
  const out: number[] = [];
  for (const arc of [a * 40 + b, ...rest]) {
    const chunk = [arc % 128];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v % 128) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

export function integer(value: number | Buffer): Buffer {
  let bytes = typeof value === 'number' ? Buffer.from(value.toString(16).padStart(2, '0').replace(/^(.)((..)*)$/, '0$1$2'), 'hex') : value;
  while (bytes.length > 1 && bytes[0] === 0 && ((bytes[1] as number) & 0x80) === 0) bytes = bytes.subarray(1);
  if (((bytes[0] as number) & 0x80) !== 0) bytes = Buffer.concat([Buffer.of(0), bytes]);
  return tlv(0x02, bytes);
}

export const BOOLEAN_TRUE = Buffer.of(0x01, 0x01, 0xff);
export const NULL = Buffer.of(0x05, 0x00);

function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.of(unusedBits), bytes);
}

// ---------------------------------------------------------------------------------------------
// Names (RFC 5280 section 4.1.2.4).

export type StringType = 'printable' | 'utf8' | 'ia5' | 'teletex' | 'bmp';
/** One attribute: [OID or short name, value, string type (default PrintableString)]. */
export type Attribute = readonly [string, string, StringType?];

const ATTRIBUTE_OIDS: Readonly<Record<string, string>> = {
  C: '2.5.4.6', O: '2.5.4.10', OU: '2.5.4.11', CN: '2.5.4.3', ST: '2.5.4.8', L: '2.5.4.7', dnQualifier: '2.5.4.46',
  title: '2.5.4.12', SN: '2.5.4.4', GN: '2.5.4.42', initials: '2.5.4.43', pseudonym: '2.5.4.65', generationQualifier: '2.5.4.44',
  emailAddress: '1.2.840.113549.1.9.1', serialNumber: '2.5.4.5',
};

function directoryString(value: string, type: StringType): Buffer {
  switch (type) {
    case 'printable': return tlv(0x13, Buffer.from(value, 'latin1'));
    case 'utf8': return tlv(0x0c, Buffer.from(value, 'utf8'));
    case 'ia5': return tlv(0x16, Buffer.from(value, 'latin1'));
    case 'teletex': return tlv(0x14, Buffer.from(value, 'latin1'));
    case 'bmp': return tlv(0x1e, Buffer.from(value, 'utf16le').swap16());
  }
}

/** A Name: each inner array is one RDN (usually of one attribute), in order. */
export function name(...rdns: readonly (readonly Attribute[])[]): Buffer {
  return seq(...rdns.map((rdn) => set(...rdn.map(([type, value, stringType]) => {
    const o = ATTRIBUTE_OIDS[type] ?? type;
    const defaultType: StringType = type === 'emailAddress' ? 'ia5' : 'printable';
    return seq(oid(o), directoryString(value, stringType ?? defaultType));
  }))));
}

/** One-attribute RDNs from [type, value] pairs. */
export function dn(...attributes: readonly Attribute[]): Buffer {
  return name(...attributes.map((a) => [a]));
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures.

export interface Key {
  readonly kind: 'ec' | 'rsa' | 'dsa' | 'ed25519';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Buffer;
  /** RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
  readonly keyId: Buffer;
}

function keyOf(kind: Key['kind'], pair: { privateKey: KeyObject; publicKey: KeyObject }): Key {
  const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
  return { kind, ...pair, spki, keyId: createHash('sha1').update(subjectPublicKeyBits(spki)).digest() };
}

/** Header of the element at `at`: where its contents start and end. */
function element(buf: Buffer, at: number): { body: number; end: number } {
  const first = buf[at + 1] as number;
  let size = first;
  let body = at + 2;
  if (first & 0x80) {
    size = 0;
    for (let i = 0; i < (first & 0x7f); i++) size = size * 256 + (buf[body + i] as number);
    body += first & 0x7f;
  }
  return { body, end: body + size };
}

/** SubjectPublicKeyInfo ::= SEQUENCE { algorithm, subjectPublicKey BIT STRING }: the key bits. */
function subjectPublicKeyBits(spki: Buffer): Buffer {
  const outer = element(spki, 0);
  const algorithm = element(spki, outer.body);
  const bits = element(spki, algorithm.end);
  return spki.subarray(bits.body + 1, bits.end);
}

export const ecKey = (namedCurve = 'P-256'): Key => keyOf('ec', generateKeyPairSync('ec', { namedCurve }));
export const ed25519Key = (): Key => keyOf('ed25519', generateKeyPairSync('ed25519'));

function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error('not invertible');
  return ((s0 % m) + m) % m;
}

const b64 = (v: bigint): string => Buffer.from(v.toString(16).padStart(2, '0').replace(/^(.(..)*)$/, '0$1'), 'hex').toString('base64url');

/**
 * An RSA key pair with any public exponent (node's generator takes only small ones): two primes of
 * `modulusBits / 2` bits and d = e^-1 mod lcm-free phi. For keys an attacker could build (e of
 * thousands of bits, which OpenSSL accepts with moduli up to 3072 bits).
 */
export function rsaKeyWithExponent(modulusBits: number, e: bigint): Key {
  for (;;) {
    const p = generatePrimeSync(modulusBits / 2, { bigint: true });
    const q = generatePrimeSync(modulusBits / 2, { bigint: true });
    const n = p * q;
    if (p === q || n.toString(2).length !== modulusBits) continue;
    const phi = (p - 1n) * (q - 1n);
    let d: bigint;
    try {
      d = modInverse(e, phi);
    } catch {
      continue;
    }
    const jwk = {
      kty: 'RSA', n: b64(n), e: b64(e), d: b64(d), p: b64(p), q: b64(q),
      dp: b64(d % (p - 1n)), dq: b64(d % (q - 1n)), qi: b64(modInverse(q, p)),
    };
    const privateKey = createPrivateKey({ key: jwk, format: 'jwk' });
    return keyOf('rsa', { privateKey, publicKey: createPublicKey(privateKey) });
  }
}

/** An RSA key of `modulusBits` with node's generator (e = 65537 unless given). */
export const rsaKeyOfSize = (modulusBits: number, publicExponent = 65537): Key =>
  keyOf('rsa', generateKeyPairSync('rsa', { modulusLength: modulusBits, publicExponent }));
export const dsaKeyOfSize = (modulusLength: number, divisorLength: number): Key =>
  keyOf('dsa', generateKeyPairSync('dsa', { modulusLength, divisorLength }));
export const rsaKey = (): Key => keyOf('rsa', generateKeyPairSync('rsa', { modulusLength: 2048 }));
export const dsaKey = (): Key => keyOf('dsa', generateKeyPairSync('dsa', { modulusLength: 1024, divisorLength: 160 }));

/** The DSA SPKI with the algorithm parameters left out (RFC 3279 2.3.2: inherited from the issuer). */
export function withoutDsaParameters(key: Key): Buffer {
  return seq(seq(oid('1.2.840.10040.4.1')), bitString(subjectPublicKeyBits(key.spki)));
}

function signatureAlgorithm(signer: Key): Buffer {
  switch (signer.kind) {
    case 'ec': return seq(oid('1.2.840.10045.4.3.2'));
    case 'rsa': return seq(oid('1.2.840.113549.1.1.11'), NULL);
    case 'dsa': return seq(oid('2.16.840.1.101.3.4.3.2'));
    case 'ed25519': return seq(oid('1.3.101.112'));
  }
}

// ---------------------------------------------------------------------------------------------
// Extensions (RFC 5280 section 4.2.1).

export interface Extension {
  readonly oid: string;
  readonly critical: boolean;
  readonly value: Buffer;
}

export const ext = (o: string, critical: boolean, value: Buffer): Extension => ({ oid: o, critical, value });

export function basicConstraints(ca: boolean, pathLen?: number, critical = true): Extension {
  return ext('2.5.29.19', critical, seq(...(ca ? [BOOLEAN_TRUE] : []), ...(pathLen === undefined ? [] : [integer(pathLen)])));
}

export const KU = {
  digitalSignature: 0, nonRepudiation: 1, keyEncipherment: 2, dataEncipherment: 3, keyAgreement: 4, keyCertSign: 5, cRLSign: 6,
} as const;

export function keyUsage(bits: readonly number[], critical = true): Extension {
  let value = 0;
  for (const bit of bits) value |= 0x8000 >> bit;
  const bytes = value & 0xff ? Buffer.of(value >> 8, value & 0xff) : Buffer.of(value >> 8);
  let unused = 0;
  const last = bytes[bytes.length - 1] as number;
  if (last !== 0) while (((last >> unused) & 1) === 0) unused++;
  return ext('2.5.29.15', critical, bitString(bytes, unused));
}

export function extKeyUsage(oids: readonly string[], critical = false): Extension {
  return ext('2.5.29.37', critical, seq(...oids.map(oid)));
}

export const subjectKeyId = (key: Key): Extension => ext('2.5.29.14', false, tlv(0x04, key.keyId));
export const authorityKeyId = (key: Key): Extension => ext('2.5.29.35', false, seq(tlv(0x80, key.keyId)));
export const certificatePolicies = (...policies: readonly string[]): Extension =>
  ext('2.5.29.32', false, seq(...policies.map((p) => seq(oid(p)))));

/** GeneralName (RFC 5280 section 4.2.1.6). */
export const GN = {
  email: (v: string): Buffer => tlv(0x81, Buffer.from(v, 'latin1')),
  dns: (v: string): Buffer => tlv(0x82, Buffer.from(v, 'latin1')),
  dir: (nameDer: Buffer): Buffer => tlv(0xa4, nameDer),
  uri: (v: string): Buffer => tlv(0x86, Buffer.from(v, 'latin1')),
  ip: (bytes: readonly number[]): Buffer => tlv(0x87, Buffer.from(bytes)),
};

export const subjectAltName = (...names: readonly Buffer[]): Extension => ext('2.5.29.17', false, seq(...names));

export function nameConstraints(permitted: readonly Buffer[], excluded: readonly Buffer[] = [], critical = true): Extension {
  const subtrees = (names: readonly Buffer[]): Buffer[] => names.map((n) => seq(n));
  return ext('2.5.29.30', critical, seq(
    ...(permitted.length > 0 ? [tlv(0xa0, ...subtrees(permitted))] : []),
    ...(excluded.length > 0 ? [tlv(0xa1, ...subtrees(excluded))] : []),
  ));
}

// ---------------------------------------------------------------------------------------------
// Certificates.

export type Time = Date | { readonly utc: string } | { readonly generalized: string };

function time(t: Time): Buffer {
  if (t instanceof Date) {
    const iso = t.toISOString().replace(/[-:T]/g, '').slice(0, 14);
    return t.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`)) : tlv(0x18, Buffer.from(`${iso}Z`));
  }
  return 'utc' in t ? tlv(0x17, Buffer.from(t.utc)) : tlv(0x18, Buffer.from(t.generalized));
}

export interface CertSpec {
  readonly serial: number;
  readonly issuer: Buffer;
  readonly subject: Buffer;
  readonly notBefore: Time;
  readonly notAfter: Time;
  /** The certified key. */
  readonly key: Key;
  /** The SPKI to write instead of the key's own (e.g. DSA without parameters). */
  readonly spki?: Buffer;
  /** The issuer's key (the certificate's own key when self-signed). */
  readonly signer: Key;
  readonly extensions: readonly Extension[];
  readonly issuerUniqueId?: Buffer;
  readonly subjectUniqueId?: Buffer;
  /** Flip one bit of the signature (an invalid signature over a well-formed certificate). */
  readonly badSignature?: boolean;
}

export function certificate(spec: CertSpec): Buffer {
  const alg = signatureAlgorithm(spec.signer);
  const tbs = seq(
    tlv(0xa0, integer(2)),
    integer(spec.serial),
    alg,
    spec.issuer,
    seq(time(spec.notBefore), time(spec.notAfter)),
    spec.subject,
    spec.spki ?? spec.key.spki,
    ...(spec.issuerUniqueId !== undefined ? [tlv(0x81, Buffer.of(0), spec.issuerUniqueId)] : []),
    ...(spec.subjectUniqueId !== undefined ? [tlv(0x82, Buffer.of(0), spec.subjectUniqueId)] : []),
    ...(spec.extensions.length > 0
      ? [tlv(0xa3, seq(...spec.extensions.map((e) => seq(oid(e.oid), ...(e.critical ? [BOOLEAN_TRUE] : []), tlv(0x04, e.value)))))]
      : []),
  );
  const signature = spec.signer.kind === 'ed25519' ? sign(null, tbs, spec.signer.privateKey)
    : sign('sha256', tbs, spec.signer.kind === 'rsa' ? spec.signer.privateKey : { key: spec.signer.privateKey, dsaEncoding: 'der' });
  if (spec.badSignature === true) signature[signature.length - 3] = (signature[signature.length - 3] as number) ^ 0x04;
  return seq(tbs, alg, bitString(signature));
}

export function toPem(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN CERTIFICATE-----\n${(b64.match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`;
}
