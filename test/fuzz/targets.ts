/**
 * Fuzz targets: each one turns a seeded generator into one input (generated with fast-check, or a
 * mutation of a valid seed) and a run that checks the invariants of the code under test:
 *
 * - no exception escapes (the runner catches it and saves the input);
 * - a rejection carries a known reason code and never `internal_error` (that would be a bug);
 * - an acceptance is only ever the genuine thing: a header decodes only to well-formed DER (and a
 *   generated header to exactly the certificates it was built from), a chain is accepted only when
 *   its leaf and every certificate of a known valid path are byte-identical to the seeds, a token
 *   verifies only when its signing input (header.payload) is byte-identical to a genuine token's,
 *   and the whole verifier allows only the one valid pair: decoded leaf DER equal to the pair's
 *   leaf, token signing input equal to the pair token's.
 */
import { createHash, KeyObject, sign as cryptoSign } from 'node:crypto';
import fc from 'fast-check';
import { extractBearerToken, MAX_TOKEN_LENGTH } from '../../src/bearer.js';
import { certificateFacts, parseCertificate } from '../../src/certificate.js';
import type { HeaderFormat } from '../../src/config.js';
import { isReasonCode, type AuthFailure, type ReasonCode } from '../../src/errors.js';
import { decodeCertificateHeader } from '../../src/header.js';
import type { RequestFacts } from '../../src/verifier.js';
import { base64url, signCompact } from '../helpers/jwks-server.js';
import { boundaryLength, encodeDer, mutateBytes, mutateDerOnce, mutateText, parseDer } from './mutate.js';
import type { Rng } from './rng.js';
import { encodeHeader, FORMATS, LIMITS, signingInput, thumbprint, type World } from './world.js';

/** One input and the run that checks it; `run` resolves to whether the code under test accepted it. */
export interface FuzzCase {
  readonly input: Readonly<Record<string, unknown>>;
  run(): Promise<boolean>;
}

export interface Target {
  readonly name: string;
  readonly description: string;
  /** Inputs in a default `npm run fuzz` (the runner's --scale multiplies it). */
  readonly defaultRuns: number;
  generate(world: World, rng: Rng): FuzzCase;
}

/** An invariant that does not hold: a bug in the code under test (or in the fuzzer). */
export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Every rejection: a known code, never internal_error, a short detail that quotes no certificate or token. */
function checkFailure(error: AuthFailure, allowed?: ReadonlySet<ReasonCode>): void {
  check(isReasonCode(error.reason), `unknown reason code ${String(error.reason)}`);
  check(error.reason !== 'internal_error', `internal_error: ${error.detail}`);
  if (allowed !== undefined) check(allowed.has(error.reason), `reason ${error.reason} is not expected here: ${error.detail}`);
  check(typeof error.detail === 'string' && error.detail.length > 0 && error.detail.length <= 600, `bad detail length ${error.detail.length}`);
  // A long base64 run would be a certificate or token echoed back; hex is allowed (RFC 4514 #hexstring DN values, bounded by the DN label).
  const runs = error.detail.match(/[A-Za-z0-9+/_-]{120,}/g) ?? [];
  check(runs.every((run) => /^[0-9a-fA-F]+$/.test(run)), `the detail quotes a long base64 run: ${error.detail.slice(0, 200)}`);
}

/** One TLV at `at` with a minimal definite length of at most 4 octets, ending by `limit` (X.690 10.1). */
function strictTlv(bytes: Uint8Array, at: number, limit: number): { tag: number; body: number; end: number } | null {
  if (at + 2 > limit) return null;
  const tag = bytes[at] as number;
  let length = bytes[at + 1] as number;
  let body = at + 2;
  if (length === 0x80 || (tag & 0x1f) === 0x1f) return null;
  if (length > 0x80) {
    const count = length - 0x80;
    if (count > 4 || body + count > limit || bytes[body] === 0) return null;
    length = 0;
    for (let k = 0; k < count; k++) length = length * 256 + (bytes[body + k] as number);
    if (length < 0x80) return null;
    body += count;
  }
  return body + length > limit ? null : { tag, body, end: body + length };
}

/** Independent oracle: one DER Certificate SEQUENCE of SEQUENCE, SEQUENCE, non-empty BIT STRING, nothing after it. */
function looksLikeCertificate(der: Uint8Array): boolean {
  const top = strictTlv(der, 0, der.length);
  if (top === null || top.tag !== 0x30 || top.end !== der.length) return false;
  const parts: { tag: number; body: number; end: number }[] = [];
  for (let at = top.body; at < top.end;) {
    const part = strictTlv(der, at, top.end);
    if (part === null) return false;
    parts.push(part);
    at = part.end;
  }
  const [tbs, alg, sig] = parts;
  return parts.length === 3 && tbs?.tag === 0x30 && alg?.tag === 0x30 && sig?.tag === 0x03 && sig.end > sig.body;
}

const HEADER_REASONS: ReadonlySet<ReasonCode> = new Set<ReasonCode>([
  'certificate_missing', 'certificate_header_malformed', 'certificate_header_too_large', 'certificate_too_many', 'certificate_malformed',
]);

// ---------------------------------------------------------------------------------------------
// Grammar-based generators for the two structured formats (fast-check arbitraries).

const OWS = fc.constantFrom('', '', ' ', '  ', '\t', ' \t');
const caseVariant = (word: string): fc.Arbitrary<string> => fc.constantFrom(word, word.toLowerCase(), word.toUpperCase());
const xfccUnquoted = fc.string({ unit: fc.constantFrom(...'abcXYZ019:/.-_=+%@ '.split('')), maxLength: 24 }).map((s) => s.trim());
const xfccQuoted = fc.string({ unit: fc.constantFrom(...'ab ,;=\\"x/'.split('')), maxLength: 24 })
  .map((s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
/** Pairs Envoy writes before the certificate fields (its own URI SANs) and after them (the peer's SANs, always last). */
const xfccBy = fc.array(xfccUnquoted.map((v) => `By=${v}`), { maxLength: 2 });
const xfccSans = fc.array(fc.tuple(fc.constantFrom('URI', 'DNS', 'uri', 'dns'), xfccUnquoted).map(([k, v]) => `${k}=${v}`), { maxLength: 4 });

interface Structured { readonly value: string; readonly chainValue?: string; readonly expected: readonly Uint8Array[] }

/**
 * One x-forwarded-client-cert element as Envoy writes it (xfcc_element_count 1): By= pairs, then
 * Hash/Cert/Chain/Subject in any order and case, then URI=/DNS= pairs, with optional whitespace.
 */
function generateXfcc(rng: Rng, chain: readonly Uint8Array[]): Structured {
  const leaf = chain[0] as Uint8Array;
  const pemOf = (der: Uint8Array): string => `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
  const escape = (text: string): string => (rng.bool() ? encodeURIComponent(text) : encodeURIComponent(text).replace(/%2B/g, '+').replace(/%3D/g, '=').replace(/%2F/g, '/'));
  const quoteMaybe = (text: string): string => (rng.bool() ? `"${text}"` : text);
  const useChain = chain.length > 1 || rng.bool(0.3);
  const useCert = !useChain || rng.bool(0.4);
  const middle: string[] = [];
  const insert = (pair: string): void => { middle.splice(rng.int(middle.length + 1), 0, pair); };
  if (useCert) insert(`${rng.draw(caseVariant('Cert'))}=${quoteMaybe(escape(pemOf(leaf)))}`);
  if (useChain) insert(`${rng.draw(caseVariant('Chain'))}=${quoteMaybe(escape(chain.map(pemOf).join('')))}`);
  if (rng.bool(0.4)) {
    const hex = createHash('sha256').update(leaf).digest('hex');
    insert(`${rng.draw(caseVariant('Hash'))}=${rng.bool() ? hex.toUpperCase() : hex}`);
  }
  if (rng.bool(0.5)) insert(`Subject=${rng.draw(xfccQuoted)}`);
  const pairs = [...rng.draw(xfccBy), ...middle, ...rng.draw(xfccSans)];
  const separator = (): string => `${rng.draw(OWS)};${rng.draw(OWS)}`;
  return { value: `${rng.draw(OWS)}${pairs.join(separator())}${rng.draw(OWS)}`, expected: chain };
}

const sfKey = fc.tuple(fc.constantFrom(...'abz*'.split('')), fc.string({ unit: fc.constantFrom(...'az09_-.*'.split('')), maxLength: 6 }))
  .map(([first, rest]) => first + rest);
const sfBareItem = fc.oneof(
  fc.integer({ min: -999_999_999_999_999, max: 999_999_999_999_999 }).map(String),
  fc.tuple(fc.integer({ min: -999_999_999_999, max: 999_999_999_999 }), fc.integer({ min: 0, max: 999 })).map(([i, f]) => `${i}.${String(f).slice(0, 3)}`),
  fc.string({ unit: fc.constantFrom(...'ab ,;:=()\\"'.split('')), maxLength: 12 }).map((s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`),
  fc.tuple(fc.constantFrom('a', 'Z', '*'), fc.string({ unit: fc.constantFrom(...'az09!#$%&\'*+-.^_`|~:/'.split('')), maxLength: 8 })).map(([a, b]) => a + b),
  fc.uint8Array({ maxLength: 12 }).map((b) => `:${Buffer.from(b).toString('base64')}:`),
  fc.constantFrom('?0', '?1'),
);
const sfParameters = fc.array(fc.tuple(fc.constantFrom('', ' '), sfKey, fc.option(sfBareItem)), { maxLength: 3 })
  .map((params) => params.map(([sp, key, value]) => `;${sp}${key}${value === null ? '' : `=${value}`}`).join(''));

/** An RFC 9440 Client-Cert / Client-Cert-Chain pair with parameters, OWS and optional padding. */
function generateRfc9440(rng: Rng, chain: readonly Uint8Array[]): Structured {
  const item = (der: Uint8Array): string => {
    let b64 = Buffer.from(der).toString('base64');
    if (rng.bool(0.3)) b64 = b64.replace(/=+$/, ''); // RFC 8941 4.2.7: padding may be missing
    return `:${b64}:${rng.bool(0.4) ? rng.draw(sfParameters) : ''}`;
  };
  const members = chain.slice(1).map(item);
  const chainValue = members.length === 0 && rng.bool() ? '' : members.join(`${rng.draw(OWS)},${rng.draw(OWS)}`);
  return {
    value: `${rng.bool(0.2) ? ' ' : ''}${item(chain[0] as Uint8Array)}${rng.bool(0.2) ? ' ' : ''}`,
    chainValue: chainValue === '' ? '' : `${rng.draw(OWS).replace('\t', ' ')}${chainValue}${rng.draw(OWS).replace('\t', ' ')}`,
    expected: chain,
  };
}

const HEADER_DICTIONARY: Readonly<Record<HeaderFormat, readonly string[]>> = {
  base64_encoded: [',', ', ', '=', '==', '+', '/', '-', '_', 'MII', 'MIIB', 'AAAA', ' ', ''],
  url_encoded: ['%0A', '%20', '%2B', '%3D', '%2F', '%', '%%', '+', '-----BEGIN%20CERTIFICATE-----', '-----END%20CERTIFICATE-----', '%0D%0A', '%C3%A9'],
  pem: ['-----BEGIN CERTIFICATE-----', '-----END CERTIFICATE-----', '-----BEGIN ', '-----', '\n', '\r\n', '\t', '=', 'MII', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'],
  xfcc: [',', ';', '"', '\\', '=', 'Cert=', 'Chain=', 'Hash=', 'By=', 'cert=', '""', '\\"', '%0A', 'Hash=00', ';Cert=', ',Cert='],
  rfc9440: [':', '::', ',', ';', '=', ';a=1', ';a=?1', ';a="x"', ';a=:AA==:', ';A=1', ';a=1.5', ';a=-', '?2', '(', ')', ' ', '\t'],
};

function headerTarget(format: HeaderFormat, defaultRuns: number): Target {
  return {
    name: `header-${format}`,
    description: `decodeCertificateHeader(${format})${format === 'xfcc' ? ': XFCC parser' : format === 'rfc9440' ? ': RFC 8941 Byte Sequences incl. Client-Cert-Chain' : ''}`,
    defaultRuns,
    generate(world, rng) {
      const seeds = world.headerSeeds[format];
      const mode = rng.int(20);
      let value: string;
      let chainValue: string | undefined;
      let expected: readonly Uint8Array[] | null = null;
      if (mode < 6) {
        // Generated: a random selection of certificates, encoded as real senders do (exact result known).
        const chain = rng.bool(0.5)
          ? rng.pick([...world.validChains, ...world.invalidChains])
          : Array.from({ length: rng.range(1, 5) }, () => rng.pick(world.certificates));
        const encoded: Structured = format === 'xfcc' ? generateXfcc(rng, chain)
          : format === 'rfc9440' ? generateRfc9440(rng, chain)
          : { ...encodeHeader(rng, format, chain), expected: chain };
        ({ value, chainValue, expected } = encoded);
      } else if (mode < 17) {
        // Mutated: a valid seed (or one of another format, for confusion), text-mutated.
        const seed = rng.bool(0.9) ? rng.pick(seeds) : rng.pick(world.headerSeeds[rng.pick(FORMATS)]);
        const others = seeds.map((s) => s.value);
        const mutateChain = format === 'rfc9440' && seed.chainValue !== undefined && rng.bool(0.4);
        value = mutateChain ? seed.value : mutateText(rng, seed.value, others, HEADER_DICTIONARY[format]);
        chainValue = mutateChain ? mutateText(rng, seed.chainValue ?? '', others, HEADER_DICTIONARY[format]) : seed.chainValue;
      } else if (mode < 18) {
        // Boundary lengths around max_header_size.
        const seed = rng.pick(seeds);
        value = boundaryLength(rng, seed.value, LIMITS.maxHeaderSize - (seed.chainValue?.length ?? 0), rng.pick([' ', ',', '\t', 'A']));
        chainValue = seed.chainValue;
      } else {
        // Generated strings: arbitrary text, binary, and soups of the format's tokens.
        const soup = fc.array(fc.constantFrom(...HEADER_DICTIONARY[format], 'MIIB', 'AQAB', 'x', '0'), { maxLength: 60 }).map((p) => p.join(''));
        const text = fc.oneof(fc.string({ maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 400 }), soup);
        value = rng.draw(text);
        chainValue = format === 'rfc9440' && rng.bool() ? rng.draw(text) : undefined;
      }
      const want = expected;
      return {
        input: { format, value, ...(chainValue !== undefined ? { chainValue } : {}), ...(want !== null ? { expected: want } : {}) },
        async run() {
          const result = decodeCertificateHeader(value, format, LIMITS, chainValue);
          const size = value.length + (format === 'rfc9440' ? (chainValue?.length ?? 0) : 0);
          if (size > LIMITS.maxHeaderSize) {
            check(!result.ok && result.error.reason === 'certificate_header_too_large', `a header of ${size} characters is not certificate_header_too_large`);
          }
          if (want !== null) {
            check(result.ok, `a generated ${format} header is rejected: ${result.ok ? '' : `${result.error.reason}: ${result.error.detail}`}`);
            check(result.value.length === want.length && result.value.every((der, i) => same(der, want[i] as Uint8Array)),
              'a generated header decodes to other certificates than it was built from');
          }
          if (!result.ok) {
            checkFailure(result.error, HEADER_REASONS);
            return false;
          }
          check(result.value.length >= 1 && result.value.length <= LIMITS.maxChainLength, `${result.value.length} certificates returned`);
          for (const der of result.value) {
            check(looksLikeCertificate(der), 'an accepted certificate is not one DER Certificate SEQUENCE');
            check(der.byteOffset === 0 && der.buffer.byteLength === der.length, 'a returned Buffer does not own its memory exactly');
          }
          return true;
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Certificates.

const certificateTarget: Target = {
  name: 'certificate',
  description: 'parseCertificate / certificateFacts on mutated DER',
  defaultRuns: 150_000,
  generate(world, rng) {
    const mode = rng.int(20);
    let der: Uint8Array;
    if (mode === 0) der = rng.pick(world.certificates);
    else if (mode === 1) der = rng.draw(fc.uint8Array({ maxLength: 300 }));
    else if (mode === 2) {
      const body = rng.draw(fc.uint8Array({ maxLength: 200 }));
      der = Uint8Array.from([0x30, ...(body.length < 128 ? [body.length] : [0x81, body.length]), ...body]);
    } else der = mutateBytes(rng, rng.pick(world.certificates), world.certificates);
    return {
      input: { der },
      async run() {
        const parsed = parseCertificate(der);
        const facts = certificateFacts(der);
        check(parsed.ok === facts.ok, 'parseCertificate and certificateFacts disagree');
        if (!parsed.ok) {
          checkFailure(parsed.error, new Set<ReasonCode>(['certificate_malformed']));
          return false;
        }
        const f = parsed.value.facts;
        check(f.thumbprint === thumbprint(der), 'the thumbprint is not SHA-256 of the DER');
        check(Number.isFinite(f.notBefore.getTime()) && Number.isFinite(f.notAfter.getTime()), 'an invalid validity date');
        check(!/[\u0000-\u001f\u007f]/.test(f.subject + f.issuer), 'a control character in a subject/issuer text');
        check(f.subjectAltNames.every((n) => !/[\u0000-\u001f\u007f]/.test(n)), 'a control character in a SAN text');
        check(looksLikeCertificate(der), 'the full parser accepts what the outer-shape oracle rejects');
        // The header's cheap outer check must accept everything the full parser accepts.
        const header = decodeCertificateHeader(Buffer.from(der).toString('base64'), 'base64_encoded', LIMITS);
        check(header.ok && header.value.length === 1 && same(header.value[0] as Buffer, der),
          `the header decoder rejects a certificate the parser accepts${header.ok ? '' : `: ${header.error.detail}`}`);
        return true;
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Chains.

/** Re-signs a certificate whose tbsCertificate was mutated, with its genuine issuer's key. */
function resign(world: World, rng: Rng, der: Buffer, keys: ReadonlyMap<string, KeyObject>): Uint8Array | null {
  const key = keys.get(der.toString('hex'));
  const tree = parseDer(der);
  if (key === undefined || tree === null) return null;
  const cert = tree[0];
  const [tbs, alg] = cert?.children ?? [];
  if (tbs === undefined || alg === undefined) return null;
  const mutated = mutateDerOnce(rng, encodeDer([tbs]), world.certificates);
  if (mutated === null) return null;
  const signature = cryptoSign('sha256', mutated, key.asymmetricKeyType === 'ec' ? { key, dsaEncoding: 'der' } : key);
  const body = Buffer.concat([mutated, Buffer.from(encodeDer([alg])), Buffer.from(encodeDer([{ tag: 0x03, children: null, wrap: null, content: Buffer.concat([Buffer.of(0), signature]) }]))]);
  return encodeDer([{ tag: 0x30, children: null, wrap: null, content: body }]);
}

let privateKeys: Map<string, KeyObject> | null = null;

function issuerKeys(world: World): Map<string, KeyObject> {
  if (privateKeys === null) {
    privateKeys = new Map();
    for (const [hex, cryptoKey] of world.signers) {
      privateKeys.set(hex, KeyObject.from(cryptoKey));
    }
  }
  return privateKeys;
}

const chainTarget: Target = {
  name: 'chain',
  description: 'ChainValidator.validate on mutated chains (strict and partial-chain validators)',
  defaultRuns: 60_000,
  generate(world, rng) {
    const partial = rng.bool(0.3);
    const base = rng.pick(rng.bool(0.6) ? world.validChains : world.invalidChains);
    let chain: Uint8Array[] = [...base];
    let resigned = false;
    const keys = issuerKeys(world);
    for (let k = rng.bool(0.1) ? 0 : rng.geometric(3); k > 0; k--) {
      const i = rng.int(chain.length);
      switch (rng.int(9)) {
        case 0: case 1: case 2: // mutate one certificate's bytes
          chain[i] = mutateBytes(rng, chain[i] as Uint8Array, world.certificates);
          break;
        case 3: { // mutate a tbsCertificate and re-sign it with the genuine issuer key (reaches the path checks)
          const again = resign(world, rng, Buffer.from(chain[i] as Uint8Array), keys);
          if (again !== null) {
            chain[i] = again;
            resigned = true;
          }
          break;
        }
        case 4: chain[i] = rng.pick(world.certificates); break;
        case 5: chain.splice(rng.int(chain.length + 1), 0, rng.pick(world.certificates)); break;
        case 6: if (chain.length > 1) chain.splice(rng.range(1, chain.length - 1), 1); break;
        case 7: chain = [chain[0] as Uint8Array, ...chain.slice(1).reverse(), ...(rng.bool() ? [chain[chain.length - 1] as Uint8Array] : [])]; break;
        default: chain.push(rng.bytes(rng.range(0, 40))); break;
      }
    }
    const input = chain;
    return {
      input: { partial, resigned, chain: input },
      async run() {
        const validator = partial ? world.partialValidator : world.validator;
        const result = await validator.validate(input);
        if (!result.ok) {
          checkFailure(result.error);
          return false;
        }
        check(result.value.thumbprint === thumbprint(input[0] as Uint8Array), 'the accepted facts are not those of the first certificate');
        if (!resigned) {
          const valid = partial ? world.validPartialChains : world.validChains;
          const genuine = valid.some((path) => same(input[0] as Uint8Array, path[0] as Uint8Array)
            && path.every((cert) => input.some((presented) => same(presented, cert))));
          check(genuine, 'a chain is accepted whose leaf and path are not byte-identical to a valid seed path');
        }
        return true;
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Bearer extraction.

const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const BEARER_DICTIONARY = ['Bearer ', 'bearer', 'BEARER  ', 'Basic ', 'DPoP ', ',', ' ', '\t', '=', '==', '.', '~', '+', '/', '%20', '\u00a0', '\u0000'];

const bearerTarget: Target = {
  name: 'bearer',
  description: 'extractBearerToken on generated and mutated Authorization values',
  defaultRuns: 150_000,
  generate(world, rng) {
    let values: string[];
    if (rng.bool(0.5)) {
      const seed = `Bearer ${rng.pick([...world.genuineTokens, ...world.badTokens])}`;
      values = [mutateText(rng, seed, [seed], BEARER_DICTIONARY)];
      if (rng.bool(0.1)) values.push(rng.bool() ? seed : '');
      if (rng.bool(0.05)) values = [];
    } else {
      const value = fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.tuple(fc.constantFrom('Bearer', 'bearer', 'BeArEr', 'Basic', 'DPoP', ''), fc.constantFrom(' ', '  ', '\t', ', ', ''),
          fc.string({ unit: fc.constantFrom(...'AZaz09-._~+/=, \t'.split('')), maxLength: 120 })).map(([s, sep, rest]) => `${s}${sep}${rest}`),
        fc.constantFrom('', ' ', 'Bearer', `Bearer ${'A'.repeat(MAX_TOKEN_LENGTH)}`, `Bearer ${'A'.repeat(MAX_TOKEN_LENGTH + 1)}`),
      );
      values = rng.draw(fc.array(value, { maxLength: 3 }));
    }
    return {
      input: { authorization: values },
      async run() {
        const result = extractBearerToken(values);
        if (!result.ok) {
          checkFailure(result.error);
          return false;
        }
        const token = result.value;
        check(values.length === 1, `a token is returned from ${values.length} header values`);
        check(B64TOKEN.test(token) && token.length <= MAX_TOKEN_LENGTH, 'the token is outside the b64token syntax or too long');
        const m = /^bearer( +)(.*)$/is.exec((values[0] as string).trim());
        check(m !== null && m[2] === token, 'the token is not exactly what follows "Bearer " in the value');
        return true;
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Tokens.

const P256_ORDER = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
const TOKEN_DICTIONARY = ['.', '..', '-', '_', '=', '+', '/', 'eyJ', 'e30', 'A', 'AA', '%2E', ' ', base64url('{"alg":"none"}'), base64url('{"alg":"HS256"}'), base64url('{}')];

function decodePart(part: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

/** Another signature with the same signing input: ECDSA (r, s) -> (r, n - s) (P-256 only). */
function malleate(token: string): string {
  const parts = token.split('.');
  const signature = Buffer.from(parts[2] ?? '', 'base64url');
  if (signature.length !== 64) return token;
  const s = BigInt(`0x${signature.subarray(32).toString('hex')}`);
  const flipped = Buffer.from((P256_ORDER - s).toString(16).padStart(64, '0'), 'hex');
  return `${parts[0]}.${parts[1]}.${Buffer.concat([signature.subarray(0, 32), flipped]).toString('base64url')}`;
}

function tokenCase(world: World, rng: Rng): string {
  const pool = [...world.genuineTokens, ...world.badTokens];
  const seed = rng.pick(pool);
  const parts = seed.split('.');
  switch (rng.int(12)) {
    case 0: case 1: case 2: case 3:
      return mutateText(rng, seed, pool, TOKEN_DICTIONARY);
    case 4: { // parts of different tokens
      const other = rng.pick(pool).split('.');
      const pickPart = (i: number): string => (rng.bool() ? parts[i] : other[i]) ?? '';
      return [pickPart(0), pickPart(1), pickPart(2)].join('.');
    }
    case 5: case 6: { // change the header or payload JSON, keep the signature
      const which = rng.int(2);
      const json = decodePart(parts[which] ?? '') ?? {};
      const key = rng.pick(which === 0 ? ['alg', 'kid', 'typ', 'crit', 'cty', 'jku', 'x5c', 'b64'] : ['iss', 'exp', 'nbf', 'iat', 'cnf', 'scope', 'typ', 'sub']);
      if (rng.bool(0.2)) delete json[key];
      else json[key] = rng.draw(fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('none', 'HS256', 'RS256', 'ES256', 'EdDSA', 'RS384', null, 0, 1e20)));
      parts[which] = rng.bool(0.9) ? base64url(JSON.stringify(json)) : Buffer.from(JSON.stringify(json)).toString('base64');
      return parts.join('.');
    }
    case 7: { // signed by an attacker's key under a published kid
      const header = decodePart(parts[0] ?? '') ?? {};
      const payload = decodePart(parts[1] ?? '') ?? {};
      return signCompact(header, payload, rng.pick(world.attackerKeys));
    }
    case 8: // ECDSA signature malleability: a different signature over the same signing input (may verify)
      return malleate(rng.pick(world.genuineTokens.filter((t) => decodePart(t.split('.')[0] ?? '')?.['alg'] === 'ES256')));
    case 9: { // a non-canonical spelling of the same signature (unused low bits set)
      const sig = parts[2] ?? '';
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(sig[sig.length - 1] ?? 'A');
      return `${parts[0]}.${parts[1]}.${sig.slice(0, -1)}${alphabet[(last ^ rng.range(1, 3)) & 63]}`;
    }
    case 10: // generated JSON, unsigned or garbage-signed
      return `${base64url(JSON.stringify(rng.draw(fc.jsonValue({ maxDepth: 3 }))))}.${base64url(JSON.stringify(rng.draw(fc.jsonValue({ maxDepth: 3 }))))}.${rng.draw(fc.base64String({ maxLength: 40 })).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')}`;
    default:
      return rng.draw(fc.oneof(fc.string({ maxLength: 300 }), fc.array(fc.string({ unit: fc.constantFrom(...'ABCxyz019-_=+/.'.split('')), maxLength: 40 }), { minLength: 1, maxLength: 6 }).map((p) => p.join('.'))));
  }
}

const tokenTarget: Target = {
  name: 'token',
  description: 'TokenVerifier.verify (local JWKS on 127.0.0.1) on mutated and forged tokens',
  defaultRuns: 100_000,
  generate(world, rng) {
    const token = tokenCase(world, rng);
    return {
      input: { token },
      async run() {
        const result = await world.tokens.verify(token);
        if (!result.ok) {
          checkFailure(result.error);
          return false;
        }
        check(token.split('.').length === 3, 'a token that is not three parts verifies');
        check(world.validSigningInputs.has(signingInput(token)), 'a token verifies whose signing input is not byte-identical to a genuine token');
        return true;
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// The whole verifier.

const AUTH_DICTIONARY = [...BEARER_DICTIONARY, ...TOKEN_DICTIONARY];

function mutateFacts(world: World, rng: Rng, format: HeaderFormat, seed: RequestFacts): RequestFacts {
  let authorization = [...seed.authorization];
  let certificateHeader = [...seed.certificateHeader];
  let chainHeader = [...(seed.certificateChainHeader ?? [])];
  let peerTrusted = seed.peerTrusted;
  const headerSeeds = world.headerSeeds[format].map((s) => s.value);
  for (let k = rng.geometric(3); k > 0; k--) {
    switch (rng.int(10)) {
      case 0: case 1: { // mutate the Authorization value (usually inside the token)
        const i = rng.int(authorization.length);
        const value = authorization[i] ?? `Bearer ${world.pair.token}`;
        authorization[i] = rng.bool(0.7) ? `Bearer ${tokenCase(world, rng)}` : mutateText(rng, value, [value], AUTH_DICTIONARY);
        break;
      }
      case 2: case 3: { // mutate the certificate header
        const i = rng.int(certificateHeader.length);
        certificateHeader[i] = mutateText(rng, certificateHeader[i] ?? rng.pick(headerSeeds), headerSeeds, HEADER_DICTIONARY[format]);
        break;
      }
      case 4: // another certificate header (another chain, or another format)
        certificateHeader = [rng.bool(0.8) ? rng.pick(headerSeeds) : rng.pick(world.headerSeeds[rng.pick(FORMATS)]).value];
        break;
      case 5: // header multiplicity
        if (rng.bool()) certificateHeader.push(certificateHeader[0] ?? ''); else certificateHeader = certificateHeader.slice(1);
        break;
      case 6: // authorization multiplicity
        if (rng.bool()) authorization.push(authorization[0] ?? ''); else authorization = authorization.slice(1);
        break;
      case 7:
        peerTrusted = !peerTrusted;
        break;
      case 8: { // the rfc9440 chain header
        const value = chainHeader[0] ?? '';
        chainHeader = rng.bool(0.8) ? [mutateText(rng, value, headerSeeds, HEADER_DICTIONARY.rfc9440)] : rng.bool() ? [] : [value, value];
        break;
      }
      default: // a generated certificate header for a random chain
        certificateHeader = [encodeHeader(rng, format, Array.from({ length: rng.range(1, 3) }, () => rng.pick(world.certificates))).value];
        break;
    }
  }
  return { authorization, certificateHeader, certificateChainHeader: chainHeader, peerTrusted, host: 'api.example' };
}

const verifierTarget: Target = {
  name: 'verifier',
  description: 'Verifier.verify (strict mode, every header format) on mutated request facts',
  defaultRuns: 60_000,
  generate(world, rng) {
    const format = rng.pick(FORMATS);
    const seeds = world.factSeeds[format];
    // The first seeds are the valid pair; start from them a third of the time, and leave one in ten inputs unmutated.
    const seed = rng.bool(0.3) ? seeds[rng.int(2)] as RequestFacts : rng.pick(seeds);
    const facts = rng.bool(0.1) ? seed : mutateFacts(world, rng, format, seed);
    return {
      input: { format, facts },
      async run() {
        const decision = await world.verifiers[format].verify(facts);
        if (!decision.allow) {
          checkFailure(decision.failure);
          check([400, 401, 403].includes(decision.response.status), `status ${decision.response.status}`);
          return false;
        }
        // Only the valid pair: one Authorization value whose token has the pair token's signing input ...
        check(facts.authorization.length === 1, 'allowed with several Authorization values');
        const token = extractBearerToken(facts.authorization);
        check(token.ok && signingInput(token.value) === signingInput(world.pair.token), 'allowed with a token other than the pair token');
        // ... and one certificate header, from a trusted peer, whose leaf is the pair's leaf, byte for byte.
        check(facts.peerTrusted, 'allowed from an untrusted peer');
        check(facts.certificateHeader.length === 1, 'allowed with several certificate headers');
        const chainValues = facts.certificateChainHeader ?? [];
        check(chainValues.length <= 1, 'allowed with several chain headers');
        const decoded = decodeCertificateHeader(facts.certificateHeader[0] as string, format, LIMITS, chainValues[0] ?? null);
        check(decoded.ok && same(decoded.value[0] as Buffer, world.pair.leaf), 'allowed with a certificate other than the pair leaf');
        check(decision.certificate?.thumbprint === thumbprint(world.pair.leaf), 'the decision reports another certificate');
        return true;
      },
    };
  },
};

export const TARGETS: readonly Target[] = [
  headerTarget('base64_encoded', 110_000),
  headerTarget('url_encoded', 90_000),
  headerTarget('pem', 90_000),
  headerTarget('xfcc', 90_000),
  headerTarget('rfc9440', 110_000),
  certificateTarget,
  chainTarget,
  bearerTarget,
  tokenTarget,
  verifierTarget,
];
