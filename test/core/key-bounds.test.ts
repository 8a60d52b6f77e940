/**
 * Bounds on the public keys path validation verifies signatures with (src/key-bounds.ts): an
 * attacker-chosen key must not make one signature check cost more than a usual one (issue 11
 * item 4). Chains are built with the conformance builder, so each key is a real key pair.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { ChainValidator } from '../../src/chain.js';
import { publicKeyProblem, RSA_MAX_MODULUS_BITS } from '../../src/key-bounds.js';
import {
  KU, basicConstraints, certificate, dn, dsaKey, ecKey, ed25519Key, integer, keyUsage, oid, rsaKeyOfSize, rsaKeyWithExponent, seq, tlv, toPem,
  type Key,
} from '../conformance/builder.js';

const NOW = new Date('2025-01-01T00:00:00Z');
const FROM = new Date('2020-01-01T00:00:00Z');
const TO = new Date('2030-01-01T00:00:00Z');

let root: { key: Key; der: Buffer };

before(() => {
  const key = ecKey();
  const name = dn(['CN', 'Key Bounds Root']);
  root = {
    key,
    der: certificate({
      serial: 1, issuer: name, subject: name, notBefore: FROM, notAfter: TO, key, signer: key,
      extensions: [basicConstraints(true), keyUsage([KU.keyCertSign, KU.cRLSign])],
    }),
  };
});

/** root (EC) -> intermediate with `key` -> EC leaf signed by `key`; the verdict. */
async function chainWith(key: Key) {
  const intermediateName = dn(['CN', 'Key Bounds Intermediate']);
  const intermediate = certificate({
    serial: 2, issuer: dn(['CN', 'Key Bounds Root']), subject: intermediateName, notBefore: FROM, notAfter: TO, key, signer: root.key,
    extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
  });
  const leafKey = ecKey();
  const leaf = certificate({
    serial: 3, issuer: intermediateName, subject: dn(['CN', 'leaf']), notBefore: FROM, notAfter: TO, key: leafKey, signer: key,
    extensions: [basicConstraints(false, undefined, false), keyUsage([KU.digitalSignature])],
  });
  const validator = ChainValidator.fromPem([toPem(root.der)], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => NOW.getTime() });
  assert.ok(validator.ok);
  return validator.value.validate([leaf, intermediate]);
}

async function assertRefused(key: Key, detail: RegExp): Promise<void> {
  const result = await chainWith(key);
  assert.equal(result.ok, false, 'the chain must be refused');
  if (result.ok) return;
  assert.equal(result.error.reason, 'certificate_untrusted', result.error.detail);
  assert.match(result.error.detail, /a key was refused/);
  assert.match(result.error.detail, detail);
}

async function assertAccepted(key: Key): Promise<void> {
  const result = await chainWith(key);
  assert.ok(result.ok, result.ok ? '' : `${result.error.reason}: ${result.error.detail}`);
}

/** An RSA SubjectPublicKeyInfo with the given modulus and exponent bytes (no key pair behind it). */
function rsaSpki(n: Buffer, e: Buffer): Buffer {
  const rsaPublicKey = seq(integer(n), integer(e));
  return seq(seq(oid('1.2.840.113549.1.1.1'), Buffer.of(5, 0)), tlv(0x03, Buffer.of(0), rsaPublicKey));
}

function oddModulus(bits: number): Buffer {
  const bytes = randomBytes(Math.ceil(bits / 8));
  const topBits = bits % 8 === 0 ? 8 : bits % 8;
  bytes[0] = (bytes[0]! & ((1 << topBits) - 1)) | (1 << (topBits - 1));
  bytes[bytes.length - 1]! |= 1;
  return bytes;
}

describe('RSA keys (modulus and public exponent bounds)', () => {
  it('refuses an intermediate whose RSA public exponent has 1000 bits, though it signed the leaf', async () => {
    // OpenSSL accepts this key (moduli up to 3072 bits may have any exponent): each check under it
    // costs a private-key-sized exponentiation.
    await assertRefused(rsaKeyWithExponent(1024, (1n << 999n) + 1n + 2n * BigInt(`0x${randomBytes(100).toString('hex')}`)),
      /RSA public exponent of 1000 bits \(at most 33/);
  });

  it('refuses a 34-bit exponent and accepts a 33-bit one (BoringSSL kMaxExponentBits)', async () => {
    await assertRefused(rsaKeyWithExponent(1024, (1n << 33n) + 1n), /public exponent of 34 bits/);
    await assertAccepted(rsaKeyWithExponent(1024, (1n << 33n) - 1n));
  });

  it('accepts e = 3 and e = 65537; refuses a 512-bit modulus', async () => {
    await assertAccepted(rsaKeyOfSize(2048));
    await assertAccepted(rsaKeyOfSize(1024, 3));
    await assertRefused(rsaKeyOfSize(512), /RSA key of 512 bits \(at least 1024/);
  });

  it('modulus of at most 8192 bits, odd; exponent odd and at least 3 (on the SPKI alone)', () => {
    const e = Buffer.of(1, 0, 1);
    assert.equal(publicKeyProblem(rsaSpki(oddModulus(RSA_MAX_MODULUS_BITS), e)), null);
    assert.match(publicKeyProblem(rsaSpki(oddModulus(RSA_MAX_MODULUS_BITS + 1), e)) ?? '', /RSA key of 8193 bits \(at most 8192/);
    assert.match(publicKeyProblem(rsaSpki(oddModulus(16384), Buffer.of(3))) ?? '', /16384 bits/);
    const even = oddModulus(2048);
    even[even.length - 1]! &= 0xfe;
    assert.match(publicKeyProblem(rsaSpki(even, e)) ?? '', /even modulus/);
    assert.match(publicKeyProblem(rsaSpki(oddModulus(2048), Buffer.of(1, 0, 0))) ?? '', /even or below 3/);
    assert.match(publicKeyProblem(rsaSpki(oddModulus(2048), Buffer.of(1))) ?? '', /even or below 3/);
    assert.match(publicKeyProblem(rsaSpki(oddModulus(3072), oddModulus(3000))) ?? '', /3000 bits/);
  });
});

describe('EC, EdDSA and DSA keys', () => {
  it('accepts P-256, P-384, P-521 and Ed25519', async () => {
    await assertAccepted(ecKey('P-384'));
    await assertAccepted(ecKey('P-521'));
    await assertAccepted(ed25519Key());
  });

  it('refuses other named curves (secp256k1, brainpool)', async () => {
    await assertRefused(ecKey('secp256k1'), /curve 1\.3\.132\.0\.10/);
    await assertRefused(ecKey('brainpoolP256r1'), /curve 1\.3\.36\.3\.3\.2\.8\.1\.1\.7/);
  });

  it('refuses explicit curve parameters, even for P-256', async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256', paramEncoding: 'explicit' });
    const spki = pair.publicKey.export({ type: 'spki', format: 'der' });
    assert.match(publicKeyProblem(spki) ?? '', /explicit or implicit curve parameters/);
    const named = ecKey();
    await assertRefused({ ...named, spki, publicKey: pair.publicKey, privateKey: pair.privateKey }, /explicit or implicit/);
  });

  it('DSA: accepts the FIPS 186-4 sizes, refuses other sizes and missing parameters', async () => {
    await assertAccepted(dsaKey());
    const dss = (pBits: number, qBits: number): Buffer => seq(seq(oid('1.2.840.10040.4.1'),
      seq(integer(oddModulus(pBits)), integer(oddModulus(qBits)), integer(Buffer.of(2)))), tlv(0x03, Buffer.of(0), integer(Buffer.of(5))));
    assert.equal(publicKeyProblem(dss(2048, 256)), null);
    assert.match(publicKeyProblem(dss(4096, 256)) ?? '', /4096-bit p and 256-bit q/);
    assert.match(publicKeyProblem(dss(1024, 256)) ?? '', /1024-bit p and 256-bit q/);
    assert.match(publicKeyProblem(seq(seq(oid('1.2.840.10040.4.1')), tlv(0x03, Buffer.of(0), integer(Buffer.of(5))))) ?? '', /without domain parameters/);
  });

  it('refuses unknown key algorithms without importing them (X25519, GOST-like OIDs)', () => {
    const x25519 = generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'der' });
    assert.match(publicKeyProblem(x25519) ?? '', /algorithm 1\.3\.101\.110/);
    assert.match(publicKeyProblem(seq(seq(oid('1.2.643.7.1.1.1.1')), tlv(0x03, Buffer.of(0), Buffer.alloc(64, 1)))) ?? '', /not supported/);
  });
});

describe('trust anchors', () => {
  it('a configured anchor with a refused key is reported as trust_anchors_unavailable with the reason', () => {
    const key = ecKey('secp256k1');
    const name = dn(['CN', 'k1 root']);
    const der = certificate({
      serial: 9, issuer: name, subject: name, notBefore: FROM, notAfter: TO, key, signer: key,
      extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
    });
    const result = ChainValidator.fromPem([toPem(der)], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0 });
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.error.detail, /not supported: it is an EC key on the curve 1\.3\.132\.0\.10/);
  });
});

describe('signature cost budget (path search)', () => {
  it('verificationCost: cheap keys 1, dear keys more, in proportion to measured verification times', async () => {
    const { verificationCost } = await import('../../src/key-bounds.js');
    const cost = (k: Key): number => verificationCost(k.publicKey);
    assert.equal(cost(ecKey()), 1);
    assert.equal(cost(ed25519Key()), 1);
    assert.equal(cost(ecKey('P-384')), 12);
    assert.equal(cost(ecKey('P-521')), 18);
    assert.equal(cost(rsaKeyOfSize(2048)), 1);
    assert.ok(cost(rsaKeyWithExponent(1024, (1n << 33n) - 1n)) >= cost(rsaKeyOfSize(1024)));
    assert.equal(cost(dsaKey()), 2);
  });

  it('a P-521 PKI still validates (leaf -> P-521 intermediate -> P-521 root); a hostile P-521 pool hits the limit', async () => {
    const rootKey = ecKey('P-521');
    const rootName = dn(['CN', 'P-521 Root']);
    const rootDer = certificate({
      serial: 1, issuer: rootName, subject: rootName, notBefore: FROM, notAfter: TO, key: rootKey, signer: rootKey,
      extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
    });
    const caName = dn(['CN', 'P-521 CA']);
    const ca = (key: Key, signer: Key, serial: number): Buffer => certificate({
      serial, issuer: rootName, subject: caName, notBefore: FROM, notAfter: TO, key, signer,
      extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
    });
    const caKey = ecKey('P-521');
    const leaf = certificate({
      serial: 3, issuer: caName, subject: dn(['CN', 'leaf']), notBefore: FROM, notAfter: TO, key: ecKey(), signer: caKey,
      extensions: [keyUsage([KU.digitalSignature])],
    });
    const validator = ChainValidator.fromPem([toPem(rootDer)], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => NOW.getTime() });
    assert.ok(validator.ok);
    const good = await validator.value.validate([leaf, ca(caKey, rootKey, 2)]);
    assert.ok(good.ok, good.ok ? '' : good.error.detail);
    // Eight impostor CAs with the same name before the real one: 9 P-521 checks at 18 exceed the budget of 64.
    const impostors = Array.from({ length: 8 }, (_, i) => { const k = ecKey('P-521'); return ca(k, k, 10 + i); });
    const hostile = await validator.value.validate([leaf, ...impostors, ca(caKey, rootKey, 2)]);
    assert.equal(hostile.ok, false);
    assert.match(hostile.ok ? '' : hostile.error.detail, /path search limit reached/);
    // The same pool with P-256 impostors (cost 1 each) is searched through to the real CA.
    const cheap = Array.from({ length: 8 }, (_, i) => { const k = ecKey(); return ca(k, k, 20 + i); });
    const found = await validator.value.validate([leaf, ...cheap, ca(caKey, rootKey, 2)]);
    assert.ok(found.ok, found.ok ? '' : found.error.detail);
  });
});

describe('revocation with refused keys among the presented certificates', () => {
  it('an extra certificate with a refused key and the issuer\'s name is skipped, not an internal_error', async () => {
    const { RevocationChecker } = await import('../../src/revocation.js');
    const caName = dn(['CN', 'Key Bounds Intermediate']);
    const caKey = ecKey();
    const ca = certificate({
      serial: 2, issuer: dn(['CN', 'Key Bounds Root']), subject: caName, notBefore: FROM, notAfter: TO, key: caKey, signer: root.key,
      extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
    });
    const k1 = ecKey('secp256k1');
    const junk = certificate({
      serial: 5, issuer: caName, subject: caName, notBefore: FROM, notAfter: TO, key: k1, signer: k1,
      extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
    });
    const leaf = certificate({
      serial: 6, issuer: caName, subject: dn(['CN', 'leaf']), notBefore: FROM, notAfter: TO, key: ecKey(), signer: caKey,
      extensions: [keyUsage([KU.digitalSignature])],
    });
    const validator = ChainValidator.fromPem([toPem(root.der)], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => NOW.getTime() });
    assert.ok(validator.ok);
    const path = await validator.value.validatePath([leaf, junk, ca]);
    assert.ok(path.ok, path.ok ? '' : path.error.detail);
    const checker = new RevocationChecker({ mode: 'STRICT', timeoutMs: 1000, cacheTtlMs: 1000, cacheSize: 10, sslVerify: true, now: () => NOW.getTime() });
    const result = await checker.check(path.value);
    assert.equal(result.ok, false);
    // The leaf names no responder: the status is unknown, found through the real intermediate.
    assert.equal(result.ok ? '' : result.error.reason, 'revocation_unknown', result.ok ? '' : result.error.detail);
    assert.match(result.ok ? '' : result.error.detail, /names no OCSP responder and no CRL distribution point/);
  });
});
