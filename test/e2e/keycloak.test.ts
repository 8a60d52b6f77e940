/**
 * The seed's flow with the real Keycloak (the distribution .ci/run installs, configured from
 * docker-compose.yml and docker/keycloak/realm-mtls-pop.json), real HAProxy in front, the Kong
 * emulator with the real plugin server, and tokens Keycloak itself issued.
 *
 * Keycloak starts once for this file (the only one that starts it). Without Java or Keycloak the
 * suite is skipped with one line saying what is missing; with CI=true that is a failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { opensslThumbprint } from '../helpers/pki.js';
import {
  assertPresent, generateComposeCerts, httpsGet, KC_ROUTES, KeycloakAdmin, keycloakMissing, KeycloakTokenError,
  keycloakToken, rotateRs256Key, skipUnlessPresent, startKeycloak, startKeycloakStack, type DemoClient,
  type KeycloakServer, type KeycloakStack,
} from '../helpers/keycloak.js';

const missing = keycloakMissing();
const AUDIENCE = 'mtls-pop-api';

describe('real Keycloak: certificate-bound tokens through HAProxy and the plugin', { skip: skipUnlessPresent('Keycloak tests', missing) }, () => {
  let dir: string;
  let kc: KeycloakServer;
  let stack: KeycloakStack;
  let stackMs = 0;

  before(async () => {
    assertPresent(missing);
    dir = mkdtempSync(join(tmpdir(), 'mtls-pop-keycloak-'));
    const certsDir = join(dir, 'certs');
    generateComposeCerts(certsDir);
    kc = await startKeycloak({ dir, certsDir });
    const t0 = performance.now();
    stack = await startKeycloakStack(kc, { dir, certsDir });
    stackMs = performance.now() - t0;
  });

  after(async () => {
    await stack?.stop();
    await kc?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const token = (clientId: string, client: DemoClient, clientSecret?: string): Promise<string> => keycloakToken(kc, {
    clientId, cert: stack.client(client).cert, key: stack.client(client).key, ...(clientSecret !== undefined ? { clientSecret } : {}),
  });

  /** 200 with the certificate the token is bound to, 401 without a certificate, 401 with client-2's. */
  async function seedOutcomes(path: string, tokenValue: string): Promise<void> {
    const ok = await stack.request(path, { client: 'client-1', token: tokenValue });
    assert.equal(ok.status, 200, ok.body);
    const echoed = JSON.parse(ok.body) as { path?: string; headers?: Record<string, string> };
    assert.equal(echoed.path, path, 'the echo upstream answered');
    assert.ok(echoed.headers?.['x-client-cert'] !== undefined, 'HAProxy forwarded the verified certificate');
    const none = await stack.request(path, { token: tokenValue });
    assert.equal(none.status, 401);
    assert.match(none.body, /certificate_missing/);
    assert.match(none.wwwAuthenticate ?? '', /^Bearer .*error="invalid_token"/);
    const other = await stack.request(path, { client: 'client-2', token: tokenValue });
    assert.equal(other.status, 401);
    assert.match(other.body, /certificate_thumbprint_mismatch/);
  }

  test('starts from the compose options (realm imported); the handshake asks for the demo CA only', (t) => {
    t.diagnostic(`Keycloak ${kc.version} start (spawn to realm discovery 200): ${(kc.startMs / 1000).toFixed(1)} s`
      + `${kc.augmented ? ' incl. one-time Quarkus re-augmentation' : ''}; gateway + HAProxy: ${stackMs.toFixed(0)} ms`);
    // KC_HTTPS_TRUST_STORE_FILE: the CertificateRequest names exactly the demo CA (with only
    // KC_TRUSTSTORE_PATHS it lists the JVM's public CAs as well).
    const run = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${kc.port}`, '-servername', 'localhost', '-CAfile', join(stack.certsDir, 'ca.pem')], {
      input: '', encoding: 'utf8', timeout: 30_000,
    });
    const section = /Acceptable client certificate CA names\n([\s\S]*?)\n(?:Requested|Client Certificate Types|Shared)/.exec(run.stdout)?.[1];
    assert.ok(section !== undefined, run.stdout.slice(0, 2000));
    assert.deepEqual(section.split('\n').filter((l) => l.trim() !== ''), ['O = mtls-pop demo, CN = mtls-pop demo root CA']);
  });

  test('discovery and JWKS as Keycloak publishes them: RS256 signing key beside an RSA-OAEP enc key', async () => {
    const discovery = await httpsGet(`${kc.issuer}/.well-known/openid-configuration`, kc.caPem);
    const meta = JSON.parse(discovery.body) as Record<string, unknown>;
    assert.equal(meta.issuer, kc.issuer);
    assert.equal(meta.jwks_uri, kc.jwksUri);
    assert.equal(meta.tls_client_certificate_bound_access_tokens, true);
    assert.ok((meta.token_endpoint_auth_methods_supported as string[]).includes('tls_client_auth'));
    const jwks = JSON.parse((await httpsGet(kc.jwksUri, kc.caPem)).body) as { keys: Array<Record<string, unknown>> };
    const shape = jwks.keys.map((k) => `${String(k.use)}:${String(k.alg)}`).sort();
    assert.deepEqual(shape, ['enc:RSA-OAEP', 'sig:RS256']);
  });

  test('client-x509 client: the token carries cnf.x5t#S256 = the openssl thumbprint, aud [mtls-pop-api, account], Keycloak typ', async () => {
    const access = await token('mtls-client', 'client-1');
    const header = decodeProtectedHeader(access);
    assert.equal(header.alg, 'RS256');
    assert.equal(header.typ, 'JWT');
    const claims = decodeJwt(access);
    assert.deepEqual(claims.cnf, { 'x5t#S256': opensslThumbprint(stack.client('client-1').cert) });
    assert.deepEqual(claims.aud, [AUDIENCE, 'account']);
    assert.equal(claims.typ, 'Bearer');
    assert.equal(claims.azp, 'mtls-client');
    assert.equal(claims.iss, kc.issuer);
    const other = decodeJwt(await token('mtls-client-2', 'client-2'));
    assert.deepEqual(other.cnf, { 'x5t#S256': opensslThumbprint(stack.client('client-2').cert) });
  });

  test('kong.yml config (issuer + jwks_endpoint): 200 with the certificate, 401 without it, 401 with client-2\'s', async () => {
    await seedOutcomes(KC_ROUTES.kongYml, await token('mtls-client', 'client-1'));
  });

  test('discovery from issuer alone: 200 / 401 / 401', async () => {
    await seedOutcomes(KC_ROUTES.discovery, await token('mtls-client', 'client-1'));
  });

  test('seed variant: client secret + "Certificate Bound Access Tokens Enabled": bound to the TLS certificate, 200 / 401 / 401', async () => {
    const access = await token('secret-bound-client', 'client-1', 'demo-secret-bound-client');
    assert.deepEqual(decodeJwt(access).cnf, { 'x5t#S256': opensslThumbprint(stack.client('client-1').cert) });
    await seedOutcomes(KC_ROUTES.kongYml, access);
    // Without a TLS client certificate Keycloak issues no token at all for this client.
    await assert.rejects(keycloakToken(kc, { clientId: 'secret-bound-client', clientSecret: 'demo-secret-bound-client' }),
      (err: unknown) => err instanceof KeycloakTokenError && err.status === 400
        && /Client Certification missing for MTLS HoK Token Binding/.test(err.body));
  });

  test('a client without certificate binding: its token is refused in strict mode', async () => {
    const access = await token('unbound-client', 'client-1', 'demo-secret-unbound-client');
    assert.equal(decodeJwt(access).cnf, undefined);
    const answer = await stack.request(KC_ROUTES.kongYml, { client: 'client-1', token: access });
    assert.equal(answer.status, 401);
    assert.match(answer.body, /token_not_bound/);
  });

  test('exact DN and CA subject: client-2\'s certificate and a look-alike CA\'s client-1 get no client-1 token', async () => {
    await assert.rejects(token('mtls-client', 'client-2'),
      (err: unknown) => err instanceof KeycloakTokenError && err.status === 401 && /invalid_client/.test(err.body));
    // Same subject DN as client-1, issued by a CA with the demo CA's exact DN but another key.
    // Keycloak's handshake (dedicated trust store) refuses it, or the authenticator answers 401.
    await assert.rejects(token('mtls-client', 'rogue-client-1'),
      (err: unknown) => (err instanceof KeycloakTokenError && err.status === 401)
        || /^(?:ECONNRESET|EPROTO|ERR_SSL_)/.test(String((err as NodeJS.ErrnoException).code)));
    // No certificate at all.
    await assert.rejects(keycloakToken(kc, { clientId: 'mtls-client' }),
      (err: unknown) => err instanceof KeycloakTokenError && err.status === 401);
  });

  test('audience: a bound token without mtls-pop-api (aud "account" only) is refused with 403 insufficient_scope', async () => {
    const admin = await KeycloakAdmin.login(kc);
    const created = await admin.call('POST', '/clients', {
      clientId: 'no-audience-client', enabled: true, protocol: 'openid-connect', publicClient: false,
      clientAuthenticatorType: 'client-x509', serviceAccountsEnabled: true, standardFlowEnabled: false,
      attributes: {
        'x509.subjectdn': 'CN=client-1,O=mtls-pop demo', 'x509.allow.regex.pattern.comparison': 'false',
        'x509.casubjectdn': 'CN=mtls-pop demo root CA,O=mtls-pop demo', 'tls.client.certificate.bound.access.tokens': 'true',
      },
    });
    assert.equal(created.status, 201, created.body);
    const access = await token('no-audience-client', 'client-1');
    assert.deepEqual(decodeJwt(access).aud, 'account');
    const answer = await stack.request(KC_ROUTES.kongYml, { client: 'client-1', token: access });
    assert.equal(answer.status, 403);
    assert.match(answer.wwwAuthenticate ?? '', /error="insufficient_scope"/);
  });

  // Last: it changes the realm's keys.
  test('key rotation through the admin REST API: new tokens accepted after one JWKS fetch; old tokens as documented', async (t) => {
    const before = await token('mtls-client', 'client-1');
    const unseenOld = await token('mtls-client', 'client-1');
    assert.equal((await stack.request(KC_ROUTES.rotation, { client: 'client-1', token: before })).status, 200);
    const fetchesBefore = stack.jwksCounter.count();
    assert.equal(fetchesBefore, 1, 'one JWKS fetch for the first token');

    const admin = await KeycloakAdmin.login(kc);
    const rotated = await rotateRs256Key(admin, 'rsa-rotated');
    t.diagnostic(`rotated to kid ${rotated.kid}; disabled ${rotated.disabled.join(', ')}`);
    const jwks = JSON.parse((await httpsGet(kc.jwksUri, kc.caPem)).body) as { keys: Array<{ kid: string; use: string }> };
    assert.deepEqual(jwks.keys.filter((k) => k.use === 'sig').map((k) => k.kid), [rotated.kid], 'only the new signing key is published');

    const after = await token('mtls-client', 'client-1');
    assert.equal(decodeProtectedHeader(after).kid, rotated.kid);
    assert.notEqual(decodeProtectedHeader(before).kid, rotated.kid);
    const fresh = await stack.request(KC_ROUTES.rotation, { client: 'client-1', token: after });
    assert.equal(fresh.status, 200, fresh.body);
    assert.equal(stack.jwksCounter.count(), fetchesBefore + 1, 'the unknown kid caused exactly one JWKS fetch');
    assert.equal((await stack.request(KC_ROUTES.rotation, { client: 'client-1', token: after })).status, 200);
    assert.equal(stack.jwksCounter.count(), fetchesBefore + 1, 'the new key is cached');

    // Documented (docs/configuration.md cache_ttl; src/jwks.ts): a verdict already cached for a
    // token stands until cache_ttl or its exp; a token signed by the removed key that was never
    // verified is refused once the refreshed set no longer has its kid.
    assert.equal((await stack.request(KC_ROUTES.rotation, { client: 'client-1', token: before })).status, 200);
    const old = await stack.request(KC_ROUTES.rotation, { client: 'client-1', token: unseenOld });
    assert.equal(old.status, 401);
    assert.match(old.body, /token_key_not_found/);
  });
});
