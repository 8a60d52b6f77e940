/**
 * Which certificate public keys the verifier will check a signature with: algorithms and sizes.
 *
 * Every key on a presented chain comes from the request, so the cost of one signature check is
 * the attacker's choice unless it is bounded here, before the key is imported. OpenSSL (which
 * node:crypto uses) accepts an RSA key of up to 3072 bits with a public exponent as large as the
 * modulus: one check then costs a full private-key-sized exponentiation (about 7 ms instead of
 * 0.07 ms for e = 65537 on the project's reference machine). So, as Go's crypto/x509 and BoringSSL
 * do, only keys of usual shapes are used:
 *
 *   - RSA (rsaEncryption and RSASSA-PSS, RFC 8017 A.1.1): a modulus of 1024 to 8192 bits, odd; a
 *     public exponent that is odd, at least 3, of at most 33 bits and below the modulus.
 *     Sources: BoringSSL `rsa_check_public_key` (e odd, 2 to 33 bits, `kMaxExponentBits`; n up to
 *     16384 bits); Go `crypto/rsa` `checkPub` (e <= 2^31-1) and `crypto/tls`
 *     `defaultMaxRSAKeySize = 8192` (the largest key it verifies a certificate signature with);
 *     Go 1.24 `crypto/rsa` refuses moduli below 1024 bits, as does OpenSSL's default security level.
 *   - EC (RFC 5480): the named curves P-256, P-384 and P-521 only, the curves Go's crypto/x509 and
 *     BoringSSL's X.509 code support; explicit curve parameters (RFC 3279 2.3.5 ECParameters)
 *     and `implicitlyCA` are refused (RFC 5480 2.1.1: MUST NOT be used).
 *   - Ed25519 and Ed448 (RFC 8410): fixed sizes.
 *   - DSA (RFC 3279 2.3.2): domain parameters present, with the (L, N) sizes of FIPS 186-4 4.2:
 *     (1024, 160), (2048, 224), (2048, 256), (3072, 256). OpenSSL would take p up to 10,000 bits.
 *   - anything else: refused, without trying to import it.
 */
import type { KeyObject } from 'node:crypto';
import { DerError, TAG, algorithmOf, bitStringBytes, children, content, expectTag, oidOf, readWhole, type Tlv } from './der.js';

export const RSA_MIN_MODULUS_BITS = 1024;
export const RSA_MAX_MODULUS_BITS = 8192;
export const RSA_MAX_EXPONENT_BITS = 33;

const OIDS = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  ecPublicKey: '1.2.840.10045.2.1',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
  dsa: '1.2.840.10040.4.1',
} as const;

/** Named curves accepted (RFC 5480 2.1.1.1), with their field size in bytes. */
const NAMED_CURVES: ReadonlyMap<string, { readonly name: string; readonly size: number }> = new Map([
  ['1.2.840.10045.3.1.7', { name: 'P-256', size: 32 }],
  ['1.3.132.0.34', { name: 'P-384', size: 48 }],
  ['1.3.132.0.35', { name: 'P-521', size: 66 }],
]);

/** FIPS 186-4 section 4.2 DSA (L, N) pairs. */
const DSA_SIZES: readonly (readonly [number, number])[] = [[1024, 160], [2048, 224], [2048, 256], [3072, 256]];

/** Bit length of a positive DER INTEGER's contents; throws DerError when it is not positive and minimal. */
function positiveBits(bytes: Uint8Array, what: string): number {
  if (bytes.length === 0) throw new DerError(`empty ${what}`);
  if ((bytes[0]! & 0x80) !== 0) throw new DerError(`negative ${what}`);
  if (bytes.length > 1 && bytes[0] === 0 && (bytes[1]! & 0x80) === 0) throw new DerError(`non-minimal ${what}`);
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  if (start === bytes.length) return 0;
  return (bytes.length - start - 1) * 8 + (32 - Math.clz32(bytes[start]!));
}

function integerContents(buf: Uint8Array, tlv: Tlv | undefined, what: string): Uint8Array {
  return content(buf, expectTag(tlv, TAG.integer, what));
}

/** RSAPublicKey (RFC 8017 A.1.1) bounds; a reason when refused. */
function rsaProblem(key: Uint8Array): string | null {
  const [n, e, ...rest] = children(key, readWhole(key, TAG.sequence, 'RSAPublicKey'));
  if (rest.length > 0) throw new DerError('bad RSAPublicKey');
  const modulus = integerContents(key, n, 'RSA modulus');
  const exponent = integerContents(key, e, 'RSA public exponent');
  const nBits = positiveBits(modulus, 'RSA modulus');
  const eBits = positiveBits(exponent, 'RSA public exponent');
  if (nBits < RSA_MIN_MODULUS_BITS) return `an RSA key of ${nBits} bits (at least ${RSA_MIN_MODULUS_BITS} are required)`;
  if (nBits > RSA_MAX_MODULUS_BITS) return `an RSA key of ${nBits} bits (at most ${RSA_MAX_MODULUS_BITS} are accepted)`;
  if ((modulus[modulus.length - 1]! & 1) === 0) return 'an RSA key with an even modulus';
  if (eBits > RSA_MAX_EXPONENT_BITS) return `an RSA public exponent of ${eBits} bits (at most ${RSA_MAX_EXPONENT_BITS} are accepted)`;
  if ((exponent[exponent.length - 1]! & 1) === 0 || eBits < 2) return 'an RSA public exponent that is even or below 3';
  return null;
}

function dsaProblem(parameters: Uint8Array | null): string | null {
  if (parameters === null || parameters[0] === TAG.null) return 'a DSA key without domain parameters (parameter inheritance is not supported)';
  const [p, q, g, ...rest] = children(parameters, readWhole(parameters, TAG.sequence, 'Dss-Parms'));
  if (rest.length > 0) throw new DerError('bad Dss-Parms');
  const pBits = positiveBits(integerContents(parameters, p, 'DSA p'), 'DSA p');
  const qBits = positiveBits(integerContents(parameters, q, 'DSA q'), 'DSA q');
  const gBits = positiveBits(integerContents(parameters, g, 'DSA g'), 'DSA g');
  if (!DSA_SIZES.some(([l, n]) => l === pBits && n === qBits) || gBits > pBits) {
    return `a DSA key with ${pBits}-bit p and ${qBits}-bit q (accepted: ${DSA_SIZES.map(([l, n]) => `${l}/${n}`).join(', ')})`;
  }
  return null;
}

/**
 * Why a SubjectPublicKeyInfo (DER) will not be used to verify signatures, or null when it may.
 * Reads only the DER; never imports the key. Throws DerError when the SPKI is malformed.
 */
export function publicKeyProblem(spki: Uint8Array): string | null {
  const [algTlv, bitsTlv, ...rest] = children(spki, readWhole(spki, TAG.sequence, 'SubjectPublicKeyInfo'));
  if (rest.length > 0) throw new DerError('bad SubjectPublicKeyInfo');
  const { oid, parameters } = algorithmOf(spki, algTlv);
  const key = bitStringBytes(spki, expectTag(bitsTlv, TAG.bitString, 'subjectPublicKey'), 'subjectPublicKey');
  switch (oid) {
    case OIDS.rsaEncryption:
    case OIDS.rsassaPss:
      return rsaProblem(key);
    case OIDS.ecPublicKey: {
      if (parameters === null || parameters[0] !== TAG.oid) return 'an EC key with explicit or implicit curve parameters (only named curves are accepted)';
      const curveOid = oidOf(parameters, readWhole(parameters, TAG.oid, 'namedCurve'));
      const curve = NAMED_CURVES.get(curveOid);
      if (curve === undefined) return `an EC key on the curve ${curveOid} (accepted: P-256, P-384, P-521)`;
      const uncompressed = key.length === 1 + 2 * curve.size && key[0] === 4;
      const compressed = key.length === 1 + curve.size && (key[0] === 2 || key[0] === 3);
      return uncompressed || compressed ? null : `a malformed ${curve.name} point`;
    }
    case OIDS.ed25519:
      return key.length === 32 && parameters === null ? null : 'a malformed Ed25519 key';
    case OIDS.ed448:
      return key.length === 57 && parameters === null ? null : 'a malformed Ed448 key';
    case OIDS.dsa:
      return dsaProblem(parameters);
    default:
      return `a public key of algorithm ${oid}, which is not supported`;
  }
}

/**
 * The relative CPU cost of one signature check under `key`, in P-256 ECDSA verifications
 * (measured on OpenSSL 3.0 through node:crypto: P-256 0.085 ms, P-384 1.1 ms, P-521 1.5 ms,
 * Ed448 0.22 ms, RSA 2048/e=65537 0.04 ms, RSA 8192 with a 33-bit exponent 0.7 ms, DSA 3072 0.8
 * ms). RSA: modulus size to the power 1.5 times the exponent's squarings and multiplications,
 * rounded up (an over-estimate for large exponents). Path building spends a budget of these, so
 * that a chain of dear keys cannot cost more than a few cheap ones.
 */
export function verificationCost(key: KeyObject): number {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss': {
      const bits = details.modulusLength ?? RSA_MAX_MODULUS_BITS;
      const e = details.publicExponent ?? (1n << BigInt(RSA_MAX_EXPONENT_BITS)) - 1n;
      const eBits = e.toString(2).length;
      const eOnes = e.toString(2).replace(/0/g, '').length;
      return Math.max(1, Math.ceil(((bits / 2048) ** 1.5 * (eBits + eOnes)) / 38));
    }
    case 'ec':
      return details.namedCurve === 'prime256v1' || details.namedCurve === 'P-256' ? 1
        : details.namedCurve === 'secp384r1' || details.namedCurve === 'P-384' ? 12 : 18;
    case 'ed25519':
      return 1;
    case 'ed448':
      return 3;
    case 'dsa':
      return Math.max(2, Math.ceil(((details.modulusLength ?? 3072) / 1024) ** 2));
    default:
      return 18;
  }
}
