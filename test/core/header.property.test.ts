import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { decodeCertificateHeader, type HeaderLimits } from '../../src/header.js';
import type { HeaderFormat } from '../../src/config.js';
import type { ReasonCode, Result } from '../../src/errors.js';
import { makeTestPki, type Issued, type TestPki } from '../helpers/pki.js';

const LIMITS: HeaderLimits = { maxHeaderSize: 32768, maxChainLength: 10 };
const FORMATS: readonly HeaderFormat[] = ['base64_encoded', 'url_encoded', 'pem', 'xfcc', 'rfc9440'];
const HEADER_REASONS: ReadonlySet<ReasonCode> = new Set<ReasonCode>([
  'certificate_missing', 'certificate_header_malformed', 'certificate_header_too_large', 'certificate_too_many',
  'certificate_malformed',
]);

let pki: TestPki;
let certs: readonly Issued[];
before(async () => {
  pki = await makeTestPki();
  certs = [pki.client, pki.intermediate, pki.root, pki.otherClient, pki.directClient];
});

/**
 * Independent oracle for the outer shape of a Certificate (RFC 5280 4.1): one DER TLV that is a
 * SEQUENCE covering all bytes, whose children are exactly SEQUENCE, SEQUENCE, non-empty BIT STRING.
 */
function hasCertificateShape(der: Uint8Array): boolean {
  const top = tlvAt(der, 0, der.length);
  if (top === null || top.tag !== 0x30 || top.end !== der.length) return false;
  const children: Array<{ tag: number; start: number; end: number }> = [];
  for (let at = top.start; at < top.end;) {
    const child = tlvAt(der, at, top.end);
    if (child === null) return false;
    children.push(child);
    at = child.end;
  }
  const [tbs, algorithm, signature] = children;
  return children.length === 3 && tbs?.tag === 0x30 && algorithm?.tag === 0x30 && signature?.tag === 0x03
    && signature.end > signature.start;
}

function tlvAt(bytes: Uint8Array, at: number, limit: number): { tag: number; start: number; end: number } | null {
  if (at + 2 > limit) return null;
  const tag = bytes[at] as number;
  let length = bytes[at + 1] as number;
  let start = at + 2;
  if (length === 0x80) return null;
  if (length > 0x80) {
    const count = length - 0x80;
    if (count > 4 || start + count > limit || bytes[start] === 0) return null;
    length = 0;
    for (let k = 0; k < count; k++) length = length * 256 + (bytes[start + k] as number);
    if (length < 0x80) return null;
    start += count;
  }
  return start + length > limit ? null : { tag, start, end: start + length };
}

/** The invariant for any input: no throw; ok means real-looking DER; failure means a header reason. */
function checkInvariant(result: Result<readonly Buffer[]>): void {
  if (result.ok) {
    assert.ok(result.value.length >= 1 && result.value.length <= LIMITS.maxChainLength);
    for (const der of result.value) assert.ok(hasCertificateShape(der), 'an accepted certificate passes the outer DER check');
  } else {
    assert.ok(HEADER_REASONS.has(result.error.reason), `unexpected reason ${result.error.reason}: ${result.error.detail}`);
    assert.ok(result.error.detail.length > 0 && result.error.detail.length < 300);
  }
}

// ---- encoders with the variations real senders produce

function pemOf(der: Buffer, width: number, eol: string): string {
  const body = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < body.length; i += width) lines.push(body.slice(i, i + width));
  return `-----BEGIN CERTIFICATE-----${eol}${lines.join(eol)}${eol}-----END CERTIFICATE-----${eol}`;
}

const escapeAll = (text: string): string => encodeURIComponent(text);
const albEscape = (text: string): string => encodeURIComponent(text).replace(/%2B/g, '+').replace(/%3D/g, '=').replace(/%2F/g, '/');
const lowerHex = (text: string): string => text.replace(/%([0-9A-F]{2})/g, (_m, hex: string) => `%${hex.toLowerCase()}`);

interface Variation {
  readonly separator: string;
  readonly stripPadding: boolean;
  readonly concatenate: boolean;
  readonly trailingComma: boolean;
  readonly width: number;
  readonly eol: string;
  readonly escape: 'all' | 'alb' | 'lower';
  readonly quoted: boolean;
  readonly withCert: boolean;
  readonly withHash: boolean;
  /** xfcc: elements APPEND_FORWARD hops add after the client's (xfcc_element_count is 1 + this). */
  readonly laterElements: number;
  readonly parameters: boolean;
}

const variation: fc.Arbitrary<Variation> = fc.record({
  separator: fc.constantFrom(',', ', ', ' , ', ',\t'),
  stripPadding: fc.boolean(),
  concatenate: fc.boolean(),
  trailingComma: fc.boolean(),
  width: fc.constantFrom(64, 76, 100_000),
  eol: fc.constantFrom('\n', '\r\n', ' ', '\n\t'),
  escape: fc.constantFrom('all' as const, 'alb' as const, 'lower' as const),
  quoted: fc.boolean(),
  withCert: fc.boolean(),
  withHash: fc.boolean(),
  laterElements: fc.integer({ min: 0, max: 2 }),
  parameters: fc.boolean(),
});

function escaped(text: string, style: Variation['escape']): string {
  return style === 'alb' ? albEscape(text) : style === 'lower' ? lowerHex(escapeAll(text)) : escapeAll(text);
}

/** Encodes `chain` (leaf first) in `format`; returns [header value, chain header value]. */
function encode(format: HeaderFormat, chain: readonly Buffer[], v: Variation): [string, string | undefined] {
  const b64 = (der: Buffer): string => (v.stripPadding ? der.toString('base64').replace(/=+$/, '') : der.toString('base64'));
  const pem = chain.map((der) => pemOf(der, v.width, v.eol)).join('');
  switch (format) {
    case 'base64_encoded': {
      const items = v.concatenate && chain.length > 1
        ? [b64(chain[0] as Buffer), b64(Buffer.concat(chain.slice(1)))]
        : chain.map(b64);
      return [items.join(v.separator) + (v.trailingComma ? ',' : ''), undefined];
    }
    case 'url_encoded':
      return [escaped(pem, v.escape), undefined];
    case 'pem':
      return [pem, undefined];
    case 'xfcc': {
      const quote = (text: string): string => (v.quoted ? `"${text}"` : text);
      const leaf = chain[0] as Buffer;
      const pairs = ['By=spiffe://cluster.local/ns/a/sa/b'];
      if (v.withHash) pairs.push(`Hash=${createHash('sha256').update(leaf).digest('hex')}`);
      const useCert = v.withCert || chain.length === 1;
      if (useCert) pairs.push(`Cert=${quote(escaped(pemOf(leaf, v.width, v.eol), v.escape))}`);
      if (!useCert || chain.length > 1) pairs.push(`Chain=${quote(escaped(pem, v.escape))}`);
      pairs.push('Subject="CN=client,O=\\"a;b\\""', 'URI=spiffe://cluster.local/ns/a/sa/c');
      const later = Array.from({ length: v.laterElements },
        () => `By=spiffe://x;Hash=${'ab'.repeat(32)};Cert="${escapeAll(pki.rogueClient.pem)}";Subject="CN=x,O=y";URI=spiffe://y`);
      return [[pairs.join(';'), ...later].join(v.separator), undefined];
    }
    case 'rfc9440': {
      const item = (der: Buffer): string => `:${b64(der)}:${v.parameters ? ';a=1;b="x";*c' : ''}`;
      return [item(chain[0] as Buffer), chain.slice(1).map(item).join(v.separator)];
    }
  }
}

const chainArbitrary = (): fc.Arbitrary<number[]> =>
  fc.uniqueArray(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 5 });

describe('decodeCertificateHeader properties', () => {
  test('roundtrip: any chain encoded as real senders do decodes to the same DER, leaf first', () => {
    for (const format of FORMATS) {
      fc.assert(fc.property(chainArbitrary(), variation, (indexes, v) => {
        const chain = indexes.map((i) => (certs[i] as Issued).der);
        const [value, chainValue] = encode(format, chain, v);
        const result = decodeCertificateHeader(value, format, { ...LIMITS, xfccElements: 1 + v.laterElements }, chainValue);
        if (!result.ok) assert.fail(`${format}: ${result.error.reason}: ${result.error.detail}`);
        assert.deepEqual(result.value.map((b) => b.toString('hex')), chain.map((b) => b.toString('hex')));
      }), { numRuns: 120 });
    }
  });

  test('arbitrary strings never throw and fail with a certificate header reason', () => {
    const tokens = fc.constantFrom(
      '-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----', '-----BEGIN ', '-----', 'MII', 'MIIB', 'AQ==', 'AAAA',
      '%0A', '%20', '%2B', '%', ':', ',', ';', '"', '\\', '=', 'Cert=', 'Chain=', 'Hash=', 'By=', ' ', '\t', '\n', '(', '?1',
      '0', '1.5', 'a', '*', '\u00e9', '\ud83d\ude00', '\u0000',
    );
    const strings = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.array(tokens, { maxLength: 40 }).map((parts) => parts.join('')),
    );
    for (const format of FORMATS) {
      fc.assert(fc.property(strings, fc.option(strings), (value, chainValue) => {
        checkInvariant(decodeCertificateHeader(value, format, LIMITS, chainValue));
      }), { numRuns: 400 });
    }
  });

  test('mutated valid headers (flips, insertions, deletions, truncation) never throw and keep the invariant', () => {
    const mutation = fc.record({
      op: fc.constantFrom('flip' as const, 'insert' as const, 'delete' as const, 'truncate' as const),
      at: fc.nat(),
      char: fc.oneof(fc.integer({ min: 0, max: 0x7f }), fc.constantFrom(0x2c, 0x3a, 0x3b, 0x22, 0x25, 0x2d, 0x3d, 0xe9)),
    });
    const mutate = (text: string, ops: ReadonlyArray<{ op: string; at: number; char: number }>): string => {
      let out = text;
      for (const { op, at, char } of ops) {
        const i = out.length === 0 ? 0 : at % out.length;
        const c = String.fromCharCode(char);
        if (op === 'flip') out = out.slice(0, i) + c + out.slice(i + 1);
        else if (op === 'insert') out = out.slice(0, i) + c + out.slice(i);
        else if (op === 'delete') out = out.slice(0, i) + out.slice(i + 1);
        else out = out.slice(0, i);
      }
      return out;
    };
    for (const format of FORMATS) {
      fc.assert(fc.property(chainArbitrary(), variation, fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.boolean(),
        (indexes, v, ops, mutateChain) => {
          const chain = indexes.map((i) => (certs[i] as Issued).der);
          const [value, chainValue] = encode(format, chain, v);
          const result = mutateChain && chainValue !== undefined
            ? decodeCertificateHeader(value, format, LIMITS, mutate(chainValue, ops))
            : decodeCertificateHeader(mutate(value, ops), format, LIMITS, chainValue);
          checkInvariant(result);
        }), { numRuns: 250 });
    }
  });
});
