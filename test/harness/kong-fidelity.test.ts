/**
 * Kong 3.9.1's real failure paths, through the emulator (issue 13, items 6-12): what Kong's
 * `mp_rpc.lua` and `plugin.lua` do with each kind of answer (file:line in kong-emulator.ts and
 * mp-rpc.ts), shown first with a scripted plugin server that gives those answers, then against
 * our plugin server: it never gives them, never makes Kong loop on "no plugin instance", and its
 * idle expiry reclaims the instances Kong forgets.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  AdminApiEmulator,
  KongEmulator, launcherCommand, startEchoUpstream, LAUNCHER_PATH, GUARD_LUA, GUARD_WWW_AUTHENTICATE,
  type EchoUpstream, type PluginServerCommand, type RouteConfig,
} from './kong-emulator.js';
import { RpcError } from './mp-rpc.js';
import { httpRequest, type HttpResult } from './http.js';
import { SCRIPTED_MODES, SCRIPTED_PLUGIN, type ScriptedMode } from './scripted-plugin-server.js';
import { ClockOffset, CLOCK_OFFSET_PRELOAD } from '../helpers/clock-offset.js';
import { startJwksServer, signCompact, type JwksServer } from '../helpers/jwks-server.js';
import { makeTestPki, type TestPki } from '../helpers/pki.js';
import { strictEntityConfig } from '../helpers/seed.js';
import { base64Chain, boundClaims, pool, sleep } from '../adversarial/support.js';

const ROOT = join(__dirname, '..', '..', '..');
const FIXTURE_DIR = join(__dirname, '..', 'fixtures', 'plugins', 'harness');
const FIXTURE = 'harness-fixture';
const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');
const SCRIPTED_SERVER = join(__dirname, 'scripted-plugin-server.js');
const UNEXPECTED = { message: 'An unexpected error occurred' };

function action(name: string): Array<[string, string]> {
  return [['x-fixture-action', name]];
}

/** Our plugin server (the launcher) serving the harness fixture, its clock movable through `clock`. */
function clockedFixtureServer(clock: ClockOffset, respawn = false): PluginServerCommand {
  return {
    command: process.execPath,
    args: ['--require', CLOCK_OFFSET_PRELOAD, LAUNCHER_PATH, '-d', FIXTURE_DIR],
    env: { ...process.env, ...clock.env },
    ...(respawn ? { respawn: true } : {}),
  };
}

/** Kong's own log lines since `from`. */
function kongLines(emu: KongEmulator, from: number): string[] {
  return emu.errorLog.slice(from).filter((e) => e.source === 'kong').map((e) => `${e.level} ${e.message}`);
}

describe('Kong 3.9.1 answer handling, shown with a scripted plugin server', () => {
  let echo: EchoUpstream;
  let emu: KongEmulator;
  const MAX_RETRIES = 20;

  before(async () => {
    echo = await startEchoUpstream();
    const routes: RouteConfig[] = [];
    for (const mode of SCRIPTED_MODES) {
      routes.push({ name: `open-${mode}`, paths: [`/open/${mode}`], plugins: [{ name: SCRIPTED_PLUGIN, config: { mode } }], upstream: echo.url });
      routes.push({ name: `guarded-${mode}`, paths: [`/guarded/${mode}`], plugins: [{ name: SCRIPTED_PLUGIN, config: { mode } }], guard: true, upstream: echo.url });
    }
    emu = await KongEmulator.start({
      pluginServer: { command: process.execPath, args: [SCRIPTED_SERVER] },
      rpcTimeoutMs: 1500,
      maxInstanceRetries: MAX_RETRIES,
      config: { routes },
    });
  });

  after(async () => {
    await emu?.close();
    await echo?.close();
  });

  const send = (route: 'open' | 'guarded', mode: ScriptedMode): Promise<HttpResult> => httpRequest(`${emu.url}/${route}/${mode}/x`);

  test('item 6: neither error nor result (to HandleEvent or a Step), or the error false: Kong proxies and logs nothing', async () => {
    for (const mode of ['nil-answer', 'nil-step', 'false-error'] as const) {
      const log = emu.errorLog.length;
      const silent = emu.stats.silentFailOpen;
      const upstream = echo.requests.length;
      const res = await send('open', mode);
      assert.equal(res.status, 200, `${mode}: mp_rpc.lua:272-274/294-296 return (nil, nil), handle_event :309 sees no err: proxied`);
      assert.equal(echo.requests.length, upstream + 1);
      assert.deepEqual(kongLines(emu, log), [], `${mode}: Kong writes no log line`);
      assert.equal(emu.stats.silentFailOpen, silent + 1);
      const guarded = await send('guarded', mode);
      assert.equal(guarded.status, 401, `${mode}: only the guard stops it`);
      assert.equal(guarded.headers['www-authenticate'], GUARD_WWW_AUTHENTICATE);
      assert.equal(echo.requests.length, upstream + 1);
    }
  });

  test('item 7: an error that is not a string: err:lower() raises (mp_rpc.lua:310), 500; a string error fails open', async () => {
    for (const [mode, luaError] of [
      ['table-error', "attempt to call method 'lower' (a nil value)"],
      ['number-error', "attempt to index local 'err' (a number value)"],
    ] as const) {
      const upstream = echo.requests.length;
      const log = emu.errorLog.length;
      for (const route of ['open', 'guarded'] as const) {
        const res = await send(route, mode);
        assert.equal(res.status, 500, `${route} ${mode}`);
        assert.deepEqual(res.json(), UNEXPECTED);
      }
      assert.equal(echo.requests.length, upstream);
      assert.ok(kongLines(emu, log).includes(`err ${luaError}`), kongLines(emu, log).join(' | '));
    }
    const log = emu.errorLog.length;
    const open = await send('open', 'string-error');
    assert.equal(open.status, 200, 'a string error is logged and the request proxied (mp_rpc.lua:318)');
    assert.deepEqual(kongLines(emu, log), ['err scripted failure']);
    assert.equal((await send('guarded', 'string-error')).status, 401);
  });

  test('item 8: an answer cut off mid-frame is lua-MessagePack\'s "missing bytes", 500; no byte at all is "no data", fail-open', async () => {
    for (const mode of ['cut-close', 'cut-stall'] as const) {
      const log = emu.errorLog.length;
      const res = await send('open', mode);
      assert.equal(res.status, 500, mode);
      assert.deepEqual(res.json(), UNEXPECTED);
      assert.ok(kongLines(emu, log).some((l) => l.startsWith('err MessagePack.lua: missing bytes')), kongLines(emu, log).join(' | '));
      assert.equal((await send('guarded', mode)).status, 500, `${mode}: a Lua error, the guard never runs`);
    }
    const log = emu.errorLog.length;
    const upstream = echo.requests.length;
    const res = await send('open', 'silent-close');
    assert.equal(res.status, 200, 'mp_rpc.lua:195-199: nothing read, "no data", logged and proxied');
    assert.equal(echo.requests.length, upstream + 1);
    assert.deepEqual(kongLines(emu, log), ['err no data']);
  });

  test('item 9: a server that answers "no plugin instance" every time: Kong retries forever; the emulator stops and fails the request', async () => {
    const starts = emu.stats.startInstance;
    const handleEvents = emu.rpc.stats.byMethod['plugin.HandleEvent'] ?? 0;
    const res = await send('open', 'no-instance');
    assert.equal(res.status, 500);
    assert.equal(res.headers['x-kong-emulator-error'], 'no plugin instance loop');
    assert.equal(emu.stats.instanceLoops, 1);
    // Each round: reset_instance, StartInstance, HandleEvent (mp_rpc.lua:312-316 -> plugin.lua:281).
    assert.equal(emu.stats.startInstance - starts, MAX_RETRIES + 1);
    assert.equal((emu.rpc.stats.byMethod['plugin.HandleEvent'] ?? 0) - handleEvents, MAX_RETRIES + 1);
    assert.ok(emu.errorLog.some((e) => e.level === 'crit' && e.message.includes('retries without limit')));
  });
});

describe('our plugin server never makes Kong loop on "no plugin instance" (item 9)', () => {
  const WORKERS = 4;
  let echo: EchoUpstream;
  let emu: KongEmulator;
  let clock: ClockOffset;

  before(async () => {
    echo = await startEchoUpstream();
    clock = new ClockOffset();
    emu = await KongEmulator.start({
      pluginServer: clockedFixtureServer(clock, true),
      workers: WORKERS,
      // Several connections per worker, reused in rotation: StartInstance, HandleEvent and each
      // Step of one event land on different connections (Kong's pool may do the same under load).
      poolSize: 4,
      poolOrder: 'fifo',
      rpcTimeoutMs: 10_000,
      config: {
        routes: [
          { name: 'a', paths: ['/a'], plugins: [{ name: FIXTURE, config: { label: 'a' } }], guard: true, upstream: echo.url },
          { name: 'b', paths: ['/b'], plugins: [{ name: FIXTURE, config: { label: 'b' } }], guard: true, upstream: echo.url },
          { name: 'explode', paths: ['/explode'], plugins: [{ name: FIXTURE, config: { label: 'explode' } }], guard: true, upstream: echo.url },
        ],
      },
    });
  });

  after(async () => {
    await emu?.close();
    await echo?.close();
    clock?.close();
  });

  /** 16 at a time, alternating routes a and b; every one must pass (the fixture approves 'pass'). */
  const traffic = async (count: number): Promise<HttpResult[]> =>
    pool(Array.from({ length: count }, (_, i) => (i % 2 === 0 ? 'a' : 'b')), 16, (route) => httpRequest(`${emu.url}/${route}/x`, { headers: action('pass') }));

  const assertNoLoop = (label: string): void => {
    assert.equal(emu.stats.instanceLoops, 0, `${label}: no event hit the loop cap`);
    assert.equal(emu.stats.luaErrors, 0, `${label}: no 500`);
  };

  test('events spread over 4 workers and rotating connections: one StartInstance per worker and route, no retry', async () => {
    // One connection per request, handed to the workers in turn: each worker meets both routes.
    for (const route of ['a', 'b']) {
      for (let w = 0; w < WORKERS; w++) assert.equal((await httpRequest(`${emu.url}/${route}/x`, { headers: action('pass') })).status, 200);
    }
    const results = await traffic(64);
    for (const res of results) assert.equal(res.status, 200, res.body);
    assert.equal(emu.stats.startInstance, WORKERS * 2);
    assert.equal(emu.stats.instanceRestarts, 0);
    const ids = new Set<number>();
    for (let w = 0; w < WORKERS; w++) {
      for (const route of ['a', 'b']) {
        const id = emu.currentInstanceId(route, undefined, w);
        assert.equal(typeof id, 'number', `worker ${w} route ${route}`);
        ids.add(id as number);
      }
    }
    assert.equal(ids.size, WORKERS * 2, 'one instance per worker and plugin entity');
    assert.ok(Object.values(emu.rpc.stats).length > 0 && emu.rpc.stats.connectionsOpened > 1, 'calls used several connections');
    assertNoLoop('warm');
  });

  test('every error our server answers is a string, every other answer has a result (never items 6 and 7)', async () => {
    const handle = await emu.instance('a');
    const id = emu.currentInstanceId('a');
    const calls: Array<[string, unknown]> = [
      ['plugin.HandleEvent', { InstanceId: 1, EventName: 'access' }],
      ['plugin.HandleEvent', { EventName: 'access' }],
      ['plugin.HandleEvent', 'not a table'],
      ['plugin.Step', { EventId: 1, Data: null }],
      ['plugin.StepMultiMap', { EventId: -5 }],
      ['plugin.StartInstance', { Name: 'no-such-plugin', Config: '{}' }],
      ['plugin.StartInstance', { Name: FIXTURE, Config: '{not json' }],
      ['plugin.StartInstance', { Name: FIXTURE, Config: JSON.stringify({ label: 'explode' }) }],
      ['plugin.CloseInstance', 12345],
      ['plugin.InstanceStatus', 12345],
      ['plugin.GetPluginInfo', 'no-such-plugin'],
      ['plugin.NoSuchMethod', {}],
      ['other.Method', {}],
    ];
    for (const [method, arg] of calls) {
      await assert.rejects(emu.rpc.call(method, arg), (err: unknown) => {
        assert.ok(err instanceof RpcError, `${method}: ${String(err)}`);
        assert.equal(err.kind, 'remote', `${method}: an answered error`);
        assert.equal(typeof err.value, 'string', `${method}: the error is a string`);
        return true;
      });
    }
    for (const [method, arg] of [['plugin.GetStatus', undefined], ['plugin.InstanceStatus', id], ['plugin.GetPluginInfo', FIXTURE]] as const) {
      const result = await emu.rpc.call(method, arg);
      assert.ok(result !== null && result !== undefined, `${method} answered a result`);
    }
    const { report } = await emu.handleEvent(handle, { headers: action('throw') });
    assert.equal(report.outcome, 'ret', 'a throwing handler is "ret", not an empty answer');
  });

  test('idle expiry (the server\'s clock moved 120 s): instances restart, at most one retry per event, no loop', async (t) => {
    const before = { ...emu.stats };
    await clock.set(emu.pluginServer.pid as number, 120_000);
    // kong-pdk sweeps idle instances on a timer: wait until the server has really dropped them
    // (a loaded machine may delay the sweep well past its period), so the traffic meets expiry.
    const swept = emu.currentInstanceId('a', undefined, 0) as number;
    const deadline = Date.now() + 15_000;
    while (await emu.rpc.call('plugin.InstanceStatus', swept).then(() => true, () => false)) {
      assert.ok(Date.now() < deadline, 'the idle instances were swept within 15 s');
      await sleep(50);
    }
    const results = await traffic(64);
    for (const res of results) assert.equal(res.status, 200, res.body);
    // One "no plugin instance" resets every worker's table (the worker event of plugin.lua:210-224),
    // so a worker may restart its instances without meeting the error itself, and which worker
    // serves which route depends on connection reuse: only "met at least once" is certain.
    assert.ok(emu.stats.instanceRestarts - before.instanceRestarts >= 1, 'the expiry was met ("no plugin instance")');
    assert.ok(emu.stats.maxEventInstanceRetries <= 1, `at most one retry per event (saw ${emu.stats.maxEventInstanceRetries})`);
    assert.ok(emu.stats.startInstance - before.startInstance <= 64, 'bounded StartInstance calls');
    t.diagnostic(`"no plugin instance" retries ${emu.stats.instanceRestarts - before.instanceRestarts}, StartInstance ${emu.stats.startInstance - before.startInstance} for ${WORKERS} workers x 2 routes`);
    assertNoLoop('expiry');
  });

  test('config reloads under traffic: old instances closed, in-flight events retried a bounded number of times, no loop', async () => {
    const before = { ...emu.stats };
    const running = traffic(96);
    for (let i = 0; i < 4; i++) {
      await sleep(40);
      emu.updatePluginConfig('a', FIXTURE, { label: `a-${i}` });
    }
    for (const res of await running) assert.equal(res.status, 200, res.body);
    for (const res of await traffic(16)) assert.equal(res.status, 200, res.body);
    assert.ok(emu.stats.closeInstance > before.closeInstance, 'Kong closed replaced instances (plugin.lua:296-300)');
    assert.ok(emu.stats.maxEventInstanceRetries <= 4, `retries per event bounded by the reloads (saw ${emu.stats.maxEventInstanceRetries})`);
    assertNoLoop('reloads');
  });

  test('a constructor that throws: StartInstance fails, Kong answers 500 at once, one StartInstance per request', async () => {
    const before = { ...emu.stats };
    for (let i = 0; i < 4; i++) {
      const res = await httpRequest(`${emu.url}/explode/x`, { headers: action('pass') });
      assert.equal(res.status, 500, 'plugin.lua:281-287 error(err): fail-closed, the guard never runs');
    }
    assert.equal(emu.stats.startInstance - before.startInstance, 4);
    assert.equal(emu.stats.instanceRestarts, before.instanceRestarts, 'no "no plugin instance" retry');
    assert.equal(emu.stats.instanceLoops, 0);
    assert.equal(emu.stats.luaErrors - before.luaErrors, 4);
  });

  test('the server killed (SIGKILL) and respawned by Kong under traffic: no loop; afterwards every request passes', async (t) => {
    const before = { ...emu.stats, luaErrors: emu.stats.luaErrors };
    const starts = emu.pluginServer.starts;
    const pid = emu.pluginServer.pid as number;
    const during = traffic(48);
    await sleep(30);
    process.kill(pid, 'SIGKILL'); // a crash: PluginServerProcess respawns it after 1 s, as process.lua does
    const results = await during;
    const deadline = Date.now() + 30_000;
    const listening = async (): Promise<boolean> => {
      if (emu.pluginServer.starts === starts) return false;
      try {
        await emu.rpc.call('plugin.GetStatus');
        return true;
      } catch {
        return false;
      }
    };
    while (!await listening()) {
      assert.ok(Date.now() < deadline, 'respawned within 30 s');
      await sleep(100);
    }
    for (const res of results) {
      // While it is down: a known instance fails open (guard 401), an unknown one cannot start (500).
      assert.ok([200, 401, 500].includes(res.status), `${res.status} ${res.body}`);
      if (res.status === 200) assert.equal(res.headers['x-fixture-response'], 'passed', 'only approved requests pass');
    }
    const after = await traffic(64);
    for (const res of after) assert.equal(res.status, 200, res.body);
    const count = (status: number): number => results.filter((r) => r.status === status).length;
    t.diagnostic(`during the crash: ${count(200)} passed, ${count(401)} guard 401, ${count(500)} 500 (no instance could start); ` +
      `"no plugin instance" retries ${emu.stats.instanceRestarts - before.instanceRestarts}, most in one event ${emu.stats.maxEventInstanceRetries}, ` +
      `StartInstance ${emu.stats.startInstance - before.startInstance}`);
    assert.equal(emu.stats.instanceLoops, 0);
    assert.ok(emu.stats.maxEventInstanceRetries <= 4, `bounded retries (saw ${emu.stats.maxEventInstanceRetries})`);
    assert.ok(emu.stats.instanceRestarts > before.instanceRestarts, 'the new process answered "no plugin instance" for the old ids');
  });
});

describe('one instance per nginx worker, sharing one JWKS source and one CA resolver (item 10)', () => {
  const WORKERS = 4;
  const CA_UUID = '8a0c3f4e-5b6d-4e7f-9a1b-2c3d4e5f6a7b';
  let pki: TestPki;
  let idp: JwksServer;
  let echo: EchoUpstream;
  let emu: KongEmulator;

  before(async () => {
    pki = await makeTestPki();
    idp = await startJwksServer();
    echo = await startEchoUpstream();
    // Bound on port 0 before the routes name it (a port probed free and bound later may be taken).
    const adminApi = await AdminApiEmulator.start({ ca_certificates: { [CA_UUID]: pki.root.pem } });
    const adminPort = adminApi.port;
    emu = await KongEmulator.start({
      pluginServer: launcherCommand(PLUGINS_DIR),
      workers: WORKERS,
      rpcTimeoutMs: 10_000,
      config: {
        routes: [{
          name: 'api', paths: ['/api'], guard: true, upstream: echo.url,
          plugins: [{ name: 'mtls-pop', config: strictEntityConfig(idp.issuer, CA_UUID, `http://127.0.0.1:${adminPort}`, { display_errors: true }) }],
        }],
        trusted_ips: ['127.0.0.1'],
        adminApi: { server: adminApi },
      },
    });
  });

  after(async () => {
    await emu?.close();
    await echo?.close();
    await idp?.close();
  });

  test(`${WORKERS} workers: ${WORKERS} StartInstance calls and instances, one discovery + JWKS fetch, one Admin API read`, async () => {
    const key = idp.keys[0];
    assert.ok(key);
    const token = signCompact({ alg: 'RS256', kid: key.kid, typ: 'JWT' }, boundClaims(idp.issuer, pki.client), key);
    const headers: Array<[string, string]> = [['Authorization', `Bearer ${token}`], ['X-Client-Cert', base64Chain(pki.client, pki.intermediate)]];
    // One connection per request: nginx hands them to the workers in turn (two rounds).
    for (let i = 0; i < WORKERS * 2; i++) {
      const res = await httpRequest(`${emu.url}/api/x`, { headers });
      assert.equal(res.status, 200, res.body);
    }
    const ids = Array.from({ length: WORKERS }, (_, w) => emu.currentInstanceId('api', undefined, w));
    for (const id of ids) assert.equal(typeof id, 'number');
    assert.equal(new Set(ids).size, WORKERS, `one instance per worker: ${ids.join(', ')}`);
    assert.equal(emu.stats.startInstance, WORKERS);
    assert.equal(idp.count('jwks'), 1, 'one JWKS fetch for all instances');
    assert.ok(idp.count('discovery') <= 1, 'at most one discovery request');
    assert.equal(emu.adminApi.requests, 1, 'one Admin API read of the CA entity');
  });
});

describe('instances Kong forgets are never closed; the server\'s idle expiry reclaims them (item 11)', () => {
  let echo: EchoUpstream;
  let emu: KongEmulator;
  let clock: ClockOffset;

  before(async () => {
    echo = await startEchoUpstream();
    clock = new ClockOffset();
    emu = await KongEmulator.start({
      pluginServer: clockedFixtureServer(clock),
      workers: 2,
      config: { routes: [{ name: 'r', paths: ['/r'], plugins: [{ name: FIXTURE }], guard: true, upstream: echo.url }] },
    });
  });

  after(async () => {
    await emu?.close();
    await echo?.close();
    clock?.close();
  });

  const pass = async (n = 2): Promise<void> => {
    for (let i = 0; i < n; i++) assert.equal((await httpRequest(`${emu.url}/r/x`, { headers: action('pass') })).status, 200);
  };
  const ids = (): Array<number | undefined> => [0, 1].map((w) => emu.currentInstanceId('r', undefined, w));
  const alive = async (id: number): Promise<boolean> => {
    try {
      await emu.rpc.call('plugin.InstanceStatus', id);
      return true;
    } catch (err) {
      if (err instanceof RpcError && /no plugin instance/.test(err.message)) return false;
      throw err;
    }
  };

  test('replaced plugin entity and a "no plugin instance" reset leave live instances behind; 60 s idle removes them', async () => {
    await pass();
    const first = ids();
    assert.ok(first.every((id) => id !== undefined) && first[0] !== first[1], `one per worker: ${first.join(', ')}`);
    const forgotten: number[] = first as number[];

    // 1. The plugin entity replaced (a new id): each worker starts a new instance, closes nothing.
    const closes = emu.stats.closeInstance;
    emu.replacePluginEntity('r');
    await pass();
    const second = ids();
    assert.ok(second.every((id) => id !== undefined && !forgotten.includes(id)));
    assert.equal(emu.stats.closeInstance, closes, 'Kong sent no CloseInstance');
    for (const id of forgotten) assert.ok(await alive(id), `instance ${id} still lives in the plugin server`);

    // 2. Worker 0 meets "no plugin instance" (its instance dropped): reset_instance forgets worker 1's too.
    const [lost, other] = second as [number, number];
    await emu.rpc.call('plugin.CloseInstance', lost);
    await pass();
    await sleep(50); // the worker event reaches every worker
    assert.equal(emu.stats.instanceRestarts, 1);
    assert.notEqual(emu.currentInstanceId('r', undefined, 1), other, 'worker 1 forgot its instance');
    assert.ok(await alive(other), `instance ${other} was never closed`);
    forgotten.push(other);

    // 3. Instances idle for 60 s are dropped (kong-pdk lib/mod.js isExpired; our server sweeps every
    // second): the plugin server's own instance list (GetStatus), not a lookup that could expire
    // them on the spot, shows the forgotten ones reclaimed without any event naming them.
    await clock.set(emu.pluginServer.pid as number, 61_000);
    const listed = async (): Promise<number[]> => {
      const status = await emu.rpc.call('plugin.GetStatus') as { Plugins: Record<string, { Instances: Array<{ Id: number }> }> };
      return Object.values(status.Plugins).flatMap((p) => p.Instances.map((i) => i.Id));
    };
    const deadline = Date.now() + 10_000;
    while ((await listed()).some((id) => forgotten.includes(id))) {
      assert.ok(Date.now() < deadline, `instances ${forgotten.join(', ')} reclaimed within 10 s`);
      await sleep(100);
    }
    for (const id of forgotten) assert.equal(await alive(id), false, `instance ${id} reclaimed`);
    await pass(4);
  });
});

describe('the emulator\'s guard is the shipped guard (item 12)', () => {
  test('kong.yml\'s post-function and the README\'s are GUARD_LUA, character for character', () => {
    const kongYml = parseYaml(readFileSync(join(ROOT, 'kong.yml'), 'utf8')) as {
      services: Array<{ routes: Array<{ plugins: Array<{ name: string; config: { access: string[] } }> }> }>;
    };
    const guards = kongYml.services.flatMap((s) => s.routes.flatMap((r) => r.plugins.filter((p) => p.name === 'post-function')));
    assert.equal(guards.length, 1);
    assert.deepEqual(guards[0]?.config.access, [GUARD_LUA]);
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    assert.ok(readme.includes(`    - ${GUARD_LUA}\n`), 'README shows the same guard');
  });

  test('its answer: 401, {"message":"Unauthorized"} as JSON, WWW-Authenticate: Bearer realm="kong"', async () => {
    const echo = await startEchoUpstream();
    const emu = await KongEmulator.start({
      pluginServer: launcherCommand(FIXTURE_DIR),
      config: { routes: [{ name: 'g', paths: ['/g'], plugins: [{ name: FIXTURE }], guard: true, upstream: echo.url }] },
    });
    try {
      const res = await httpRequest(`${emu.url}/g/x`, { headers: action('pass-unverified') });
      assert.equal(res.status, 401);
      assert.equal(res.body, '{"message":"Unauthorized"}');
      assert.deepEqual(res.rawHeaders.filter(([n]) => !/^(date|connection|keep-alive)$/i.test(n)), [
        ['X-Fixture-Response', 'passed'], // set by the plugin before the guard ran: Kong keeps it
        ['WWW-Authenticate', 'Bearer realm="kong"'],
        ['Content-Type', 'application/json; charset=utf-8'],
        ['Content-Length', '26'],
      ]);
      assert.equal(echo.requests.length, 0);
    } finally {
      await emu.close();
      await echo.close();
    }
  });
});
