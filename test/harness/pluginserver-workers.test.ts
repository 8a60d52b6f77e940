/**
 * The multi-worker plugin server (`--workers 2`, bin/pluginserver/front.ts) through the Kong
 * emulator: instances live in every worker, events spread over the workers and their Steps are
 * routed by id, exit events are released, CloseInstance and "no plugin instance" restarts, a
 * worker crash fails its in-flight request closed (the guard answers 401) and the worker comes
 * back with the live instances, and the metrics endpoint sums the workers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { KongEmulator, launcherCommand } from './kong-emulator.js';
import { httpRequest } from './http.js';
import { parseCli } from '../../bin/pluginserver/cli.js';

const HARNESS_DIR = join(__dirname, '..', 'fixtures', 'plugins', 'harness');
const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Status { readonly Pid: number; readonly Events: number }

/** The pids answering GetStatus (round robin over the live workers). */
async function workerPids(emu: KongEmulator, asks = 6): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < asks; i++) pids.add((await emu.rpc.call('plugin.GetStatus') as Status).Pid);
  return pids;
}

describe('--workers on the command line', () => {
  test('default 1, 1-64 accepted, anything else refused', () => {
    const run = (argv: string[]) => parseCli(['-d', '/p', ...argv], '/');
    const ok = run([]);
    assert.equal(ok.kind === 'run' && ok.options.workers, 1);
    const two = run(['--workers', '2']);
    assert.equal(two.kind === 'run' && two.options.workers, 2);
    for (const bad of ['0', '65', 'x', '-1', '2.5', '']) assert.equal(run(['--workers', bad]).kind, 'error', bad);
  });
});

describe('two workers behind one socket', () => {
  let emu: KongEmulator;

  before(async () => {
    emu = await KongEmulator.start({
      pluginServer: launcherCommand(HARNESS_DIR, ['--workers', '2']),
      gateway: false,
      config: {
        routes: [
          { name: 'reject', paths: ['/reject'], plugins: [{ name: 'harness-fixture', config: { mode: 'reject' } }], guard: true },
          { name: 'act', paths: ['/act'], plugins: [{ name: 'harness-fixture', config: { mode: 'by-header' } }], guard: true },
          { name: 'noop', paths: ['/noop'], plugins: [{ name: 'harness-fixture', config: { mode: 'noop' } }] },
        ],
        trusted_ips: ['127.0.0.1'],
      },
    });
  });

  after(async () => {
    await emu?.close();
  });

  test('events spread over both workers; Steps reach the worker that owns the event', async () => {
    assert.equal((await workerPids(emu)).size, 2, 'GetStatus answered by two worker processes');
    const passed = await Promise.all(Array.from({ length: 20 }, () => emu.runAccess('act', { path: '/act', headers: { 'x-fixture-action': 'pass' } })));
    for (const outcome of passed) {
      assert.equal(outcome.guard, 'passed');
      assert.equal(outcome.events[0]?.outcome, 'ret');
      assert.equal(outcome.events[0]?.roundTrips, 7); // HandleEvent + get_header + 5 calls
    }
    const handle = await emu.instance('act');
    const parities = new Set<number>();
    const id = emu.currentInstanceId('act');
    for (let i = 0; i < 6; i++) {
      const reply = await emu.rpc.call('plugin.HandleEvent', { InstanceId: id, EventName: 'access' }) as { EventId: number };
      parities.add(reply.EventId % 2);
      // finish the event: get_header -> nil -> "ret"
      await emu.rpc.call('plugin.Step', { EventId: reply.EventId });
    }
    assert.deepEqual([...parities].sort(), [0, 1], 'event ids of both workers');
    assert.ok(handle !== undefined);
    await assert.rejects(emu.rpc.call('plugin.Step', { EventId: 2 ** 40 + 1, Data: 'x' }), /event id \d+ not found/);
  });

  test('exit events are released in every worker', async () => {
    for (let i = 0; i < 30; i++) {
      const outcome = await emu.runAccess('reject', { path: '/reject' });
      assert.equal(outcome.response?.status, 401);
      assert.equal(outcome.events[0]?.outcome, 'exit');
    }
    const events = new Map<number, number>();
    for (let i = 0; i < 6; i++) {
      const status = await emu.rpc.call('plugin.GetStatus') as Status;
      events.set(status.Pid, status.Events);
    }
    assert.equal(events.size, 2);
    assert.deepEqual([...events.values()], [0, 0], 'no event left in either worker');
  });

  test('CloseInstance closes it in every worker; Kong restarts it on "no plugin instance", once', async () => {
    await emu.runAccess('noop', { path: '/noop' });
    const id = emu.currentInstanceId('noop');
    assert.equal(typeof id, 'number');
    await emu.rpc.call('plugin.CloseInstance', id);
    for (let i = 0; i < 4; i++) {
      await assert.rejects(emu.rpc.call('plugin.HandleEvent', { InstanceId: id, EventName: 'access' }), /^.*no plugin instance/);
    }
    await assert.rejects(emu.rpc.call('plugin.InstanceStatus', id), /no plugin instance/);
    const restarts = emu.stats.instanceRestarts;
    const outcome = await emu.runAccess('noop', { path: '/noop' });
    assert.equal(outcome.events[0]?.outcome, 'ret');
    assert.equal(emu.stats.instanceRestarts, restarts + 1);
    assert.notEqual(emu.currentInstanceId('noop'), id);
    await assert.rejects(emu.rpc.call('plugin.StartInstanceAs', { Name: 'harness-fixture', Config: '{}', Id: 5 }), /not implemented/);
  });

  test('a worker crash fails its in-flight request closed; the worker comes back with the live instances', async () => {
    await emu.runAccess('act', { path: '/act', headers: { 'x-fixture-action': 'pass' } });
    const before = await workerPids(emu);
    assert.equal(before.size, 2);
    // Two slow requests: round robin puts one on each worker.
    const slow = ['a', 'b'].map(() => emu.runAccess('act', { path: '/act', headers: { 'x-fixture-action': 'slow', 'x-fixture-delay': '1500' } }));
    await sleep(400);
    const victim = [...before][0] as number;
    process.kill(victim, 'SIGKILL');
    const outcomes = await Promise.all(slow);
    const statuses = outcomes.map((o) => o.response?.status).sort();
    assert.deepEqual(statuses, [200, 401], 'the crashed worker\'s request is rejected by the guard, the other is served');
    const failed = outcomes.find((o) => o.response?.status === 401);
    assert.equal(failed?.events[0]?.outcome, 'fail-open');
    assert.match(failed?.events[0]?.error ?? '', /worker \d exited/);
    assert.equal(failed?.guard, 'rejected');
    // The worker is respawned and has the instances again: no restart seen by Kong.
    const deadline = Date.now() + 15_000;
    let after = await workerPids(emu);
    while ((after.size < 2 || after.has(victim)) && Date.now() < deadline) {
      await sleep(100);
      after = await workerPids(emu);
    }
    assert.equal(after.size, 2);
    assert.equal(after.has(victim), false);
    const restarts = emu.stats.instanceRestarts;
    for (let i = 0; i < 8; i++) {
      const outcome = await emu.runAccess('act', { path: '/act', headers: { 'x-fixture-action': 'pass' } });
      assert.equal(outcome.guard, 'passed');
    }
    assert.equal(emu.stats.instanceRestarts, restarts, 'the respawned worker started the live instances');
  });
});

describe('metrics of two workers', () => {
  test('GET /metrics on the front sums the workers\' counters', async () => {
    const config = {
      issuer: 'http://127.0.0.1:9/issuer',
      proof_of_possession_mtls: 'strict',
      proof_of_possession_mtls_from_header: { certificate_header_name: 'x-client-cert', certificate_header_format: 'base64_encoded', ca_certificates_pem: [] },
    };
    const emu = await KongEmulator.start({
      pluginServer: launcherCommand(PLUGINS_DIR, ['--workers', '2', '--metrics-port', '0']),
      gateway: false,
      config: { routes: [{ name: 'r', paths: ['/'], plugins: [{ name: 'mtls-pop', config }] }], trusted_ips: ['127.0.0.1'] },
    });
    try {
      const requests = 10;
      for (let i = 0; i < requests; i++) {
        const outcome = await emu.runAccess('r', { path: '/' });
        assert.equal(outcome.response?.status, 401);
      }
      const port = Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(emu.pluginServer.stderr)?.[1]);
      assert.ok(port > 0, 'the front logged its metrics address');
      const res = await httpRequest(`http://127.0.0.1:${port}/metrics`);
      assert.equal(res.status, 200);
      let total = 0;
      for (const line of res.body.split('\n')) {
        const m = /^mtls_pop_requests_total\{[^}]*\} (\d+)$/.exec(line);
        if (m !== null) total += Number(m[1]);
      }
      assert.equal(total, requests, 'requests counted once each, summed over the workers');
      assert.match(res.body, /process_cpu_seconds_total/);
    } finally {
      await emu.close();
    }
  });
});
