/**
 * Canonical base64url only (RFC 7515 2, RFC 4648 3.5): the last character of a part whose length
 * is 2 or 3 modulo 4 carries 4 or 2 unused bits; a spelling with any of them set decodes to the
 * same bytes and must still be refused, or two strings would be accepted for one token. Every
 * such spelling is tried for the header, the payload (both remainders) and the signature.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenVerifier } from '../../src/token.js';
import { JwksSource } from '../../src/jwks.js';
import { startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

let idp: JwksServer;
let es: TestKey;

before(async () => {
  idp = await startJwksServer({ algs: ['ES256'] });
  es = idp.keys[0] as TestKey;
});
after(() => idp.close());

function verifier(): TokenVerifier {
  const jwks = new JwksSource({ issuer: idp.issuer, jwksUri: null, timeoutMs: 2000, rediscoveryLifetimeS: 30, sslVerify: true, caPem: [] });
  return new TokenVerifier({
    issuersAllowed: [idp.issuer], algorithms: ['ES256'], leewayS: 0, audienceRequired: null, scopesRequired: null,
    cacheSize: 0, cacheTtlS: 0, cacheSalt: 'salt',
  }, jwks);
}

/** Other spellings of `part`: its last character with some unused bits set (same decoded bytes). */
function otherSpellings(part: string): string[] {
  const unused = part.length % 4 === 2 ? 4 : part.length % 4 === 3 ? 2 : 0;
  const last = ALPHABET.indexOf(part[part.length - 1] as string);
  const out: string[] = [];
  for (let bits = 1; bits < 1 << unused; bits++) out.push(part.slice(0, -1) + ALPHABET[last | bits]);
  for (const spelling of out) assert.deepEqual(Buffer.from(spelling, 'base64url'), Buffer.from(part, 'base64url'));
  return out;
}

/** A token whose payload JSON has `mod3` remainder modulo 3 (so its base64url part ends in a short group). */
function tokenWithPayloadRemainder(mod3: 1 | 2, header: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  for (let pad = 0; pad < 3; pad++) {
    const claims = { iss: idp.issuer, exp: now + 300, iat: now, pad: 'x'.repeat(pad) };
    if (JSON.stringify(claims).length % 3 === mod3) return idp.signRaw({ alg: 'ES256', kid: es.kid, ...header }, claims, es);
  }
  throw new Error('unreachable');
}

test('non-canonical spellings of the payload, header and signature are token_malformed; the canonical token verifies', async () => {
  const v = verifier();
  let tried = 0;
  for (const mod3 of [1, 2] as const) {
    for (const typ of ['JWT', 'at+jwt']) {
      const token = tokenWithPayloadRemainder(mod3, { typ });
      const [h, p, s] = token.split('.') as [string, string, string];
      const canonical = await v.verify(token);
      assert.equal(canonical.ok, true, canonical.ok ? '' : canonical.error.detail);
      for (const [spellings, detail, build] of [
        [otherSpellings(h), /header/, (x: string) => `${x}.${p}.${s}`],
        [otherSpellings(p), /payload/, (x: string) => `${h}.${x}.${s}`],
        [otherSpellings(s), /signature/, (x: string) => `${h}.${p}.${x}`],
      ] as const) {
        for (const spelling of spellings) {
          const result = await v.verify(build(spelling));
          tried++;
          assert.equal(result.ok, false, `accepted ${spelling.slice(-4)}`);
          if (!result.ok) {
            assert.equal(result.error.reason, 'token_malformed');
            assert.match(result.error.detail, detail);
          }
        }
      }
    }
  }
  // Payload: remainders 1 and 2 (15 + 3 spellings) per typ; the ES256 signature (86 characters) 15 each;
  // the header of each typ has some unused bits too.
  assert.ok(tried >= 2 * (15 + 3) + 4 * 15, `only ${tried} spellings tried`);
});
