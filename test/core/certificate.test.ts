import 'reflect-metadata';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import fc from 'fast-check';
import * as asn1js from 'asn1js';
import {
  authorityInfoAccessUris, certificateFacts, crlDistributionPointUris, parseCertificate, subjectPublicKeyBits, thumbprintS256,
} from '../../src/certificate.js';
import { issue, makeTestPki, opensslThumbprint, type Issued, type TestPki } from '../helpers/pki.js';

let pki: TestPki;
let rsaLeaf: Issued;
let manyNames: Issued;

before(async () => {
  pki = await makeTestPki();
  rsaLeaf = await issue({ subject: 'CN=rsa-client, O=mtls-pop tests', issuer: pki.intermediate, rsa: true });
  manyNames = await issue({
    subject: 'CN=many-names, OU=Team A, O=mtls-pop tests, C=DE',
    issuer: pki.intermediate,
    dnsNames: ['a.example', '*.b.example'],
    ipAddresses: ['127.0.0.1', '2001:db8::1', '::1'],
    uris: ['spiffe://trust.example/ns/default/sa/client'],
  });
});

/** A Name with exactly these RDNs (UTF8String values), built with asn1js. */
function distinguishedName(rdns: readonly (readonly (readonly [string, string])[])[]): x509.Name {
  const seq = new asn1js.Sequence({
    value: rdns.map((rdn) => new asn1js.Set({
      value: rdn.map(([oid, value]) => new asn1js.Sequence({
        value: [new asn1js.ObjectIdentifier({ value: oid }), new asn1js.Utf8String({ value })],
      })),
    })),
  });
  return new x509.Name(seq.toBER());
}

function facts(der: Uint8Array) {
  const result = certificateFacts(der);
  assert.ok(result.ok, result.ok ? '' : result.error.detail);
  return result.value;
}

describe('thumbprintS256 (x5t#S256, RFC 8705 section 3.1)', () => {
  it('equals the openssl CLI thumbprint for roots, intermediates, EC and RSA leaves', () => {
    for (const cert of [pki.root, pki.intermediate, pki.client, pki.server, pki.rogueRoot, rsaLeaf, manyNames]) {
      assert.equal(thumbprintS256(cert.der), opensslThumbprint(cert.pem));
    }
  });

  it('is 43 base64url characters without padding, and equals the facts thumbprint', () => {
    const value = thumbprintS256(pki.client.der);
    assert.match(value, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(facts(pki.client.der).thumbprint, value);
    assert.equal(value, createHash('sha256').update(pki.client.der).digest('base64url'));
  });
});

describe('certificateFacts', () => {
  it('client leaf: subject, issuer, DNS SAN, serial, validity', () => {
    const f = facts(pki.client.der);
    assert.equal(f.subject, 'CN=client-1,O=mtls-pop tests');
    assert.equal(f.issuer, 'CN=mtls-pop Test Intermediate CA,O=mtls-pop tests');
    assert.deepEqual(f.subjectAltNames, ['DNS:client-1.example']);
    const node = new X509Certificate(pki.client.der);
    assert.equal(f.serialNumber, node.serialNumber);
    assert.equal(f.serialNumber, pki.client.cert.serialNumber.toUpperCase());
    assert.equal(f.notBefore.getTime(), new Date(node.validFrom).getTime());
    assert.equal(f.notAfter.getTime(), new Date(node.validTo).getTime());
  });

  it('server certificate: DNS and IP SANs in order', () => {
    assert.deepEqual(facts(pki.server.der).subjectAltNames, ['DNS:localhost', 'IP:127.0.0.1']);
  });

  it('every SAN form the helper can issue, IPv6 compressed (RFC 5952)', () => {
    const f = facts(manyNames.der);
    assert.deepEqual(f.subjectAltNames, [
      'DNS:a.example', 'DNS:*.b.example', 'IP:127.0.0.1', 'IP:2001:db8::1', 'IP:::1',
      'URI:spiffe://trust.example/ns/default/sa/client',
    ]);
    assert.equal(f.subject, 'CN=many-names,OU=Team A,O=mtls-pop tests,C=DE');
    // node lists the same attributes in the same (certificate) order
    assert.equal(f.subject, new X509Certificate(manyNames.der).subject.split('\n').join(','));
  });

  it('no SAN extension -> empty list; RSA leaf parses', () => {
    const f = facts(rsaLeaf.der);
    assert.deepEqual(f.subjectAltNames, []);
    assert.equal(f.subject, 'CN=rsa-client,O=mtls-pop tests');
    assert.equal(f.serialNumber, new X509Certificate(rsaLeaf.der).serialNumber);
  });

  it('RFC 4514 escaping of special characters, multi-valued RDNs and control characters', async () => {
    const name = distinguishedName([
      [['2.5.4.3', 'Smith, John+Jr <x>;"q"\\']],
      [['2.5.4.10', 'a=b'], ['2.5.4.11', ' #lead']],
      [['2.5.4.7', 'line\nbreak ']],
    ]);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01', keys: pki.root.keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, name,
    });
    const der = new Uint8Array(cert.rawData);
    const f = facts(der);
    assert.equal(f.subject, 'CN=Smith\\, John\\+Jr \\<x\\>\\;\\"q\\"\\\\,O=a=b+OU=\\ #lead,L=line\\0Abreak\\ ');
    // node (OpenSSL) escapes the first RDN the same way
    assert.equal(new X509Certificate(der).subject.split('\n')[0], 'CN=Smith\\, John\\+Jr \\<x\\>\\;\\"q\\"\\\\');
  });

  it('agrees with the openssl CLI on a certificate openssl made (PrintableString names, email SAN, serial)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-cert-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'),
        '-out', join(dir, 'c.pem'), '-days', '2', '-subj', '/C=DE/ST=Berlin/O=Open SSL/CN=openssl.example',
        '-set_serial', '0x00ABCDEF0123456789', '-addext', 'subjectAltName=email:ops@example.com,DNS:openssl.example,IP:10.1.2.3',
      ], { stdio: 'ignore' });
      const pem = readFileSync(join(dir, 'c.pem'), 'utf8');
      const der = execFileSync('openssl', ['x509', '-outform', 'DER', '-in', join(dir, 'c.pem')]);
      const f = facts(der);
      const serial = execFileSync('openssl', ['x509', '-noout', '-serial', '-in', join(dir, 'c.pem')]).toString().trim();
      assert.equal(`serial=${f.serialNumber}`, serial);
      assert.equal(f.serialNumber, 'ABCDEF0123456789');
      assert.equal(f.subject, 'C=DE,ST=Berlin,O=Open SSL,CN=openssl.example');
      assert.equal(f.subject, f.issuer);
      assert.deepEqual(f.subjectAltNames, ['email:ops@example.com', 'DNS:openssl.example', 'IP:10.1.2.3']);
      assert.equal(f.thumbprint, opensslThumbprint(pem));
      const end = execFileSync('openssl', ['x509', '-noout', '-enddate', '-in', join(dir, 'c.pem')]).toString().trim();
      assert.equal(f.notAfter.getTime(), new Date(end.replace('notAfter=', '')).getTime());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a high-bit serial keeps its value (no sign byte) and matches node', async () => {
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '80ff', name: 'CN=serial', keys: pki.root.keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const der = new Uint8Array(cert.rawData);
    assert.equal(facts(der).serialNumber, new X509Certificate(der).serialNumber);
  });

  it('extensions used by path validation are decoded', () => {
    const root = parseCertificate(pki.root.der);
    const inter = parseCertificate(pki.intermediate.der);
    const leaf = parseCertificate(pki.client.der);
    assert.ok(root.ok && inter.ok && leaf.ok);
    assert.deepEqual(root.value.basicConstraints, { ca: true, pathLen: null });
    assert.deepEqual(inter.value.basicConstraints, { ca: true, pathLen: 0 });
    assert.deepEqual(leaf.value.basicConstraints, { ca: false, pathLen: null });
    assert.equal(inter.value.keyUsage, (1 << 5) | (1 << 6)); // keyCertSign | cRLSign
    assert.equal(leaf.value.keyUsage, (1 << 0) | (1 << 2)); // digitalSignature | keyEncipherment
    assert.deepEqual(leaf.value.extKeyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(root.value.extKeyUsage, null);
    assert.deepEqual(leaf.value.authorityKeyId, inter.value.subjectKeyId);
    assert.equal(leaf.value.issuer.key, inter.value.subject.key);
    assert.equal(leaf.value.version, 3);
  });

  it('extension OIDs decode exactly, including arcs beyond 2^53 and a first arc of 2 (certificate made by openssl)', () => {
    const oids = ['2.25.329800735698586629295641978511506172918', '2.999.1', '1.3.6.1.4.1.55555.4294967296'];
    const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-oid-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'),
        '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=oids', '-outform', 'DER',
        ...oids.flatMap((oid) => ['-addext', `${oid}=DER:05:00`]),
      ], { stdio: 'ignore' });
      const parsed = parseCertificate(readFileSync(join(dir, 'c.pem')));
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.detail);
      const found = parsed.value.extensions.map((e) => e.oid);
      for (const oid of oids) assert.ok(found.includes(oid), `${oid} not in ${found.join(' ')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('garbage, truncation, trailing bytes and an empty buffer are certificate_malformed', () => {
    const der = pki.client.der;
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      Buffer.from('not a certificate'),
      der.subarray(0, der.length - 1),
      Buffer.concat([der, Buffer.from([0])]),
      Buffer.concat([der, pki.root.der]),
    ];
    for (const bad of cases) {
      const result = certificateFacts(bad);
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.error.reason, 'certificate_malformed');
    }
  });

  it('never throws on mutated certificates (property)', () => {
    const der = new Uint8Array(pki.client.der);
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      (edits) => {
        const copy = der.slice();
        for (const [at, value] of edits) copy[at] = value;
        const result = certificateFacts(copy);
        if (result.ok) assert.equal(result.value.thumbprint, thumbprintS256(copy));
        else assert.equal(result.error.reason, 'certificate_malformed');
      },
    ), { numRuns: 400 });
  });
});

describe('what revocation reads from the parsed certificate', () => {
  it('issuer/subject Name DER, serial contents and subjectPublicKey bits are the encoded bytes', () => {
    const parsed = parseCertificate(pki.client.der);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.detail);
    const cert = pki.client.cert;
    assert.deepEqual(Buffer.from(parsed.value.subject.der), Buffer.from(cert.subjectName.toArrayBuffer()));
    assert.deepEqual(Buffer.from(parsed.value.issuer.der), Buffer.from(pki.intermediate.cert.subjectName.toArrayBuffer()));
    assert.equal(Buffer.from(parsed.value.serial).toString('hex').replace(/^00/, ''), cert.serialNumber.toLowerCase().replace(/^00/, ''));
    const spki = new X509Certificate(pki.client.der).publicKey.export({ format: 'der', type: 'spki' });
    // P-256: the BIT STRING holds the uncompressed point, the last 65 bytes of the SPKI.
    assert.deepEqual(Buffer.from(subjectPublicKeyBits(parsed.value)), spki.subarray(spki.length - 65));
    assert.equal(subjectPublicKeyBits(parsed.value)[0], 0x04);
  });

  it('OCSP URLs from AuthorityInfoAccess and CRL URLs from fullName distribution points', async () => {
    const crlPoints = new x509.CRLDistributionPointsExtension(['http://crl.example/a.crl', 'ldap://crl.example/cn=a']);
    const aia = new x509.AuthorityInfoAccessExtension({
      ocsp: [new x509.GeneralName('url', 'http://ocsp.example/'), new x509.GeneralName('dns', 'not-a-uri.example')],
      caIssuers: [new x509.GeneralName('url', 'http://ca.example/ca.cer')],
    });
    const withPointers = await issue({ subject: 'CN=pointers', issuer: pki.intermediate, extensions: [crlPoints, aia] });
    const parsed = parseCertificate(withPointers.der);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error.detail);
    assert.deepEqual(authorityInfoAccessUris(parsed.value, '1.3.6.1.5.5.7.48.1'), ['http://ocsp.example/']);
    assert.deepEqual(authorityInfoAccessUris(parsed.value, '1.3.6.1.5.5.7.48.2'), ['http://ca.example/ca.cer']);
    assert.deepEqual(crlDistributionPointUris(parsed.value), ['http://crl.example/a.crl', 'ldap://crl.example/cn=a']);
    const none = parseCertificate(pki.client.der);
    assert.ok(none.ok);
    assert.deepEqual(authorityInfoAccessUris(none.value, '1.3.6.1.5.5.7.48.1'), []);
    assert.deepEqual(crlDistributionPointUris(none.value), []);
  });
});
