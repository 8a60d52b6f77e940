/**
 * Consumer mapping (consumer_claim, consumer_by, consumer_optional, anonymous) through the REAL
 * plugin server and the Kong emulator: which consumer `kong.client.authenticate` receives, the
 * X-Consumer-* headers for the upstream (forged copies removed), the 403 when none matches, and
 * that a request failing verification never becomes the anonymous consumer.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { AdminApiEmulator, KongEmulator, launcherCommand, type AccessOutcome } from '../harness/kong-emulator.js';
import { makeTestPki, type TestPki, type Issued } from '../helpers/pki.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { consumerClaimValue } from '../../kong/consumer.js';

const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');
const CA_UUID = '9e1d2c3b-4a5f-4e6d-8c7b-6a5f4e3d2c1b';
const ALICE = { id: '11111111-2222-4333-8444-555555555555', username: 'alice', custom_id: 'emp-1' };
const BOB = { id: '66666666-7777-4888-9999-aaaaaaaaaaaa', username: 'bob', custom_id: 'emp-2' };
const ANON = { id: 'bbbbbbbb-cccc-4ddd-8eee-ffffffffffff', username: 'anon-user' };

let pki: TestPki;
let idp: JwksServer;
let emu: KongEmulator;
let adminPort: number;
let fakeAdmin: Server;
const fakeAdminQueries: string[] = [];

const x5t = (cert: Issued): string => createHash('sha256').update(cert.der).digest('base64url');
const chainHeader = (leaf: Issued): string => `${leaf.der.toString('base64')},${pki.intermediate.der.toString('base64')}`;

function config(adminUrl: string, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    issuer: idp.issuer,
    proof_of_possession_mtls: 'strict',
    proof_of_possession_mtls_from_header: {
      certificate_header_name: 'x-client-cert', certificate_header_format: 'base64_encoded', ca_certificates: [CA_UUID], revocation_check_mode: 'SKIP',
    },
    admin_api_url: adminUrl,
    ...extra,
  };
}

async function request(route: string, claims: Record<string, unknown>, extraHeaders: Record<string, string> = {}, cert: Issued = pki.client): Promise<AccessOutcome> {
  const now = Math.floor(Date.now() / 1000);
  const token = await idp.sign({ iss: idp.issuer, iat: now, exp: now + 600, cnf: { 'x5t#S256': x5t(pki.client) }, ...claims });
  return emu.runAccess(route, {
    path: `/${route}/x`, clientIp: '127.0.0.1',
    headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(cert), ...extraHeaders },
  });
}

/** The plugin server's stderr arrives through a pipe, after the RPC answer: wait for a line. */
async function stderrMatches(pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!pattern.test(emu.pluginServer.stderr)) {
    if (Date.now() > deadline) assert.match(emu.pluginServer.stderr, pattern);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const consumerOf = (o: AccessOutcome): unknown => (o.ctx.authenticatedConsumer as { id?: unknown } | undefined)?.id;
const upstream = (o: AccessOutcome, name: string): string[] =>
  o.ctx.upstreamHeaders.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

before(async () => {
  pki = await makeTestPki();
  idp = await startJwksServer();
  // Bound on port 0 before the routes name it: fakeAdmin below, or any other listen(0), could take a probed port.
  const adminApi = await AdminApiEmulator.start({ ca_certificates: { [CA_UUID]: pki.root.pem } });
  adminPort = adminApi.port;
  // A stand-in Admin API for the custom_id route: the CA entity and GET /consumers?custom_id=.
  fakeAdmin = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.setHeader('content-type', 'application/json');
    if (url.pathname === `/ca_certificates/${CA_UUID}`) { res.end(JSON.stringify({ id: CA_UUID, cert: pki.root.pem })); return; }
    if (url.pathname === '/consumers') {
      const wanted = url.searchParams.get('custom_id') ?? '';
      fakeAdminQueries.push(wanted);
      res.end(JSON.stringify({ data: [ALICE, BOB].filter((c) => c.custom_id === wanted), next: null }));
      return;
    }
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((r) => fakeAdmin.listen(0, '127.0.0.1', r));
  const fakeUrl = `http://127.0.0.1:${(fakeAdmin.address() as AddressInfo).port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const route = (name: string, c: Record<string, unknown>) => ({ name, paths: [`/${name}`], plugins: [{ name: 'mtls-pop', config: c }], guard: true });
  emu = await KongEmulator.start({
    pluginServer: launcherCommand(PLUGINS_DIR),
    rpcTimeoutMs: 5000,
    config: {
      routes: [
        route('plain', config(admin, {})),
        route('by-username', config(admin, { consumer_claim: ['preferred_username'], consumer_by: ['username'] })),
        route('by-id-nested', config(admin, { consumer_claim: ['org', 'consumer'], consumer_by: ['id'] })),
        route('by-custom-id', config(fakeUrl, { consumer_claim: ['employee'] })),
        route('optional', config(admin, { consumer_claim: ['preferred_username'], consumer_by: ['username'], consumer_optional: true })),
        route('anonymous', config(admin, { consumer_claim: ['preferred_username'], consumer_by: ['username'], anonymous: 'anon-user' })),
        route('anonymous-missing', config(admin, { consumer_claim: ['preferred_username'], consumer_by: ['username'], anonymous: 'ghost' })),
      ],
      consumers: [ALICE, BOB, ANON],
      trusted_ips: ['127.0.0.1'],
      adminApi: { server: adminApi },
    },
  });
});

after(async () => {
  await emu?.close();
  await idp?.close();
  await new Promise<void>((r) => (fakeAdmin ? fakeAdmin.close(() => r()) : r()));
});

describe('consumer mapping', () => {
  test('by username: the consumer is authenticated and X-Consumer-* set; forged copies removed', async () => {
    const o = await request('by-username', { sub: 's', preferred_username: 'alice' },
      { 'X-Consumer-Username': 'bob', 'x_consumer_id': BOB.id, 'X-Anonymous-Consumer': 'true' });
    assert.equal(o.response, undefined, 'proxied');
    assert.equal(o.guard, 'passed');
    assert.equal(consumerOf(o), ALICE.id);
    assert.deepEqual(upstream(o, 'x-consumer-id'), [ALICE.id]);
    assert.deepEqual(upstream(o, 'x-consumer-username'), ['alice']);
    assert.deepEqual(upstream(o, 'x-consumer-custom-id'), ['emp-1']);
    assert.deepEqual(upstream(o, 'x-anonymous-consumer'), []);
    assert.deepEqual(upstream(o, 'x_consumer_id'), []);
    assert.deepEqual(o.events[0]?.calls, [
      'kong.request.get_headers', 'kong.client.get_ip', 'kong.ip.is_trusted', 'kong.client.load_consumer', 'kong.client.authenticate',
      'kong.service.request.set_headers', 'kong.ctx.shared.set',
    ]);
  });

  test('no mapping configured: no consumer call, no header call', async () => {
    const o = await request('plain', { sub: 's', preferred_username: 'alice' });
    assert.equal(o.guard, 'passed');
    assert.equal(consumerOf(o), undefined);
    assert.deepEqual(o.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.ip.is_trusted', 'kong.ctx.shared.set']);
  });

  test('by id through a nested claim path; a non-UUID value never reaches load_consumer', async () => {
    const o = await request('by-id-nested', { sub: 's', org: { consumer: BOB.id } });
    assert.equal(o.guard, 'passed');
    assert.equal(consumerOf(o), BOB.id);
    const bad = await request('by-id-nested', { sub: 's', org: { consumer: 'bob' } });
    assert.equal(bad.response?.status, 403);
    assert.ok(!(bad.events[0]?.calls ?? []).includes('kong.client.load_consumer'));
  });

  test('by custom_id (default consumer_by username, custom_id): the Admin API is searched after the username misses', async () => {
    const o = await request('by-custom-id', { sub: 's', employee: 'emp-2' });
    assert.equal(o.guard, 'passed');
    assert.equal(consumerOf(o), BOB.id);
    assert.deepEqual(upstream(o, 'x-consumer-custom-id'), ['emp-2']);
    assert.deepEqual(fakeAdminQueries, ['emp-2']);
    assert.deepEqual(o.events[0]?.calls.filter((c) => c.startsWith('kong.client.')), ['kong.client.get_ip', 'kong.client.load_consumer', 'kong.client.authenticate'],
      'username first (no match), then custom_id through the Admin API');
  });

  test('no consumer matches: 403 insufficient_scope, reason consumer_not_found, nothing authenticated', async () => {
    const o = await request('by-username', { sub: 's', preferred_username: 'mallory' });
    assert.equal(o.response?.status, 403);
    const challenge = (o.response?.headers ?? []).filter(([n]) => n.toLowerCase() === 'www-authenticate').map(([, v]) => v);
    assert.equal(challenge.length, 1);
    assert.match(challenge[0] ?? '', /^Bearer realm="[^"]+", error="insufficient_scope"/);
    assert.equal(consumerOf(o), undefined);
    assert.equal(o.guard !== 'passed', true);
    const missing = await request('by-username', { sub: 's' });
    assert.equal(missing.response?.status, 403, 'claim absent');
    await stderrMatches(/rejected 403 reason=consumer_not_found: no consumer matches the preferred_username claim \(by username\)/);
  });

  test('consumer_optional: proxied without a consumer; forged X-Consumer-* removed', async () => {
    const o = await request('optional', { sub: 's', preferred_username: 'mallory' }, { 'X-Consumer-Username': 'alice' });
    assert.equal(o.guard, 'passed');
    assert.equal(consumerOf(o), undefined);
    assert.deepEqual(upstream(o, 'x-consumer-username'), []);
    assert.ok(!(o.events[0]?.calls ?? []).includes('kong.client.authenticate'));
  });

  test('anonymous: used when no consumer matches, X-Anonymous-Consumer: true; a known consumer still wins', async () => {
    const o = await request('anonymous', { sub: 's', preferred_username: 'mallory' });
    assert.equal(o.guard, 'passed');
    assert.equal(consumerOf(o), ANON.id);
    assert.deepEqual(upstream(o, 'x-anonymous-consumer'), ['true']);
    assert.deepEqual(upstream(o, 'x-consumer-username'), ['anon-user']);
    const known = await request('anonymous', { sub: 's', preferred_username: 'alice' });
    assert.equal(consumerOf(known), ALICE.id);
    assert.deepEqual(upstream(known, 'x-anonymous-consumer'), []);
  });

  test('anonymous never applies to a request that fails verification', async () => {
    const o = await request('anonymous', { sub: 's', preferred_username: 'alice' }, {}, pki.otherClient);
    assert.equal(o.response?.status, 401);
    assert.equal(consumerOf(o), undefined);
    assert.ok(!(o.events[0]?.calls ?? []).includes('kong.client.load_consumer'));
  });

  test('anonymous configured but missing: rejected (internal_error), logged', async () => {
    const o = await request('anonymous-missing', { sub: 's', preferred_username: 'mallory' });
    assert.equal(o.response?.status, 401);
    assert.equal(consumerOf(o), undefined);
    await stderrMatches(/\[error\] mtls-pop: consumer mapping failed: the anonymous consumer is configured but does not exist/);
  });

  test('claim values: strings and numbers, nested objects only, never arrays or objects', () => {
    assert.equal(consumerClaimValue({ a: 'x' }, ['a']), 'x');
    assert.equal(consumerClaimValue({ a: 42 }, ['a']), '42');
    assert.equal(consumerClaimValue({ a: { b: 'y' } }, ['a', 'b']), 'y');
    assert.equal(consumerClaimValue({ a: ['x'] }, ['a']), null);
    assert.equal(consumerClaimValue({ a: { b: 'y' } }, ['a']), null);
    assert.equal(consumerClaimValue({ a: '' }, ['a']), null);
    assert.equal(consumerClaimValue({}, ['constructor']), null);
  });
});
