/**
 * `verifyJwsSignature` names why a signature does not verify: the algorithm is not ours, the key
 * cannot verify it (type, curve, size, exponent, a private key), or the bytes are wrong. The
 * differential test (`token-differential.test.ts`) compares its yes/no with jose's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createPublicKey, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { verifyJwsSignature } from '../../src/jws.js';
import { ASYMMETRIC_ALGORITHMS } from '../../src/config-schema.js';
import { keyPair } from '../helpers/keys.js';

const input = Buffer.from('eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9', 'latin1');

const rsa = keyPair('rsa', { modulusLength: 2048 });
const p256 = keyPair('ec', { namedCurve: 'P-256' });
const p384 = keyPair('ec', { namedCurve: 'P-384' });
const p521 = keyPair('ec', { namedCurve: 'P-521' });
const ed = keyPair('ed25519');

function signFor(alg: string, privateKey: KeyObject): Buffer {
  const hash = `sha${alg.slice(2)}`;
  if (alg.startsWith('RS')) return sign(hash, input, privateKey);
  if (alg.startsWith('PS')) return sign(hash, input, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 });
  if (alg.startsWith('ES')) return sign(hash, input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return sign(null, input, privateKey);
}

function pairFor(alg: string): { publicKey: KeyObject; privateKey: KeyObject } {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return rsa;
  if (alg === 'ES256') return p256;
  if (alg === 'ES384') return p384;
  if (alg === 'ES512') return p521;
  return ed;
}

test('every allowed algorithm verifies its own signature and refuses a flipped bit and a wrong length', () => {
  for (const alg of ASYMMETRIC_ALGORITHMS) {
    const { publicKey, privateKey } = pairFor(alg);
    const signature = signFor(alg, privateKey);
    assert.equal(verifyJwsSignature(alg, publicKey, input, signature), 'valid', alg);
    const flipped = Buffer.from(signature);
    flipped[5] = (flipped[5] as number) ^ 0x10;
    assert.equal(verifyJwsSignature(alg, publicKey, input, flipped), 'invalid', alg);
    assert.equal(verifyJwsSignature(alg, publicKey, input, signature.subarray(1)), 'invalid', alg);
    assert.equal(verifyJwsSignature(alg, publicKey, input, Buffer.concat([signature, Buffer.alloc(1)])), 'invalid', alg);
    assert.equal(verifyJwsSignature(alg, publicKey, input, Buffer.alloc(0)), 'invalid', alg);
    assert.equal(verifyJwsSignature(alg, publicKey, Buffer.concat([input, Buffer.from('x')]), signature), 'invalid', alg);
  }
});

test('algorithms outside the asymmetric set are unsupported, whatever the key', () => {
  for (const alg of ['none', 'HS256', 'HS512', 'ES256K', 'Ed448', 'RSA-OAEP', 'rs256', '', 'ML-DSA-44']) {
    assert.equal(verifyJwsSignature(alg, rsa.publicKey, input, Buffer.alloc(256)), 'unsupported', alg);
  }
});

test('keys that cannot verify the algorithm are key_unsuitable: type, curve, size, exponent, private keys', () => {
  const short = keyPair('rsa', { modulusLength: 1024 });
  const jwk = rsa.publicKey.export({ format: 'jwk' });
  const e1 = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: 'AQ' } as JsonWebKey, format: 'jwk' });
  const even = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: Buffer.from([1, 0, 2]).toString('base64url') } as JsonWebKey, format: 'jwk' });
  const cases: [string, KeyObject, string][] = [
    ['RS256', short.publicKey, 'RSA 1024'],
    ['PS256', e1, 'RSA e = 1'],
    ['RS256', even, 'RSA even exponent'],
    ['RS256', keyPair('rsa-pss', { modulusLength: 2048 }).publicKey, 'RSA-PSS key type'],
    ['RS256', p256.publicKey, 'EC key for RS256'],
    ['ES256', p384.publicKey, 'P-384 key for ES256'],
    ['ES384', p256.publicKey, 'P-256 key for ES384'],
    ['ES256', keyPair('ec', { namedCurve: 'secp256k1' }).publicKey, 'secp256k1 for ES256'],
    ['ES256', rsa.publicKey, 'RSA key for ES256'],
    ['EdDSA', keyPair('ed448').publicKey, 'Ed448 for EdDSA'],
    ['EdDSA', keyPair('x25519').publicKey, 'X25519 for EdDSA'],
    ['EdDSA', p256.publicKey, 'EC key for EdDSA'],
    ['RS256', rsa.privateKey, 'RSA private key'],
    ['ES256', p256.privateKey, 'EC private key'],
    ['Ed25519', ed.privateKey, 'Ed25519 private key'],
  ];
  for (const [alg, key, name] of cases) assert.equal(verifyJwsSignature(alg, key, input, Buffer.alloc(64)), 'key_unsuitable', name);
});

test('a DER-encoded ECDSA signature is invalid: JWS carries R || S (RFC 7518 3.4)', () => {
  const der = sign('sha256', input, { key: p256.privateKey, dsaEncoding: 'der' });
  assert.equal(verifyJwsSignature('ES256', p256.publicKey, input, der), 'invalid');
});
