/**
 * Memory under rejections: kong-pdk 0.6.0 keeps every event that ended in `kong.response.exit`
 * (and every event answered "ret" at once) in `server.events` forever. The same requests are run
 * through the stock `kong-js-pluginserver` and through our launcher; RSS is read from
 * /proc/<pid>/status (VmRSS) after a warm-up and after the run.
 *
 * Both processes run with `--max-semi-space-size=1`: V8 otherwise grows its young generation in
 * steps of several MB at unpredictable moments, which is heap sizing, not retention; pinning it
 * makes RSS follow what is actually retained. The stock server must show the leak, or the
 * measurement would prove nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { KongEmulator, LAUNCHER_PATH, STOCK_PLUGINSERVER_PATH, type InstanceHandle } from './kong-emulator.js';
import { readRssKb } from './plugin-server-process.js';

const HARNESS_DIR = join(__dirname, '..', 'fixtures', 'plugins', 'harness');
const MB = 1024;

interface Measure {
  readonly beforeKb: number;
  readonly afterKb: number;
  readonly ms: number;
  readonly pendingEvents: unknown;
}

async function measure(script: string, mode: 'reject' | 'noop', warmup: number, count: number): Promise<Measure> {
  const emu = await KongEmulator.start({
    pluginServer: { command: process.execPath, args: ['--max-semi-space-size=1', script, '-d', HARNESS_DIR], queryArgs: [script, '-d', HARNESS_DIR] },
    gateway: false,
    poolSize: 16,
    config: { routes: [{ name: 'r', paths: ['/'], plugins: [{ name: 'harness-fixture', config: { mode } }] }] },
  });
  try {
    const handle: InstanceHandle = await emu.instance('r');
    const request = { headers: { authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln', 'x-client-cert': 'MIIB'.repeat(200) } };
    const expected = mode === 'reject' ? 'exit' : 'ret';
    const burst = async (n: number): Promise<void> => {
      let sent = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (sent++ < n) {
          const { report } = await emu.handleEvent(handle, request);
          if (report.outcome !== expected) throw new Error(`unexpected outcome ${report.outcome}: ${report.error ?? ''}`);
        }
      }));
    };
    const pid = emu.pluginServer.pid;
    assert.ok(pid !== undefined);
    await burst(warmup);
    const beforeKb = await readRssKb(pid);
    const started = Date.now();
    await burst(count);
    const ms = Date.now() - started;
    const afterKb = await readRssKb(pid);
    const status = await emu.rpc.call('plugin.GetStatus') as { Events?: unknown };
    return { beforeKb, afterKb, ms, pendingEvents: status.Events };
  } finally {
    await emu.close();
  }
}

function describeRun(name: string, m: Measure): string {
  return `${name}: RSS ${(m.beforeKb / MB).toFixed(1)} -> ${(m.afterKb / MB).toFixed(1)} MB (${((m.afterKb - m.beforeKb) / MB).toFixed(1)} MB) in ${m.ms} ms`;
}

test('20,000 rejected requests (get_headers, then exit 401): the stock server leaks, ours does not', async (t) => {
  const ours = await measure(LAUNCHER_PATH, 'reject', 2000, 20_000);
  const stock = await measure(STOCK_PLUGINSERVER_PATH, 'reject', 2000, 20_000);
  t.diagnostic(describeRun('mtls-pop-pluginserver', ours));
  t.diagnostic(describeRun('kong-js-pluginserver (stock)', stock));
  assert.equal(ours.pendingEvents, 0, 'no event left in server.events');
  assert.ok(ours.afterKb - ours.beforeKb < 10 * MB, `ours grew ${((ours.afterKb - ours.beforeKb) / MB).toFixed(1)} MB`);
  // The control (typically +28 MB) keeps a wide margin: RSS moves in heap-sized steps.
  assert.ok(stock.afterKb - stock.beforeKb > 15 * MB, `the stock server grew only ${((stock.afterKb - stock.beforeKb) / MB).toFixed(1)} MB: the measurement cannot see the leak`);
});

test('20,000 events answered "ret" at once (no PDK call): released too', async (t) => {
  const ours = await measure(LAUNCHER_PATH, 'noop', 1000, 20_000);
  const stock = await measure(STOCK_PLUGINSERVER_PATH, 'noop', 1000, 20_000);
  t.diagnostic(describeRun('mtls-pop-pluginserver', ours));
  t.diagnostic(describeRun('kong-js-pluginserver (stock)', stock));
  assert.equal(ours.pendingEvents, 0);
  assert.ok(ours.afterKb - ours.beforeKb < 5 * MB, `ours grew ${((ours.afterKb - ours.beforeKb) / MB).toFixed(1)} MB`);
  // The control (10,000 events grew the stock server by ~10 MB, so ~20 MB here) with a wide margin.
  assert.ok(stock.afterKb - stock.beforeKb > 10 * MB, `the stock server grew only ${((stock.afterKb - stock.beforeKb) / MB).toFixed(1)} MB`);
});
