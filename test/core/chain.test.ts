import 'reflect-metadata';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { ChainValidator, type ChainOptions } from '../../src/chain.js';
import type { CertificateFacts } from '../../src/certificate.js';
import type { ReasonCode, Result } from '../../src/errors.js';
import {
  issue, makeTestPki, nameConstraintsExtension, opensslThumbprint, type Issued, type TestPki,
} from '../helpers/pki.js';

const DAY = 24 * 3600 * 1000;
const KU = x509.KeyUsageFlags;

let pki: TestPki;
/** One RSA key pair shared by the RSA certificates (key generation is the slow part). */
let rsaKeys: CryptoKeyPair;

before(async () => {
  pki = await makeTestPki();
  rsaKeys = await crypto.subtle.generateKey({
    name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048,
  }, true, ['sign', 'verify']) as CryptoKeyPair;
});

function validator(anchors: readonly Issued[], options: Partial<ChainOptions> = {}): ChainValidator {
  const result = ChainValidator.fromPem(anchors.map((a) => a.pem), {
    allowPartialChain: false, cacheSize: 100, cacheTtlMs: 3600_000, ...options,
  });
  assert.ok(result.ok, result.ok ? '' : result.error.detail);
  return result.value;
}

async function check(anchors: readonly Issued[], chain: readonly Issued[], options: Partial<ChainOptions> = {}) {
  return validator(anchors, options).validate(chain.map((c) => c.der));
}

function assertOk(result: Result<CertificateFacts>, leaf: Issued): void {
  assert.ok(result.ok, result.ok ? '' : `${result.error.reason}: ${result.error.detail}`);
  assert.equal(result.value.thumbprint, opensslThumbprint(leaf.pem));
}

function assertReason(result: Result<CertificateFacts>, reason: ReasonCode, detail?: RegExp): void {
  assert.equal(result.ok, false, 'expected a rejection');
  if (result.ok) return;
  assert.equal(result.error.reason, reason, result.error.detail);
  if (detail !== undefined) assert.match(result.error.detail, detail);
}

describe('path building', () => {
  it('leaf via intermediate to the root passes and returns the leaf facts', async () => {
    const result = await check([pki.root], [pki.client, pki.intermediate]);
    assertOk(result, pki.client);
    assert.equal(result.ok && result.value.subject, 'CN=client-1,O=mtls-pop tests');
    assert.deepEqual(result.ok && result.value.subjectAltNames, ['DNS:client-1.example']);
  });

  it('intermediate out of order among junk certificates (and the root itself, and duplicates) passes', async () => {
    const junkCa = await issue({ subject: 'CN=Junk CA', ca: true });
    const result = await check([pki.root], [
      pki.client, pki.rogueRoot, pki.otherClient, junkCa, pki.root, pki.server, pki.intermediate, pki.rogueClient, pki.intermediate,
    ]);
    assertOk(result, pki.client);
  });

  it('leaf issued directly by the root passes', async () => {
    assertOk(await check([pki.root], [pki.directClient]), pki.directClient);
  });

  it('a self-signed leaf is certificate_untrusted', async () => {
    const self = await issue({ subject: 'CN=self-signed client' });
    assertReason(await check([pki.root], [self]), 'certificate_untrusted', /self-issued/);
  });

  it('a client of a rogue CA (sent along) is certificate_untrusted', async () => {
    assertReason(await check([pki.root], [pki.rogueClient, pki.rogueRoot]), 'certificate_untrusted', /CN=Rogue Root CA/);
  });

  it('a rogue CA named like the real intermediate is certificate_untrusted (its signature does not chain)', async () => {
    const fake = await issue({ subject: 'CN=mtls-pop Test Intermediate CA, O=mtls-pop tests', issuer: pki.rogueRoot, ca: true });
    const leaf = await issue({ subject: 'CN=client-1, O=mtls-pop tests', issuer: fake });
    assertReason(await check([pki.root], [leaf, fake]), 'certificate_untrusted');
    // ... and the same fake sent along with a genuine client does not disturb it
    assertOk(await check([pki.root], [pki.client, fake, pki.intermediate]), pki.client);
  });

  it('a missing intermediate is certificate_untrusted', async () => {
    assertReason(await check([pki.root], [pki.client]), 'certificate_untrusted', /CN=mtls-pop Test Intermediate CA/);
  });

  it('a leaf signed with SHA-1 is certificate_untrusted and says why', async () => {
    const weak = await issue({ subject: 'CN=sha1 client', issuer: pki.intermediate, signingHash: 'SHA-1' });
    assertReason(await check([pki.root], [weak, pki.intermediate]), 'certificate_untrusted', /SHA-1/);
  });

  it('a root whose self-signature is SHA-1 still anchors a path (its own signature is not checked for strength)', async () => {
    const oldRoot = await issue({ subject: 'CN=Legacy SHA-1 Root', ca: true, signingHash: 'SHA-1' });
    const leaf = await issue({ subject: 'CN=under-legacy-root', issuer: oldRoot });
    assertOk(await check([oldRoot], [leaf]), leaf);
  });

  it('RSA and ECDSA, mixed in both directions', async () => {
    const rsaRoot = await issue({ subject: 'CN=RSA Root', ca: true, keys: rsaKeys });
    const ecInter = await issue({ subject: 'CN=EC Intermediate', issuer: rsaRoot, ca: true });
    const rsaLeaf = await issue({ subject: 'CN=rsa-leaf', issuer: ecInter, keys: rsaKeys });
    const ecLeaf = await issue({ subject: 'CN=ec-leaf', issuer: rsaRoot });
    assertOk(await check([rsaRoot], [rsaLeaf, ecInter]), rsaLeaf);
    assertOk(await check([rsaRoot], [ecLeaf]), ecLeaf);
    const rsaUnderEc = await issue({ subject: 'CN=rsa-under-ec', issuer: pki.intermediate, keys: rsaKeys });
    assertOk(await check([pki.root], [rsaUnderEc, pki.intermediate]), rsaUnderEc);
    assertReason(await check([rsaRoot], [pki.client, pki.intermediate]), 'certificate_untrusted');
  });

  it('ECDSA P-384/SHA-384, P-521/SHA-512, Ed25519 and RSA-PSS signatures verify; tampered ones do not', async () => {
    // the shared RSA key, imported for RSA-PSS
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', rsaKeys.privateKey);
    const pssKeys: CryptoKeyPair = {
      privateKey: await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSA-PSS', hash: 'SHA-256' }, true, ['sign']),
      publicKey: await crypto.subtle.importKey('spki', await crypto.subtle.exportKey('spki', rsaKeys.publicKey),
        { name: 'RSA-PSS', hash: 'SHA-256' }, true, ['verify']),
    };
    const generate = (algorithm: EcKeyGenParams | Algorithm) =>
      crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
    const variants: { name: string; keys: CryptoKeyPair; signing: Algorithm }[] = [
      { name: 'P-384', keys: await generate({ name: 'ECDSA', namedCurve: 'P-384' }), signing: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams },
      { name: 'P-521', keys: await generate({ name: 'ECDSA', namedCurve: 'P-521' }), signing: { name: 'ECDSA', hash: 'SHA-512' } as EcdsaParams },
      { name: 'Ed25519', keys: await generate({ name: 'Ed25519' }), signing: { name: 'Ed25519' } },
      { name: 'RSA-PSS', keys: pssKeys, signing: { name: 'RSA-PSS', saltLength: 32 } as RsaPssParams },
    ];
    for (const variant of variants) {
      const root = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: '01', name: `CN=${variant.name} Root`, keys: variant.keys, signingAlgorithm: variant.signing,
        notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY),
        extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(KU.keyCertSign, true)],
      });
      const leafKeys = await generate({ name: 'ECDSA', namedCurve: 'P-256' });
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: '02', subject: `CN=${variant.name} leaf`, issuer: root.subjectName, publicKey: leafKeys.publicKey,
        signingKey: variant.keys.privateKey, signingAlgorithm: variant.signing,
        notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY),
      });
      const v = ChainValidator.fromPem([root.toString('pem')], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0 });
      assert.ok(v.ok, variant.name);
      const result = await v.value.validate([new Uint8Array(leaf.rawData)]);
      assert.ok(result.ok, `${variant.name}: ${result.ok ? '' : result.error.detail}`);
      const tampered = new Uint8Array(leaf.rawData);
      tampered[tampered.length - 5]! ^= 0x01;
      assertReason(await v.value.validate([tampered]), 'certificate_untrusted');
    }
  });

  it('two cross-signed CAs (a loop) terminate with certificate_untrusted', async () => {
    const a0 = await issue({ subject: 'CN=Loop A', ca: true });
    const b = await issue({ subject: 'CN=Loop B', ca: true, issuer: a0 });
    const a1 = await issue({ subject: 'CN=Loop A', ca: true, issuer: b, keys: a0.keys });
    const leaf = await issue({ subject: 'CN=loop-leaf', issuer: a1 });
    const started = performance.now();
    assertReason(await check([pki.root], [leaf, a1, b, a0]), 'certificate_untrusted');
    assert.ok(performance.now() - started < 500, 'the loop must terminate quickly');
    // with A configured, the same certificates validate
    assertOk(await check([a0], [leaf, a1, b]), leaf);
  });

  it('a 50-certificate junk chain terminates quickly; a genuine intermediate among 50 junk certificates is found', async () => {
    const junk: Issued[] = [];
    let parent = await issue({ subject: 'CN=Junk Root', ca: true });
    for (let i = 0; i < 50; i++) {
      parent = await issue({ subject: `CN=Junk ${i}`, ca: true, issuer: parent });
      junk.push(parent);
    }
    const leaf = await issue({ subject: 'CN=deep-leaf', issuer: parent });
    const shuffled = [...junk].sort(() => Math.random() - 0.5);
    let started = performance.now();
    assertReason(await check([pki.root], [leaf, ...shuffled]), 'certificate_untrusted', /limit/);
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);

    started = performance.now();
    assertOk(await check([pki.root], [pki.client, ...shuffled, pki.intermediate]), pki.client);
    assert.ok(performance.now() - started < 1000);
  });

  it('more than 100 certificates are refused as certificate_too_many', async () => {
    const many = new Array<Uint8Array>(101).fill(pki.intermediate.der);
    assertReason(await validator([pki.root]).validate([pki.client.der, ...many]), 'certificate_too_many');
  });
});

describe('validity (RFC 5280 section 6.1.3 (a)(2))', () => {
  it('an expired leaf is certificate_expired', async () => {
    const leaf = await issue({
      subject: 'CN=expired', issuer: pki.intermediate, notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY),
    });
    assertReason(await check([pki.root], [leaf, pki.intermediate]), 'certificate_expired', /client certificate/);
  });

  it('a not-yet-valid leaf is certificate_not_yet_valid', async () => {
    const leaf = await issue({
      subject: 'CN=future', issuer: pki.intermediate, notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY),
    });
    assertReason(await check([pki.root], [leaf, pki.intermediate]), 'certificate_not_yet_valid');
  });

  it('an expired intermediate is certificate_expired and named', async () => {
    const inter = await issue({
      subject: 'CN=Expired Intermediate', issuer: pki.root, ca: true,
      notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY),
    });
    const leaf = await issue({ subject: 'CN=under-expired', issuer: inter });
    assertReason(await check([pki.root], [leaf, inter]), 'certificate_expired', /CN=Expired Intermediate/);
  });

  it('an expired trust anchor is certificate_expired and named', async () => {
    const root = await issue({
      subject: 'CN=Expired Root', ca: true, notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY),
    });
    const leaf = await issue({ subject: 'CN=under-expired-root', issuer: root });
    assertReason(await check([root], [leaf]), 'certificate_expired', /trust anchor CN=Expired Root/);
  });
});

describe('issuer and leaf rules (RFC 5280 section 4.2.1, 6.1.4)', () => {
  it('an intermediate without basicConstraints (or with cA FALSE) is certificate_chain_invalid', async () => {
    const noBc = await issue({ subject: 'CN=No BC', issuer: pki.root, noBasicConstraints: true, keyUsage: KU.keyCertSign, eku: null });
    const leaf1 = await issue({ subject: 'CN=under-no-bc', issuer: noBc });
    assertReason(await check([pki.root], [leaf1, noBc]), 'certificate_chain_invalid', /CN=No BC.*not a CA/);
    const notCa = await issue({ subject: 'CN=Not CA', issuer: pki.root, keyUsage: KU.keyCertSign, eku: null });
    const leaf2 = await issue({ subject: 'CN=under-not-ca', issuer: notCa });
    assertReason(await check([pki.root], [leaf2, notCa]), 'certificate_chain_invalid', /CN=Not CA/);
  });

  it('an intermediate whose keyUsage lacks keyCertSign is certificate_chain_invalid', async () => {
    const inter = await issue({ subject: 'CN=No CertSign', issuer: pki.root, ca: true, keyUsage: KU.cRLSign | KU.digitalSignature });
    const leaf = await issue({ subject: 'CN=under-no-certsign', issuer: inter });
    assertReason(await check([pki.root], [leaf, inter]), 'certificate_chain_invalid', /keyCertSign/);
  });

  it('pathLenConstraint 0 exceeded by a sub-intermediate is certificate_chain_invalid', async () => {
    const sub = await issue({ subject: 'CN=Sub Intermediate', issuer: pki.intermediate, ca: true });
    const leaf = await issue({ subject: 'CN=under-sub', issuer: sub });
    assertReason(await check([pki.root], [leaf, sub, pki.intermediate]), 'certificate_chain_invalid', /pathLenConstraint/);
  });

  it('pathLenConstraint 1 on the root allows one intermediate, not two', async () => {
    const root = await issue({ subject: 'CN=PathLen1 Root', ca: true, pathLen: 1 });
    const i1 = await issue({ subject: 'CN=PL I1', issuer: root, ca: true });
    const i2 = await issue({ subject: 'CN=PL I2', issuer: i1, ca: true });
    const leaf1 = await issue({ subject: 'CN=pl-leaf-1', issuer: i1 });
    const leaf2 = await issue({ subject: 'CN=pl-leaf-2', issuer: i2 });
    assertOk(await check([root], [leaf1, i1]), leaf1);
    assertReason(await check([root], [leaf2, i2, i1]), 'certificate_chain_invalid', /trust anchor CN=PathLen1 Root.*pathLenConstraint/);
  });

  it('a leaf with cA TRUE is certificate_is_ca', async () => {
    const leaf = await issue({ subject: 'CN=ca-leaf', issuer: pki.intermediate, ca: true, eku: ['1.3.6.1.5.5.7.3.2'] });
    assertReason(await check([pki.root], [leaf, pki.intermediate]), 'certificate_is_ca');
  });

  it('a leaf with extendedKeyUsage serverAuth only is certificate_not_for_client_auth', async () => {
    assertReason(await check([pki.root], [pki.server]), 'certificate_not_for_client_auth', /clientAuth/);
  });

  it('a leaf without extendedKeyUsage, or with anyExtendedKeyUsage, passes', async () => {
    const noEku = await issue({ subject: 'CN=no-eku', issuer: pki.intermediate, eku: null });
    assertOk(await check([pki.root], [noEku, pki.intermediate]), noEku);
    const anyEku = await issue({ subject: 'CN=any-eku', issuer: pki.intermediate, eku: ['2.5.29.37.0'] });
    assertOk(await check([pki.root], [anyEku, pki.intermediate]), anyEku);
  });

  it('a leaf keyUsage without digitalSignature or keyAgreement is certificate_not_for_client_auth', async () => {
    const leaf = await issue({ subject: 'CN=encipher-only', issuer: pki.intermediate, keyUsage: KU.keyEncipherment });
    assertReason(await check([pki.root], [leaf, pki.intermediate]), 'certificate_not_for_client_auth', /keyUsage/);
  });

  it('an intermediate whose extendedKeyUsage excludes clientAuth is certificate_not_for_client_auth', async () => {
    const inter = await issue({ subject: 'CN=Server-only CA', issuer: pki.root, ca: true, eku: ['1.3.6.1.5.5.7.3.1'] });
    const leaf = await issue({ subject: 'CN=under-server-ca', issuer: inter });
    assertReason(await check([pki.root], [leaf, inter]), 'certificate_not_for_client_auth', /Server-only CA/);
  });

  it('an unknown critical extension (leaf or intermediate) is certificate_chain_invalid; non-critical is ignored', async () => {
    const unknown = (critical: boolean) => new x509.Extension('1.3.6.1.4.1.55555.1', critical, new Uint8Array([5, 0]));
    const leaf = await issue({ subject: 'CN=crit-leaf', issuer: pki.intermediate, extensions: [unknown(true)] });
    assertReason(await check([pki.root], [leaf, pki.intermediate]), 'certificate_chain_invalid', /1\.3\.6\.1\.4\.1\.55555\.1/);
    const inter = await issue({ subject: 'CN=Crit CA', issuer: pki.root, ca: true, extensions: [unknown(true)] });
    const leaf2 = await issue({ subject: 'CN=under-crit', issuer: inter });
    assertReason(await check([pki.root], [leaf2, inter]), 'certificate_chain_invalid', /CN=Crit CA/);
    const lax = await issue({ subject: 'CN=noncrit-leaf', issuer: pki.intermediate, extensions: [unknown(false)] });
    assertOk(await check([pki.root], [lax, pki.intermediate]), lax);
  });
});

describe('name constraints (RFC 5280 section 4.2.1.10)', () => {
  let ncInter: Issued;
  before(async () => {
    ncInter = await issue({
      subject: 'CN=Constrained CA, O=mtls-pop tests', issuer: pki.root, ca: true,
      extensions: [nameConstraintsExtension({
        permitted: { dns: ['allowed.example'], ip: ['10.0.0.0/8'], email: ['allowed.example'], uri: ['.spiffe.example'] },
        excluded: { dns: ['bad.allowed.example'] },
      })],
    });
  });

  it('names inside the permitted subtrees pass', async () => {
    const leaf = await issue({
      subject: 'CN=client, O=mtls-pop tests', issuer: ncInter, dnsNames: ['allowed.example', 'x.allowed.example'],
      ipAddresses: ['10.1.2.3'], uris: ['spiffe://td.spiffe.example/sa/x'],
    });
    assertOk(await check([pki.root], [leaf, ncInter]), leaf);
  });

  it('a dNSName outside the permitted subtree is certificate_chain_invalid', async () => {
    const leaf = await issue({ subject: 'CN=client', issuer: ncInter, dnsNames: ['x.allowed.example', 'evil.example'] });
    assertReason(await check([pki.root], [leaf, ncInter]), 'certificate_chain_invalid', /dNSName evil\.example is outside the permitted subtrees/);
    const suffix = await issue({ subject: 'CN=client', issuer: ncInter, dnsNames: ['notallowed.example'] });
    assertReason(await check([pki.root], [suffix, ncInter]), 'certificate_chain_invalid', /permitted/);
  });

  it('a dNSName in an excluded subtree, an IP outside 10/8 and a URI host outside are certificate_chain_invalid', async () => {
    const excluded = await issue({ subject: 'CN=client', issuer: ncInter, dnsNames: ['a.bad.allowed.example'] });
    assertReason(await check([pki.root], [excluded, ncInter]), 'certificate_chain_invalid', /excluded/);
    const ip = await issue({ subject: 'CN=client', issuer: ncInter, ipAddresses: ['192.168.1.1'] });
    assertReason(await check([pki.root], [ip, ncInter]), 'certificate_chain_invalid', /iPAddress/);
    const uri = await issue({ subject: 'CN=client', issuer: ncInter, uris: ['spiffe://spiffe.example.evil/x'] });
    assertReason(await check([pki.root], [uri, ncInter]), 'certificate_chain_invalid', /URI/);
  });

  it('without dNSName SANs a host-like CN is checked (as OpenSSL does); a plain CN is not', async () => {
    const hostCn = await issue({ subject: 'CN=host.evil.example', issuer: ncInter });
    assertReason(await check([pki.root], [hostCn, ncInter]), 'certificate_chain_invalid', /host\.evil\.example/);
    const plainCn = await issue({ subject: 'CN=client-7', issuer: ncInter });
    assertOk(await check([pki.root], [plainCn, ncInter]), plainCn);
  });

  it('directoryName constraints on the subject, and constraints on the trust anchor itself', async () => {
    const root = await issue({
      subject: 'CN=Dir Constrained Root', ca: true,
      extensions: [nameConstraintsExtension({ permitted: { dirNames: [new x509.Name('O=Good Org').toArrayBuffer()] } })],
    });
    const inter = await issue({ subject: 'O=Good Org, CN=Good Intermediate', issuer: root, ca: true });
    const good = await issue({ subject: 'O=Good Org, CN=good-client', issuer: inter });
    assertOk(await check([root], [good, inter]), good);
    const bad = await issue({ subject: 'O=Other Org, CN=bad-client', issuer: inter });
    assertReason(await check([root], [bad, inter]), 'certificate_chain_invalid', /directoryName/);
  });
});

describe('trust anchors and partial chains', () => {
  it('allowPartialChain false: a configured intermediate alone is certificate_untrusted; true: accepted', async () => {
    assertReason(await check([pki.intermediate], [pki.client]), 'certificate_untrusted', /partial chains are not allowed/);
    assertOk(await check([pki.intermediate], [pki.client], { allowPartialChain: true }), pki.client);
  });

  it('allowPartialChain false: intermediate and root configured passes (the path ends at the root)', async () => {
    assertOk(await check([pki.intermediate, pki.root], [pki.client]), pki.client);
  });

  it('allowPartialChain false: a configured intermediate with the root only in the header is certificate_untrusted', async () => {
    assertReason(await check([pki.intermediate], [pki.client, pki.root]), 'certificate_untrusted');
  });

  it('a configured leaf: accepted only with partial chains', async () => {
    const self = await issue({ subject: 'CN=pinned self-signed' });
    assertReason(await check([self], [self]), 'certificate_untrusted');
    assertOk(await check([self], [self], { allowPartialChain: true }), self);
    assertOk(await check([pki.client], [pki.client], { allowPartialChain: true }), pki.client);
    assertReason(await check([pki.client], [pki.client]), 'certificate_untrusted');
  });

  it('agrees with `openssl verify -purpose sslclient` (with and without -partial_chain) on pass/fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-chain-'));
    try {
      const sub = await issue({ subject: 'CN=Sub Intermediate', issuer: pki.intermediate, ca: true });
      const underSub = await issue({ subject: 'CN=under-sub', issuer: sub });
      const noCertSign = await issue({ subject: 'CN=No CertSign', issuer: pki.root, ca: true, keyUsage: KU.cRLSign });
      const underNoCertSign = await issue({ subject: 'CN=under-no-certsign', issuer: noCertSign });
      const cases: { name: string; anchors: Issued[]; chain: Issued[]; partial?: boolean }[] = [
        { name: 'good', anchors: [pki.root], chain: [pki.client, pki.intermediate] },
        { name: 'direct', anchors: [pki.root], chain: [pki.directClient] },
        { name: 'rogue', anchors: [pki.root], chain: [pki.rogueClient, pki.rogueRoot] },
        { name: 'missing', anchors: [pki.root], chain: [pki.client] },
        { name: 'server eku', anchors: [pki.root], chain: [pki.server] },
        { name: 'pathlen', anchors: [pki.root], chain: [underSub, sub, pki.intermediate] },
        { name: 'keyCertSign', anchors: [pki.root], chain: [underNoCertSign, noCertSign] },
        { name: 'partial off', anchors: [pki.intermediate], chain: [pki.client] },
        { name: 'partial on', anchors: [pki.intermediate], chain: [pki.client], partial: true },
      ];
      for (const [index, c] of cases.entries()) {
        const anchorsFile = join(dir, `anchors-${index}.pem`);
        const untrustedFile = join(dir, `untrusted-${index}.pem`);
        const leafFile = join(dir, `leaf-${index}.pem`);
        writeFileSync(anchorsFile, c.anchors.map((a) => a.pem).join(''));
        writeFileSync(untrustedFile, c.chain.slice(1).map((a) => a.pem).join(''));
        writeFileSync(leafFile, c.chain[0]!.pem);
        const args = ['verify', '-CAfile', anchorsFile, '-purpose', 'sslclient', ...(c.partial === true ? ['-partial_chain'] : []),
          ...(c.chain.length > 1 ? ['-untrusted', untrustedFile] : []), leafFile];
        let opensslOk: boolean;
        try {
          execFileSync('openssl', args, { stdio: 'pipe' });
          opensslOk = true;
        } catch {
          opensslOk = false;
        }
        const ours = await check(c.anchors, c.chain, { allowPartialChain: c.partial === true });
        assert.equal(ours.ok, opensslOk, `${c.name}: ours ${ours.ok ? 'ok' : `${ours.error.reason} ${ours.error.detail}`}, openssl ${opensslOk}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('verdict cache', () => {
  it('a second validation of the same chain is a cache hit', async () => {
    const v = validator([pki.root]);
    assertOk(await v.validate([pki.client.der, pki.intermediate.der]), pki.client);
    assert.deepEqual(v.stats(), { hits: 0, misses: 1, size: 1 });
    assertOk(await v.validate([pki.client.der, pki.intermediate.der]), pki.client);
    assert.deepEqual(v.stats(), { hits: 1, misses: 1, size: 1 });
    // another order of the same certificates is another key
    await v.validate([pki.client.der, pki.intermediate.der, pki.root.der]);
    assert.deepEqual(v.stats(), { hits: 1, misses: 2, size: 2 });
  });

  it('certificate boundaries are part of the key: two certificates concatenated into one are not a hit', async () => {
    const v = validator([pki.root]);
    assertOk(await v.validate([pki.client.der, pki.intermediate.der]), pki.client);
    assertReason(await v.validate([Buffer.concat([pki.client.der, pki.intermediate.der])]), 'certificate_malformed');
    assert.equal(v.stats().hits, 0);
  });

  it('a cached success does not outlive the earliest notAfter on the path', async () => {
    let clock = Date.now();
    const inter = await issue({ subject: 'CN=Short Intermediate', issuer: pki.root, ca: true, notAfter: new Date(clock + 60_000) });
    const leaf = await issue({ subject: 'CN=long-leaf', issuer: inter });
    const v = validator([pki.root], { now: () => clock });
    assertOk(await v.validate([leaf.der, inter.der]), leaf);
    clock += 30_000;
    assertOk(await v.validate([leaf.der, inter.der]), leaf);
    assert.deepEqual(v.stats(), { hits: 1, misses: 1, size: 1 });
    clock += 31_000; // past the intermediate's notAfter, well within the TTL
    assertReason(await v.validate([leaf.der, inter.der]), 'certificate_expired', /Short Intermediate/);
    assert.equal(v.stats().misses, 2);
  });

  it('the TTL bounds a success too', async () => {
    let clock = Date.now();
    const v = validator([pki.root], { now: () => clock, cacheTtlMs: 1000 });
    await v.validate([pki.client.der, pki.intermediate.der]);
    clock += 1001;
    await v.validate([pki.client.der, pki.intermediate.der]);
    assert.deepEqual(v.stats(), { hits: 0, misses: 2, size: 1 });
  });

  it('failure verdicts are cached (for at most a minute)', async () => {
    let clock = Date.now();
    const v = validator([pki.root], { now: () => clock });
    assertReason(await v.validate([pki.rogueClient.der, pki.rogueRoot.der]), 'certificate_untrusted');
    assertReason(await v.validate([pki.rogueClient.der, pki.rogueRoot.der]), 'certificate_untrusted');
    assert.deepEqual(v.stats(), { hits: 1, misses: 1, size: 1 });
    clock += 61_000;
    assertReason(await v.validate([pki.rogueClient.der, pki.rogueRoot.der]), 'certificate_untrusted');
    assert.equal(v.stats().misses, 2);
  });

  it('a not-yet-valid verdict is not cached past notBefore', async () => {
    let clock = Date.now();
    const leaf = await issue({ subject: 'CN=soon', issuer: pki.intermediate, notBefore: new Date(clock + 20_000) });
    const v = validator([pki.root], { now: () => clock });
    assertReason(await v.validate([leaf.der, pki.intermediate.der]), 'certificate_not_yet_valid');
    clock += 10_000;
    assertReason(await v.validate([leaf.der, pki.intermediate.der]), 'certificate_not_yet_valid');
    assert.equal(v.stats().hits, 1);
    clock += 10_001;
    assertOk(await v.validate([leaf.der, pki.intermediate.der]), leaf);
    assert.equal(v.stats().hits, 1);
  });

  it('cacheSize 0 caches nothing', async () => {
    const v = validator([pki.root], { cacheSize: 0 });
    await v.validate([pki.client.der, pki.intermediate.der]);
    await v.validate([pki.client.der, pki.intermediate.der]);
    assert.deepEqual(v.stats(), { hits: 0, misses: 2, size: 0 });
  });
});

describe('ChainValidator.fromPem and bad input', () => {
  it('garbage PEM is trust_anchors_unavailable naming its position', () => {
    const options = { allowPartialChain: false, cacheSize: 10, cacheTtlMs: 1000 };
    const cases: { pems: string[]; detail: RegExp }[] = [
      { pems: [], detail: /no trust anchors/ },
      { pems: ['garbage'], detail: /trust anchor 1 contains no PEM certificate/ },
      { pems: [pki.root.pem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], detail: /trust anchor 2, PEM block 1/ },
      { pems: [pki.root.pem + '-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'], detail: /trust anchor 1.*PEM block 2.*base64/ },
      { pems: ['-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'], detail: /trust anchor 1.*PRIVATE KEY, not CERTIFICATE/ },
      { pems: [pki.root.pem.replace('-----END CERTIFICATE-----', '')], detail: /trust anchor 1.*no matching END/ },
    ];
    for (const c of cases) {
      const result = ChainValidator.fromPem(c.pems, options);
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.error.reason, 'trust_anchors_unavailable');
        assert.match(result.error.detail, c.detail);
      }
    }
  });

  it('several PEM blocks in one string, with text around them, are all anchors', async () => {
    const bundle = `# bundle\n${pki.rogueRoot.pem}subject=CN=whatever\n${pki.root.pem}`;
    const v = ChainValidator.fromPem([bundle], { allowPartialChain: false, cacheSize: 10, cacheTtlMs: 1000 });
    assert.ok(v.ok);
    assertOk(await v.value.validate([pki.client.der, pki.intermediate.der]), pki.client);
    assertOk(await v.value.validate([pki.rogueClient.der]), pki.rogueClient);
  });

  it('malformed certificates are certificate_malformed; no certificates is certificate_missing', async () => {
    const v = validator([pki.root]);
    assertReason(await v.validate([Buffer.from('junk')]), 'certificate_malformed', /client certificate/);
    assertReason(await v.validate([pki.client.der, Buffer.from('junk')]), 'certificate_malformed', /chain certificate 2/);
    assertReason(await v.validate([]), 'certificate_missing');
  });

  it('never throws: unexpected input becomes internal_error', async () => {
    const v = validator([pki.root]);
    const result = await v.validate([null as unknown as Uint8Array]);
    assertReason(result, 'internal_error');
  });
});
