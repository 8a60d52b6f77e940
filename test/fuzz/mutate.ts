/**
 * The mutation engine: byte-level, DER-structure-aware and text-level mutations of valid seeds.
 *
 * Byte level: bit flips, interesting and random bytes, arithmetic, insertion, deletion, chunk
 * duplication and swapping, splicing with another seed, truncation and extension.
 * DER level (a small tree reader of its own, so that a bug in the code under test cannot hide
 * here): remove, duplicate, swap, retag or rewrite an element, graft an element from another seed,
 * then re-encode every enclosing length, so the result is well-formed DER that reaches the deep
 * parsing code; or break one length header on purpose (non-minimal, indefinite, off by one, huge).
 * OCTET STRING and BIT STRING contents that are themselves DER (extension values, keys) are
 * descended into as well.
 * Text level: character edits, dictionary tokens, whitespace, case, splicing, boundary lengths,
 * and re-encodings (percent-encoding and decoding, base64 alphabet, padding and line breaks).
 *
 * Inputs are never modified (seeds are shared): every mutation returns new bytes. Note that
 * `Buffer#slice` is a view, so copies are made with `Uint8Array.from`.
 */
import type { Rng } from './rng.js';

// ---------------------------------------------------------------------------------------------
// Bytes.

const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1f, 0x20, 0x30, 0x31,
  0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0xa0, 0xa1, 0xa3, 0xa4, 0xbf, 0xfe, 0xff];

function concat(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One random byte-level mutation. `others` are seeds to splice with. */
export function mutateBytesOnce(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array {
  const n = input.length;
  const at = rng.int(n + 1);
  const op = rng.int(13);
  switch (op) {
    case 0: { // flip 1..4 bits
      if (n === 0) return rng.bytes(1);
      const out = Uint8Array.from(input);
      for (let k = rng.geometric(4); k > 0; k--) {
        const i = rng.int(n);
        out[i] = (out[i] as number) ^ (1 << rng.int(8));
      }
      return out;
    }
    case 1: { // interesting byte
      if (n === 0) return Uint8Array.of(rng.pick(INTERESTING_BYTES));
      const out = Uint8Array.from(input);
      out[rng.int(n)] = rng.pick(INTERESTING_BYTES);
      return out;
    }
    case 2: { // random byte(s)
      if (n === 0) return rng.bytes(rng.range(1, 4));
      const out = Uint8Array.from(input);
      for (let k = rng.geometric(8); k > 0; k--) out[rng.int(n)] = rng.u32() & 0xff;
      return out;
    }
    case 3: { // arithmetic
      if (n === 0) return Uint8Array.of(1);
      const out = Uint8Array.from(input);
      const i = rng.int(n);
      out[i] = ((out[i] as number) + rng.range(-35, 35)) & 0xff;
      return out;
    }
    case 4: // insert random bytes
      return concat(input.subarray(0, at), rng.bool() ? rng.bytes(rng.geometric(16)) : Uint8Array.of(rng.pick(INTERESTING_BYTES)), input.subarray(at));
    case 5: { // delete a range
      const length = Math.min(n - Math.min(at, n), rng.geometric(64));
      return concat(input.subarray(0, at), input.subarray(at + length));
    }
    case 6: { // duplicate a chunk somewhere
      if (n === 0) return input;
      const from = rng.int(n);
      const length = Math.min(n - from, rng.geometric(256));
      const chunk = input.slice(from, from + length);
      const to = rng.int(n + 1);
      return concat(input.subarray(0, to), chunk, input.subarray(to));
    }
    case 7: { // splice: a prefix of this, a suffix of another seed
      const other = others.length > 0 ? rng.pick(others) : input;
      return concat(input.subarray(0, at), other.subarray(rng.int(other.length + 1)));
    }
    case 8: // truncate
      return input.subarray(0, rng.int(n));
    case 9: // extend with junk or with a copy of another seed
      return rng.bool() ? concat(input, rng.bytes(rng.geometric(32))) : concat(input, others.length > 0 ? rng.pick(others) : input);
    case 10: { // overwrite a run with the bytes at the same offset of another seed
      const other = others.length > 0 ? rng.pick(others) : input;
      const out = Uint8Array.from(input);
      const length = rng.geometric(64);
      for (let i = at; i < Math.min(n, at + length, other.length); i++) out[i] = other[i] as number;
      return out;
    }
    case 11: { // swap two chunks
      if (n < 4) return input;
      const a = rng.int(n - 1);
      const b = rng.range(a + 1, n - 1);
      const length = Math.min(rng.geometric(64), b - a, n - b);
      if (length <= 0) return input;
      const out = Uint8Array.from(input);
      out.set(input.subarray(b, b + length), a);
      out.set(input.subarray(a, a + length), b);
      return out;
    }
    default: { // set a 16/32-bit big-endian boundary value (lengths, counts)
      if (n < 2) return input;
      const out = Uint8Array.from(input);
      const i = rng.int(n - 1);
      const value = rng.pick([0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff]);
      out[i] = value >> 8;
      out[i + 1] = value & 0xff;
      return out;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// DER trees (X.690), for structure-aware mutation.

export interface DerNode {
  tag: number;
  /** Constructed, or primitive whose contents are DER (`wrap`: 'octet' contents, 'bit' contents after the unused-bits octet). */
  children: DerNode[] | null;
  wrap: 'octet' | 'bit' | null;
  content: Uint8Array;
  /** Deliberately broken length header, used instead of the right one when encoding. */
  badLength?: Uint8Array;
}

function readHeader(buf: Uint8Array, at: number, limit: number): { tag: number; body: number; end: number } | null {
  if (at + 2 > limit) return null;
  const tag = buf[at] as number;
  if ((tag & 0x1f) === 0x1f) return null;
  let length = buf[at + 1] as number;
  let body = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || body + count > limit) return null;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buf[body + i] as number);
    body += count;
  }
  const end = body + length;
  return end > limit ? null : { tag, body, end };
}

/** The elements filling buf[start, end) exactly, or null. */
export function parseDer(buf: Uint8Array, start = 0, end = buf.length, depth = 0): DerNode[] | null {
  const nodes: DerNode[] = [];
  for (let at = start; at < end;) {
    const header = readHeader(buf, at, end);
    if (header === null) return null;
    const content = buf.subarray(header.body, header.end);
    let children: DerNode[] | null = null;
    let wrap: DerNode['wrap'] = null;
    if (depth < 24) {
      if (header.tag & 0x20) {
        children = parseDer(buf, header.body, header.end, depth + 1);
        if (children === null) return null;
      } else if (header.tag === 0x04 && content.length >= 2 && (content[0] === 0x30 || content[0] === 0x03 || content[0] === 0x04)) {
        children = parseDer(buf, header.body, header.end, depth + 1);
        if (children !== null) wrap = 'octet';
      } else if (header.tag === 0x03 && content.length >= 3 && content[0] === 0 && content[1] === 0x30) {
        children = parseDer(buf, header.body + 1, header.end, depth + 1);
        if (children !== null) wrap = 'bit';
      }
    }
    nodes.push({ tag: header.tag, children, wrap, content });
    at = header.end;
  }
  return nodes;
}

function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const octets: number[] = [];
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets.unshift(rest % 256);
  return Uint8Array.of(0x80 | octets.length, ...octets);
}

export function encodeDer(nodes: readonly DerNode[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const node of nodes) {
    let body: Uint8Array;
    if (node.children === null) body = node.content;
    else if (node.wrap === 'bit') body = concat(Uint8Array.of(0), encodeDer(node.children));
    else body = encodeDer(node.children);
    parts.push(Uint8Array.of(node.tag), node.badLength ?? encodeLength(body.length), body);
  }
  return concat(...parts);
}

interface Located {
  readonly node: DerNode;
  readonly siblings: DerNode[];
  readonly index: number;
}

function flatten(nodes: DerNode[], out: Located[] = []): Located[] {
  nodes.forEach((node, index) => {
    out.push({ node, siblings: nodes, index });
    if (node.children !== null) flatten(node.children, out);
  });
  return out;
}

const INTERESTING_NODES: readonly (() => DerNode)[] = [
  () => prim(0x01, [0xff]), () => prim(0x01, [0x00]), () => prim(0x01, [0x01]), () => prim(0x02, [0x00]), () => prim(0x02, [0xff]),
  () => prim(0x02, [0x00, 0x7f]), () => prim(0x02, []), () => prim(0x02, [0x7f, 0xff, 0xff, 0xff, 0xff]), () => prim(0x05, []),
  () => prim(0x06, [0x55, 0x1d, 0x13]), () => prim(0x06, [0x55, 0x1d, 0x0f]), () => prim(0x06, [0x55, 0x1d, 0x25]),
  () => prim(0x06, [0x55, 0x1d, 0x1e]), () => prim(0x06, [0x55, 0x1d, 0x11]), () => prim(0x06, [0x80]), () => prim(0x06, []),
  () => prim(0x06, [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02]), () => prim(0x06, [0x55, 0x1d, 0x25, 0x00]),
  () => prim(0x03, [0x00]), () => prim(0x03, []), () => prim(0x03, [0x07, 0x80]), () => prim(0x03, [0x01, 0x86]),
  () => prim(0x04, []), () => prim(0x0c, [0xc3, 0x28]), () => prim(0x0c, []), () => prim(0x13, [0x41, 0x20, 0x20]),
  () => prim(0x1e, [0x00]), () => prim(0x1c, [0x00, 0x11, 0x00, 0x00]), () => prim(0x16, [0xff]),
  () => prim(0x17, [...Buffer.from('491231235959Z')]), () => prim(0x17, [...Buffer.from('500101000000Z')]),
  () => prim(0x17, [...Buffer.from('000229000000Z')]), () => prim(0x17, [...Buffer.from('991301000000Z')]),
  () => prim(0x18, [...Buffer.from('99991231235959Z')]), () => prim(0x18, [...Buffer.from('20240229120000.5Z')]),
  () => cons(0x30, []), () => cons(0x31, []), () => cons(0xa0, []), () => cons(0xa3, []), () => prim(0x80, []), () => prim(0x81, [0x40]),
  () => prim(0x82, [0x2e]), () => prim(0x86, [...Buffer.from('urn:x')]), () => prim(0x87, [10, 0, 0, 1, 255, 0]), () => prim(0x88, [0x2a]),
  () => cons(0xa4, [cons(0x30, [])]),
];

function prim(tag: number, bytes: readonly number[]): DerNode {
  return { tag, children: null, wrap: null, content: Uint8Array.from(bytes) };
}

function cons(tag: number, children: DerNode[]): DerNode {
  return { tag, children, wrap: null, content: new Uint8Array(0) };
}

function cloneNode(node: DerNode): DerNode {
  return { ...node, children: node.children === null ? null : node.children.map(cloneNode), content: Uint8Array.from(node.content) };
}

/** One structure-aware mutation of a DER encoding; null when `input` is not DER this reader accepts. */
export function mutateDerOnce(rng: Rng, input: Uint8Array, others: readonly Uint8Array[]): Uint8Array | null {
  const tree = parseDer(input);
  if (tree === null || tree.length === 0) return null;
  const all = flatten(tree);
  const target = rng.pick(all);
  const { node, siblings, index } = target;
  switch (rng.int(11)) {
    case 0: // remove the element
      siblings.splice(index, 1);
      break;
    case 1: // duplicate it
      siblings.splice(index, 0, cloneNode(node));
      break;
    case 2: { // swap with a sibling
      const other = rng.int(siblings.length);
      siblings[index] = siblings[other] as DerNode;
      siblings[other] = node;
      break;
    }
    case 3: // another tag, same contents
      node.tag = rng.bool() ? rng.pick(INTERESTING_BYTES.filter((b) => (b & 0x1f) !== 0x1f)) : (node.tag ^ (1 << rng.int(8))) & 0xff;
      if ((node.tag & 0x1f) === 0x1f) node.tag ^= 0x01;
      if (node.children !== null && !(node.tag & 0x20) && node.wrap === null) node.wrap = 'octet';
      break;
    case 4: { // rewrite primitive contents (or all of a constructed element's contents)
      const bytes = node.children === null ? node.content : encodeDer(node.children);
      node.children = null;
      node.wrap = null;
      node.content = rng.bool() ? mutateBytesOnce(rng, bytes, others) : rng.bytes(rng.int(Math.min(64, bytes.length + 8)));
      break;
    }
    case 5: // insert an interesting element next to it
      siblings.splice(index + rng.int(2), 0, rng.pick(INTERESTING_NODES)());
      break;
    case 6: { // graft an element of another seed (same tag preferred), e.g. another certificate's extension
      const donorTree = parseDer(rng.pick(others.length > 0 ? others : [input]));
      if (donorTree === null) return null;
      const donors = flatten(donorTree).map((l) => l.node);
      const sameTag = donors.filter((d) => d.tag === node.tag);
      siblings[index] = cloneNode(rng.pick(sameTag.length > 0 && rng.bool(0.8) ? sameTag : donors));
      break;
    }
    case 7: { // break the length header on purpose
      const body = node.children === null ? node.content.length : encodeDer(node.children).length - (node.wrap === 'bit' ? -1 : 0);
      node.badLength = rng.pick([
        Uint8Array.of(0x80), Uint8Array.of(0x81, body & 0x7f), Uint8Array.of(0x82, body >> 8, body & 0xff),
        encodeLength(body + 1), encodeLength(Math.max(0, body - 1)), Uint8Array.of(0x84, 0xff, 0xff, 0xff, 0xff),
        Uint8Array.of(0x85, 0, 0, 0, 0, body & 0xff), Uint8Array.of(0xff), Uint8Array.of(0x7f),
      ]);
      break;
    }
    case 8: // empty it
      if (node.children !== null) node.children.length = 0;
      node.content = new Uint8Array(0);
      break;
    case 9: // nest it one level deeper
      siblings[index] = cons(rng.pick([0x30, 0x31, 0xa0, 0xa3]), [node]);
      break;
    default: { // move it elsewhere in the tree
      siblings.splice(index, 1);
      const destinations = flatten(tree).filter((l) => l.node.children !== null);
      if (destinations.length === 0) return null;
      const destination = rng.pick(destinations);
      destination.node.children?.splice(rng.int(destination.node.children.length + 1), 0, node);
      break;
    }
  }
  return encodeDer(tree);
}

/** `rounds` mutations mixing the byte and DER engines (DER-aware ones more often on DER input). */
export function mutateBytes(rng: Rng, input: Uint8Array, others: readonly Uint8Array[], rounds = rng.geometric(6)): Uint8Array {
  let out = input;
  for (let k = 0; k < rounds; k++) {
    const structured = rng.bool(0.55) ? mutateDerOnce(rng, out, others) : null;
    out = structured ?? mutateBytesOnce(rng, out, others);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text.

const WHITESPACE = [' ', '\t', '\r', '\n', '\r\n', '\n\t', '\u0000', '\u000b', '\u00a0', '\u2028'];

function toBase64Variant(rng: Rng, text: string): string {
  // Find a base64 run and re-encode it: url-safe alphabet, no padding, line breaks, or junk bits.
  const runs = [...text.matchAll(/[A-Za-z0-9+/]{8,}={0,2}/g)];
  if (runs.length === 0) return text;
  const run = rng.pick(runs);
  const start = run.index ?? 0;
  const value = run[0];
  let replaced: string;
  switch (rng.int(7)) {
    case 0: replaced = value.replace(/\+/g, '-').replace(/\//g, '_'); break;
    case 1: replaced = value.replace(/=+$/, ''); break;
    case 2: replaced = value.replace(/(.{1,64})/g, `$1${rng.pick(['\n', '\r\n', ' ', '\t'])}`); break;
    case 3: replaced = `${value}=`; break;
    case 4: { // non-zero pad bits: bump the last data character
      const body = value.replace(/=+$/, '');
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      const last = alphabet.indexOf(body[body.length - 1] ?? 'A');
      replaced = body.slice(0, -1) + (alphabet[(last + 1) % 64] as string) + value.slice(body.length);
      break;
    }
    case 5: replaced = Buffer.from(Buffer.from(value, 'base64').toString('latin1'), 'latin1').toString('base64url'); break;
    default: replaced = Buffer.from(value, 'base64').toString('hex'); break;
  }
  return text.slice(0, start) + replaced + text.slice(start + value.length);
}

function percentVariant(rng: Rng, text: string): string {
  switch (rng.int(6)) {
    case 0: try { return encodeURIComponent(text); } catch { return encodeURIComponent(text.replace(/[\ud800-\udfff]/g, '\ufffd')); } // lone surrogates
    case 1: try { return decodeURIComponent(text); } catch { return text.replace(/%/g, '%25'); }
    case 2: return text.replace(/%([0-9A-F]{2})/g, (_m, hex: string) => `%${hex.toLowerCase()}`);
    case 3: return text.replace(/%([0-9a-fA-F])[0-9a-fA-F]/, '%$1'); // a "%" with one hex digit
    case 4: { // escape one random character (possibly a multi-byte one, or a raw non-UTF-8 escape)
      const i = rng.int(text.length + 1);
      return `${text.slice(0, i)}%${rng.pick(['C3', 'FF', '00', '0A', '2C', '3B', '22', '3A', '25', 'E2%82', 'Zz'])}${text.slice(i)}`;
    }
    default: return text.replace(/ /g, '+');
  }
}

/** One text mutation. `dictionary` holds tokens of the format (separators, keywords, armour lines). */
export function mutateTextOnce(rng: Rng, input: string, others: readonly string[], dictionary: readonly string[]): string {
  const n = input.length;
  const at = rng.int(n + 1);
  switch (rng.int(14)) {
    case 0: { // replace a character
      const c = rng.bool(0.7) ? String.fromCharCode(rng.int(0x80)) : rng.bool() ? String.fromCharCode(rng.int(0x100)) : String.fromCodePoint(rng.int(0x110000) & ~0x800);
      return input.slice(0, at) + c + input.slice(at + 1);
    }
    case 1: return input.slice(0, at) + rng.pick(dictionary) + input.slice(at);
    case 2: return input.slice(0, at) + input.slice(at + rng.geometric(64));
    case 3: { // duplicate a chunk
      const from = rng.int(n + 1);
      const chunk = input.slice(from, from + rng.geometric(512));
      return input.slice(0, at) + chunk + input.slice(at);
    }
    case 4: { // splice with another seed
      const other = others.length > 0 ? rng.pick(others) : input;
      return input.slice(0, at) + other.slice(rng.int(other.length + 1));
    }
    case 5: return input.slice(0, at); // truncate
    case 6: return toBase64Variant(rng, input);
    case 7: return percentVariant(rng, input);
    case 8: return input.slice(0, at) + rng.pick(WHITESPACE) + input.slice(at);
    case 9: { // flip the case of a run
      const length = rng.geometric(32);
      const run = input.slice(at, at + length);
      const flipped = run === run.toUpperCase() ? run.toLowerCase() : run.toUpperCase();
      return input.slice(0, at) + flipped + input.slice(at + length);
    }
    case 10: { // join with another seed by a separator (several elements, several certificates)
      const other = others.length > 0 ? rng.pick(others) : input;
      return rng.bool() ? `${input}${rng.pick([',', ', ', ';', '\n', ''])}${other}` : `${other}${rng.pick([',', ', ', ';', '\n', ''])}${input}`;
    }
    case 11: { // replace every occurrence of one dictionary token by another
      const from = rng.pick(dictionary);
      return from.length === 0 ? input : input.split(from).join(rng.pick(dictionary));
    }
    case 12: { // swap two chunks
      if (n < 4) return input;
      const a = rng.int(n - 1);
      const b = rng.range(a + 1, n - 1);
      const length = Math.min(rng.geometric(128), b - a, n - b);
      return input.slice(0, a) + input.slice(b, b + length) + input.slice(a + length, b) + input.slice(a, a + length) + input.slice(b + length);
    }
    default: return input.slice(0, at) + rng.pick(dictionary).repeat(rng.geometric(8)) + input.slice(at);
  }
}

export function mutateText(rng: Rng, input: string, others: readonly string[], dictionary: readonly string[], rounds = rng.geometric(5)): string {
  let out = input;
  for (let k = 0; k < rounds; k++) out = mutateTextOnce(rng, out, others, dictionary);
  return out;
}

/** Pads or cuts `text` to one of the lengths around `limit` (size-limit boundaries). */
export function boundaryLength(rng: Rng, text: string, limit: number, filler = ' '): string {
  const length = limit + rng.range(-1, 1);
  if (text.length >= length) return text.slice(0, length);
  const pad = filler.repeat(Math.ceil((length - text.length) / filler.length)).slice(0, length - text.length);
  return rng.bool() ? text + pad : pad + text;
}
