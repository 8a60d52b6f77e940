/**
 * The mtls-pop plugin server launcher (dist/bin/mtls-pop-pluginserver.js) as a process: its
 * command line, `--dump-all-plugins`, its socket protocol under abuse, its logs, its shutdown.
 * Where it fixes a kong-pdk 0.6.0 defect, the stock `kong-js-pluginserver` is run the same way to
 * show the defect is real.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decoder, encode } from '@msgpack/msgpack';
import { KongEmulator, LAUNCHER_PATH, STOCK_PLUGINSERVER_PATH, launcherCommand, stockServerCommand, type PluginServerCommand } from './kong-emulator.js';
import { PluginServerProcess } from './plugin-server-process.js';
import { httpRequest } from './http.js';
import { parseCli } from '../../bin/pluginserver/cli.js';
import { PluginServer } from '../../bin/pluginserver/server.js';
import { RedactingLogger, scrubSecrets } from '../../bin/pluginserver/logger.js';
import { FrameReader, frameEnd } from '../../bin/pluginserver/listener.js';
import { makeTestPki } from '../helpers/pki.js';

const FIXTURES = join(__dirname, '..', 'fixtures', 'plugins');
const HARNESS_DIR = join(FIXTURES, 'harness');
const NOISY_DIR = join(FIXTURES, 'noisy');

function run(args: readonly string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...args], { cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A raw client: writes bytes, reads decoded messages. */
class RawClient {
  readonly messages: unknown[] = [];
  closed = false;
  private readonly waiters: Array<() => void> = [];

  constructor(readonly socket: Socket) {
    socket.on('close', () => { this.closed = true; this.wake(); });
    socket.on('error', () => undefined);
    void (async () => {
      try {
        for await (const m of new Decoder().decodeStream(socket)) { this.messages.push(m); this.wake(); }
      } catch {
        // connection closed
      }
    })();
  }

  static open(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async waitFor(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error('timed out waiting');
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50); });
    }
  }
}

describe('command line', () => {
  test('flags as kong-js-pluginserver; relative -d resolved; -v repeatable', () => {
    const parsed = parseCli(['-d', 'plugins', '-v', '-v', '--sock-name', 'x.sock'], '/opt/kong', {});
    assert.equal(parsed.kind, 'run');
    if (parsed.kind !== 'run') return;
    assert.deepEqual(parsed.options, {
      pluginsDirectory: '/opt/kong/plugins', kongPrefix: '/usr/local/kong', sockName: 'x.sock',
      dumpAllPlugins: false, dumpPluginInfo: undefined, verbose: 2, metricsPort: null, metricsHost: '127.0.0.1', workers: 1,
    });
    const long = parseCli(['--plugins-directory=/p', '--kong-prefix', '/k', '--dump-all-plugins', '-vv']);
    assert.ok(long.kind === 'run' && long.options.kongPrefix === '/k' && long.options.dumpAllPlugins && long.options.verbose === 2);
    assert.ok(parseCli(['-d', '/p', '-dump']).kind === 'run');
    assert.deepEqual(parseCli(['-v']), { kind: 'error', message: "required option '-d, --plugins-directory <dir>' not specified" });
    assert.deepEqual(parseCli(['-d', '/p', '--bogus']), { kind: 'error', message: "unknown option '--bogus'" });
  });

  test('a relative plugins directory works (kong-pdk alone fails with MODULE_NOT_FOUND)', async () => {
    const ours = await run([LAUNCHER_PATH, '-d', 'harness', '--dump-all-plugins'], FIXTURES);
    assert.equal(ours.code, 0, ours.stderr);
    assert.equal((JSON.parse(ours.stdout) as Array<{ Name: string }>)[0]?.Name, 'harness-fixture');
    const stock = await run([STOCK_PLUGINSERVER_PATH, '-d', 'harness', '--dump-all-plugins'], FIXTURES);
    assert.notEqual(stock.code, 0);
    assert.match(stock.stderr, /MODULE_NOT_FOUND|Cannot find module/);
  });

  test('a missing plugins directory is a clear error, exit 1', async () => {
    const res = await run([LAUNCHER_PATH, '-d', '/nonexistent/plugins', '--dump-all-plugins']);
    assert.equal(res.code, 1);
    assert.equal(res.stdout, '');
    assert.match(res.stderr, /plugins directory \/nonexistent\/plugins does not exist/);
  });
});

describe('--dump-all-plugins', () => {
  test('stdout carries only the JSON even when a plugin prints while loading; exit 0', async () => {
    const res = await run([LAUNCHER_PATH, '-d', NOISY_DIR, '--dump-all-plugins']);
    assert.equal(res.code, 0);
    const dump = JSON.parse(res.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(dump, [{
      Name: 'noisy', Version: '0.0.1', Phases: ['access'], Priority: 10,
      Schema: { name: 'noisy', fields: [{ config: { type: 'record', fields: [{ greeting: { type: 'string', default: 'hello' } }] } }] },
    }]);
    assert.match(res.stderr, /noisy fixture: loading/);
    assert.match(res.stderr, /noisy fixture: raw stdout write/);
  });

  test('the stock server\'s dump is corrupted by the same plugin (what Kong would fail to decode)', async () => {
    const res = await run([STOCK_PLUGINSERVER_PATH, '-d', NOISY_DIR, '--dump-all-plugins']);
    assert.throws(() => JSON.parse(res.stdout), SyntaxError);
  });

  test('skips what kong-pdk crashes on or misreads: a sub-directory without index, .d.ts, .map, .ts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'plugins-'));
    try {
      copyFileSync(join(HARNESS_DIR, 'harness-fixture.js'), join(dir, 'harness-fixture.js'));
      mkdirSync(join(dir, 'helpers'));
      writeFileSync(join(dir, 'harness-fixture.d.ts'), 'export declare const Version: string;\n');
      writeFileSync(join(dir, 'harness-fixture.js.map'), '{}');
      writeFileSync(join(dir, 'other.ts'), 'export const Version: string = "1.0.0";\n');
      const ours = await run([LAUNCHER_PATH, '-d', dir, '--dump-all-plugins']);
      assert.equal(ours.code, 0, ours.stderr);
      assert.deepEqual((JSON.parse(ours.stdout) as Array<{ Name: string }>).map((p) => p.Name), ['harness-fixture']);
      assert.match(ours.stderr, /skipping "helpers"/);
      assert.match(ours.stderr, /skipping "other.ts": TypeScript sources are not loaded/);
      const stock = await run([STOCK_PLUGINSERVER_PATH, '-d', dir, '--dump-all-plugins']);
      assert.notEqual(stock.code, 0, 'kong-pdk crashes on the sub-directory');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('MessagePack framing', () => {
  const samples: unknown[] = [
    0, 127, -1, -32, -33, 255, 65535, 2 ** 32, -(2 ** 40), 1.5, true, false, null, '', 'x'.repeat(31), 'y'.repeat(300),
    'z'.repeat(70_000), new Uint8Array(10), new Uint8Array(300), new Uint8Array(70_000), new Date(1_700_000_000_123),
    [], Array.from({ length: 20 }, (_, i) => i), Array.from({ length: 70_000 }, () => 1), {},
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, { nested: [i, `v${i}`] }])),
    [0, 12, 'plugin.StepMultiMap', [{ EventId: 3, Data: { authorization: ['Bearer x'], 'x-client-cert': ['MIIB'] } }]],
  ];

  test('frameEnd finds the end of every MessagePack type, and -1 for any truncation', () => {
    for (const value of samples) {
      const frame = Buffer.from(encode(value));
      assert.equal(frameEnd(frame, 0), frame.length);
      for (const cut of [1, Math.floor(frame.length / 2), frame.length - 1]) {
        if (cut > 0 && cut < frame.length) assert.equal(frameEnd(frame.subarray(0, cut), 0), -1);
      }
    }
    assert.throws(() => frameEnd(Buffer.from([0xc1]), 0), /invalid MessagePack byte 0xc1/);
  });

  test('FrameReader returns the same frames whatever the chunking', () => {
    const frames = samples.map((v) => Buffer.from(encode(v)));
    const stream = Buffer.concat(frames);
    for (const size of [1, 7, 64, 4096, stream.length]) {
      const reader = new FrameReader();
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...reader.push(stream.subarray(i, i + size)));
      assert.equal(out.length, frames.length, `chunk size ${size}`);
      out.forEach((f, i) => assert.ok(f.equals(frames[i] as Buffer), `frame ${i} with chunk size ${size}`));
    }
  });
});

for (const extra of [[], ['--workers', '2']]) describe(`socket protocol robustness${extra.length === 0 ? '' : ` (${extra.join(' ')}: the front)`}`, () => {
  let prefix: string;
  let server: PluginServerProcess;
  const sock = (): string => join(prefix, 'ps.sock');

  before(async () => {
    prefix = mkdtempSync(join(tmpdir(), 'ps-'));
    server = new PluginServerProcess({
      command: process.execPath, args: [LAUNCHER_PATH, '-d', HARNESS_DIR, '-p', prefix, '--sock-name', 'ps.sock', ...extra], socketPath: join(prefix, 'ps.sock'),
    });
    await server.start();
  });

  after(async () => {
    await server.stop();
    rmSync(prefix, { recursive: true, force: true });
  });

  test('two requests written back to back are both answered, in order', async () => {
    const client = await RawClient.open(sock());
    const both = Buffer.concat([
      encode([0, 1, 'plugin.GetPluginInfo', ['harness-fixture']]),
      encode([0, 2, 'plugin.StartInstance', [{ Name: 'harness-fixture', Config: '{"mode":"noop"}' }]]),
    ]);
    client.socket.write(both);
    await client.waitFor(() => client.messages.length === 2);
    const [first, second] = client.messages as Array<[number, number, unknown, Record<string, unknown>]>;
    assert.deepEqual([first?.[0], first?.[1], first?.[2]], [1, 1, null]);
    assert.equal(first?.[3].Name, 'harness-fixture');
    assert.deepEqual([second?.[0], second?.[1], second?.[2]], [1, 2, null]);
    assert.equal(typeof second?.[3].Id, 'number');
    client.socket.destroy();
  });

  test('a request split across writes is reassembled', async () => {
    const client = await RawClient.open(sock());
    const frame = Buffer.from(encode([0, 7, 'plugin.GetStatus', []]));
    client.socket.write(frame.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 50));
    client.socket.write(frame.subarray(5));
    await client.waitFor(() => client.messages.length === 1);
    const [reply] = client.messages as Array<[number, number, unknown, { Pid: number; Events: number }]>;
    assert.equal(reply?.[1], 7);
    if (extra.length === 0) assert.equal(reply?.[3].Pid, server.pid);
    else assert.ok(typeof reply?.[3].Pid === 'number' && reply[3].Pid !== server.pid, 'answered by a worker');
    client.socket.destroy();
  });

  test('a malformed frame closes that connection only; the server keeps serving', async () => {
    const bad = await RawClient.open(sock());
    const good = await RawClient.open(sock());
    bad.socket.write(Buffer.from([0x94, 0x00, 0x01, 0xc1])); // 0xc1: never used in MessagePack
    await bad.waitFor(() => bad.closed);
    const notRequest = await RawClient.open(sock());
    notRequest.socket.write(encode({ hello: 'world' }));
    await notRequest.waitFor(() => notRequest.closed);
    good.socket.write(encode([0, 3, 'plugin.GetStatus', []]));
    await good.waitFor(() => good.messages.length === 1);
    assert.equal((good.messages[0] as unknown[])[1], 3);
    assert.ok(server.running);
    assert.match(server.stderr, /closing connection after protocol error/);
    good.socket.destroy();
  });

  test('unknown namespaces and methods get an error reply; internal methods are not reachable', async () => {
    const client = await RawClient.open(sock());
    client.socket.write(Buffer.concat([
      encode([0, 1, 'other.Thing', []]),
      encode([0, 2, 'plugin.Nope', []]),
      encode([0, 3, 'plugin.close', []]),
      encode([0, 4, 'plugin.SetPluginDir', ['/tmp']]),
      encode([0, 5, 'plugin.HandleEvent', [{ InstanceId: 999, EventName: 'access' }]]),
    ]));
    await client.waitFor(() => client.messages.length === 5);
    assert.deepEqual(client.messages, [
      [1, 1, 'RPC for other is not supported', null],
      [1, 2, 'method Nope not implemented', null],
      [1, 3, 'method close not implemented', null],
      [1, 4, 'method SetPluginDir not implemented', null],
      [1, 5, 'no plugin instance #999', null],
    ]);
    assert.ok(server.running);
    client.socket.destroy();
  });

  test('the stock server dies on two back-to-back requests', { skip: extra.length > 0 ? 'the stock-server baseline runs once, in the single-process group' : false }, async () => {
    const stockPrefix = mkdtempSync(join(tmpdir(), 'ps-stock-'));
    const stock = new PluginServerProcess({
      command: process.execPath, args: [STOCK_PLUGINSERVER_PATH, '-d', HARNESS_DIR, '-p', stockPrefix], socketPath: join(stockPrefix, 'js_pluginserver.sock'),
    });
    try {
      await stock.start();
      const client = await RawClient.open(join(stockPrefix, 'js_pluginserver.sock'));
      client.socket.write(Buffer.concat([encode([0, 1, 'plugin.GetStatus', []]), encode([0, 2, 'plugin.GetStatus', []])]));
      const deadline = Date.now() + 5000;
      while (stock.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(stock.running, false);
      assert.notEqual(stock.exits[0]?.code, 0);
    } finally {
      await stock.stop();
      rmSync(stockPrefix, { recursive: true, force: true });
    }
  });
});

describe('events are released (in-process PluginServer)', () => {
  test('after exit, after an immediate "ret", and an abandoned event after its TTL', async () => {
    const logger = new RedactingLogger({ level: 'error', write: () => undefined });
    const ps = new PluginServer({ pluginDir: HARNESS_DIR, logger, eventTtlMs: 400 });
    try {
      const reject = await ps.StartInstance({ Name: 'harness-fixture', Config: '{"mode":"reject"}' });
      const noop = await ps.StartInstance({ Name: 'harness-fixture', Config: '{"mode":"noop"}' });
      const by = await ps.StartInstance({ Name: 'harness-fixture', Config: '{"mode":"by-header"}' });
      // reject: HandleEvent -> get_headers; Step -> exit
      const first = await ps.HandleEvent({ InstanceId: reject.Id, EventName: 'access' });
      assert.deepEqual((first.Data as { Method: string }).Method, 'kong.request.get_headers');
      assert.equal(ps.pendingEvents, 1);
      const exit = await ps.step({ EventId: first.EventId, Data: { authorization: ['x'] } }, false);
      assert.equal((exit.Data as { Method: string }).Method, 'kong.response.exit');
      assert.equal(ps.pendingEvents, 0, 'released after kong.response.exit');
      const ret = await ps.HandleEvent({ InstanceId: noop.Id, EventName: 'access' });
      assert.equal(ret.Data, 'ret');
      assert.equal(ps.pendingEvents, 0, 'released after an immediate "ret"');
      // Kong abandons an event after a Lua error in a PDK call: swept after the TTL.
      await ps.HandleEvent({ InstanceId: by.Id, EventName: 'access' });
      assert.equal(ps.pendingEvents, 1);
      const deadline = Date.now() + 5000;
      while (ps.pendingEvents > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(ps.pendingEvents, 0, 'swept');
    } finally {
      ps.close();
    }
  });

  test('instance and event ids start at a random offset in each process (no reuse after a restart)', async () => {
    const logger = new RedactingLogger({ level: 'error', write: () => undefined });
    const a = new PluginServer({ pluginDir: HARNESS_DIR, logger });
    const b = new PluginServer({ pluginDir: HARNESS_DIR, logger });
    try {
      const ia = await a.StartInstance({ Name: 'harness-fixture', Config: '{"mode":"noop"}' });
      const ib = await b.StartInstance({ Name: 'harness-fixture', Config: '{"mode":"noop"}' });
      assert.ok(ia.Id > 0 && ib.Id > 0);
      assert.notEqual(ia.Id, ib.Id);
      assert.ok(Number.isSafeInteger(ia.Id));
      const ea = await a.HandleEvent({ InstanceId: ia.Id, EventName: 'access' });
      const eb = await b.HandleEvent({ InstanceId: ib.Id, EventName: 'access' });
      assert.notEqual(ea.EventId, eb.EventId);
      await assert.rejects(b.HandleEvent({ InstanceId: ia.Id, EventName: 'access' }), /no plugin instance/);
    } finally {
      a.close();
      b.close();
    }
  });
});

describe('logging never reveals tokens or certificates', () => {
  let token: string;
  let certB64: string;
  let pem: string;

  before(async () => {
    const pki = await makeTestPki();
    certB64 = pki.client.der.toString('base64');
    pem = pki.client.pem;
    const b64url = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    token = `${b64url({ alg: 'RS256', kid: 'k1' })}.${b64url({ sub: 'alice', cnf: { 'x5t#S256': 'A'.repeat(43) }, exp: 4102444800 })}.${Buffer.alloc(256, 7).toString('base64url')}`;
  });

  async function exercise(command: PluginServerCommand): Promise<{ stdout: string; stderr: string }> {
    const emu = await KongEmulator.start({
      pluginServer: command,
      config: { routes: [{ name: 'r', paths: ['/'], plugins: [{ name: 'harness-fixture' }], upstream: 'http://127.0.0.1:9' }] },
    });
    try {
      const secretHeaders: Array<[string, string]> = [
        ['Authorization', `Bearer ${token}`], ['X-Client-Cert', certB64], ['X-Client-Cert-Pem', encodeURIComponent(pem)],
      ];
      for (const name of ['echo', 'throw', 'pass', 'exit']) {
        await httpRequest(`${emu.url}/x`, { headers: [['x-fixture-action', name], ...secretHeaders] });
      }
      await emu.pluginServer.stop();
      return { stdout: emu.pluginServer.stdout, stderr: emu.pluginServer.stderr };
    } finally {
      await emu.close();
    }
  }

  function assertNoSecret(output: string, what: string): void {
    for (const [label, secret] of [['token', token], ['certificate', certB64], ['PEM', pem]] as const) {
      for (const slice of [secret.slice(0, 24), secret.slice(secret.length / 2, secret.length / 2 + 24), secret.slice(-24)]) {
        assert.equal(output.includes(slice), false, `${what} contains part of the ${label}`);
      }
    }
  }

  test('ours with -v -v: debug lines name methods and sizes, never values', async () => {
    const { stdout, stderr } = await exercise(launcherCommand(HARNESS_DIR, ['-v', '-v']));
    assertNoSecret(stdout, 'stdout');
    assertNoSecret(stderr, 'stderr');
    assert.match(stderr, /\[debug\] rpc: #\d+ method: plugin\.StepMultiMap \(\d+ bytes\) args: \[\{EventId: number, Data: map\(\d+\)\}\]/);
    assert.match(stderr, /answered in \d+ us, \d+ bytes, Data: call kong\.request\.get_headers/);
    assert.match(stderr, /unhandled exception in harness-fixture\.access .*\[redacted \d+ chars\]/);
  });

  test('the stock server with -v writes them to its output (the defect)', async () => {
    // (its query command must go without -v: debug lines on stdout would corrupt the dump too)
    const { stdout, stderr } = await exercise({ ...stockServerCommand(HARNESS_DIR, ['-v']), queryArgs: stockServerCommand(HARNESS_DIR).args });
    assert.ok(`${stdout}${stderr}`.includes(token.slice(0, 24)));
    assert.ok(`${stdout}${stderr}`.includes(certB64.slice(0, 24)));
  });

  test('the scrubber removes PEM blocks, JWTs and long base64, keeps paths and hex digests', () => {
    assert.equal(scrubSecrets(`x ${pem} y`), `x [redacted PEM, ${pem.length - 1} chars]\n y`);
    assert.equal(scrubSecrets(`Bearer ${token}`), `Bearer [redacted ${token.length} chars]`);
    assert.equal(scrubSecrets('socket /usr/local/kong/js_pluginserver.sock'), 'socket /usr/local/kong/js_pluginserver.sock');
    const hex = 'ab'.repeat(32);
    assert.equal(scrubSecrets(`thumbprint ${hex}`), `thumbprint ${hex}`);
  });
});

describe('shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal}: exit 0 and the socket is removed`, async () => {
      const prefix = mkdtempSync(join(tmpdir(), 'ps-sig-'));
      const socketPath = join(prefix, 'js_pluginserver.sock');
      const child = spawn(process.execPath, [LAUNCHER_PATH, '-d', HARNESS_DIR, '-p', prefix], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, sig) => resolve([code, sig])));
      try {
        const deadline = Date.now() + 10_000;
        while (!/server started at/.test(output) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        assert.ok(existsSync(socketPath), output);
        child.kill(signal);
        assert.deepEqual(await exited, [0, null], output);
        assert.equal(existsSync(socketPath), false, output);
      } finally {
        child.kill('SIGKILL');
        rmSync(prefix, { recursive: true, force: true });
      }
    });
  }
});

describe('launcher whose parent died (Kong gone, stdio pipes broken)', () => {
  test('SIGTERM still stops it: EPIPE on stderr does not loop through the uncaught-exception logger', async () => {
    const prefix = mkdtempSync(join(tmpdir(), 'orphan-'));
    // A parent that starts the launcher with piped stdio, reports its pid, and exits at once.
    const parentScript = `
      const { spawn } = require('node:child_process');
      const child = spawn(process.execPath, [${JSON.stringify(LAUNCHER_PATH)}, '-d', ${JSON.stringify(HARNESS_DIR)}, '-p', ${JSON.stringify(prefix)}, '-v'],
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      child.stderr.once('data', () => { process.stdout.write(String(child.pid)); process.exit(0); });`;
    const pid = await new Promise<number>((resolve, reject) => {
      execFile(process.execPath, ['-e', parentScript], { timeout: 15_000 }, (err, stdout) => {
        if (err !== null) reject(err); else resolve(Number(stdout));
      });
    });
    assert.ok(Number.isInteger(pid) && pid > 0);
    const alive = (): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };
    try {
      assert.equal(alive(), true, 'the orphaned launcher keeps serving');
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 4000;
      while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(alive(), false, 'still running 4 s after SIGTERM');
    } finally {
      if (alive()) process.kill(pid, 'SIGKILL');
      rmSync(prefix, { recursive: true, force: true });
    }
  });
});
