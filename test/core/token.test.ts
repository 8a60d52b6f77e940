import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { TokenVerifier, type TokenPolicy, type VerifiedToken } from '../../src/token.js';
import { JwksSource, type JwksOptions } from '../../src/jwks.js';
import { checkAudience, checkIssuer, checkScopes } from '../../src/claims.js';
import { ASYMMETRIC_ALGORITHMS } from '../../src/config-schema.js';
import type { Result } from '../../src/errors.js';
import {
  base64url, makeTestKey, signHmac, startJwksServer, type JwksServer, type TestKey,
} from '../helpers/jwks-server.js';

const NOW_MS = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW = NOW_MS / 1000;

let idp: JwksServer;
let rsa: TestKey;
let ec: TestKey;
let ps: TestKey;
let ed: TestKey;
let ec384: TestKey;
/** Not published: an attacker's key. */
let rogue: TestKey;

before(async () => {
  idp = await startJwksServer({ algs: ['RS256', 'ES256', 'PS256', 'EdDSA', 'ES384'] });
  [rsa, ec, ps, ed, ec384] = idp.keys as [TestKey, TestKey, TestKey, TestKey, TestKey];
  rogue = makeTestKey('RS256', rsa.kid);
});
after(() => idp.close());

interface Setup {
  readonly clock: { t: number };
  readonly jwks: JwksSource;
  readonly verifier: TokenVerifier;
}

function setup(policy: Partial<TokenPolicy> = {}, jwksOptions: Partial<JwksOptions> = {}, server: JwksServer = idp): Setup {
  const clock = { t: NOW_MS };
  const jwks = new JwksSource({
    issuer: server.issuer, jwksUri: null, timeoutMs: 2000, rediscoveryLifetimeS: 30, sslVerify: true, caPem: [],
    now: () => clock.t, ...jwksOptions,
  });
  const verifier = new TokenVerifier({
    issuersAllowed: [server.issuer], algorithms: [...ASYMMETRIC_ALGORITHMS], leewayS: 0, audienceRequired: null,
    scopesRequired: null, cacheSize: 1000, cacheTtlS: 600, cacheSalt: 'test-salt', now: () => clock.t, ...policy,
  }, jwks);
  return { clock, jwks, verifier };
}

/** An access token as Keycloak issues it (header typ JWT, claim typ Bearer, azp, scope string, cnf). */
function keycloakClaims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    exp: NOW + 300, iat: NOW - 5, auth_time: NOW - 5, jti: randomUUID(), iss: idp.issuer, aud: 'account',
    sub: 'f:1234:alice', typ: 'Bearer', azp: 'mtls-client', sid: randomUUID(), acr: '1',
    realm_access: { roles: ['offline_access', 'uma_authorization'] }, scope: 'openid profile email',
    cnf: { 'x5t#S256': 'A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0' }, preferred_username: 'alice', ...extra,
  };
}

function assertOk(result: Result<VerifiedToken>): VerifiedToken {
  assert.equal(result.ok, true, result.ok ? '' : `${result.error.reason}: ${result.error.detail}`);
  if (!result.ok) throw new Error('unreachable');
  return result.value;
}

function assertFailure(result: Result<unknown>, reason: string, detail?: RegExp, token?: string): void {
  assert.equal(result.ok, false, `expected ${reason}, got ok`);
  if (!result.ok) {
    assert.equal(result.error.reason, reason, result.error.detail);
    if (detail !== undefined) assert.match(result.error.detail, detail);
    if (token !== undefined) {
      for (const part of token.split('.')) {
        if (part.length > 8) assert.equal(result.error.detail.includes(part), false, 'detail leaks the token');
      }
    }
  }
}

function replacePayload(token: string, payload: Record<string, unknown>): string {
  const [h, , s] = token.split('.');
  return `${h}.${base64url(JSON.stringify(payload))}.${s}`;
}

// --- tokens that verify

test('Keycloak-shaped RS256 access token verifies and returns its claims, deeply frozen', async () => {
  const { verifier, jwks } = setup();
  const claims = keycloakClaims();
  const token = await idp.sign(claims);
  const verified = assertOk(await verifier.verify(token));
  assert.deepEqual(verified.claims, claims);
  assert.equal(verified.expiresAt, (NOW + 300) * 1000);
  assert.equal(Object.isFrozen(verified.claims), true);
  assert.equal(Object.isFrozen(verified.claims['cnf']), true);
  assert.equal(Object.isFrozen((verified.claims['realm_access'] as { roles: unknown[] }).roles), true);
  assert.deepEqual(jwks.stats(), { fetches: 1, failures: 0 });
});

test('Keycloak ID and refresh tokens (claim typ ID / Refresh) are not access tokens: token_type_not_allowed', async () => {
  const { verifier } = setup();
  for (const typ of ['ID', 'Refresh', 'Logout', 42]) {
    const token = await idp.sign({ ...keycloakClaims(), typ, jti: randomUUID() });
    const result = await verifier.verify(token);
    assert.ok(!result.ok);
    assert.equal(result.error.reason, 'token_type_not_allowed');
    assert.equal(result.error.detail, 'the token is not an access token (typ claim is not Bearer)');
  }
});

test('RFC 9068 at+jwt access token (ES256) verifies, typ matched case-insensitively', async () => {
  const { verifier } = setup({ audienceRequired: ['https://rs.example.com/'] });
  const claims = {
    iss: idp.issuer, exp: NOW + 60, aud: 'https://rs.example.com/', sub: '5ba552d67', client_id: 's6BhdRkqt3',
    iat: NOW, scope: 'read', cnf: { 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' },
  };
  for (const typ of ['at+jwt', 'application/at+jwt', 'AT+JWT', 'Application/AT+JWT', 'jwt', 'application/jwt', undefined]) {
    const fresh = { ...claims, jti: randomUUID() };
    const token = await idp.sign(fresh, { kid: ec.kid, header: { typ } });
    assert.deepEqual(assertOk(await verifier.verify(token)).claims, fresh);
  }
});

test('PS256, ES384 and EdDSA tokens verify with their keys', async () => {
  const { verifier } = setup();
  for (const key of [ps, ec384, ed]) {
    const token = await idp.sign(keycloakClaims(), { kid: key.kid });
    assertOk(await verifier.verify(token));
  }
});

// --- structure, before any key work

test('malformed tokens are token_malformed and never reach the JWKS', async () => {
  const { verifier, jwks } = setup();
  const good = await idp.sign(keycloakClaims());
  const [h, p, s] = good.split('.') as [string, string, string];
  // The last character of an RS256 signature carries 2 unused bits: flip one for a second spelling of the same bytes.
  const last = s[s.length - 1] as string;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sameBytes = alphabet[alphabet.indexOf(last) ^ 1] as string;
  assert.deepEqual(Buffer.from(s.slice(0, -1) + sameBytes, 'base64url'), Buffer.from(s, 'base64url'));
  const rsHeader = base64url(JSON.stringify({ alg: 'RS256', kid: rsa.kid }));
  const cases: Array<[string, string, RegExp]> = [
    ['not a jwt', 'abc', /three parts/],
    ['two parts', `${h}.${p}`, /three parts/],
    ['four parts', `${h}.${p}.${s}.x`, /three parts/],
    ['header not JSON', `${base64url('{alg:RS256')}.${p}.${s}`, /header/],
    ['header a JSON array', `${base64url('["RS256"]')}.${p}.${s}`, /header/],
    ['header padded', `${h}=.${p}.${s}`, /header/],
    ['header in base64 (not base64url)', `+${h.slice(1)}.${p}.${s}`, /header/],
    ['payload not JSON', idp.signRaw({ alg: 'RS256', kid: rsa.kid }, 'hello'), /payload/],
    ['payload a JSON array', idp.signRaw({ alg: 'RS256', kid: rsa.kid }, [1, 2]), /payload/],
    ['payload a JSON string', idp.signRaw({ alg: 'RS256', kid: rsa.kid }, '"x"'), /payload/],
    ['payload empty', `${rsHeader}..${s}`, /payload/],
    ['payload invalid UTF-8', `${rsHeader}.${base64url(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))}.${s}`, /payload/],
    ['signature empty', `${h}.${p}.`, /signature/],
    ['signature with a non-canonical last character', `${h}.${p}.${s.slice(0, -1)}${sameBytes}`, /signature/],
    ['signature with invalid characters', `${h}.${p}.${s.slice(0, -2)}*!`, /signature/],
    ['kid not a string', idp.signRaw({ alg: 'RS256', kid: 7 }, keycloakClaims()), /kid/],
    ['alg missing', idp.signRaw({ kid: rsa.kid }, keycloakClaims()), /no alg/],
    ['nested JWT (cty)', idp.signRaw({ alg: 'RS256', kid: rsa.kid, cty: 'JWT' }, keycloakClaims()), /nested/],
  ];
  for (const [name, token, detail] of cases) {
    const result = await verifier.verify(token);
    assert.equal(result.ok, false, name);
    if (!result.ok) {
      assert.equal(result.error.reason, 'token_malformed', `${name}: ${result.error.detail}`);
      assert.match(result.error.detail, detail, name);
    }
  }
  assert.deepEqual(jwks.stats(), { fetches: 0, failures: 0 });
});

test('an encrypted token (JWE, five parts) is token_malformed: not supported', async () => {
  const { verifier, jwks } = setup();
  const jwe = `${base64url(JSON.stringify({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: rsa.kid }))}.${base64url('k')}.${base64url('iv')}.${base64url('ct')}.${base64url('tag')}`;
  assertFailure(await verifier.verify(jwe), 'token_malformed', /encrypted tokens \(JWE\) are not supported/);
  assert.equal(jwks.stats().fetches, 0);
});

test('alg none is rejected (token_algorithm_not_allowed) even when the allow-list names it', async () => {
  const { verifier, jwks } = setup({ algorithms: ['none', 'RS256'] });
  for (const alg of ['none', 'None', 'NONE']) {
    const token = `${base64url(JSON.stringify({ alg, typ: 'JWT' }))}.${base64url(JSON.stringify(keycloakClaims()))}.`;
    assertFailure(await verifier.verify(token), 'token_algorithm_not_allowed', /algorithm is not allowed/, token);
  }
  assert.equal(jwks.stats().fetches, 0);
});

test('HS256 signed with the RSA public key PEM as secret is rejected before any key work', async () => {
  const { verifier, jwks } = setup({ algorithms: [...ASYMMETRIC_ALGORITHMS, 'HS256'] });
  const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
  for (const alg of ['HS256', 'HS384', 'HS512']) {
    const token = signHmac({ alg, kid: rsa.kid, typ: 'JWT' }, keycloakClaims(), pem);
    assertFailure(await verifier.verify(token), 'token_algorithm_not_allowed', new RegExp(`the ${alg} algorithm is not allowed`), token);
  }
  assert.deepEqual(jwks.stats(), { fetches: 0, failures: 0 });
});

test('an asymmetric alg outside the configured allow-list is rejected', async () => {
  const { verifier, jwks } = setup({ algorithms: ['ES256'] });
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims())), 'token_algorithm_not_allowed', /the RS256 algorithm/);
  assertFailure(await verifier.verify(idp.signRaw({ alg: 'ES256K', kid: ec.kid }, keycloakClaims(), ec)), 'token_algorithm_not_allowed');
  assertFailure(await verifier.verify(idp.signRaw({ alg: '<script>', kid: ec.kid }, keycloakClaims(), ec)), 'token_algorithm_not_allowed', /^the token algorithm is not allowed$/);
  assert.equal(jwks.stats().fetches, 0);
  assertOk(await verifier.verify(await idp.sign(keycloakClaims(), { kid: ec.kid })));
});

test('crit header parameters are never understood: token_crit_unsupported', async () => {
  const { verifier, jwks } = setup();
  for (const crit of [['exp'], ['b64'], [], 'exp']) {
    const token = idp.signRaw({ alg: 'RS256', kid: rsa.kid, crit, exp: NOW + 60, b64: true }, keycloakClaims());
    assertFailure(await verifier.verify(token), 'token_crit_unsupported', /crit/);
  }
  assert.equal(jwks.stats().fetches, 0);
});

test('header typ other than JWT or at+jwt is token_type_not_allowed', async () => {
  const { verifier, jwks } = setup();
  for (const typ of ['JOSE', 'secevent+jwt', 'dpop+jwt', 'logout+jwt', 'Bearer', '', 7]) {
    const token = idp.signRaw({ alg: 'RS256', kid: rsa.kid, typ }, keycloakClaims());
    assertFailure(await verifier.verify(token), 'token_type_not_allowed', /typ/);
  }
  assert.equal(jwks.stats().fetches, 0);
});

// --- signature and key

test('a tampered payload or a signature by another key is token_signature_invalid', async () => {
  const { verifier } = setup();
  const token = await idp.sign(keycloakClaims({ scope: 'read' }));
  const tampered = replacePayload(token, keycloakClaims({ scope: 'read admin' }));
  assertFailure(await verifier.verify(tampered), 'token_signature_invalid', /does not verify/, tampered);
  const forged = await idp.sign(keycloakClaims(), { key: rogue });
  assert.equal(JSON.parse(Buffer.from(forged.split('.')[0] as string, 'base64url').toString()).kid, rsa.kid);
  assertFailure(await verifier.verify(forged), 'token_signature_invalid');
  const ecToken = await idp.sign(keycloakClaims(), { kid: ec.kid });
  const swapped = `${ecToken.split('.').slice(0, 2).join('.')}.${(await idp.sign(keycloakClaims(), { kid: ec.kid })).split('.')[2]}`;
  assertFailure(await verifier.verify(swapped), 'token_signature_invalid');
});

test('an unknown kid is token_key_not_found', async () => {
  const { verifier } = setup();
  const stranger = makeTestKey('ES256', 'kid-nobody-knows');
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims(), { key: stranger })), 'token_key_not_found', /kid "kid-nobody-knows"/);
});

test('jku, x5u, jwk and x5c header parameters are ignored: no fetch to the jku URL, the embedded key is not used', async () => {
  const { verifier } = setup();
  const attacker = makeTestKey('ES256', 'attacker');
  const jkuUrl = `${idp.origin}/attacker-jwks`;
  const withJku = await idp.sign(keycloakClaims(), { key: attacker, header: { jku: jkuUrl, x5u: `${idp.origin}/attacker-x5u` } });
  assertFailure(await verifier.verify(withJku), 'token_key_not_found');
  // The attacker embeds their own public key and borrows a real kid.
  const withJwk = await idp.sign(keycloakClaims(), { key: attacker, header: { kid: ec.kid, jwk: attacker.publicJwk } });
  assertFailure(await verifier.verify(withJwk), 'token_signature_invalid');
  const withX5c = await idp.sign(keycloakClaims(), { key: attacker, header: { kid: ec.kid, x5c: ['MIIB'] } });
  assertFailure(await verifier.verify(withX5c), 'token_signature_invalid');
  assert.equal(idp.count('/attacker-jwks'), 0);
  assert.equal(idp.count('/attacker-x5u'), 0);
  // A genuine token carrying a jku is fine: the parameter is simply not used.
  assertOk(await verifier.verify(await idp.sign(keycloakClaims(), { header: { jku: jkuUrl } })));
  assert.equal(idp.count('/attacker-jwks'), 0);
});

test('a 64 KiB token is token_too_large before any parsing', async () => {
  const { verifier, jwks } = setup();
  const token = await idp.sign(keycloakClaims({ padding: 'x'.repeat(64 * 1024) }));
  assertFailure(await verifier.verify(token), 'token_too_large', /at most 16384/, token);
  assert.equal(jwks.stats().fetches, 0);
});

// --- time claims

test('exp is required, must be a number, and is checked with leeway', async () => {
  const { verifier, clock } = setup();
  const noExp = await idp.sign(keycloakClaims({ exp: undefined }));
  assertFailure(await verifier.verify(noExp), 'token_claims_invalid', /no exp claim/);
  assertFailure(await verifier.verify(idp.signRaw({ alg: 'RS256', kid: rsa.kid }, keycloakClaims({ exp: String(NOW + 60) }))), 'token_claims_invalid', /exp claim is not a number/);
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ exp: NOW }))), 'token_expired', /expired at 2030-01-01T12:00:00\.000Z/);
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ exp: NOW - 5 }))), 'token_expired');
  clock.t = NOW_MS + 999;
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ exp: NOW }))), 'token_expired');
  clock.t = NOW_MS - 1;
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ exp: NOW }))));
  const lenient = setup({ leewayS: 10 }).verifier;
  assertOk(await lenient.verify(await idp.sign(keycloakClaims({ exp: NOW - 9 }))));
  assertFailure(await lenient.verify(await idp.sign(keycloakClaims({ exp: NOW - 10 }))), 'token_expired');
});

test('nbf in the future beyond leeway is token_not_yet_valid', async () => {
  const { verifier } = setup();
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ nbf: NOW + 60 }))), 'token_not_yet_valid', /not valid before 2030-01-01T12:01:00\.000Z/);
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ nbf: NOW }))));
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ nbf: 'soon' }))), 'token_claims_invalid', /nbf/);
  const lenient = setup({ leewayS: 60 }).verifier;
  assertOk(await lenient.verify(await idp.sign(keycloakClaims({ nbf: NOW + 60 }))));
  assertFailure(await lenient.verify(await idp.sign(keycloakClaims({ nbf: NOW + 61 }))), 'token_not_yet_valid');
});

test('iat in the future beyond leeway is token_claims_invalid', async () => {
  const { verifier } = setup();
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ iat: NOW + 30 }))), 'token_claims_invalid', /issued in the future/);
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ iat: null }))), 'token_claims_invalid', /iat/);
  assertOk(await setup({ leewayS: 30 }).verifier.verify(await idp.sign(keycloakClaims({ iat: NOW + 30 }))));
});

// --- issuer, audience, scopes through the verifier

test('iss must be allowed; trailing slashes are ignored on either side', async () => {
  const { verifier } = setup();
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ iss: 'https://evil.example/realms/test' }))),
    'token_issuer_not_allowed', /issuer "https:\/\/evil\.example\/realms\/test" is not allowed/);
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ iss: undefined }))), 'token_issuer_not_allowed', /absent/);
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ iss: `${idp.issuer}/` }))));
  const slashConfigured = setup({ issuersAllowed: ['https://other.example', `${idp.issuer}/`] }).verifier;
  assertOk(await slashConfigured.verify(await idp.sign(keycloakClaims())));
  assertFailure(await setup({ issuersAllowed: [] }).verifier.verify(await idp.sign(keycloakClaims())), 'token_issuer_not_allowed');
});

test('audience_required: aud as a string or an array must contain one required audience', async () => {
  const { verifier } = setup({ audienceRequired: ['orders-api', 'billing-api'] });
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ aud: 'billing-api' }))));
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ aud: ['account', 'orders-api'] }))));
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ aud: ['account'] }))), 'audience_not_allowed');
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ aud: 'orders-api/' }))), 'audience_not_allowed');
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ aud: undefined }))), 'audience_not_allowed', /absent/);
  assertOk(await setup().verifier.verify(await idp.sign(keycloakClaims({ aud: undefined }))));
});

test('scopes_required: each entry is an AND set, entries are alternatives; scope string or scp array', async () => {
  const { verifier } = setup({ scopesRequired: ['orders:read orders:write', 'admin'] });
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ scope: 'openid orders:write orders:read' }))));
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ scope: 'admin' }))));
  assertOk(await verifier.verify(await idp.sign(keycloakClaims({ scope: undefined, scp: ['orders:read', 'orders:write'] }))));
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ scope: 'openid orders:read' }))), 'scope_insufficient', /none of the 2 required scope sets/);
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ scope: 'administrator' }))), 'scope_insufficient');
  assertFailure(await verifier.verify(await idp.sign(keycloakClaims({ scope: undefined }))), 'scope_insufficient');
});

// --- verdict cache

test('a verified token is served from the cache on the next call', async () => {
  const { verifier, jwks } = setup();
  const token = await idp.sign(keycloakClaims());
  const first = assertOk(await verifier.verify(token));
  const second = assertOk(await verifier.verify(token));
  assert.equal(second, first);
  assert.deepEqual(verifier.stats(), { hits: 1, misses: 1, size: 1 });
  assert.equal(jwks.stats().fetches, 1);
});

test('the cache never serves a verdict past exp, whatever the TTL', async () => {
  const { verifier, clock } = setup({ cacheTtlS: 600 });
  const token = await idp.sign(keycloakClaims({ exp: NOW + 10 }));
  assertOk(await verifier.verify(token));
  clock.t = NOW_MS + 9_000;
  assertOk(await verifier.verify(token));
  assert.equal(verifier.stats().hits, 1);
  clock.t = NOW_MS + 10_000;
  assertFailure(await verifier.verify(token), 'token_expired');
  assert.deepEqual(verifier.stats(), { hits: 1, misses: 2, size: 0 });
});

test('with leeway, a cached verdict ends at exp and the token is re-verified until exp + leeway', async () => {
  const { verifier, clock } = setup({ leewayS: 30 });
  const token = await idp.sign(keycloakClaims({ exp: NOW + 10 }));
  assertOk(await verifier.verify(token));
  clock.t = NOW_MS + 20_000;
  assertOk(await verifier.verify(token));
  assert.equal(verifier.stats().hits, 0);
  clock.t = NOW_MS + 40_000;
  assertFailure(await verifier.verify(token), 'token_expired');
});

test('cache TTL bounds a verdict; cache size 0 disables caching; failures are not cached', async () => {
  const short = setup({ cacheTtlS: 5 });
  const token = await idp.sign(keycloakClaims());
  assertOk(await short.verifier.verify(token));
  short.clock.t += 5_000;
  assertOk(await short.verifier.verify(token));
  assert.deepEqual(short.verifier.stats(), { hits: 0, misses: 2, size: 1 });
  const none = setup({ cacheSize: 0 });
  assertOk(await none.verifier.verify(token));
  assertOk(await none.verifier.verify(token));
  assert.deepEqual(none.verifier.stats(), { hits: 0, misses: 2, size: 0 });
  const failing = setup();
  const bad = await idp.sign(keycloakClaims({ iss: 'https://evil.example' }));
  assertFailure(await failing.verifier.verify(bad), 'token_issuer_not_allowed');
  assertFailure(await failing.verifier.verify(bad), 'token_issuer_not_allowed');
  assert.equal(failing.verifier.stats().size, 0);
});

test('an unavailable JWKS is not cached: the same token verifies once the IdP is back', async (t) => {
  const own = await startJwksServer({ algs: ['ES256'] });
  t.after(() => own.close());
  const { verifier, clock } = setup({ issuersAllowed: [own.issuer] }, {}, own);
  const token = await own.sign({ iss: own.issuer, exp: NOW + 300 });
  own.jwksMode = 'status500';
  assertFailure(await verifier.verify(token), 'jwks_unavailable', /returned HTTP 500/);
  own.jwksMode = 'ok';
  assertFailure(await verifier.verify(token), 'jwks_unavailable', /returned HTTP 500/);
  clock.t += 1_000;
  assertOk(await verifier.verify(token));
});

test('1,000 concurrent tokens signed with a new kid cause exactly one JWKS fetch', async (t) => {
  const own = await startJwksServer({ algs: ['ES256'] });
  t.after(() => own.close());
  const { verifier, clock, jwks } = setup({ issuersAllowed: [own.issuer] }, {}, own);
  assertOk(await verifier.verify(await own.sign({ iss: own.issuer, exp: NOW + 300 })));
  const fresh = own.addKey('ES256');
  clock.t += 31_000;
  const tokens = await Promise.all(Array.from({ length: 1000 }, (_, i) =>
    own.sign({ iss: own.issuer, exp: NOW + 300, jti: `t-${i}` }, { kid: fresh.kid })));
  const before = own.count('jwks');
  const results = await Promise.all(tokens.map((token) => verifier.verify(token)));
  for (const result of results) assertOk(result);
  assert.equal(own.count('jwks') - before, 1);
  assert.deepEqual(jwks.stats(), { fetches: 2, failures: 0 });
  assert.equal(verifier.stats().size, 1000, 'the verdict cache stays within cacheSize');
});

test('verify never throws for non-string input', async () => {
  const { verifier } = setup();
  assertFailure(await verifier.verify(undefined as unknown as string), 'token_malformed');
  assertFailure(await verifier.verify(''), 'token_malformed');
});

// --- claims.ts directly

test('checkIssuer: exact match modulo trailing slashes; non-strings and empty lists fail', () => {
  assert.equal(checkIssuer('https://idp.example/realms/a', ['https://idp.example/realms/a/']).ok, true);
  assert.equal(checkIssuer('https://idp.example/realms/a//', ['https://idp.example/realms/a']).ok, true);
  assert.equal(checkIssuer('https://idp.example/realms/ab', ['https://idp.example/realms/a']).ok, false);
  assert.equal(checkIssuer('https://IDP.example/realms/a', ['https://idp.example/realms/a']).ok, false);
  assert.equal(checkIssuer('https://idp.example', []).ok, false);
  assert.equal(checkIssuer(['https://idp.example'], ['https://idp.example']).ok, false);
  assert.equal(checkIssuer('', ['']).ok, false);
  const weird = checkIssuer('evil"\n\\issuer', ['x']);
  assert.equal(weird.ok, false);
  if (!weird.ok) assert.equal(weird.error.detail, 'issuer "evil???issuer" is not allowed');
});

test('checkAudience: string or array, any one required audience, nothing required when null or empty', () => {
  assert.equal(checkAudience('a', ['a']).ok, true);
  assert.equal(checkAudience(['x', 'a'], ['b', 'a']).ok, true);
  assert.equal(checkAudience(['x', 7], ['a']).ok, false);
  assert.equal(checkAudience('A', ['a']).ok, false);
  assert.equal(checkAudience(undefined, ['a']).ok, false);
  assert.equal(checkAudience({ a: 1 }, ['a']).ok, false);
  assert.equal(checkAudience(undefined, null).ok, true);
  assert.equal(checkAudience(undefined, []).ok, true);
});

test('checkScopes: AND within an entry, OR across entries, arrays accepted', () => {
  const required = ['read write', 'admin'];
  assert.equal(checkScopes('write read', required).ok, true);
  assert.equal(checkScopes('  read   write  ', required).ok, true);
  assert.equal(checkScopes('admin', required).ok, true);
  assert.equal(checkScopes(['read', 'write'], required).ok, true);
  assert.equal(checkScopes(['read write'], required).ok, true);
  assert.equal(checkScopes('read', required).ok, false);
  assert.equal(checkScopes('readwrite', required).ok, false);
  assert.equal(checkScopes('read:write', required).ok, false);
  assert.equal(checkScopes(undefined, required).ok, false);
  assert.equal(checkScopes(42, required).ok, false);
  assert.equal(checkScopes(undefined, null).ok, true);
  assert.equal(checkScopes('', []).ok, true);
  const failed = checkScopes('read', required);
  assert.equal(failed.ok ? null : failed.error.reason, 'scope_insufficient');
});

test('SignJWT and our verifier agree on a token signed by jose with every allowed algorithm', async () => {
  const { verifier } = setup();
  for (const key of [rsa, ec, ps, ed, ec384]) {
    const token = await new SignJWT({ iss: idp.issuer, exp: NOW + 60 })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' }).sign(key.privateKey);
    assertOk(await verifier.verify(token));
  }
});
