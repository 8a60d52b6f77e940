/**
 * Self-tests of the Kong emulator, through REAL plugin server processes (our launcher, and the
 * stock kong-js-pluginserver where noted) and the harness fixture plugin.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  KongEmulator, launcherCommand, stockServerCommand, startEchoUpstream, GUARD_LUA, GUARD_FLAG, GUARD_WWW_AUTHENTICATE,
  KongConfigError, type EchoUpstream,
} from './kong-emulator.js';
import { httpRequest } from './http.js';
import { getHeader, getHeaders, TrustedIps, cjsonEncode, normalizePath } from './pdk.js';
import { RpcError } from './mp-rpc.js';

const FIXTURE_DIR = join(__dirname, '..', 'fixtures', 'plugins', 'harness');
const PLUGIN = 'harness-fixture';

function action(name: string, extra: ReadonlyArray<readonly [string, string]> = []): Array<readonly [string, string]> {
  return [['x-fixture-action', name], ...extra];
}

describe('Kong emulator with the mtls-pop launcher', () => {
  let echo: EchoUpstream;
  let emu: KongEmulator;

  before(async () => {
    echo = await startEchoUpstream();
    emu = await KongEmulator.start({
      pluginServer: launcherCommand(FIXTURE_DIR),
      rpcTimeoutMs: 5000,
      config: {
        routes: [
          { name: 'open', paths: ['/open'], plugins: [{ name: PLUGIN, config: { label: 'open' } }], upstream: echo.url },
          { name: 'guarded', paths: ['/guarded'], plugins: [{ name: PLUGIN }], guard: true, upstream: echo.url },
          { name: 'explode', paths: ['/explode'], plugins: [{ name: PLUGIN, config: { label: 'explode' } }], upstream: echo.url },
          { name: 'plain', paths: ['/plain'], upstream: echo.url, strip_path: false },
        ],
        trusted_ips: ['127.0.0.1', '10.0.0.0/8'],
        consumers: [{ id: '5a1a3f7e-3c4b-4d0e-9d2f-0b6c1e2d3f4a', username: 'alice' }],
        adminApi: { ca_certificates: {} },
      },
    });
  });

  after(async () => {
    await emu.close();
    await echo.close();
  });

  test('registers the plugin from --dump-all-plugins like Kong (priority, version, phases)', () => {
    const plugin = emu.plugins.get(PLUGIN);
    assert.ok(plugin);
    assert.equal(plugin.priority, 1000);
    assert.equal(plugin.version, '1.0.0');
    assert.deepEqual(plugin.phases, ['access']);
    assert.deepEqual(plugin.schemaWarnings, []);
  });

  test('PDK round trip: get_headers answered as a multimap, get_header gives the first value', async () => {
    const before = echo.requests.length;
    const res = await httpRequest(`${emu.url}/open/x`, { headers: action('echo', [['X-Multi', 'first'], ['x-multi', 'second']]) });
    assert.equal(res.status, 200);
    const body = res.json<{ headers: Record<string, string[]>; single: string }>();
    assert.deepEqual(body.headers['x-multi'], ['first', 'second']);
    assert.deepEqual(body.headers['x-fixture-action'], ['echo']);
    assert.equal(body.single, 'first');
    assert.equal(res.headers['x-echo-count'], String(Object.keys(body.headers).length));
    assert.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    // HandleEvent, then a Step for get_header, get_headers, get_header: exit needs no Step.
    assert.equal(emu.stats.lastEventRoundTrips, 4);
    assert.equal(echo.requests.length, before, 'an exit never reaches the upstream');
  });

  test('request facts: host, scheme, normalized path, method', async () => {
    const res = await httpRequest(`${emu.url}/open/a/./b//c/../d?q=1`, { method: 'POST', headers: action('request') });
    assert.deepEqual(res.json(), { host: '127.0.0.1', scheme: 'http', path: '/open/a/b/d', method: 'POST' });
  });

  test('a plugin that exits: status, body and headers as given, plus headers set before', async () => {
    const before = echo.requests.length;
    const res = await httpRequest(`${emu.url}/open/x`, { headers: action('exit') });
    assert.equal(res.status, 403);
    assert.equal(res.body, 'forbidden by fixture');
    assert.equal(res.headers['x-fixture'], 'exit');
    assert.equal(res.headers['x-fixture-response'], 'set-before-exit');
    assert.equal(echo.requests.length, before);
  });

  test('kong.response.error: Kong\'s error template, chosen by Accept', async () => {
    const json = await httpRequest(`${emu.url}/open/x`, { headers: action('error') });
    assert.equal(json.status, 403);
    assert.match(json.body, /^\{\n {2}"message":"Forbidden",\n {2}"request_id":"[0-9a-f]{32}"\n\}$/);
    const plain = await httpRequest(`${emu.url}/open/x`, { headers: action('error', [['Accept', 'text/plain']]) });
    assert.equal(plain.headers['content-type'], 'text/plain; charset=utf-8');
    assert.match(plain.body, /^Forbidden\nrequest_id: [0-9a-f]{32}\n$/);
  });

  test('a plugin that throws is answered "ret": Kong proxies the request (fail-open, visible)', async () => {
    const before = echo.requests.length;
    const res = await httpRequest(`${emu.url}/open/up?z=1`, { headers: action('throw') });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-echo-upstream'], '1');
    assert.equal(echo.requests.length, before + 1);
    assert.equal(echo.requests.at(-1)?.path, '/up?z=1', 'strip_path removed the route prefix');
  });

  test('headers set with kong.service.request.* reach the upstream; response headers stick', async () => {
    const res = await httpRequest(`${emu.url}/open/svc`, { headers: action('pass', [['X-Remove-Me', 'secret'], ['X-Forwarded-For', '203.0.113.9']]) });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-fixture-response'], 'passed');
    const seen = echo.requests.at(-1);
    assert.ok(seen);
    assert.equal(seen.headers['x-fixture-passed'], 'yes');
    assert.deepEqual(seen.rawHeaders.filter(([n]) => n === 'X-Fixture-Multi').map(([, v]) => v), ['a', 'b']);
    assert.equal(seen.headers['x-remove-me'], undefined);
    assert.equal(seen.headers['x-real-ip'], '127.0.0.1');
    assert.equal(seen.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(seen.headers.host, new URL(echo.url).host);
  });

  test('a route without plugins is proxied unchanged; an unknown path gets Kong\'s 404', async () => {
    const res = await httpRequest(`${emu.url}/plain/p`);
    assert.equal(res.status, 200);
    assert.equal(echo.requests.at(-1)?.path, '/plain/p', 'strip_path: false keeps the prefix');
    const none = await httpRequest(`${emu.url}/nowhere`);
    assert.equal(none.status, 404);
    assert.match(none.body, /"message":"no Route matched with those values"/);
  });

  test('guard: a verified request passes, an unverified one gets 401 before the upstream', async () => {
    const ok = await httpRequest(`${emu.url}/guarded/a`, { headers: action('pass') });
    assert.equal(ok.status, 200);
    const before = echo.requests.length;
    const rejected = await httpRequest(`${emu.url}/guarded/a`, { headers: action('pass-unverified') });
    assert.equal(rejected.status, 401);
    assert.equal(rejected.headers['www-authenticate'], GUARD_WWW_AUTHENTICATE);
    assert.deepEqual(rejected.json(), { message: 'Unauthorized' });
    const thrown = await httpRequest(`${emu.url}/guarded/a`, { headers: action('throw') });
    assert.equal(thrown.status, 401, 'a throwing handler is "ret" without the flag');
    assert.equal(echo.requests.length, before);
    assert.equal(rejected.headers['content-type'], 'application/json; charset=utf-8');
    assert.ok(GUARD_LUA.includes(`if not kong.ctx.shared.${GUARD_FLAG} then`));
  });

  test('kong.ip.is_trusted follows trusted_ips; kong.client.get_ip is the TCP peer', async () => {
    const res = await httpRequest(`${emu.url}/open/t`, { headers: action('trust') });
    assert.deepEqual(res.json(), { ip: '127.0.0.1', trusted: true });
    const handle = await emu.instance('open');
    const inNet = await emu.handleEvent(handle, { clientIp: '10.20.30.40', headers: action('trust') });
    assert.deepEqual(JSON.parse(inNet.response?.body.toString() ?? ''), { ip: '10.20.30.40', trusted: true });
    const outside = await emu.handleEvent(handle, { clientIp: '192.0.2.1', headers: action('trust') });
    assert.deepEqual(JSON.parse(outside.response?.body.toString() ?? ''), { ip: '192.0.2.1', trusted: false });
  });

  test('the config Kong sends: defaults filled, null fields absent, Kong\'s own keys added', async () => {
    const res = await httpRequest(`${emu.url}/open/c`, { headers: action('config') });
    const { config } = res.json<{ config: Record<string, unknown> }>();
    assert.equal(config.mode, 'by-header');
    assert.equal(config.limit, 5);
    assert.equal(config.label, 'open');
    assert.deepEqual(config.options, { depth: 2 });
    assert.equal('nested' in config, false, 'an optional record left out stays absent');
    assert.equal('secret' in config, false);
    assert.equal('service_id' in config, false);
    assert.equal('consumer_id' in config, false);
    assert.match(String(config.route_id), /^[0-9a-f-]{36}$/);
    assert.match(String(config.__plugin_id), /^[0-9a-f-]{36}$/);
    assert.equal(config.__key__, `plugins:${PLUGIN}:${String(config.route_id)}::::${String(config.__ws_id)}`);
    assert.equal(typeof config.__seq__, 'number');
  });

  test('a handler constructor that throws makes StartInstance fail: Kong answers 500', async () => {
    const res = await httpRequest(`${emu.url}/explode/x`, { headers: action('echo') });
    assert.equal(res.status, 500);
    assert.deepEqual(res.json(), { message: 'An unexpected error occurred' });
    assert.ok(emu.errorLog.some((e) => e.source === 'kong' && e.message.startsWith('starting instance: ') && e.message.includes('fixture constructor refused')));
  });

  test('PDK Lua errors (bad argument, wrong phase) end the request with 500 and no further Step', async () => {
    const bad = await httpRequest(`${emu.url}/open/x`, { headers: action('bad-args') });
    assert.equal(bad.status, 500);
    assert.equal(emu.stats.lastEventRoundTrips, 2, 'HandleEvent and the get_header step; none after the error');
    assert.ok(emu.errorLog.some((e) => e.message === 'header name must be a string'));
    const phase = await httpRequest(`${emu.url}/open/x`, { headers: action('wrong-phase') });
    assert.equal(phase.status, 500);
    assert.ok(emu.errorLog.some((e) => e.message === 'function cannot be called in access phase (only in: response, header_filter, body_filter, log, error, admin_api)'));
  });

  test('a PDK name Kong does not have: logged, answered nil, the request goes on', async () => {
    const res = await httpRequest(`${emu.url}/open/x`, { headers: action('unknown') });
    assert.equal(res.status, 200);
    assert.equal(res.body, '{}', 'cjson drops the nil value');
    assert.ok(emu.errorLog.some((e) => e.message === 'could not find pdk method: kong.fixture.not_aPdk_function'));
  });

  test('a real Kong PDK function the emulator lacks fails loudly (500 + stats), never silently', async () => {
    const res = await httpRequest(`${emu.url}/open/x`, { headers: action('unsupported') });
    assert.equal(res.status, 500);
    assert.match(String(res.headers['x-kong-emulator-error']), /kong\.request\.get_body/);
    assert.ok(emu.stats.unsupported.includes('kong.request.get_body'));
  });

  test('kong.log.*, kong.ctx.shared, kong.node.get_id, set_serialize_value', async () => {
    const handle = await emu.instance('open');
    const { response, ctx } = await emu.handleEvent(handle, { headers: action('log') });
    assert.deepEqual(JSON.parse(response?.body.toString() ?? ''), { nodeId: emu.nodeId, shared: 'v1' });
    assert.deepEqual(ctx.log.filter((e) => e.source === 'plugin').map((e) => [e.level, e.message, e.plugin]), [
      ['err', 'fixture err 1', PLUGIN], ['warn', 'fixture warn', PLUGIN], ['notice', 'fixture notice', PLUGIN],
      ['info', 'fixture info', PLUGIN], ['debug', 'fixture debug', PLUGIN],
    ]);
    assert.deepEqual(ctx.serializeValues, [{ key: 'fixture.value', value: 'x', mode: 'set' }]);
  });

  test('consumers: load_consumer by username, authenticate, get_consumer (StepConsumer)', async () => {
    const handle = await emu.instance('open');
    const { response } = await emu.handleEvent(handle, { headers: action('consumer', [['x-consumer-ref', 'alice']]) });
    assert.deepEqual(JSON.parse(response?.body.toString() ?? ''), { consumer: { id: '5a1a3f7e-3c4b-4d0e-9d2f-0b6c1e2d3f4a', username: 'alice' } });
    const missing = await emu.handleEvent(handle, { headers: action('consumer', [['x-consumer-ref', 'bob']]) });
    assert.equal(missing.response?.body.toString(), '{}');
  });

  test('instance expiry: "no plugin instance" makes Kong start a new instance and retry the event', async () => {
    const handle = await emu.instance('open');
    const oldId = emu.currentInstanceId('open');
    assert.equal(typeof oldId, 'number');
    // kong-pdk drops instances unused for 60 s; closing it has the same effect.
    await emu.rpc.call('plugin.CloseInstance', oldId);
    const restarts = emu.stats.instanceRestarts;
    const { report, response } = await emu.handleEvent(handle, { headers: action('trust') });
    assert.equal(report.outcome, 'exit');
    assert.equal(response?.status, 200);
    assert.equal(emu.stats.instanceRestarts, restarts + 1);
    assert.notEqual(emu.currentInstanceId('open'), oldId);
    assert.ok(emu.errorLog.some((e) => e.level === 'warn' && e.message === `no plugin instance #${String(oldId)}`));
  });

  test('a plugin server restart loses every instance; the next request restarts them', async () => {
    const pid = emu.pluginServer.pid;
    await emu.restartPluginServer();
    assert.notEqual(emu.pluginServer.pid, pid);
    const res = await httpRequest(`${emu.url}/open/x`, { headers: action('trust') });
    assert.equal(res.status, 200);
  });

  test('header lines longer than nginx\'s 8k buffer get 400 before any plugin runs', async () => {
    const events = emu.stats.events;
    const res = await httpRequest(`${emu.url}/open/x`, { headers: action('echo', [['x-client-cert', 'A'.repeat(9000)]]) });
    assert.equal(res.status, 400);
    assert.match(res.body, /Request Header Or Cookie Too Large/);
    assert.equal(emu.stats.events, events);
  });

  test('Admin API: GET /ca_certificates/{id} answers 200, 404, 400; can fail 500 or be down', async () => {
    const { makeTestPki } = await import('../helpers/pki.js');
    const pki = await makeTestPki();
    const id = '7f1e0f3c-2b4a-4c5d-8e9f-0a1b2c3d4e5f';
    emu.adminApi.setCaCertificate(id, pki.root.pem);
    const count = emu.adminApi.requests;
    const found = await httpRequest(`${emu.adminApi.url}/ca_certificates/${id}`);
    assert.equal(found.status, 200);
    const entity = found.json<Record<string, unknown>>();
    assert.equal(entity.id, id);
    assert.equal(entity.cert, pki.root.pem);
    assert.match(String(entity.cert_digest), /^[0-9a-f]{64}$/);
    assert.equal(entity.tags, null);
    assert.equal(typeof entity.created_at, 'number');
    const missing = await httpRequest(`${emu.adminApi.url}/ca_certificates/00000000-0000-4000-8000-000000000000`);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json(), { message: 'Not found' });
    assert.equal((await httpRequest(`${emu.adminApi.url}/ca_certificates/not-a-uuid`)).status, 400);
    await emu.adminApi.setMode('error');
    assert.equal((await httpRequest(`${emu.adminApi.url}/ca_certificates/${id}`)).status, 500);
    await emu.adminApi.setMode('down');
    await assert.rejects(httpRequest(`${emu.adminApi.url}/ca_certificates/${id}`), /ECONNREFUSED/);
    await emu.adminApi.setMode('up');
    assert.equal((await httpRequest(`${emu.adminApi.url}/ca_certificates/${id}`)).status, 200);
    assert.equal(emu.adminApi.requests, count + 5, 'the unreachable request is not counted');
  });
});

describe('Kong emulator: failures of the plugin server (fail-open) and the guard', () => {
  test('server killed mid-run: the guarded route answers 401 and nothing reaches the upstream; the unguarded one proxies', async () => {
    const echo = await startEchoUpstream();
    const emu = await KongEmulator.start({
      pluginServer: launcherCommand(FIXTURE_DIR),
      rpcTimeoutMs: 2000,
      config: {
        routes: [
          { name: 'guarded', paths: ['/g'], plugins: [{ name: PLUGIN }], guard: true, upstream: echo.url },
          { name: 'open', paths: ['/o'], plugins: [{ name: PLUGIN }], upstream: echo.url },
        ],
      },
    });
    try {
      assert.equal((await httpRequest(`${emu.url}/g/1`, { headers: action('pass') })).status, 200);
      assert.equal((await httpRequest(`${emu.url}/o/1`, { headers: action('exit') })).status, 403);
      assert.equal(echo.requests.length, 1);
      await emu.pluginServer.kill();
      const guarded = await httpRequest(`${emu.url}/g/2`, { headers: action('exit') });
      assert.equal(guarded.status, 401);
      assert.equal(guarded.headers['www-authenticate'], GUARD_WWW_AUTHENTICATE);
      assert.equal(echo.requests.length, 1, 'the guard stopped it');
      const open = await httpRequest(`${emu.url}/o/2`, { headers: action('exit') });
      assert.equal(open.status, 200, 'Kong logs the error and proxies: fail-open');
      assert.equal(echo.requests.length, 2);
      assert.equal(echo.requests[1]?.path, '/2');
      assert.ok(emu.errorLog.some((e) => e.source === 'kong' && e.level === 'err' && e.message === 'connection refused'));
      assert.equal(emu.stats.failOpen, 2);
      assert.equal(emu.stats.guardRejections, 1);
    } finally {
      await emu.close();
      await echo.close();
    }
  });

  test('a plugin server already down when the first request needs an instance: StartInstance fails, Kong answers 500', async () => {
    const echo = await startEchoUpstream();
    const emu = await KongEmulator.start({
      pluginServer: launcherCommand(FIXTURE_DIR),
      config: { routes: [{ name: 'open', paths: ['/o'], plugins: [{ name: PLUGIN }], upstream: echo.url }] },
    });
    try {
      await emu.pluginServer.kill();
      const res = await httpRequest(`${emu.url}/o/1`, { headers: action('pass') });
      assert.equal(res.status, 500, 'plugin.lua get_instance_id raises the error: not fail-open');
      assert.equal(echo.requests.length, 0);
      assert.ok(emu.errorLog.some((e) => e.message === 'starting instance: connection refused'));
    } finally {
      await emu.close();
      await echo.close();
    }
  });

  test('a plugin server that does not answer in time: fail-open after the timeout, guard closes it', async () => {
    const echo = await startEchoUpstream();
    const emu = await KongEmulator.start({
      pluginServer: launcherCommand(FIXTURE_DIR),
      rpcTimeoutMs: 250,
      config: {
        routes: [
          { name: 'guarded', paths: ['/g'], plugins: [{ name: PLUGIN }], guard: true, upstream: echo.url },
          { name: 'open', paths: ['/o'], plugins: [{ name: PLUGIN }], upstream: echo.url },
        ],
      },
    });
    try {
      const slow = action('slow', [['x-fixture-delay', '3000']]);
      const started = Date.now();
      const open = await httpRequest(`${emu.url}/o/s`, { headers: slow });
      assert.equal(open.status, 200);
      assert.ok(Date.now() - started < 2500, 'did not wait for the handler');
      assert.ok(emu.errorLog.some((e) => e.message === 'no data'), 'mp_rpc.lua:195-199: a read that got nothing is "no data"');
      assert.equal((await httpRequest(`${emu.url}/g/s`, { headers: slow })).status, 401);
      assert.equal(echo.requests.length, 1);
    } finally {
      await emu.close();
      await echo.close();
    }
  });
});

describe('Kong emulator: what Kong refuses at configuration time', () => {
  test('a config that fails the plugin schema is rejected with Kong\'s reasons', async () => {
    await assert.rejects(KongEmulator.start({
      pluginServer: launcherCommand(FIXTURE_DIR),
      gateway: false,
      config: { routes: [{ name: 'r', paths: ['/'], plugins: [{ name: PLUGIN, config: { limit: 11, mode: 'loud', extra: true } }] }] },
    }), (err: unknown) => err instanceof KongConfigError
      && err.message === `Kong would reject this ${PLUGIN} config: schema violation (config.mode: expected one of: by-header, reject, noop; config.limit: value should be between 1 and 10; config.extra: unknown field)`);
  });

  test('a plugin the server does not dump is not enabled', async () => {
    await assert.rejects(KongEmulator.start({
      pluginServer: launcherCommand(FIXTURE_DIR),
      gateway: false,
      config: { routes: [{ name: 'r', paths: ['/'], plugins: [{ name: 'mtls-pop' }] }] },
    }), /plugin 'mtls-pop' not enabled; add it to the 'plugins' configuration property/);
  });
});

describe('Kong emulator with the stock kong-js-pluginserver', () => {
  test('the same conversation works (the emulator is not tied to our launcher)', async () => {
    const echo = await startEchoUpstream();
    const emu = await KongEmulator.start({
      pluginServer: stockServerCommand(FIXTURE_DIR),
      config: { routes: [{ name: 'open', paths: ['/o'], plugins: [{ name: PLUGIN }], upstream: echo.url }] },
    });
    try {
      const res = await httpRequest(`${emu.url}/o/x`, { headers: action('echo', [['x-multi', 'only']]) });
      assert.equal(res.status, 200);
      assert.equal(res.json<{ single: string }>().single, 'only');
      assert.equal((await httpRequest(`${emu.url}/o/x`, { headers: action('throw') })).status, 200);
      assert.equal(echo.requests.length, 1);
    } finally {
      await emu.close();
      await echo.close();
    }
  });
});

describe('emulated PDK details', () => {
  test('get_header: first line; "-" and "_" name the same header; get_headers keeps them apart', () => {
    const lines: Array<[string, string]> = [['X-Client-Cert', 'a, b'], ['x_client_cert', 'c'], ['x-client-cert', 'd']];
    // $http_x_client_cert joins all three; Kong then reads get_headers()["x-client-cert"][1].
    assert.equal(getHeader(lines, 'x-client-cert'), 'a, b');
    assert.equal(getHeader([['x_client_cert', 'only']], 'x-client-cert'), 'only');
    assert.equal(getHeader(lines, 'missing'), undefined);
    assert.deepEqual(getHeaders(lines), { 'x-client-cert': ['a, b', 'd'], x_client_cert: 'c' });
    assert.equal(Object.keys(getHeaders(Array.from({ length: 150 }, (_, i) => [`h${i}`, 'v'] as [string, string]))).length, 100);
  });

  test('trusted_ips: nothing trusted by default; IPs and CIDRs; invalid input is untrusted', () => {
    assert.equal(new TrustedIps([]).isTrusted('127.0.0.1'), false);
    const t = new TrustedIps(['192.0.2.0/24', '::1', 'not-an-ip']);
    assert.equal(t.isTrusted('192.0.2.77'), true);
    assert.equal(t.isTrusted('192.0.3.1'), false);
    assert.equal(t.isTrusted('::1'), true);
    assert.equal(t.isTrusted('garbage'), false);
    assert.equal(t.isTrusted(null), false);
  });

  test('cjson encoding and path normalization as Kong does them', () => {
    assert.equal(cjsonEncode({ a: 'x/y', b: [], c: null, d: [1, 2] }), '{"a":"x\\/y","b":{},"d":[1,2]}');
    assert.equal(normalizePath('/a/%7Euser/./b/../c//d'), '/a/~user/c/d');
    assert.equal(normalizePath('/a%2Fb'), '/a%2Fb');
  });

  test('RpcError carries Kong\'s failure kinds', () => {
    const err = new RpcError('connect', 'connection refused');
    assert.equal(err.kind, 'connect');
    assert.equal(err.message, 'connection refused');
  });
});
