/**
 * The plugin under the REAL plugin server (our launcher), driven by the Kong emulator exactly as
 * Kong's Lua drives it: schema registration, config validation, StartInstance, HandleEvent/Step,
 * trusted_ips, CA certificate entities from an Admin API, the fail-closed guard.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import {
  KongEmulator, KongConfigError, type EchoUpstream,
} from '../harness/kong-emulator.js';
import { httpRequest } from '../harness/http.js';
import type { TestPki, Issued } from '../helpers/pki.js';
import type { JwksServer } from '../helpers/jwks-server.js';
import { responseHeader, startPluginWorld, type PluginWorld } from '../helpers/plugin-world.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { seedConfig, SEED_CA_UUID, strictEntityConfig } from '../helpers/seed.js';

const CA_UUID = '0b3c7f3e-2a51-4c8e-9d6a-1f2e3d4c5b6a';
const PACKAGE_VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

let pki: TestPki;
let idp: JwksServer;
let echo: EchoUpstream;
let emu: KongEmulator;
let world: PluginWorld;
let adminPort: number;

function pluginConfig(header: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return strictEntityConfig(idp.issuer, CA_UUID, `http://127.0.0.1:${adminPort}`, extra, header);
}

function bound(cert: Issued, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: idp.issuer, sub: 'svc', iat: now, exp: now + 600, typ: 'Bearer', cnf: { 'x5t#S256': thumbprintS256(cert.der) }, ...extra };
}

/** HAProxy `%[ssl_c_der,base64],%[ssl_c_chain_der,base64]`. */
function chainHeader(leaf: Issued): string {
  return `${leaf.der.toString('base64')},${pki.intermediate.der.toString('base64')}`;
}

before(async () => {
  world = await startPluginWorld(CA_UUID, (base) => {
    ({ pki, idp, echo, adminPort } = base);
    return [
      { name: 'strict', paths: ['/strict'], plugins: [{ name: 'mtls-pop', config: pluginConfig() }], guard: true, upstream: echo.url },
      { name: 'unguarded', paths: ['/unguarded'], plugins: [{ name: 'mtls-pop', config: pluginConfig() }], upstream: echo.url },
      { name: 'display', paths: ['/display'], plugins: [{ name: 'mtls-pop', config: pluginConfig({}, { display_errors: true }) }], guard: true, upstream: echo.url },
      // Used only by the Admin API outage test, so its first request meets the outage.
      { name: 'ca-outage', paths: ['/ca-outage'], plugins: [{ name: 'mtls-pop', config: pluginConfig({}, { display_errors: true }) }], guard: true, upstream: echo.url },
      {
        name: 'misconfigured', paths: ['/misconfigured'], guard: true, upstream: echo.url,
        // Valid for Kong's schema, rejected by the plugin's cross-field rules (session cannot carry PoP).
        plugins: [{ name: 'mtls-pop', config: pluginConfig({}, { auth_methods: ['bearer', 'session'] }) }],
      },
    ];
  });
  emu = world.emu;
});

after(async () => {
  await world?.close();
});

describe('mtls-pop under the real plugin server', () => {
  test('Kong registers it from --dump-all-plugins: name, priority 1050, package version, access phase, schema valid', () => {
    const plugin = emu.plugins.get('mtls-pop');
    assert.ok(plugin);
    assert.equal(plugin.priority, 1050);
    assert.equal(plugin.version, PACKAGE_VERSION);
    assert.deepEqual(plugin.phases, ['access']);
    assert.deepEqual(plugin.schemaWarnings, []);
  });

  test('a bound token with its certificate from a trusted proxy is proxied; 4 round trips once trust is cached', async () => {
    const token = await idp.sign(bound(pki.client));
    const init = { path: '/strict/ok', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) } };
    const first = await emu.runAccess('strict', init);
    assert.equal(first.response, undefined, 'no response of its own: the request goes upstream');
    assert.equal(first.guard, 'passed');
    const second = await emu.runAccess('strict', init);
    assert.equal(second.response, undefined);
    // HandleEvent (-> get_headers), Step (-> get_ip), Step (-> ctx.shared.set), Step (-> ret).
    assert.equal(second.events[0]?.roundTrips, 4);
    assert.deepEqual(second.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.ctx.shared.set']);
  });

  test('over HTTP through the emulated gateway: 200 from the upstream with the request intact', async () => {
    const token = await idp.sign(bound(pki.client));
    const before = echo.requests.length;
    const res = await httpRequest(`${emu.url}/strict/resource`, {
      headers: [['Authorization', `Bearer ${token}`], ['X-Client-Cert', chainHeader(pki.client)]],
    });
    assert.equal(res.status, 200);
    assert.equal(echo.requests.length, before + 1);
  });

  test('token bound to another certificate gets 401 invalid_token in 3 round trips, nothing proxied', async () => {
    const token = await idp.sign(bound(pki.otherClient));
    const outcome = await emu.runAccess('strict', {
      path: '/strict/x', host: 'api.example', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
    });
    assert.equal(outcome.response?.status, 401);
    assert.equal(responseHeader(outcome.response, 'WWW-Authenticate'),
      'Bearer realm="api.example", error="invalid_token", error_description="the client certificate thumbprint does not match the x5t#S256 claim"');
    assert.deepEqual(JSON.parse(outcome.response?.body.toString() ?? ''), { message: 'Unauthorized' });
    assert.equal(outcome.events[0]?.roundTrips, 3);
  });

  test('1,000+ header lines: 400 request_headers_too_many, since Kong cuts get_headers at 1,000 and a cut-off duplicate would go unseen', async () => {
    // The bypass this closes: a terminator that appends its certificate header without stripping
    // the client's copy, and a client that pushes the appended header past Kong's 1,000-line cut
    // with a stolen token bound to the victim's (public) certificate in its own copy.
    const stolen = await idp.sign(bound(pki.otherClient));
    const lines = (junk: number): Array<[string, string]> => [
      ['authorization', `Bearer ${stolen}`],
      ['x-client-cert', chainHeader(pki.otherClient)], // forged by the client
      ...Array.from({ length: junk }, (_, i): [string, string] => [`x-junk-${i}`, 'a']),
      ['x-client-cert', chainHeader(pki.client)], // appended by the terminator: the real peer certificate
    ];
    const cut = await emu.runAccess('strict', { path: '/strict/x', host: 'api.example', clientIp: '127.0.0.1', headers: lines(1000) });
    assert.equal(cut.response?.status, 400);
    assert.equal(responseHeader(cut.response, 'WWW-Authenticate'),
      'Bearer realm="api.example", error="invalid_request", error_description="the request has too many header lines"');
    assert.equal(cut.events[0]?.outcome, 'exit', 'the plugin itself ended the request');
    // Within the limit the same request shows both copies and is refused for the duplicate.
    const whole = await emu.runAccess('display', { path: '/display/x', host: 'api.example', clientIp: '127.0.0.1', headers: lines(900) });
    assert.equal(whole.response?.status, 401);
    assert.match(responseHeader(whole.response, 'WWW-Authenticate') ?? '', /error_description="the certificate header was sent 2 times"/);
    // And many headers below the limit are no reason to refuse a good request.
    const token = await idp.sign(bound(pki.client));
    const busy = await emu.runAccess('strict', {
      path: '/strict/x', clientIp: '127.0.0.1',
      headers: [['authorization', `Bearer ${token}`], ['x-client-cert', chainHeader(pki.client)],
        ...Array.from({ length: 990 }, (_, i): [string, string] => [`x-junk-${i}`, 'a'])],
    });
    assert.equal(busy.response, undefined, 'proxied');
    assert.equal(busy.guard, 'passed');
  });

  test('no token: 401 with a bare Bearer challenge, 2 round trips', async () => {
    const outcome = await emu.runAccess('strict', { path: '/strict/x', host: 'api.example', clientIp: '127.0.0.1', headers: {} });
    assert.equal(outcome.response?.status, 401);
    assert.equal(responseHeader(outcome.response, 'WWW-Authenticate'), 'Bearer realm="api.example"');
    assert.equal(outcome.events[0]?.roundTrips, 2);
  });

  test('certificate header from a peer outside trusted_ips is ignored: 401 certificate_missing', async () => {
    const token = await idp.sign(bound(pki.client));
    const outcome = await emu.runAccess('display', {
      path: '/display/x', clientIp: '203.0.113.7', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
    });
    assert.equal(outcome.response?.status, 401);
    assert.deepEqual(JSON.parse(outcome.response?.body.toString() ?? ''), {
      message: 'Unauthorized (certificate_missing: the certificate header was ignored: the request did not come from a trusted proxy)',
    });
  });

  test('two certificate headers are rejected (get_headers sees both; get_header would see one)', async () => {
    const token = await idp.sign(bound(pki.client));
    const outcome = await emu.runAccess('display', {
      path: '/display/x', clientIp: '127.0.0.1',
      headers: [['authorization', `Bearer ${token}`], ['x-client-cert', chainHeader(pki.client)], ['x-client-cert', chainHeader(pki.otherClient)]],
    });
    assert.equal(outcome.response?.status, 401);
    assert.match(responseHeader(outcome.response, 'WWW-Authenticate') ?? '', /error_description="the certificate header was sent 2 times"/);
  });

  test('a malformed certificate header is a 401 with a reason, never a 500', async () => {
    const token = await idp.sign(bound(pki.client));
    for (const bad of ['%%%', 'AAAA', 'x'.repeat(40_000), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----']) {
      const outcome = await emu.runAccess('display', {
        path: '/display/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': bad },
      });
      assert.equal(outcome.response?.status, 401, bad.slice(0, 20));
      assert.match(JSON.parse(outcome.response?.body.toString() ?? '{}').message as string,
        /^Unauthorized \((certificate_header_malformed|certificate_malformed|certificate_header_too_large):/);
    }
  });

  test('a config Kong accepts but the plugin rejects makes every request 401; nothing is proxied', async () => {
    const token = await idp.sign(bound(pki.client));
    const before = echo.requests.length;
    const res = await httpRequest(`${emu.url}/misconfigured/x`, {
      headers: [['Authorization', `Bearer ${token}`], ['X-Client-Cert', chainHeader(pki.client)]],
    });
    assert.equal(res.status, 401);
    assert.equal(echo.requests.length, before);
    await emu.pluginServer.waitForStderr(/invalid configuration, every request will be rejected: auth_methods: session cannot be used/);
  });

  test('CA certificate entity unreachable: fail closed with a clear log line; recovers when the Admin API is back', async () => {
    const token = await idp.sign(bound(pki.otherClient));
    await emu.adminApi.setMode('down');
    const headers = { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.otherClient) };
    try {
      const down = await emu.runAccess('ca-outage', { path: '/ca-outage/x', clientIp: '127.0.0.1', headers });
      assert.equal(down.response?.status, 401);
      assert.match(JSON.parse(down.response?.body.toString() ?? '{}').message as string,
        /^Unauthorized \(trust_anchors_unavailable: CA certificates could not be read from the Kong Admin API: /);
      await emu.pluginServer.waitForStderr(/reason=trust_anchors_unavailable/);
    } finally {
      await emu.adminApi.setMode('up');
    }
    await new Promise((r) => setTimeout(r, 1100)); // the resolver leaves the Admin API alone for 1 s after a failure
    const up = await emu.runAccess('ca-outage', { path: '/ca-outage/x', clientIp: '127.0.0.1', headers });
    assert.equal(up.response, undefined);
    assert.equal(up.guard, 'passed');
  });

  test('Kong refuses a config that breaks the schema before StartInstance; the seed config is accepted', () => {
    assert.throws(() => emu.updatePluginConfig('display', 'mtls-pop', { ...seedConfig(), proof_of_possession_mtls: 'always' }), KongConfigError);
    assert.throws(() => emu.updatePluginConfig('display', 'mtls-pop', { ...seedConfig(), leeway: 'soon' }), KongConfigError);
    const seed = seedConfig();
    assert.deepEqual((seed['proof_of_possession_mtls_from_header'] as Record<string, unknown>)['ca_certificates'], [SEED_CA_UUID]);
    assert.doesNotThrow(() => emu.updatePluginConfig('misconfigured', 'mtls-pop', seed));
  });

  test('the plugin server logs never contain a token or a certificate', () => {
    const logs = emu.pluginServer.stdout + emu.pluginServer.stderr;
    assert.ok(logs.includes('rejected 401'), 'rejections were logged');
    assert.ok(!logs.includes(pki.client.der.toString('base64').slice(0, 48)), 'certificate in logs');
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(logs), 'token in logs');
  });
});

describe('fail-closed guard when the plugin server dies', () => {
  test('guarded route: 401 and nothing proxied; unguarded route: Kong fails open and proxies', async () => {
    const token = await idp.sign(bound(pki.client));
    const headers: Array<[string, string]> = [['Authorization', `Bearer ${token}`], ['X-Client-Cert', chainHeader(pki.otherClient)]];
    // Both routes have running instances (Kong fails open only for an existing instance; a
    // StartInstance that fails is a 500).
    assert.equal((await httpRequest(`${emu.url}/strict/x`, { headers })).status, 401);
    assert.equal((await httpRequest(`${emu.url}/unguarded/x`, { headers })).status, 401);
    await emu.pluginServer.kill();
    const before = echo.requests.length;
    const guarded = await httpRequest(`${emu.url}/strict/x`, { headers });
    assert.equal(guarded.status, 401);
    assert.equal(echo.requests.length, before, 'the guard let nothing through');
    const unguarded = await httpRequest(`${emu.url}/unguarded/x`, { headers });
    assert.equal(unguarded.status, 200, 'without the guard Kong proxies a request the plugin never saw');
    assert.equal(echo.requests.length, before + 1);
    await emu.restartPluginServer();
    const again = await httpRequest(`${emu.url}/strict/x`, { headers });
    assert.equal(again.status, 401);
    assert.match(String(again.headers['www-authenticate']), /certificate thumbprint does not match/, 'the plugin judges again after restart');
  });
});

