/**
 * The one signature check of the verifier: certificates (path validation), CRLs and OCSP responses
 * (revocation) all go through `verifySigned`, and a certificate's issuer is recognised by one rule,
 * `issuedBy`, wherever it is looked for. So the two can never disagree about which algorithms are
 * acceptable or which certificate issued which.
 *
 * Algorithms (RFC 5280 4.1.1.2 with RFC 3279, 4055, 5758, 8410): RSASSA-PKCS1-v1_5, RSASSA-PSS,
 * ECDSA and DSA over SHA-224/256/384/512 or SHA3-224/256/384/512, and Ed25519 / Ed448.
 *
 * One hash rule for every scheme: MD2, MD4, MD5 and SHA-1 are refused (`'weak'`), whether named by
 * the signature OID (sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-SHA1, ...) or by RSASSA-PSS
 * parameters (hashAlgorithm, or the MGF1 hash; both default to SHA-1 when absent, RFC 4055 3.1).
 * RSASSA-PSS is accepted with MGF1 over the same hash as the message digest (what RFC 4055 3.1
 * recommends and what node:crypto can verify) and trailerField 1 only. Anything else, including an
 * algorithm not listed here, is `'invalid'`: nothing is handed to a generic verifier that would
 * accept more than this list.
 */
import { verify as verifyBytes, type KeyObject, type VerifyKeyObjectInput } from 'node:crypto';
import type { ParsedCertificate } from './certificate.js';
import {
  DerError, TAG, algorithmOf, children, ctx, decodeSmallInteger, expectTag, readWhole, type AlgorithmIdentifier,
} from './der.js';

/** A signed structure (certificate, CRL, BasicOCSPResponse): the signed bytes, how, and the signature. */
export interface Signed {
  readonly tbs: Uint8Array;
  readonly signatureAlgorithm: AlgorithmIdentifier;
  readonly signature: Uint8Array;
}

export type SignatureVerdict = 'valid' | 'invalid' | 'weak';

/** Digest algorithm OIDs (NIST, OIW, RSADSI) -> node:crypto digest name, and whether it is refused. */
const DIGESTS: ReadonlyMap<string, Digest> = new Map([
  ['2.16.840.1.101.3.4.2.4', ok('sha224')], ['2.16.840.1.101.3.4.2.1', ok('sha256')], ['2.16.840.1.101.3.4.2.2', ok('sha384')],
  ['2.16.840.1.101.3.4.2.3', ok('sha512')], ['2.16.840.1.101.3.4.2.7', ok('sha3-224')], ['2.16.840.1.101.3.4.2.8', ok('sha3-256')],
  ['2.16.840.1.101.3.4.2.9', ok('sha3-384')], ['2.16.840.1.101.3.4.2.10', ok('sha3-512')],
  ['1.3.14.3.2.26', weak('sha1')], ['1.2.840.113549.2.5', weak('md5')], ['1.2.840.113549.2.2', weak('md2')], ['1.2.840.113549.2.4', weak('md4')],
]);

interface Digest {
  /** node:crypto digest name; null for EdDSA (no pre-hash). */
  readonly name: string | null;
  /** MD2, MD4, MD5, SHA-1. */
  readonly weak: boolean;
}

function ok(name: string | null): Digest {
  return { name, weak: false };
}

function weak(name: string): Digest {
  return { name, weak: true };
}

interface Scheme {
  /** node:crypto asymmetricKeyType values the scheme accepts. */
  readonly keyTypes: readonly string[];
  readonly digest: Digest;
}

const rsa = (digest: Digest): Scheme => ({ keyTypes: ['rsa'], digest });
const ec = (digest: Digest): Scheme => ({ keyTypes: ['ec'], digest });
const dsa = (digest: Digest): Scheme => ({ keyTypes: ['dsa'], digest });

/** Signature algorithm OID -> scheme, except RSASSA-PSS (its parameters decide, see `verifierFor`). */
const SCHEMES: ReadonlyMap<string, Scheme> = new Map([
  ['1.2.840.113549.1.1.14', rsa(ok('sha224'))], ['1.2.840.113549.1.1.11', rsa(ok('sha256'))],
  ['1.2.840.113549.1.1.12', rsa(ok('sha384'))], ['1.2.840.113549.1.1.13', rsa(ok('sha512'))],
  ['2.16.840.1.101.3.4.3.13', rsa(ok('sha3-224'))], ['2.16.840.1.101.3.4.3.14', rsa(ok('sha3-256'))],
  ['2.16.840.1.101.3.4.3.15', rsa(ok('sha3-384'))], ['2.16.840.1.101.3.4.3.16', rsa(ok('sha3-512'))],
  ['1.2.840.10045.4.3.1', ec(ok('sha224'))], ['1.2.840.10045.4.3.2', ec(ok('sha256'))],
  ['1.2.840.10045.4.3.3', ec(ok('sha384'))], ['1.2.840.10045.4.3.4', ec(ok('sha512'))],
  ['2.16.840.1.101.3.4.3.9', ec(ok('sha3-224'))], ['2.16.840.1.101.3.4.3.10', ec(ok('sha3-256'))],
  ['2.16.840.1.101.3.4.3.11', ec(ok('sha3-384'))], ['2.16.840.1.101.3.4.3.12', ec(ok('sha3-512'))],
  ['2.16.840.1.101.3.4.3.1', dsa(ok('sha224'))], ['2.16.840.1.101.3.4.3.2', dsa(ok('sha256'))],
  ['2.16.840.1.101.3.4.3.3', dsa(ok('sha384'))], ['2.16.840.1.101.3.4.3.4', dsa(ok('sha512'))],
  ['2.16.840.1.101.3.4.3.5', dsa(ok('sha3-224'))], ['2.16.840.1.101.3.4.3.6', dsa(ok('sha3-256'))],
  ['2.16.840.1.101.3.4.3.7', dsa(ok('sha3-384'))], ['2.16.840.1.101.3.4.3.8', dsa(ok('sha3-512'))],
  ['1.3.101.112', { keyTypes: ['ed25519'], digest: ok(null) }], ['1.3.101.113', { keyTypes: ['ed448'], digest: ok(null) }],
  // Refused digests: md2, md4, md5, sha1 with RSA (and OIW sha1WithRSA), ecdsa-with-SHA1, dsa-with-SHA1 (and OIW).
  ['1.2.840.113549.1.1.2', rsa(weak('md2'))], ['1.2.840.113549.1.1.3', rsa(weak('md4'))], ['1.2.840.113549.1.1.4', rsa(weak('md5'))],
  ['1.2.840.113549.1.1.5', rsa(weak('sha1'))], ['1.3.14.3.2.29', rsa(weak('sha1'))], ['1.2.840.10045.4.1', ec(weak('sha1'))],
  ['1.2.840.10040.4.3', dsa(weak('sha1'))], ['1.3.14.3.2.27', dsa(weak('sha1'))],
]);

const RSASSA_PSS = '1.2.840.113549.1.1.10';
const MGF1 = '1.2.840.113549.1.1.8';
const SHA1 = '1.3.14.3.2.26';

/** RSASSA-PSS-params (RFC 4055 section 3.1) with their defaults. Throws DerError when malformed. */
export function pssParams(params: Uint8Array | null): { hashOid: string; mgfOid: string; mgfHashOid: string; saltLength: number; trailerField: number } {
  const out = { hashOid: SHA1, mgfOid: MGF1, mgfHashOid: SHA1, saltLength: 20, trailerField: 1 };
  if (params === null) return out;
  for (const field of children(params, readWhole(params, TAG.sequence, 'RSASSA-PSS-params'))) {
    const [inner, ...extra] = children(params, field);
    if (inner === undefined || extra.length > 0) throw new DerError('bad RSASSA-PSS-params');
    if (field.tag === ctx(0)) {
      out.hashOid = algorithmOf(params, inner, 'hashAlgorithm').oid;
    } else if (field.tag === ctx(1)) {
      const mgf = algorithmOf(params, inner, 'maskGenAlgorithm');
      out.mgfOid = mgf.oid;
      if (mgf.parameters === null) throw new DerError('MGF1 without a hash');
      out.mgfHashOid = algorithmOf(mgf.parameters, readWhole(mgf.parameters, TAG.sequence, 'MGF1 hash'), 'MGF1 hash').oid;
    } else if (field.tag === ctx(2)) {
      out.saltLength = decodeSmallInteger(params, expectTag(inner, TAG.integer, 'saltLength'), 'saltLength');
    } else if (field.tag === ctx(3)) {
      out.trailerField = decodeSmallInteger(params, expectTag(inner, TAG.integer, 'trailerField'), 'trailerField');
    } else {
      throw new DerError('bad RSASSA-PSS-params');
    }
  }
  return out;
}

interface Verifier {
  readonly digest: string | null;
  /** null: known to be refused, never verified. */
  readonly key: KeyObject | VerifyKeyObjectInput | null;
  readonly weak: boolean;
}

/** A refused digest that could not be verified anyway (RSASSA-PSS with MGF1 over SHA-1 and another message digest). */
const REFUSED: Verifier = { digest: null, key: null, weak: true };

/** How node:crypto verifies under `algorithm` with `key`; null when the algorithm is unknown, malformed or does not fit the key. */
function verifierFor(algorithm: AlgorithmIdentifier, key: KeyObject): Verifier | null {
  const keyType = key.asymmetricKeyType ?? '';
  if (algorithm.oid === RSASSA_PSS) {
    let params: ReturnType<typeof pssParams>;
    try {
      params = pssParams(algorithm.parameters);
    } catch {
      return null;
    }
    const digest = DIGESTS.get(params.hashOid);
    const weakMgf = params.mgfOid === MGF1 && DIGESTS.get(params.mgfHashOid)?.weak === true;
    if (digest === undefined || params.mgfOid !== MGF1 || params.trailerField !== 1 || (keyType !== 'rsa' && keyType !== 'rsa-pss')) return null;
    // MGF1 over another hash than the message digest cannot be verified here; over a weak one it is refused anyway.
    if (params.mgfHashOid !== params.hashOid) return weakMgf ? REFUSED : null;
    return { digest: digest.name, key: { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: params.saltLength }, weak: digest.weak };
  }
  const scheme = SCHEMES.get(algorithm.oid);
  if (scheme === undefined || !scheme.keyTypes.includes(keyType)) return null;
  return { digest: scheme.digest.name, key, weak: scheme.digest.weak };
}

/**
 * Checks `signed` under `key`. `allowWeak` lets a refused digest through; it exists for a trust
 * anchor's self-signature only, which proves nothing (the anchor is trusted by configuration).
 */
export function verifySigned(signed: Signed, key: KeyObject, allowWeak = false): SignatureVerdict {
  const verifier = verifierFor(signed.signatureAlgorithm, key);
  if (verifier === null) return 'invalid';
  if (verifier.weak && !allowWeak) return 'weak';
  if (verifier.key === null) return 'invalid';
  try {
    return verifyBytes(verifier.digest, signed.tbs, verifier.key, signed.signature) ? 'valid' : 'invalid';
  } catch {
    return 'invalid';
  }
}

/** The same (weak digests refused), hashing on libuv's thread pool: for CRLs, which can be megabytes long. */
export function verifySignedAsync(signed: Signed, key: KeyObject): Promise<SignatureVerdict> {
  return new Promise((resolve) => {
    const verifier = verifierFor(signed.signatureAlgorithm, key);
    if (verifier === null || verifier.weak || verifier.key === null) {
      resolve(verifier === null || !verifier.weak ? 'invalid' : 'weak');
      return;
    }
    const verifyKey = verifier.key;
    try {
      verifyBytes(verifier.digest, signed.tbs, verifyKey, signed.signature, (error, valid) => resolve(error === null && valid ? 'valid' : 'invalid'));
    } catch {
      resolve('invalid');
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Issuers (RFC 5280 section 6.1.3 (a)(1), (a)(4); 4.2.1.1).

/**
 * Whether `issuer` can be the issuer of `child` by name and key identifier: `child`'s issuer name
 * matches `issuer`'s subject under RFC 5280 section 7.1 (string type and ASCII case do not matter,
 * spaces are collapsed: the `DistinguishedName.key` comparison), and when both key identifiers are
 * present they are equal (section 4.2.1.1).
 */
export function issuerMatches(child: ParsedCertificate, issuer: ParsedCertificate): boolean {
  if (child.issuer.key !== issuer.subject.key) return false;
  if (child.authorityKeyId === null || issuer.subjectKeyId === null) return true;
  return Buffer.from(child.authorityKeyId).equals(issuer.subjectKeyId);
}

/**
 * The one issuer rule of the verifier: `issuer` (whose public key is `issuerKey`) is named as
 * `child`'s issuer (`issuerMatches`) and its key verifies `child`'s signature (`verifySigned`).
 * Path validation links certificates with it, and revocation recognises a delegated OCSP responder
 * with it.
 */
export function issuedBy(child: ParsedCertificate, issuer: ParsedCertificate, issuerKey: KeyObject, allowWeak = false): SignatureVerdict {
  if (!issuerMatches(child, issuer)) return 'invalid';
  return verifySigned(child, issuerKey, allowWeak);
}
