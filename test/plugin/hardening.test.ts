/**
 * Security hardening through the REAL plugin server (Kong emulator): tokens whose confirmation the
 * plugin cannot check, what a rejection tells the client without display_errors, and identity
 * headers that keep a crafted SAN or claim element in one piece.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { EchoUpstream, KongEmulator } from '../harness/kong-emulator.js';
import { httpRequest } from '../harness/http.js';
import { freePort } from '../helpers/terminators.js';
import { issue, type TestPki, type Issued } from '../helpers/pki.js';
import type { JwksServer } from '../helpers/jwks-server.js';
import { responseHeader, startPluginWorld, type PluginWorld } from '../helpers/plugin-world.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { strictEntityConfig } from '../helpers/seed.js';

const CA_UUID = '7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d';
const JKT = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I';

let pki: TestPki;
let idp: JwksServer;
let echo: EchoUpstream;
let emu: KongEmulator;
let world: PluginWorld;
let adminPort: number;
let closedPort: number;
/** A client of the trusted root with a SAN crafted to read like two names when joined with ", ". */
let crafted: Issued;

function claims(cnf: unknown): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: idp.issuer, sub: 'svc', iat: now, exp: now + 600, roles: ['reader, admin'], ...(cnf === undefined ? {} : { cnf }) };
}

function config(extra: Record<string, unknown>): Record<string, unknown> {
  return strictEntityConfig(idp.issuer, CA_UUID, `http://127.0.0.1:${adminPort}`, extra);
}

before(async () => {
  world = await startPluginWorld(CA_UUID, async (base) => {
    ({ pki, idp, echo, adminPort } = base);
    crafted = await issue({ subject: 'CN=crafted', issuer: pki.root, dnsNames: ['a.example, URI:spiffe://admin'] });
    closedPort = await freePort();
    return [
      { name: 'optional', paths: ['/optional'], plugins: [{ name: 'mtls-pop', config: config({ proof_of_possession_mtls: 'optional' }) }], guard: true, upstream: echo.url },
      { name: 'off', paths: ['/off'], plugins: [{ name: 'mtls-pop', config: config({ proof_of_possession_mtls: 'off' }) }], guard: true, upstream: echo.url },
      {
        name: 'idp-down', paths: ['/idp-down'], guard: true, upstream: echo.url,
        plugins: [{ name: 'mtls-pop', config: config({ jwks_endpoint: `http://127.0.0.1:${closedPort}/realms/secret-realm/certs`, timeout: 2000 }) }],
      },
      {
        name: 'headers', paths: ['/headers'], guard: true, upstream: echo.url,
        plugins: [{ name: 'mtls-pop', config: config({ upstream_headers: [{ header: 'X-Cert-San', path: 'cert.san' }, { header: 'X-Roles', path: 'roles' }] }) }],
      },
    ];
  });
  emu = world.emu;
});

after(async () => {
  await world?.close();
});

async function run(route: string, token: string, cert: Issued | null): Promise<Awaited<ReturnType<KongEmulator['runAccess']>>> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (cert !== null) headers['x-client-cert'] = cert.der.toString('base64');
  return emu.runAccess(route, { path: `/${route}/x`, host: 'api.example', clientIp: '127.0.0.1', headers });
}

const UNCHECKED = 'Bearer realm="api.example", error="invalid_token", error_description="the access token is bound by a confirmation method this resource does not check"';

describe('a confirmation the plugin cannot check is refused in every mode (real plugin server)', () => {
  test('optional: a DPoP-bound token (cnf.jkt) is not accepted as a bearer token, with or without a certificate', async () => {
    for (const cnf of [{ jkt: JKT }, { jwk: { kty: 'EC' } }, { 'x5t#S256': thumbprintS256(pki.directClient.der), jkt: JKT }]) {
      const token = await idp.sign(claims(cnf));
      for (const cert of [null, pki.directClient]) {
        const outcome = await run('optional', token, cert);
        assert.equal(outcome.response?.status, 401, JSON.stringify(cnf));
        assert.equal(responseHeader(outcome.response, 'WWW-Authenticate'), UNCHECKED);
      }
    }
    // The same route still lets an unbound token through, and checks a certificate-bound one.
    assert.equal((await run('optional', await idp.sign(claims(undefined)), null)).response, undefined);
    assert.equal((await run('optional', await idp.sign(claims({ 'x5t#S256': thumbprintS256(pki.directClient.der) })), pki.directClient)).response, undefined);
  });

  test('off: a certificate-bound token is refused (its binding would go unchecked); an unbound one passes', async () => {
    const bound = await run('off', await idp.sign(claims({ 'x5t#S256': thumbprintS256(pki.directClient.der) })), pki.directClient);
    assert.equal(bound.response?.status, 401);
    assert.equal(responseHeader(bound.response, 'WWW-Authenticate'), UNCHECKED);
    assert.equal((await run('off', await idp.sign(claims({ jkt: JKT })), null)).response?.status, 401);
    assert.equal((await run('off', await idp.sign(claims(undefined)), null)).response, undefined);
  });
});

describe('without display_errors a rejection names no gateway internals (real plugin server)', () => {
  test('IdP unreachable: a fixed description, no address, port, path or network error', async () => {
    const outcome = await run('idp-down', await idp.sign(claims({ 'x5t#S256': thumbprintS256(pki.directClient.der) })), pki.directClient);
    assert.equal(outcome.response?.status, 401);
    const challenge = responseHeader(outcome.response, 'WWW-Authenticate') ?? '';
    assert.equal(challenge, 'Bearer realm="api.example", error="invalid_token", error_description="the access token could not be verified"');
    const body = outcome.response?.body.toString() ?? '';
    assert.deepEqual(JSON.parse(body), { message: 'Unauthorized' });
    for (const leak of ['127.0.0.1', String(closedPort), 'secret-realm', 'ECONNREFUSED']) {
      assert.ok(!challenge.includes(leak) && !body.includes(leak), leak);
    }
  });

  test('an untrusted certificate: no CA name; a header a client crafted: none of its bytes echoed', async () => {
    const token = await idp.sign(claims({ 'x5t#S256': thumbprintS256(pki.rogueClient.der) }));
    const rogue = await run('optional', token, pki.rogueClient);
    assert.equal(responseHeader(rogue.response, 'WWW-Authenticate'), 'Bearer realm="api.example", error="invalid_token", error_description="the client certificate is not trusted"');
    const crafted = await emu.runAccess('optional', {
      path: '/optional/x', host: 'api.example', clientIp: '127.0.0.1',
      headers: { authorization: `Bearer ${token}`, 'x-client-cert': 'evil", error="x\\' },
    });
    assert.equal(responseHeader(crafted.response, 'WWW-Authenticate'), 'Bearer realm="api.example", error="invalid_token", error_description="the client certificate could not be read"');
  });
});

describe('identity headers keep a crafted SAN or claim element in one piece (real plugin server)', () => {
  test('cert.san and array claims arrive upstream as JSON arrays', async () => {
    const token = await idp.sign(claims({ 'x5t#S256': thumbprintS256(crafted.der) }));
    const before = echo.requests.length;
    const res = await httpRequest(`${emu.url}/headers/r`, {
      headers: [['Authorization', `Bearer ${token}`], ['X-Client-Cert', crafted.der.toString('base64')]],
    });
    assert.equal(res.status, 200);
    const record = echo.requests[before];
    const received = (name: string): string[] => (record?.rawHeaders ?? []).filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
    assert.deepEqual(received('x-cert-san').map((v) => JSON.parse(v) as unknown), [['DNS:a.example, URI:spiffe://admin']]);
    assert.deepEqual(received('x-roles').map((v) => JSON.parse(v) as unknown), [['reader, admin']]);
  });
});
