/**
 * The one signature check (src/signature.ts): which algorithms and parameters it accepts, with
 * signatures made by node:crypto over arbitrary bytes and AlgorithmIdentifiers built by hand, so
 * the parameter combinations no CA tool emits (MD5 in RSASSA-PSS, a mismatched MGF1 hash, another
 * trailer field) are covered too.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { TAG, encode, encodeOid } from '../../src/der.js';
import { verifySigned, verifySignedAsync, type Signed } from '../../src/signature.js';

const DATA = Buffer.from('to be signed: a tbsCertificate, a tbsCertList or a ResponseData');
const OIDS = {
  md5: '1.2.840.113549.2.5', sha1: '1.3.14.3.2.26', sha256: '2.16.840.1.101.3.4.2.1', sha384: '2.16.840.1.101.3.4.2.2',
  mgf1: '1.2.840.113549.1.1.8', pss: '1.2.840.113549.1.1.10',
} as const;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const dsa = generateKeyPairSync('dsa', { modulusLength: 2048, divisorLength: 256 });

const hashAlgorithm = (oid: string): Uint8Array => encode(TAG.sequence, encodeOid(oid), encode(TAG.null));

/** RSASSA-PSS-params (RFC 4055 3.1); a field left undefined is omitted (its default applies). */
function pssParameters(fields: { hash?: string; mgfHash?: string; salt?: number; trailer?: number }): Uint8Array {
  const parts: Uint8Array[] = [];
  if (fields.hash !== undefined) parts.push(encode(0xa0, hashAlgorithm(fields.hash)));
  if (fields.mgfHash !== undefined) parts.push(encode(0xa1, encode(TAG.sequence, encodeOid(OIDS.mgf1), hashAlgorithm(fields.mgfHash))));
  if (fields.salt !== undefined) parts.push(encode(0xa2, encode(TAG.integer, Uint8Array.of(fields.salt))));
  if (fields.trailer !== undefined) parts.push(encode(0xa3, encode(TAG.integer, Uint8Array.of(fields.trailer))));
  return encode(TAG.sequence, ...parts);
}

function pssSigned(digest: string, salt: number, parameters: Uint8Array | null): Signed {
  const signature = sign(digest, DATA, { key: rsa.privateKey, padding: 6, saltLength: salt });
  return { tbs: DATA, signatureAlgorithm: { oid: OIDS.pss, parameters }, signature };
}

function signed(oid: string, digest: string | null, key: KeyObject): Signed {
  return { tbs: DATA, signatureAlgorithm: { oid, parameters: null }, signature: sign(digest, DATA, key) };
}

describe('verifySigned: one hash rule for every scheme', () => {
  test('RSASSA-PSS over SHA-256 with MGF1-SHA-256 verifies, and a tampered signature does not', () => {
    const good = pssSigned('sha256', 32, pssParameters({ hash: OIDS.sha256, mgfHash: OIDS.sha256, salt: 32 }));
    assert.equal(verifySigned(good, rsa.publicKey), 'valid');
    const tampered = { ...good, signature: Buffer.from(good.signature).fill(1, 0, 1) };
    assert.equal(verifySigned(tampered, rsa.publicKey), 'invalid');
  });

  test('RSASSA-PSS over SHA-1 or MD5, MGF1 over either, or the SHA-1 defaults (no parameters) is weak', () => {
    const cases: Array<[string, Signed]> = [
      ['sha1 / mgf1-sha1', pssSigned('sha1', 20, pssParameters({ hash: OIDS.sha1, mgfHash: OIDS.sha1, salt: 20 }))],
      ['md5 / mgf1-md5', pssSigned('md5', 16, pssParameters({ hash: OIDS.md5, mgfHash: OIDS.md5, salt: 16 }))],
      ['sha256 / mgf1-sha1', pssSigned('sha256', 32, pssParameters({ hash: OIDS.sha256, mgfHash: OIDS.sha1, salt: 32 }))],
      ['defaults (sha1)', pssSigned('sha1', 20, null)],
      ['empty params (sha1)', pssSigned('sha1', 20, pssParameters({}))],
    ];
    for (const [name, value] of cases) assert.equal(verifySigned(value, rsa.publicKey), 'weak', name);
  });

  test('RSASSA-PSS with MGF1 over another SHA-2 hash, another trailer field, or malformed parameters is invalid', () => {
    assert.equal(verifySigned(pssSigned('sha256', 32, pssParameters({ hash: OIDS.sha256, mgfHash: OIDS.sha384, salt: 32 })), rsa.publicKey), 'invalid');
    assert.equal(verifySigned(pssSigned('sha256', 32, pssParameters({ hash: OIDS.sha256, mgfHash: OIDS.sha256, salt: 32, trailer: 2 })), rsa.publicKey), 'invalid');
    assert.equal(verifySigned(pssSigned('sha256', 32, Uint8Array.of(0x30, 0x03, 0x02, 0x01)), rsa.publicKey), 'invalid');
  });

  test('PKCS#1 v1.5, ECDSA and DSA over SHA-1 are weak; over SHA-256 they verify; allowWeak (anchor self-signatures) verifies SHA-1', () => {
    assert.equal(verifySigned(signed('1.2.840.113549.1.1.5', 'sha1', rsa.privateKey), rsa.publicKey), 'weak');
    assert.equal(verifySigned(signed('1.2.840.113549.1.1.5', 'sha1', rsa.privateKey), rsa.publicKey, true), 'valid');
    assert.equal(verifySigned(signed('1.2.840.113549.1.1.4', 'md5', rsa.privateKey), rsa.publicKey), 'weak');
    assert.equal(verifySigned(signed('1.2.840.10045.4.1', 'sha1', ec.privateKey), ec.publicKey), 'weak');
    assert.equal(verifySigned(signed('1.2.840.10040.4.3', 'sha1', dsa.privateKey), dsa.publicKey), 'weak');
    assert.equal(verifySigned(signed('1.2.840.113549.1.1.11', 'sha256', rsa.privateKey), rsa.publicKey), 'valid');
    assert.equal(verifySigned(signed('1.2.840.10045.4.3.2', 'sha256', ec.privateKey), ec.publicKey), 'valid');
    assert.equal(verifySigned(signed('2.16.840.1.101.3.4.3.2', 'sha256', dsa.privateKey), dsa.publicKey), 'valid');
  });

  test('a key of another type than the algorithm names, or an unknown algorithm, is invalid', () => {
    assert.equal(verifySigned(signed('1.2.840.113549.1.1.11', 'sha256', rsa.privateKey), ec.publicKey), 'invalid');
    assert.equal(verifySigned(signed('1.2.840.10045.4.3.2', 'sha256', ec.privateKey), dsa.publicKey), 'invalid');
    assert.equal(verifySigned({ ...signed('1.2.840.113549.1.1.11', 'sha256', rsa.privateKey), signatureAlgorithm: { oid: '1.2.3.4', parameters: null } }, rsa.publicKey), 'invalid');
  });

  test('the thread-pool variant (CRLs) gives the same verdicts', async () => {
    assert.equal(await verifySignedAsync(signed('1.2.840.10045.4.3.2', 'sha256', ec.privateKey), ec.publicKey), 'valid');
    assert.equal(await verifySignedAsync(signed('1.2.840.10045.4.1', 'sha1', ec.privateKey), ec.publicKey), 'weak');
    assert.equal(await verifySignedAsync(pssSigned('sha1', 20, null), rsa.publicKey), 'weak');
    assert.equal(await verifySignedAsync(signed('1.2.840.113549.1.1.11', 'sha256', rsa.privateKey), ec.publicKey), 'invalid');
  });
});
