/**
 * The MessagePack codec of the plugin server's socket (ours; kong-pdk uses @msgpack/msgpack 2.8).
 *
 * Only what Kong's `mp_rpc.lua` (lua-MessagePack) exchanges with a plugin server: nil, booleans,
 * integers (ids up to 2^53), floats, str, bin, arrays and maps with string or integer keys. The
 * encoder makes the same byte choices as @msgpack/msgpack 2.8's default Encoder (the smallest
 * integer form, uint64/int64 past 32 bits, float64 for non-integers, str8/16/32, undefined as
 * nil), so the frames Kong receives are byte for byte those of the stock server
 * (test/harness/codec.test.ts compares them on random values). Extension types are refused:
 * Kong never sends them.
 *
 * Why not a library: on Kong's frames this codec decodes and encodes about twice as fast as
 * @msgpack/msgpack and faster than msgpackr (`node dist/test/bench/run.js --only codec`), and
 * msgpackr writes integers past 32 bits (event ids) as float64, not what the stock server sends.
 */

/** A frame that is not MessagePack, or not one this protocol uses. */
export class CodecError extends Error {}

/** The buffer ends inside the value (more bytes are needed). */
export class Incomplete extends Error {}

const INCOMPLETE = new Incomplete('incomplete MessagePack value');

/** Deepest nesting decoded or encoded (Kong's frames are 4 levels deep; @msgpack/msgpack's limit is 100). */
const MAX_DEPTH = 100;

// ---------------------------------------------------------------------------------------------
// Decoding

let src: Buffer = Buffer.alloc(0);
let at = 0;
let stop = 0;

/**
 * Decodes the one value at `buf[start..end)`. Returns it and sets `decodedEnd` to the byte after
 * it. Throws `Incomplete` when the value runs past `end`, `CodecError` for bytes this protocol does
 * not use (reserved 0xc1, extension types, non-scalar map keys, nesting deeper than 100).
 */
export function decodeValue(buf: Buffer, start: number, end: number): unknown {
  src = buf;
  at = start;
  stop = end;
  try {
    const value = readValue(0);
    decodedEnd = at;
    return value;
  } finally {
    src = EMPTY;
  }
}
const EMPTY = Buffer.alloc(0);

/** Where the last `decodeValue` stopped. */
export let decodedEnd = 0;

function need(n: number): void {
  if (at + n > stop) throw INCOMPLETE;
}

function readValue(depth: number): unknown {
  need(1);
  const b = src[at++] as number;
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  if (b <= 0x8f) return readMap(b & 0x0f, depth);
  if (b <= 0x9f) return readArray(b & 0x0f, depth);
  if (b <= 0xbf) return readString(b & 0x1f);
  switch (b) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: need(1); return readBin(src[at++] as number);
    case 0xc5: need(2); at += 2; return readBin(src.readUInt16BE(at - 2));
    case 0xc6: need(4); at += 4; return readBin(src.readUInt32BE(at - 4));
    case 0xca: need(4); at += 4; return src.readFloatBE(at - 4);
    case 0xcb: need(8); at += 8; return src.readDoubleBE(at - 8);
    case 0xcc: need(1); return src[at++] as number;
    case 0xcd: need(2); at += 2; return src.readUInt16BE(at - 2);
    case 0xce: need(4); at += 4; return src.readUInt32BE(at - 4);
    case 0xcf: need(8); at += 8; return src.readUInt32BE(at - 8) * 0x1_0000_0000 + src.readUInt32BE(at - 4);
    case 0xd0: need(1); at += 1; return src.readInt8(at - 1);
    case 0xd1: need(2); at += 2; return src.readInt16BE(at - 2);
    case 0xd2: need(4); at += 4; return src.readInt32BE(at - 4);
    case 0xd3: need(8); at += 8; return src.readInt32BE(at - 8) * 0x1_0000_0000 + src.readUInt32BE(at - 4);
    case 0xd9: need(1); return readString(src[at++] as number);
    case 0xda: need(2); at += 2; return readString(src.readUInt16BE(at - 2));
    case 0xdb: need(4); at += 4; return readString(src.readUInt32BE(at - 4));
    case 0xdc: need(2); at += 2; return readArray(src.readUInt16BE(at - 2), depth);
    case 0xdd: need(4); at += 4; return readArray(src.readUInt32BE(at - 4), depth);
    case 0xde: need(2); at += 2; return readMap(src.readUInt16BE(at - 2), depth);
    case 0xdf: need(4); at += 4; return readMap(src.readUInt32BE(at - 4), depth);
    default: throw new CodecError(`unsupported MessagePack byte 0x${b.toString(16)}`);
  }
}

/** Longest string looked up in the short-string cache (method names, map keys, header names). */
const CACHED_MAX = 24;
const CACHE_WAYS = 16;
/** Per length: recently decoded short strings and their bytes (like @msgpack/msgpack's key cache). */
const cacheBytes: Buffer[][] = Array.from({ length: CACHED_MAX + 1 }, () => []);
const cacheStrings: string[][] = Array.from({ length: CACHED_MAX + 1 }, () => []);
const cacheNext: number[] = new Array<number>(CACHED_MAX + 1).fill(0);

/** Buffer's own UTF-8 slice (what `toString('utf8', start, end)` calls after checking its arguments). */
interface Utf8Slicer {
  utf8Slice(start: number, end: number): string;
}

function readString(length: number): string {
  need(length);
  const start = at;
  at += length;
  if (length > CACHED_MAX) return (src as unknown as Utf8Slicer).utf8Slice(start, at);
  const bytes = cacheBytes[length] as Buffer[];
  const strings = cacheStrings[length] as string[];
  search: for (let w = 0; w < bytes.length; w++) {
    const cached = bytes[w] as Buffer;
    for (let i = 0; i < length; i++) if (cached[i] !== src[start + i]) continue search;
    return strings[w] as string;
  }
  const text = src.toString('utf8', start, at);
  const slot = cacheNext[length] as number;
  bytes[slot] = Buffer.from(src.subarray(start, at));
  strings[slot] = text;
  cacheNext[length] = (slot + 1) % CACHE_WAYS;
  return text;
}

function readBin(length: number): Buffer {
  need(length);
  at += length;
  return Buffer.from(src.subarray(at - length, at)); // a copy: never a view of the connection's buffer
}

function readArray(length: number, depth: number): unknown[] {
  if (depth >= MAX_DEPTH) throw new CodecError('MessagePack value nested too deeply');
  // Each item takes at least one byte: a length past the data is incomplete, not an allocation.
  need(length);
  const out = new Array<unknown>(length);
  for (let i = 0; i < length; i++) out[i] = readValue(depth + 1);
  return out;
}

function readMap(length: number, depth: number): Record<string, unknown> {
  if (depth >= MAX_DEPTH) throw new CodecError('MessagePack value nested too deeply');
  need(length * 2);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < length; i++) {
    const key = readValue(depth + 1);
    if (typeof key !== 'string' && typeof key !== 'number') throw new CodecError('MessagePack map key must be a string or a number');
    const value = readValue(depth + 1);
    if (key === '__proto__') {
      // A header named "__proto__" is data, never the object's prototype.
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    } else {
      out[key] = value;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoding
//
// A frame is written into one scratch buffer, then copied into a Buffer of its own size (small
// ones come from Node's shared pool), which the socket may keep in its write queue.

const SCRATCH = 16 * 1024;
let out = Buffer.allocUnsafeSlow(SCRATCH);
let pos = 0;

function ensure(n: number): void {
  if (pos + n <= out.length) return;
  const next = Buffer.allocUnsafeSlow(Math.max(SCRATCH, (pos + n) * 2));
  out.copy(next, 0, 0, pos);
  out = next;
}

function finishFrame(): Buffer {
  const length = pos;
  const frame = Buffer.allocUnsafe(length);
  if (length <= 64) for (let i = 0; i < length; i++) frame[i] = out[i] as number;
  else frame.set(length === out.length ? out : out.subarray(0, length));
  pos = 0;
  if (out.length > 1 << 20) out = Buffer.allocUnsafeSlow(SCRATCH); // do not keep a huge scratch buffer
  return frame;
}

/** Encodes `value` into a new Buffer (the caller may keep it, e.g. in a socket's write queue). */
export function encode(value: unknown): Buffer {
  try {
    writeValue(value, 0);
  } catch (err) {
    pos = 0; // drop the partial frame
    throw err;
  }
  return finishFrame();
}

/** Encodes an RPC response `[1, msgid, error, result]` (kong-pdk `listener.js` write_response / write_error). */
export function encodeResponse(msgid: number, error: string | undefined, result: unknown): Buffer {
  try {
    ensure(2);
    out[pos] = 0x94;
    out[pos + 1] = 0x01;
    pos += 2;
    writeNumber(msgid);
    writeValue(error, 0);
    writeValue(result, 1);
  } catch (err) {
    pos = 0;
    throw err;
  }
  return finishFrame();
}

function writeValue(value: unknown, depth: number): void {
  switch (typeof value) {
    case 'string': writeString(value); return;
    case 'number': writeNumber(value); return;
    case 'boolean': ensure(1); out[pos++] = value ? 0xc3 : 0xc2; return;
    case 'undefined': ensure(1); out[pos++] = 0xc0; return;
    case 'object':
      if (value === null) { ensure(1); out[pos++] = 0xc0; return; }
      if (depth >= MAX_DEPTH) throw new CodecError('value nested too deeply (or cyclic)');
      if (Array.isArray(value)) { writeArray(value, depth); return; }
      if (ArrayBuffer.isView(value)) { writeBin(new Uint8Array(value.buffer, value.byteOffset, value.byteLength)); return; }
      if (value instanceof Date || value instanceof Map || value instanceof Set) throw new CodecError(`cannot encode a ${value.constructor.name}`);
      writeMap(value as Record<string, unknown>, depth);
      return;
    default:
      throw new CodecError(`cannot encode a ${typeof value}`);
  }
}

function writeU32(o: Buffer, p: number, n: number): void {
  o[p] = n >>> 24;
  o[p + 1] = (n >>> 16) & 0xff;
  o[p + 2] = (n >>> 8) & 0xff;
  o[p + 3] = n & 0xff;
}

function writeNumber(n: number): void {
  ensure(9);
  const o = out;
  let p = pos;
  if (Number.isSafeInteger(n)) {
    if (n >= 0) {
      if (n < 0x80) o[p++] = n;
      else if (n < 0x100) { o[p] = 0xcc; o[p + 1] = n; p += 2; }
      else if (n < 0x10000) { o[p] = 0xcd; o[p + 1] = n >>> 8; o[p + 2] = n & 0xff; p += 3; }
      else if (n < 0x1_0000_0000) { o[p] = 0xce; writeU32(o, p + 1, n); p += 5; }
      else { o[p] = 0xcf; writeU32(o, p + 1, Math.floor(n / 0x1_0000_0000)); writeU32(o, p + 5, n >>> 0); p += 9; }
    } else if (n >= -0x20) o[p++] = (n + 0x100) & 0xff;
    else if (n >= -0x80) { o[p] = 0xd0; o[p + 1] = n & 0xff; p += 2; }
    else if (n >= -0x8000) { o[p] = 0xd1; o[p + 1] = (n >> 8) & 0xff; o[p + 2] = n & 0xff; p += 3; }
    else if (n >= -0x8000_0000) { o[p] = 0xd2; writeU32(o, p + 1, n >>> 0); p += 5; }
    else { o[p] = 0xd3; writeU32(o, p + 1, Math.floor(n / 0x1_0000_0000) >>> 0); writeU32(o, p + 5, n >>> 0); p += 9; }
    pos = p;
    return;
  }
  o[p] = 0xcb;
  o.writeDoubleBE(n, p + 1);
  pos = p + 9;
}

function writeString(s: string): void {
  const n = s.length;
  if (n < 32) {
    ensure(1 + n * 3);
    const o = out;
    const p = pos;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      o[p + 1 + i] = c;
    }
    if (i === n) { // ASCII: fixstr
      o[p] = 0xa0 | n;
      pos = p + 1 + n;
      return;
    }
  }
  const length = Buffer.byteLength(s, 'utf8');
  ensure(5 + length);
  const o = out;
  let p = pos;
  if (length < 32) o[p++] = 0xa0 | length;
  else if (length < 0x100) { o[p] = 0xd9; o[p + 1] = length; p += 2; }
  else if (length < 0x10000) { o[p] = 0xda; o[p + 1] = length >>> 8; o[p + 2] = length & 0xff; p += 3; }
  else { o[p] = 0xdb; writeU32(o, p + 1, length); p += 5; }
  pos = p + o.write(s, p, length, 'utf8');
}

function writeBin(bytes: Uint8Array): void {
  const length = bytes.byteLength;
  ensure(5 + length);
  if (length < 0x100) { out[pos++] = 0xc4; out[pos++] = length; }
  else if (length < 0x10000) { out[pos++] = 0xc5; out[pos++] = length >>> 8; out[pos++] = length & 0xff; }
  else { out[pos++] = 0xc6; writeU32(out, pos, length); pos += 4; }
  out.set(bytes, pos);
  pos += length;
}

function writeArray(items: readonly unknown[], depth: number): void {
  const length = items.length;
  ensure(5);
  if (length < 16) out[pos++] = 0x90 | length;
  else if (length < 0x10000) { out[pos++] = 0xdc; out[pos++] = length >>> 8; out[pos++] = length & 0xff; }
  else { out[pos++] = 0xdd; writeU32(out, pos, length); pos += 4; }
  for (let i = 0; i < length; i++) writeValue(items[i], depth + 1);
}

function writeMap(object: Record<string, unknown>, depth: number): void {
  const keys = Object.keys(object);
  const length = keys.length;
  ensure(5);
  if (length < 16) out[pos++] = 0x80 | length;
  else if (length < 0x10000) { out[pos++] = 0xde; out[pos++] = length >>> 8; out[pos++] = length & 0xff; }
  else { out[pos++] = 0xdf; writeU32(out, pos, length); pos += 4; }
  for (let i = 0; i < length; i++) {
    const key = keys[i] as string;
    writeString(key);
    writeValue(object[key], depth + 1);
  }
}
