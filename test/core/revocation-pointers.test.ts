/**
 * A certificate on the validated path whose authorityInfoAccess or cRLDistributionPoints extension
 * is malformed DER. Path validation does not read those extensions (revocation SKIP must not fail
 * on them), so revocation meets them: the status is unknown (STRICT refuses, IGNORE_CA_ERROR lets
 * it through, as for a certificate that names no responder), never `internal_error`, and nothing
 * is fetched.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChainValidator, type ValidatedPath } from '../../src/chain.js';
import { RevocationChecker } from '../../src/revocation.js';
import type { RevocationMode } from '../../src/config.js';
import { KU, basicConstraints, certificate, dn, ecKey, ext, keyUsage, oid, seq, tlv, toPem, type Extension, type Key } from '../conformance/builder.js';

const NOW = new Date('2025-01-01T00:00:00Z');
const FROM = new Date('2020-01-01T00:00:00Z');
const TO = new Date('2030-01-01T00:00:00Z');
const ROOT = dn(['CN', 'Pointers Root']);
const CA = dn(['CN', 'Pointers CA']);

/** A URI GeneralName ([6] IA5String). */
const uri = (value: string): Buffer => tlv(0x86, Buffer.from(value, 'latin1'));
const aia = (value: Buffer): Extension => ext('1.3.6.1.5.5.7.1.1', false, value);
const cdp = (value: Buffer): Extension => ext('2.5.29.31', false, value);

/** Well-formed DER but not the structure RFC 5280 gives these extensions. */
const MALFORMED: ReadonlyArray<readonly [string, Extension]> = [
  ['authorityInfoAccess: an AccessDescription that is an INTEGER', aia(seq(tlv(0x02, Buffer.of(1))))],
  ['authorityInfoAccess: accessLocation with an unknown GeneralName tag', aia(seq(seq(oid('1.3.6.1.5.5.7.48.1'), tlv(0x89, Buffer.from('x')))))],
  ['cRLDistributionPoints: a DistributionPoint that is an OCTET STRING', cdp(seq(tlv(0x04, Buffer.from('http://crl.invalid/'))))],
  ['cRLDistributionPoints: a distributionPoint with two names', cdp(seq(seq(tlv(0xa0, tlv(0xa0, uri('http://a.invalid/')), tlv(0xa0, uri('http://b.invalid/'))))))],
  ['cRLDistributionPoints: an empty distributionPoint', cdp(seq(seq(tlv(0xa0))))],
];

let rootKey: Key;
let caKey: Key;
let rootDer: Buffer;
let caDer: Buffer;

before(() => {
  rootKey = ecKey();
  caKey = ecKey();
  rootDer = certificate({
    serial: 1, issuer: ROOT, subject: ROOT, notBefore: FROM, notAfter: TO, key: rootKey, signer: rootKey,
    extensions: [basicConstraints(true), keyUsage([KU.keyCertSign, KU.cRLSign])],
  });
  caDer = certificate({
    serial: 2, issuer: ROOT, subject: CA, notBefore: FROM, notAfter: TO, key: caKey, signer: rootKey,
    extensions: [basicConstraints(true), keyUsage([KU.keyCertSign, KU.cRLSign])],
  });
});

function leafWith(extension: Extension, serial: number): Buffer {
  return certificate({
    serial, issuer: CA, subject: dn(['CN', `pointers-leaf-${serial}`]), notBefore: FROM, notAfter: TO, key: ecKey(), signer: caKey,
    extensions: [basicConstraints(false, undefined, false), keyUsage([KU.digitalSignature]), extension],
  });
}

async function validated(leaf: Buffer): Promise<ValidatedPath> {
  const validator = ChainValidator.fromPem([toPem(rootDer)], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => NOW.getTime() });
  assert.ok(validator.ok);
  const path = await validator.value.validatePath([leaf, caDer]);
  assert.ok(path.ok, path.ok ? '' : `path validation ignores the pointers: ${path.error.detail}`);
  return path.value;
}

const checker = (mode: RevocationMode, checkWholePath = false): RevocationChecker => new RevocationChecker({
  mode, timeoutMs: 1000, cacheTtlMs: 1000, cacheSize: 10, sslVerify: true, checkWholePath, now: () => NOW.getTime(),
});

describe('malformed revocation pointers on the validated path', () => {
  MALFORMED.forEach(([label, extension], i) => {
    it(`${label}: STRICT revocation_unknown, IGNORE_CA_ERROR passes, no fetch`, async () => {
      const path = await validated(leafWith(extension, 100 + i));
      const strict = checker('STRICT');
      const refused = await strict.check(path);
      assert.equal(refused.ok, false);
      assert.equal(refused.ok ? '' : refused.error.reason, 'revocation_unknown', refused.ok ? '' : refused.error.detail);
      assert.match(refused.ok ? '' : refused.error.detail, /authorityInfoAccess or cRLDistributionPoints extension is malformed/);
      const lenient = checker('IGNORE_CA_ERROR');
      const passed = await lenient.check(path);
      assert.ok(passed.ok, passed.ok ? '' : passed.error.detail);
      assert.equal(strict.stats().fetches + lenient.stats().fetches, 0);
    });
  });

  it('an intermediate with a malformed pointer is reported with the whole chain checked', async () => {
    const badCa = certificate({
      serial: 3, issuer: ROOT, subject: CA, notBefore: FROM, notAfter: TO, key: caKey, signer: rootKey,
      extensions: [basicConstraints(true), keyUsage([KU.keyCertSign, KU.cRLSign]), MALFORMED[0]![1]],
    });
    const validator = ChainValidator.fromPem([toPem(rootDer)], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => NOW.getTime() });
    assert.ok(validator.ok);
    const leaf = leafWith(cdp(seq(seq(tlv(0xa0, tlv(0xa0, uri('http://127.0.0.1:9/leaf.crl')))))), 200);
    const path = await validator.value.validatePath([leaf, badCa]);
    assert.ok(path.ok, path.ok ? '' : path.error.detail);
    const result = await checker('STRICT', true).check(path.value);
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.error.detail, /CN=Pointers CA unknown: its authorityInfoAccess or cRLDistributionPoints extension is malformed/);
  });
});
