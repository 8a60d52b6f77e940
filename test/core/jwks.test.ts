import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { JwksSource, type JwksOptions } from '../../src/jwks.js';
import type { Result } from '../../src/errors.js';
import { freePort, makeTestKey, startJwksServer, type JwksServer, type JwksServerOptions } from '../helpers/jwks-server.js';
import { issue, makeTestPki, type TestPki } from '../helpers/pki.js';

interface Clock { t: number }

function newClock(): Clock {
  return { t: Date.UTC(2030, 0, 1) };
}

/** ES256 by default: RSA key generation would dominate the run time of these tests. */
async function idpFor(t: TestContext, options: JwksServerOptions = {}): Promise<JwksServer> {
  const idp = await startJwksServer({ algs: ['ES256'], ...options });
  t.after(() => idp.close());
  return idp;
}

function sourceFor(idp: JwksServer, clock: Clock, options: Partial<JwksOptions> = {}): JwksSource {
  return new JwksSource({
    issuer: idp.issuer, jwksUri: null, timeoutMs: 2000, rediscoveryLifetimeS: 30, sslVerify: true, caPem: [],
    now: () => clock.t, ...options,
  });
}

function assertKey(result: Result<unknown>, expected: KeyObject): void {
  assert.equal(result.ok, true, result.ok ? '' : `${result.error.reason}: ${result.error.detail}`);
  if (result.ok) {
    assert.ok(result.value instanceof KeyObject);
    assert.equal(result.value.equals(expected), true, 'returned key is not the expected public key');
  }
}

function assertFailure(result: Result<unknown>, reason: string, detail?: RegExp): void {
  assert.equal(result.ok, false, `expected ${reason}, got a key`);
  if (!result.ok) {
    assert.equal(result.error.reason, reason, result.error.detail);
    if (detail !== undefined) assert.match(result.error.detail, detail);
  }
}

async function until(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let pkiPromise: Promise<TestPki> | undefined;
const pki = (): Promise<TestPki> => (pkiPromise ??= makeTestPki());

test('first use runs discovery, then fetches the JWKS once; later calls use the cache', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock);
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assert.deepEqual(idp.requests, ['/realms/test/.well-known/openid-configuration', '/realms/test/protocol/openid-connect/certs']);
  assert.deepEqual(jwks.stats(), { fetches: 1, failures: 0 });
});

test('issuer with a trailing slash finds the same discovery document', async (t) => {
  const idp = await idpFor(t);
  const jwks = sourceFor(idp, newClock(), { issuer: `${idp.issuer}/` });
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assert.equal(idp.count('discovery'), 1);
});

test('jwksUri is used directly and takes precedence over discovery', async (t) => {
  const idp = await idpFor(t);
  const jwks = sourceFor(idp, newClock(), { jwksUri: idp.jwksUri });
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assert.equal(idp.count('discovery'), 0);
  assert.equal(idp.count('jwks'), 1);
});

test('selects by kid and key type: RS256, ES256, ES384, PS256 and EdDSA keys in one set', async (t) => {
  const idp = await idpFor(t, { algs: ['RS256', 'ES256', 'ES384', 'PS256', 'EdDSA'] });
  const jwks = sourceFor(idp, newClock());
  for (const key of idp.keys) assertKey(await jwks.getKey({ kid: key.kid, alg: key.alg }), key.publicKey);
  const ed = idp.keys.find((k) => k.alg === 'EdDSA');
  assert.ok(ed);
  // RFC 7517 4.4: a JWK labelled EdDSA is not used for the fully-specified Ed25519 (RFC 9864), and back.
  assertFailure(await jwks.getKey({ kid: ed.kid, alg: 'Ed25519' }), 'token_key_not_found');
  assert.equal(idp.count('jwks'), 1);
  idp.extraJwks = [{ ...ed.publicJwk, kid: 'ed-no-alg', alg: undefined }];
  const again = sourceFor(idp, newClock());
  assertKey(await again.getKey({ kid: 'ed-no-alg', alg: 'Ed25519' }), ed.publicKey);
  assertKey(await again.getKey({ kid: 'ed-no-alg', alg: 'EdDSA' }), ed.publicKey);
});

test('a key whose type or alg does not fit the header alg is not returned', async (t) => {
  const idp = await idpFor(t, { algs: ['RS256', 'ES256'] });
  const jwks = sourceFor(idp, newClock());
  const [rsa, ec] = idp.keys;
  assert.ok(rsa && ec);
  assertFailure(await jwks.getKey({ kid: ec.kid, alg: 'RS256' }), 'token_key_not_found', /no RS256 key with kid/);
  assertFailure(await jwks.getKey({ kid: ec.kid, alg: 'ES384' }), 'token_key_not_found');
  // The JWK says alg RS256: the same RSA key must not verify PS256.
  assertFailure(await jwks.getKey({ kid: rsa.kid, alg: 'PS256' }), 'token_key_not_found');
  assertFailure(await jwks.getKey({ kid: rsa.kid, alg: 'HS256' }), 'token_algorithm_not_allowed');
  assertFailure(await jwks.getKey({ kid: rsa.kid, alg: 'none' }), 'token_algorithm_not_allowed');
});

test('a header without kid gets the only key of its type, and no key when several fit', async (t) => {
  const idp = await idpFor(t, { algs: ['RS256', 'ES256'] });
  const jwks = sourceFor(idp, newClock());
  const [rsa] = idp.keys;
  assert.ok(rsa);
  assertKey(await jwks.getKey({ alg: 'RS256' }), rsa.publicKey);
  idp.addKey('RS256');
  const refreshing = sourceFor(idp, newClock());
  assertFailure(await refreshing.getKey({ alg: 'RS256' }), 'token_key_not_found', /2 JWKS keys fit this RS256 token without kid/);
});

test('encryption keys, symmetric keys, small RSA keys and broken entries are skipped, not fatal', async (t) => {
  const idp = await idpFor(t);
  const [good] = idp.keys;
  assert.ok(good);
  const other = makeTestKey('ES256');
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  idp.extraJwks = [
    { ...other.publicJwk, kid: 'enc-key', use: 'enc', alg: 'ECDH-ES' },
    { ...other.publicJwk, kid: 'enc-key-2', use: 'enc', alg: undefined },
    { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0', alg: 'HS256' },
    { ...other.publicJwk, kid: 'broken', x: 'AAAA' },
    { ...weak, kid: 'small', alg: 'RS256' },
    { ...good.publicJwk, kid: 'verify-only-not', key_ops: ['encrypt'] },
    'not an object',
    null,
    { kty: 'RSA', kid: 'no-modulus', e: 'AQAB' },
  ];
  const jwks = sourceFor(idp, newClock(), { rediscoveryLifetimeS: 0 });
  assertKey(await jwks.getKey({ kid: good.kid, alg: 'ES256' }), good.publicKey);
  for (const kid of ['enc-key', 'enc-key-2', 'hmac', 'broken', 'small', 'verify-only-not', 'no-modulus']) {
    const alg = kid === 'small' || kid === 'no-modulus' || kid === 'hmac' ? 'RS256' : 'ES256';
    assertFailure(await jwks.getKey({ kid, alg }), 'token_key_not_found', new RegExp(`no ${alg} key with kid "${kid}"`));
  }
});

test('key rotation: a new kid is fetched once the rediscovery window has passed', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock);
  const [old] = idp.keys;
  assert.ok(old);
  assertKey(await jwks.getKey({ kid: old.kid, alg: 'ES256' }), old.publicKey);
  const fresh = idp.rotate('ES256');
  clock.t += 31_000;
  assertKey(await jwks.getKey({ kid: fresh.kid, alg: 'ES256' }), fresh.publicKey);
  assertKey(await jwks.getKey({ kid: fresh.kid, alg: 'ES256' }), fresh.publicKey);
  assert.equal(idp.count('jwks'), 2);
  // The rotated-out key is gone from the refreshed set.
  assertFailure(await jwks.getKey({ kid: old.kid, alg: 'ES256' }), 'token_key_not_found');
  assert.equal(idp.count('jwks'), 2);
});

test('1,000 concurrent requests for a new kid share exactly one fetch', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock);
  const [first] = idp.keys;
  assert.ok(first);
  assertKey(await jwks.getKey({ kid: first.kid, alg: 'ES256' }), first.publicKey);
  const fresh = idp.addKey('ES256');
  clock.t += 31_000;
  const before = idp.count('jwks');
  const results = await Promise.all(Array.from({ length: 1000 }, () => jwks.getKey({ kid: fresh.kid, alg: 'ES256' })));
  for (const result of results) assertKey(result, fresh.publicKey);
  assert.equal(idp.count('jwks') - before, 1);
  assert.equal(idp.count('discovery'), 2);
  assert.deepEqual(jwks.stats(), { fetches: 2, failures: 0 });
});

test('1,000 concurrent first uses share exactly one discovery and one JWKS fetch', async (t) => {
  const idp = await idpFor(t);
  const jwks = sourceFor(idp, newClock());
  const [key] = idp.keys;
  assert.ok(key);
  const results = await Promise.all(Array.from({ length: 1000 }, () => jwks.getKey({ kid: key.kid, alg: 'ES256' })));
  for (const result of results) assertKey(result, key.publicKey);
  assert.equal(idp.count('discovery'), 1);
  assert.equal(idp.count('jwks'), 1);
});

test('rediscovery_lifetime: unknown kids within the window cause one refetch, not one each', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock, { rediscoveryLifetimeS: 30 });
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  // Within 30 s of the first fetch: an unknown kid does not refetch.
  clock.t += 10_000;
  assertFailure(await jwks.getKey({ kid: 'unknown-1', alg: 'ES256' }), 'token_key_not_found', /with kid "unknown-1"/);
  assert.equal(idp.count('jwks'), 1);
  // After the window: one refetch, then the next unknown kid within the window does not refetch.
  clock.t += 25_000;
  assertFailure(await jwks.getKey({ kid: 'unknown-1', alg: 'ES256' }), 'token_key_not_found');
  assert.equal(idp.count('jwks'), 2);
  clock.t += 29_000;
  assertFailure(await jwks.getKey({ kid: 'unknown-2', alg: 'ES256' }), 'token_key_not_found');
  assert.equal(idp.count('jwks'), 2);
  clock.t += 1_000;
  assertFailure(await jwks.getKey({ kid: 'unknown-2', alg: 'ES256' }), 'token_key_not_found');
  assert.equal(idp.count('jwks'), 3);
  assert.deepEqual(jwks.stats(), { fetches: 3, failures: 0 });
});

test('rediscovery_lifetime 0: every unknown kid refetches', async (t) => {
  const idp = await idpFor(t);
  const jwks = sourceFor(idp, newClock(), { rediscoveryLifetimeS: 0 });
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assertFailure(await jwks.getKey({ kid: 'unknown', alg: 'ES256' }), 'token_key_not_found');
  assertFailure(await jwks.getKey({ kid: 'unknown', alg: 'ES256' }), 'token_key_not_found');
  assert.equal(idp.count('jwks'), 3);
});

// --- failures: every one gives jwks_unavailable with the host and what failed

const failureModes = [
  { mode: 'status500', detail: /JWKS request to 127\.0\.0\.1:\d+ returned HTTP 500$/ },
  { mode: 'notJson', detail: /JWKS request to 127\.0\.0\.1:\d+ returned a body that is not JSON$/ },
  { mode: 'badJwks', detail: /JWKS from 127\.0\.0\.1:\d+ has no usable signature keys$/ },
  { mode: 'emptyJwks', detail: /JWKS from 127\.0\.0\.1:\d+ has no usable signature keys$/ },
  { mode: 'huge', detail: /JWKS request to 127\.0\.0\.1:\d+ returned more than 1048576 bytes$/ },
  { mode: 'hugeDeclared', detail: /JWKS request to 127\.0\.0\.1:\d+ returned more than 1048576 bytes$/ },
  { mode: 'reset', detail: /JWKS request to 127\.0\.0\.1:\d+ failed: connection reset$/ },
  { mode: 'redirect', detail: /JWKS request to 127\.0\.0\.1:\d+ returned HTTP 302 \(redirects are not followed\)$/ },
] as const;

for (const { mode, detail } of failureModes) {
  test(`JWKS endpoint answering "${mode}" gives jwks_unavailable and caches no keys`, async (t) => {
    const idp = await idpFor(t);
    const clock = newClock();
    const jwks = sourceFor(idp, clock);
    const [key] = idp.keys;
    assert.ok(key);
    idp.jwksMode = mode;
    assertFailure(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), 'jwks_unavailable', detail);
    assert.deepEqual(jwks.stats(), { fetches: 1, failures: 1 });
    if (mode === 'redirect') assert.equal(idp.count('/redirected'), 0);
    // Back to normal: the failure was not cached as an (empty) key set.
    idp.jwksMode = 'ok';
    clock.t += 1_000;
    assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
    assert.deepEqual(jwks.stats(), { fetches: 2, failures: 1 });
  });
}

test('a 10 MB JWKS response is aborted at the size cap, not read to the end', async (t) => {
  const idp = await idpFor(t);
  idp.jwksMode = 'huge';
  const jwks = sourceFor(idp, newClock(), { maxResponseBytes: 64 * 1024 });
  const started = Date.now();
  assertFailure(await jwks.getKey({ kid: 'any', alg: 'ES256' }), 'jwks_unavailable', /returned more than 65536 bytes$/);
  assert.ok(Date.now() - started < 1500);
});

test('discovery failures: HTTP 500, and a document without jwks_uri', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock);
  idp.discoveryMode = 'status500';
  assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable', /^discovery request to 127\.0\.0\.1:\d+ returned HTTP 500$/);
  idp.discoveryMode = 'badJwks';
  clock.t += 1_000;
  assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable', /^discovery at 127\.0\.0\.1:\d+ has no http\(s\) jwks_uri$/);
  assert.equal(idp.count('jwks'), 0);
});

test('a hanging JWKS endpoint times out after timeoutMs', async (t) => {
  const idp = await idpFor(t);
  idp.jwksMode = 'hang';
  const jwks = sourceFor(idp, newClock(), { timeoutMs: 300 });
  const started = Date.now();
  assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable', /JWKS request to 127\.0\.0\.1:\d+ timed out after 300 ms$/);
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 290 && elapsed < 1500, `took ${elapsed} ms`);
});

test('a body that trickles forever hits the total deadline, not only the socket idle timeout', async (t) => {
  const idp = await idpFor(t);
  idp.jwksMode = 'drip';
  const jwks = sourceFor(idp, newClock(), { timeoutMs: 400 });
  const started = Date.now();
  assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable', /timed out after 400 ms$/);
  assert.ok(Date.now() - started < 1500);
});

test('after a failure, retries wait 1 s, then 2 s (backoff), and recover when the IdP is back', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock);
  const [key] = idp.keys;
  assert.ok(key);
  idp.jwksMode = 'status500';
  assertFailure(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), 'jwks_unavailable', /HTTP 500/);
  assertFailure(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), 'jwks_unavailable', /HTTP 500/);
  assert.equal(idp.count('jwks'), 1, 'no retry inside the 1 s backoff');
  clock.t += 1_000;
  assertFailure(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), 'jwks_unavailable');
  assert.equal(idp.count('jwks'), 2);
  clock.t += 1_500;
  assertFailure(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), 'jwks_unavailable');
  assert.equal(idp.count('jwks'), 2, 'second backoff is 2 s');
  idp.jwksMode = 'ok';
  clock.t += 500;
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assert.equal(idp.count('jwks'), 3);
  assert.deepEqual(jwks.stats(), { fetches: 3, failures: 2 });
});

test('IdP down at start (connection refused), then recovering on the same port', async (t) => {
  const port = await freePort();
  const clock = newClock();
  const jwks = new JwksSource({
    issuer: `http://127.0.0.1:${port}/realms/test`, jwksUri: null, timeoutMs: 1000, rediscoveryLifetimeS: 30,
    sslVerify: true, caPem: [], now: () => clock.t,
  });
  assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable',
    new RegExp(`^discovery request to 127\\.0\\.0\\.1:${port} failed: connection refused$`));
  const idp = await idpFor(t, { port });
  const [key] = idp.keys;
  assert.ok(key);
  clock.t += 1_000;
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
});

test('cached keys are served while the IdP is down, within the stale window only', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock, { maxAgeS: 600, staleMaxS: 3600 });
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  idp.jwksMode = 'status500';
  // Due for refresh: the cached key is returned at once, the refresh runs in the background and fails.
  clock.t += 700_000;
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  await until(() => jwks.stats().failures === 1);
  assert.equal(idp.count('jwks'), 2);
  // An unknown kid cannot be confirmed while the IdP is down: jwks_unavailable, not key_not_found.
  clock.t += 60_000;
  assertFailure(await jwks.getKey({ kid: 'new-kid', alg: 'ES256' }), 'jwks_unavailable', /HTTP 500/);
  // Still inside 600 s + 3600 s of the last good fetch.
  clock.t = newClock().t + 4_199_000;
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  // Past the stale window: no keys any more.
  clock.t = newClock().t + 4_200_000;
  assertFailure(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), 'jwks_unavailable', /HTTP 500/);
});

test('keys past maxAge are refreshed in the background and a removed key stops working', async (t) => {
  const idp = await idpFor(t);
  const clock = newClock();
  const jwks = sourceFor(idp, clock, { maxAgeS: 600 });
  const [old] = idp.keys;
  assert.ok(old);
  assertKey(await jwks.getKey({ kid: old.kid, alg: 'ES256' }), old.publicKey);
  idp.rotate('ES256');
  clock.t += 599_000;
  assertKey(await jwks.getKey({ kid: old.kid, alg: 'ES256' }), old.publicKey);
  assert.equal(idp.count('jwks'), 1);
  clock.t += 1_000;
  assertKey(await jwks.getKey({ kid: old.kid, alg: 'ES256' }), old.publicKey);
  await until(() => jwks.stats().fetches === 2 && idp.count('jwks') === 2);
  // The IdP has answered, but the new set may not be installed yet: a lookup of an unknown kid joins
  // the refresh in flight (or, once it is done, is answered from the fresh set without a fetch), so
  // after it the refresh is complete, however long the response took to arrive and parse.
  assertFailure(await jwks.getKey({ kid: 'never-published', alg: 'ES256' }), 'token_key_not_found');
  assert.equal(idp.count('jwks'), 2, 'no third fetch');
  assertFailure(await jwks.getKey({ kid: old.kid, alg: 'ES256' }), 'token_key_not_found');
});

test('neither issuer nor jwksUri configured, or a non-http URL: jwks_unavailable without any request', async () => {
  const base = { timeoutMs: 100, rediscoveryLifetimeS: 30, sslVerify: true, caPem: [] };
  assertFailure(await new JwksSource({ ...base, issuer: null, jwksUri: null }).getKey({ kid: 'k', alg: 'ES256' }),
    'jwks_unavailable', /neither an issuer nor a JWKS endpoint/);
  assertFailure(await new JwksSource({ ...base, issuer: null, jwksUri: 'file:///etc/passwd' }).getKey({ kid: 'k', alg: 'ES256' }),
    'jwks_unavailable', /not an http\(s\) URL/);
});

// --- TLS to the IdP

test('HTTPS IdP with a private CA: trusted through caPem, discovery and JWKS both over TLS', async (t) => {
  const { server, root } = await pki();
  const idp = await idpFor(t, { tls: server });
  assert.match(idp.issuer, /^https:/);
  const jwks = sourceFor(idp, newClock(), { caPem: [root.pem] });
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assert.equal(idp.count('discovery'), 1);
});

test('HTTPS IdP with sslVerify=true and a CA we do not trust: jwks_unavailable, TLS rejected', async (t) => {
  const { server, rogueRoot } = await pki();
  const idp = await idpFor(t, { tls: server });
  const clock = newClock();
  for (const caPem of [[], [rogueRoot.pem]]) {
    const jwks = sourceFor(idp, clock, { caPem });
    assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable',
      /^discovery request to 127\.0\.0\.1:\d+ failed: TLS certificate rejected \([A-Z_]+\)$/);
  }
  assert.equal(idp.requests.length, 0);
});

test('HTTPS IdP whose certificate names another host is rejected even with the right CA', async (t) => {
  const { root } = await pki();
  const wrongHost = await issue({ subject: 'CN=idp.example', issuer: root, dnsNames: ['idp.example'], eku: ['1.3.6.1.5.5.7.3.1'] });
  const idp = await idpFor(t, { tls: wrongHost });
  const jwks = sourceFor(idp, newClock(), { caPem: [root.pem] });
  assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable', /TLS certificate rejected \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
});

test('HTTPS discovery advertising an http jwks_uri is refused (no downgrade to clear text)', async (t) => {
  const { server, root } = await pki();
  const idp = await idpFor(t, { tls: server });
  const plain = await idpFor(t);
  idp.discoveryOverrides = { jwks_uri: plain.jwksUri };
  const jwks = sourceFor(idp, newClock(), { caPem: [root.pem] });
  assertFailure(await jwks.getKey({ kid: 'k', alg: 'ES256' }), 'jwks_unavailable', /advertises a jwks_uri without https$/);
  assert.equal(plain.requests.length, 0);
});

test('HTTP discovery may point to a JWKS on another host', async (t) => {
  const idp = await idpFor(t);
  const other = await idpFor(t);
  idp.discoveryOverrides = { jwks_uri: other.jwksUri };
  const [key] = other.keys;
  assert.ok(key);
  assertKey(await sourceFor(idp, newClock()).getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
  assert.equal(idp.count('jwks'), 0);
  assert.equal(other.count('jwks'), 1);
});

test('HTTPS IdP with sslVerify=false: an untrusted certificate is accepted', async (t) => {
  const { server } = await pki();
  const idp = await idpFor(t, { tls: server });
  const jwks = sourceFor(idp, newClock(), { sslVerify: false });
  const [key] = idp.keys;
  assert.ok(key);
  assertKey(await jwks.getKey({ kid: key.kid, alg: 'ES256' }), key.publicKey);
});
