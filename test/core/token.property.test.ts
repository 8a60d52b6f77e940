/**
 * Properties: whatever arrives in an Authorization header or as a token, extraction and
 * verification return a Result (never throw), and nothing but the genuine token verifies.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { extractBearerToken } from '../../src/bearer.js';
import { isReasonCode } from '../../src/errors.js';
import { JwksSource } from '../../src/jwks.js';
import { TokenVerifier } from '../../src/token.js';
import { base64url, startJwksServer, type JwksServer } from '../helpers/jwks-server.js';

const NOW_MS = Date.UTC(2030, 0, 1);
const NOW = NOW_MS / 1000;
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

let idp: JwksServer;
/** Genuine tokens, one per key type, and the verifier that accepts them. */
let genuine: string[];
let verifier: TokenVerifier;
let jwks: JwksSource;

before(async () => {
  idp = await startJwksServer({ algs: ['RS256', 'ES256'] });
  genuine = await Promise.all(idp.keys.map((key) =>
    idp.sign({ iss: idp.issuer, exp: NOW + 3600, iat: NOW, sub: 'alice', scope: 'read', cnf: { 'x5t#S256': 'x' } }, { kid: key.kid })));
  jwks = new JwksSource({
    issuer: idp.issuer, jwksUri: null, timeoutMs: 2000, rediscoveryLifetimeS: 3600, sslVerify: true, caPem: [], now: () => NOW_MS,
  });
  // Cache disabled: every call goes through parsing and the signature check.
  verifier = new TokenVerifier({
    issuersAllowed: [idp.issuer], algorithms: ['RS256', 'ES256'], leewayS: 0, audienceRequired: null, scopesRequired: ['read'],
    cacheSize: 0, cacheTtlS: 0, cacheSalt: null, now: () => NOW_MS,
  }, jwks);
});
after(() => idp.close());

const headerValue = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.tuple(fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', 'DPoP', ''), fc.constantFrom(' ', '  ', '\t', ', ', ''),
    fc.string({ maxLength: 100 })).map(([scheme, sep, rest]) => `${scheme}${sep}${rest}`),
);

test('extractBearerToken never throws, and only returns a b64token from a Bearer value', () => {
  fc.assert(fc.property(fc.array(headerValue, { maxLength: 3 }), (values) => {
    const result = extractBearerToken(values);
    if (result.ok) {
      assert.equal(values.length, 1);
      assert.match(result.value, B64TOKEN);
      assert.match((values[0] as string).trim(), /^bearer +/i);
      assert.equal((values[0] as string).trim().endsWith(result.value), true);
    } else {
      assert.equal(isReasonCode(result.error.reason), true);
      assert.equal(typeof result.error.detail, 'string');
    }
  }), { numRuns: 2000 });
});

/** Ways to damage a genuine token. */
function mutate(token: string, kind: number, position: number, char: string): string {
  const at = position % Math.max(1, token.length);
  const parts = token.split('.');
  switch (kind) {
    case 0: return token.slice(0, at) + char + token.slice(at + 1); // replace one character
    case 1: return token.slice(0, at) + token.slice(at + 1); // delete one character
    case 2: return token.slice(0, at) + char + token.slice(at); // insert one character
    case 3: return token.slice(0, at); // truncate
    case 4: return `${parts[0]}.${parts[1]}`; // drop the signature
    case 5: return [parts[0], parts[2], parts[1]].join('.'); // swap parts
    case 6: { // re-encode the header with another alg
      const header = JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString()) as Record<string, unknown>;
      return [base64url(JSON.stringify({ ...header, alg: ['none', 'HS256', 'ES256', 'RS256', 'PS256'][position % 5] })), parts[1], parts[2]].join('.');
    }
    case 7: { // re-encode the payload with one claim changed
      const payload = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
      const claim = ['iss', 'exp', 'scope', 'sub', 'cnf'][position % 5] as string;
      return [parts[0], base64url(JSON.stringify({ ...payload, [claim]: char })), parts[2]].join('.');
    }
    case 8: return `${token}.${char}`; // extra part
    case 9: { // another spelling of the same signature bytes (unused low bits of the last character)
      const signature = parts[2] ?? '';
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(signature[signature.length - 1] ?? 'A');
      return `${parts[0]}.${parts[1]}.${signature.slice(0, -1)}${alphabet[last ^ (1 + (position % 3))]}`;
    }
    default: return `${parts[0]}.${parts[1]}.${parts[2]?.toUpperCase()}`;
  }
}

test('mutated genuine tokens never verify and never throw', async () => {
  // The genuine tokens do verify (otherwise the property below would prove nothing).
  for (const token of genuine) assert.equal((await verifier.verify(token)).ok, true);
  await fc.assert(fc.asyncProperty(
    fc.constantFrom(...genuine), fc.integer({ min: 0, max: 10 }), fc.nat(), fc.string({ minLength: 1, maxLength: 2 }),
    async (token, kind, position, char) => {
      const mutated = mutate(token, kind, position, char);
      const result = await verifier.verify(mutated);
      if (mutated === token) {
        assert.equal(result.ok, true);
        return;
      }
      assert.equal(result.ok, false, `mutation ${kind} at ${position} with ${JSON.stringify(char)} verified`);
      if (!result.ok) {
        assert.equal(isReasonCode(result.error.reason), true);
        assert.notEqual(result.error.reason, 'internal_error', result.error.detail);
      }
    },
  ), { numRuns: 1500 });
  assert.deepEqual(jwks.stats(), { fetches: 1, failures: 0 });
});

test('arbitrary strings and dotted garbage never verify and never throw', async () => {
  const segment = fc.string({ unit: fc.constantFrom(...'ABCxyz019-_=+/.'.split('')), maxLength: 40 });
  await fc.assert(fc.asyncProperty(
    fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.array(segment, { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.')),
      fc.tuple(fc.json(), fc.json(), segment).map(([h, p, s]) => `${base64url(h)}.${base64url(p)}.${s}`),
    ),
    async (candidate) => {
      const result = await verifier.verify(candidate);
      assert.equal(result.ok, false);
      if (!result.ok) assert.equal(isReasonCode(result.error.reason), true);
    },
  ), { numRuns: 1500 });
});
