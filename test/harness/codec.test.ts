/**
 * The plugin server's MessagePack codec (bin/pluginserver/codec.ts) against @msgpack/msgpack 2.8,
 * the library kong-pdk's stock server encodes and decodes with: the same bytes for every value the
 * protocol carries (random values, Kong's frames), the same values decoded, ids up to 2^53,
 * incomplete values, refused bytes, and header names that are not the object's prototype.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Encoder, Decoder } from '@msgpack/msgpack';
import { CodecError, Incomplete, decodeValue, decodedEnd, encode, encodeResponse } from '../../bin/pluginserver/codec.js';

const reference = new Encoder();
const referenceDecoder = new Decoder();

/**
 * Values a plugin or Kong may put in a frame: JSON-like, with integers of every width and binary.
 * (No `__proto__` key: @msgpack/msgpack makes it the object's prototype, ours an own key; tested below.)
 */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.constant(null), fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
    fc.maxSafeInteger(), fc.maxSafeNat(),
    fc.double({ noNaN: true }),
    fc.string(), fc.string({ unit: 'grapheme', maxLength: 300 }), fc.string({ minLength: 200, maxLength: 70_000, unit: 'binary-ascii' }),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  ),
  node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 20 }), fc.dictionary(fc.string().filter((k) => k !== '__proto__'), tie('node'), { maxKeys: 20 })),
})).node;

describe('MessagePack codec', () => {
  test('encodes every value byte for byte as @msgpack/msgpack 2.8 (the stock server)', () => {
    fc.assert(fc.property(value, (v) => {
      assert.equal(encode(v).toString('hex'), Buffer.from(reference.encode(v)).toString('hex'));
    }), { numRuns: 2000 });
  });

  test('decodes every value as @msgpack/msgpack 2.8 does', () => {
    fc.assert(fc.property(value, (v) => {
      const bytes = Buffer.from(reference.encode(v));
      const ours = decodeValue(bytes, 0, bytes.length);
      assert.equal(decodedEnd, bytes.length);
      const theirs = referenceDecoder.decode(bytes);
      assert.deepEqual(normalize(ours), normalize(theirs));
    }), { numRuns: 2000 });
  });

  test('Kong\'s frames: ids up to 2^53 as uint64, Step without Data, header values as arrays; responses as the stock server writes them', () => {
    const id = 2 ** 53 - 1;
    const frames = [
      [0, 4_294_967_295, 'plugin.HandleEvent', [{ InstanceId: 2 ** 40 + 7, EventName: 'access' }]],
      [0, 18, 'plugin.StepMultiMap', [{ EventId: id, Data: { host: ['localhost'], 'x-client-cert': ['MII'.padEnd(1200, 'A')] } }]],
      [0, 19, 'plugin.Step', [{ EventId: id }]],
    ];
    for (const frame of frames) {
      const bytes = Buffer.from(reference.encode(frame));
      assert.deepEqual(decodeValue(bytes, 0, bytes.length), frame);
    }
    for (const [error, result] of [[undefined, { EventId: id, Data: 'ret' }], ['no plugin instance #5', undefined],
      [undefined, { EventId: id, Data: { Method: 'kong.response.exit', Args: [401, { message: 'Unauthorized' }, { 'WWW-Authenticate': 'Bearer' }] } }]] as const) {
      assert.equal(encodeResponse(id, error, result).toString('hex'), Buffer.from(reference.encode([1, id, error, result])).toString('hex'));
    }
    // uint64 on the wire for ids past 2^32 (msgpackr would write float64)
    assert.equal(encode(2 ** 40)[0], 0xcf);
  });

  test('a value cut short is Incomplete at every length; refused bytes are CodecError', () => {
    const bytes = Buffer.from(reference.encode([0, 1, 'plugin.Step', [{ EventId: 2 ** 40, Data: { a: ['x'.repeat(300)] } }]]));
    for (let n = 0; n < bytes.length; n++) assert.throws(() => decodeValue(bytes, 0, n), Incomplete);
    for (const bad of [[0xc1], [0xd4, 1, 2], [0xc7, 1, 0, 0], [0x81, 0x90, 0x01]]) {
      assert.throws(() => decodeValue(Buffer.from(bad), 0, bad.length), CodecError);
    }
    let deep = Buffer.alloc(0);
    for (let i = 0; i < 200; i++) deep = Buffer.concat([Buffer.from([0x91]), deep]);
    deep = Buffer.concat([deep, Buffer.from([0xc0])]);
    assert.throws(() => decodeValue(deep, 0, deep.length), CodecError);
    assert.throws(() => encode(new Date()), CodecError);
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    assert.throws(() => encode(cyclic), CodecError);
  });

  test('a header named __proto__ is an own key, never the prototype', () => {
    const bytes = Buffer.from(reference.encode({ __proto__: ['x'], host: ['h'] }));
    // (the reference encoder saw no own __proto__ key: build the map by hand)
    const manual = Buffer.concat([Buffer.from([0x82, 0xa9]), Buffer.from('__proto__'), Buffer.from([0x91, 0xa1, 0x78, 0xa4]), Buffer.from('host'), Buffer.from([0x91, 0xa1, 0x68])]);
    assert.ok(bytes.length > 0);
    const decoded = decodeValue(manual, 0, manual.length) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
    assert.deepEqual(Object.keys(decoded), ['__proto__', 'host']);
    assert.deepEqual(Object.getOwnPropertyDescriptor(decoded, '__proto__')?.value, ['x']);
  });
});

/** Buffers and Uint8Arrays compare by content; -0 as 0 (both encoders write an integer 0). */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(normalize);
  if (typeof v === 'number' && Object.is(v, -0)) return 0;
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalize(x);
    return out;
  }
  return v;
}
