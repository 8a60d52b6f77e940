/**
 * The strict DER reader shared by the header check, the certificate parser and revocation: what
 * X.690 section 10 forbids is refused with a short reason, and what it allows is read exactly.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DerError, MAX_DEPTH, TAG, children, content, decodeOid, decodeTime, encode, encodeOid, integerHex, readTlv, readWhole,
  readExtensions, type Tlv,
} from '../../src/der.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

function refused(read: () => unknown, reason: RegExp): void {
  assert.throws(read, (error: unknown) => error instanceof DerError && reason.test(error.message));
}

describe('readTlv: definite, minimal lengths only', () => {
  test('short and long form lengths are read; offsets index the buffer', () => {
    assert.deepEqual(readTlv(bytes(0x04, 0x02, 0xaa, 0xbb)), { tag: 0x04, start: 0, body: 2, end: 4 });
    const long = Uint8Array.from([0x04, 0x81, 0x80, ...new Uint8Array(0x80)]);
    assert.deepEqual(readTlv(long), { tag: 0x04, start: 0, body: 3, end: 0x83 });
    const seq = bytes(0x30, 0x05, 0x02, 0x01, 0x07, 0x05, 0x00);
    assert.deepEqual(children(seq, readTlv(seq)), [
      { tag: 0x02, start: 2, body: 4, end: 5, depth: 1 }, { tag: 0x05, start: 5, body: 7, end: 7, depth: 1 },
    ]);
    refused(() => children(bytes(0x30, 0x03, 0x02, 0x02, 0x07), readTlv(bytes(0x30, 0x03, 0x02, 0x02, 0x07))), /^truncated$/);
  });

  test('BER-only and broken encodings are refused', () => {
    refused(() => readTlv(bytes(0x30, 0x80, 0x00, 0x00)), /^indefinite length/);
    refused(() => readTlv(bytes(0x04, 0x81, 0x05, 1, 2, 3, 4, 5)), /^non-minimal length encoding/);
    refused(() => readTlv(Uint8Array.from([0x04, 0x82, 0x00, 0x80, ...new Uint8Array(0x80)])), /^non-minimal length encoding/);
    refused(() => readTlv(bytes(0x04, 0x85, 0, 0, 0, 0, 1, 0)), /^length field too long$/);
    refused(() => readTlv(bytes(0x04)), /^truncated$/);
    refused(() => readTlv(bytes(0x04, 0x82, 0x01)), /^truncated$/);
    refused(() => readTlv(bytes(0x04, 0x03, 0x01)), /^truncated$/);
    refused(() => readTlv(bytes(0x1f, 0x01, 0x00)), /^unsupported high tag number$/);
  });

  test('readWhole refuses trailing bytes and another tag', () => {
    assert.equal(readWhole(bytes(0x30, 0x00), TAG.sequence, 'x').end, 2);
    refused(() => readWhole(bytes(0x30, 0x00, 0x00), TAG.sequence, 'the thing'), /^trailing bytes after the thing$/);
    refused(() => readWhole(bytes(0x31, 0x00), TAG.sequence, 'the thing'), /^the thing: unexpected tag 0x31$/);
  });

  test(`children descends at most ${MAX_DEPTH} levels`, () => {
    const nest = (levels: number): Uint8Array => {
      let der = encode(TAG.null);
      for (let i = 0; i < levels; i++) der = encode(TAG.sequence, der);
      return der;
    };
    const walk = (der: Uint8Array): number => {
      let depth = 0;
      for (let tlv: Tlv | undefined = readTlv(der); tlv !== undefined && tlv.tag === TAG.sequence; tlv = children(der, tlv)[0]) depth++;
      return depth;
    };
    assert.equal(walk(nest(MAX_DEPTH)), MAX_DEPTH);
    refused(() => walk(nest(MAX_DEPTH + 1)), /^nested too deeply$/);
  });
});

describe('values', () => {
  test('OIDs round-trip through encodeOid and decodeOid; arcs past 2^53 decode exactly', () => {
    for (const oid of ['1.3.6.1.5.5.7.48.1.2', '2.16.840.1.101.3.4.2.1', '2.999.3', '0.9.2342.19200300.100.1.25', '1.2.1099511627776']) {
      const der = encodeOid(oid);
      assert.equal(decodeOid(content(der, readWhole(der, TAG.oid, 'OID'))), oid);
    }
    assert.equal(decodeOid(bytes(0x69, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00)), `2.25.${2n * 128n ** 9n}`);
    refused(() => decodeOid(bytes(0x2b, 0x80, 0x01)), /^non-minimal OID arc$/);
    refused(() => decodeOid(bytes(0x2b, 0x86)), /^truncated OID$/);
  });

  test('times: UTC only, real dates; GeneralizedTime fractions only where allowed', () => {
    const time = (tag: number, text: string, fraction = false): number => {
      const der = encode(tag, Buffer.from(text, 'latin1'));
      return decodeTime(der, readTlv(der), fraction);
    };
    assert.equal(time(TAG.utcTime, '491231235959Z'), Date.UTC(2049, 11, 31, 23, 59, 59));
    assert.equal(time(TAG.utcTime, '500101000000Z'), Date.UTC(1950, 0, 1));
    assert.equal(time(TAG.generalizedTime, '20300102030405Z'), Date.UTC(2030, 0, 2, 3, 4, 5));
    assert.equal(time(TAG.generalizedTime, '20300102030405.123Z', true), Date.UTC(2030, 0, 2, 3, 4, 5));
    refused(() => time(TAG.generalizedTime, '20300102030405.123Z'), /^bad GeneralizedTime$/);
    refused(() => time(TAG.generalizedTime, '20300230000000Z'), /^impossible date$/);
    refused(() => time(TAG.utcTime, '300102030405+0100'), /^bad UTCTime$/);
  });

  test('integerHex drops leading zero octets and keeps one', () => {
    assert.equal(integerHex(bytes(0x00, 0x00, 0x8f, 0x01)), '8f01');
    assert.equal(integerHex(bytes(0x00)), '00');
    assert.equal(integerHex(bytes(0x02, 0x01, 0x7f), 2, 3), '7f');
    refused(() => integerHex(bytes()), /^empty INTEGER$/);
  });

  test('extensions: critical flag, value, and DER booleans only', () => {
    const ext = (...parts: Uint8Array[]): Uint8Array => encode(TAG.sequence, encode(TAG.sequence, encodeOid('2.5.29.19'), ...parts));
    const read = (der: Uint8Array) => readExtensions(der, readTlv(der));
    assert.deepEqual(read(ext(encode(TAG.boolean, bytes(0xff)), encode(TAG.octetString, bytes(0x30, 0x00)))),
      [{ oid: '2.5.29.19', critical: true, value: Buffer.from([0x30, 0x00]) }]);
    assert.equal(read(ext(encode(TAG.octetString, bytes(0x30, 0x00))))[0]?.critical, false);
    refused(() => read(ext(encode(TAG.boolean, bytes(0x01)), encode(TAG.octetString, bytes(0x30, 0x00)))), /^non-DER BOOLEAN$/);
    refused(() => read(ext(encode(TAG.octetString, bytes()), encode(TAG.octetString, bytes()))), /^bad extension$/);
  });
});
