/**
 * The test IdP (oidc-provider 9 in a child process) issues RFC 8705 certificate-bound JWT access
 * tokens over real mutual TLS, and refuses clients without a trusted, matching certificate.
 * Thumbprints are checked against the openssl CLI, signatures against the IdP's published JWKS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, importJWK, jwtVerify, type JSONWebKeySet } from 'jose';
import { makeTestPki, opensslThumbprint, type TestPki } from '../helpers/pki.js';
import { fetchBoundToken, getJson, IdpTokenError, requestToken, startIdp, type IdpHandle } from '../helpers/idp.js';

const AUDIENCE = 'https://api.mtls-pop.test';
const RS_KID = 'idp-rs256-1';
const ES_KID = 'idp-es256-1';

function privateJwk(type: 'rsa' | 'ec', kid: string): JsonWebKey {
  const { privateKey } = type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid };
}

describe('test IdP (oidc-provider, tls_client_auth, certificate-bound JWT access tokens)', () => {
  let pki: TestPki;
  let dir: string;
  let idp: IdpHandle;
  let signingJwk: JsonWebKey;
  let startMs: number;
  const keys: Record<string, string> = {};

  before(async () => {
    pki = await makeTestPki();
    for (const name of ['client', 'otherClient', 'rogueClient', 'server'] as const) keys[name] = await pki[name].keyPem();
    dir = mkdtempSync(join(tmpdir(), 'mtls-pop-idp-'));
    signingJwk = privateJwk('rsa', RS_KID);
    const t0 = performance.now();
    idp = await startIdp({
      dir,
      serverCertPem: pki.server.pem,
      serverKeyPem: keys.server!,
      clientCaPem: pki.intermediate.pem + pki.root.pem,
      clients: [
        // pki.ts notation (certificate order) ...
        { clientId: 'client-1', subjectDn: 'CN=client-1, O=mtls-pop tests' },
        // ... and RFC 4514 order (most significant RDN last in the certificate, first here).
        { clientId: 'client-2', subjectDn: 'O=mtls-pop tests,CN=client-2' },
      ],
      audience: AUDIENCE,
      scopes: ['read', 'write'],
      signingJwk,
      extraJwks: [privateJwk('ec', ES_KID)],
    });
    startMs = performance.now() - t0;
  });

  after(async () => {
    await idp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const client1 = () => ({ clientId: 'client-1', certPem: pki.client.pem, keyPem: keys.client!, caPem: pki.root.pem });
  const client2 = () => ({ clientId: 'client-2', certPem: pki.otherClient.pem, keyPem: keys.otherClient!, caPem: pki.root.pem });

  async function jwks(): Promise<JSONWebKeySet> {
    const { status, body } = await getJson(idp.jwksUri, pki.root.pem);
    assert.equal(status, 200);
    return body as JSONWebKeySet;
  }

  test('starts quickly, deletes its config file and publishes discovery with tls_client_auth', async (t) => {
    t.diagnostic(`IdP start (spawn to "ready"): ${startMs.toFixed(0)} ms`);
    assert.deepEqual(readdirSync(dir), [], 'the config file with the keys is removed once the IdP is up');
    const { status, body } = await getJson(`${idp.issuer}/.well-known/openid-configuration`, pki.root.pem);
    assert.equal(status, 200);
    const meta = body as Record<string, unknown>;
    assert.equal(meta.issuer, `https://127.0.0.1:${idp.port}`);
    assert.equal(meta.jwks_uri, idp.jwksUri);
    assert.equal(meta.token_endpoint, idp.tokenEndpoint);
    assert.deepEqual(meta.token_endpoint_auth_methods_supported, ['tls_client_auth']);
    assert.equal(meta.tls_client_certificate_bound_access_tokens, true);
  });

  test('JWKS publishes the fixed RS256 key and the extra ES256 key, public parts only', async () => {
    const set = await jwks();
    assert.deepEqual(set.keys.map((k) => [k.kid, k.kty]), [[RS_KID, 'RSA'], [ES_KID, 'EC']]);
    assert.equal(set.keys[0]!.n, signingJwk.n);
    for (const key of set.keys) assert.equal('d' in key, false);
  });

  test('client-1 over mTLS gets an at+jwt bound to its certificate (openssl thumbprint) and signed by the JWKS key', async (t) => {
    const t0 = performance.now();
    const token = await fetchBoundToken(idp, { ...client1(), scope: 'read' });
    t.diagnostic(`token request (new TLS connection + client_credentials): ${(performance.now() - t0).toFixed(0)} ms`);

    assert.deepEqual(decodeProtectedHeader(token), { alg: 'RS256', typ: 'at+jwt', kid: RS_KID });
    const claims = decodeJwt(token);
    assert.deepEqual(Object.keys(claims).sort(), ['aud', 'client_id', 'cnf', 'exp', 'iat', 'iss', 'jti', 'scope', 'sub']);
    assert.deepEqual(claims.cnf, { 'x5t#S256': opensslThumbprint(pki.client.pem) });
    assert.equal(claims.iss, idp.issuer);
    assert.equal(claims.aud, AUDIENCE);
    assert.equal(claims.client_id, 'client-1');
    assert.equal(claims.sub, 'client-1');
    assert.equal(claims.scope, 'read');
    assert.equal(claims.exp! - claims.iat!, 600);
    assert.equal(typeof claims.jti, 'string');

    const { payload } = await jwtVerify(token, createLocalJWKSet(await jwks()), {
      issuer: idp.issuer, audience: AUDIENCE, typ: 'at+jwt', algorithms: ['RS256'],
    });
    assert.equal(payload.jti, claims.jti);
    // The test holds the same key, so it can also verify (and mint) tokens itself.
    await jwtVerify(token, await importJWK({ kty: 'RSA', n: signingJwk.n!, e: signingJwk.e! }, 'RS256'));
  });

  test('client-2 gets a token bound to its own certificate, not client-1\'s', async () => {
    const claims = decodeJwt(await fetchBoundToken(idp, { ...client2(), scope: 'read write' }));
    assert.deepEqual(claims.cnf, { 'x5t#S256': opensslThumbprint(pki.otherClient.pem) });
    assert.notEqual(opensslThumbprint(pki.otherClient.pem), opensslThumbprint(pki.client.pem));
    assert.equal(claims.client_id, 'client-2');
    assert.equal(claims.scope, 'read write');
  });

  test('no client certificate: 401 invalid_client (certificate not provided)', async () => {
    const from = idp.events().length;
    const { status, body } = await requestToken(idp, { clientId: 'client-1', caPem: pki.root.pem, scope: 'read' });
    assert.equal(status, 401);
    assert.deepEqual(body, { error: 'invalid_client', error_description: 'client authentication failed' });
    assert.deepEqual(await idp.nextEvent(from), {
      event: 'grant.error', error: 'invalid_client', detail: 'client certificate was not provided',
    });
  });

  test('certificate from an untrusted CA with client-1\'s exact subject: 401 invalid_client (not verified)', async () => {
    assert.equal(pki.rogueClient.cert.subject, pki.client.cert.subject);
    const from = idp.events().length;
    await assert.rejects(
      fetchBoundToken(idp, { clientId: 'client-1', certPem: pki.rogueClient.pem, keyPem: keys.rogueClient!, caPem: pki.root.pem }),
      (err: unknown) => err instanceof IdpTokenError && err.status === 401 && err.error === 'invalid_client',
    );
    assert.deepEqual(await idp.nextEvent(from), {
      event: 'grant.error', error: 'invalid_client', detail: 'client certificate was not verified',
    });
  });

  test('client-2\'s valid certificate presented as client-1: 401 invalid_client (subject mismatch)', async () => {
    const from = idp.events().length;
    const { status, body } = await requestToken(idp, { ...client2(), clientId: 'client-1' });
    assert.equal(status, 401);
    assert.equal((body as { error?: unknown }).error, 'invalid_client');
    assert.deepEqual(await idp.nextEvent(from), {
      event: 'grant.error', error: 'invalid_client', detail: 'certificate subject value does not match the registered one',
    });
  });

  test('an unknown resource indicator: 400 invalid_target', async () => {
    const { status, body } = await requestToken(idp, { ...client1(), resource: 'https://other.example/' });
    assert.equal(status, 400);
    assert.equal((body as { error?: unknown }).error, 'invalid_target');
  });

  test('IdP trusting only the root: a bare leaf is refused, the leaf plus its intermediate is accepted', async () => {
    const rootOnly = await startIdp({
      dir, serverCertPem: pki.server.pem, serverKeyPem: keys.server!, clientCaPem: pki.root.pem,
      clients: [{ clientId: 'client-1', subjectDn: pki.client.cert.subject }],
      audience: AUDIENCE, scopes: ['read'], signingJwk,
    });
    try {
      const from = rootOnly.events().length;
      const bare = await requestToken(rootOnly, client1());
      assert.equal(bare.status, 401);
      assert.equal((bare.body as { error?: unknown }).error, 'invalid_client');
      assert.equal((await rootOnly.nextEvent(from)).detail, 'client certificate was not verified');

      const token = await fetchBoundToken(rootOnly, { ...client1(), chainPem: pki.intermediate.pem });
      // Bound to the leaf, not to the intermediate that travelled with it.
      assert.deepEqual(decodeJwt(token).cnf, { 'x5t#S256': opensslThumbprint(pki.client.pem) });
    } finally {
      await rootOnly.stop();
    }
  });

  test('startIdp surfaces the child\'s stderr when it cannot start', async () => {
    await assert.rejects(
      startIdp({
        dir, serverCertPem: pki.server.pem, serverKeyPem: 'not a key', clientCaPem: pki.root.pem,
        clients: [], audience: AUDIENCE, scopes: [], signingJwk,
      }),
      /IdP exited before it was ready[\s\S]*idp-server stderr[\s\S]*(key|PEM|DECODER)/i,
    );
  });
});
