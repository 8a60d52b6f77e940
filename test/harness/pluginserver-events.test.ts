/**
 * The plugin host's event machinery (bin/pluginserver/server.ts), in process, on the paths kong-pdk
 * handled with its channel pair and that the Kong emulator's plugins do not take: a handler that
 * fires two PDK calls before awaiting either (answered in order, one per Step), a StepError that
 * becomes a PDKError inside the handler, a handler that throws (answered "ret", as kong-pdk does),
 * a Step for an event that is not waiting for a PDK result, kong-pdk's camelCase rule, and a
 * handler that returns a non-promise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PluginServer } from '../../bin/pluginserver/server.js';
import { RedactingLogger } from '../../bin/pluginserver/logger.js';

const PLUGIN = `
class Plugin {
  constructor(config) { this.mode = config.mode; }
  async access(kong) {
    if (this.mode === 'parallel') {
      const a = kong.request.getHeader('a');
      const b = kong.request.getHeader('b');
      const [x, y] = await Promise.all([a, b]);
      await kong.response.exit(200, { x, y });
      return;
    }
    if (this.mode === 'step-error') {
      try {
        await kong.request.getHeader('a');
      } catch (err) {
        await kong.response.exit(500, { name: err.name, message: err.message });
        return;
      }
      await kong.response.exit(200, 'no error');
      return;
    }
    if (this.mode === 'throw') {
      await kong.request.getHeader('a');
      throw new Error('handler failure');
    }
    if (this.mode === 'names') {
      await kong.service.request.setHeaders({ a: 'b' });
      await kong.client.getIP();
      return;
    }
    if (this.mode === 'sleep') {
      await kong.request.getHeader('a');
      await new Promise((resolve) => setTimeout(resolve, 200));
      return;
    }
  }
}
module.exports = { Plugin, Schema: [], Version: '1.0.0', Priority: 1 };
`;

class SyncPlugin {
  access(): string { return 'not a promise'; }
}

describe('plugin host events (in process)', () => {
  let dir: string;
  let ps: PluginServer;
  const start = async (mode: string): Promise<number> => (await ps.StartInstance({ Name: 'events', Config: JSON.stringify({ mode }) })).Id;
  const method = (data: unknown): unknown => (data as { Method?: unknown }).Method;
  const args = (data: unknown): unknown => (data as { Args?: unknown }).Args;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ps-events-'));
    writeFileSync(join(dir, 'events.js'), PLUGIN);
    writeFileSync(join(dir, 'sync.js'), `module.exports = { Plugin: ${SyncPlugin.toString()}, Schema: [], Version: '1.0.0' };`);
    ps = new PluginServer({ pluginDir: dir, logger: new RedactingLogger({ level: 'error', write: () => undefined }) });
  });

  after(() => {
    ps.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('two calls fired before any await are sent one per round trip, in order, each result to its own caller', async () => {
    const id = await start('parallel');
    const first = await ps.HandleEvent({ InstanceId: id, EventName: 'access' });
    assert.equal(method(first.Data), 'kong.request.get_header');
    assert.deepEqual(args(first.Data), ['a']);
    const second = await ps.step({ EventId: first.EventId, Data: 'A' }, false);
    assert.equal(method(second.Data), 'kong.request.get_header');
    assert.deepEqual(args(second.Data), ['b']);
    const exit = await ps.step({ EventId: first.EventId, Data: 'B' }, false);
    assert.equal(method(exit.Data), 'kong.response.exit');
    assert.deepEqual(args(exit.Data), [200, { x: 'A', y: 'B' }]);
    assert.equal(ps.pendingEvents, 0);
  });

  test('StepError becomes a PDKError in the handler (kong-pdk pdk.js)', async () => {
    const id = await start('step-error');
    const first = await ps.HandleEvent({ InstanceId: id, EventName: 'access' });
    const exit = await ps.step({ EventId: first.EventId, Data: 'bad things' }, true);
    assert.deepEqual(args(exit.Data), [500, { name: 'PDKError', message: 'PDK method kong.request.get_header failed:  bad things' }]);
    assert.equal(ps.pendingEvents, 0);
  });

  test('a handler that throws is answered "ret" (kong-pdk), and its event is released', async () => {
    const id = await start('throw');
    const first = await ps.HandleEvent({ InstanceId: id, EventName: 'access' });
    const ret = await ps.step({ EventId: first.EventId, Data: 'A' }, false);
    assert.equal(ret.Data, 'ret');
    assert.equal(ps.pendingEvents, 0);
    await assert.rejects(ps.step({ EventId: first.EventId, Data: 'again' }, false), /event id \d+ not found/);
  });

  test('a Step while the handler waits on something else is refused; the event goes on', async () => {
    const id = await start('sleep');
    const first = await ps.HandleEvent({ InstanceId: id, EventName: 'access' });
    const pending = ps.step({ EventId: first.EventId, Data: 'A' }, false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await assert.rejects(ps.step({ EventId: first.EventId, Data: 'B' }, false), /is not waiting for a PDK result/);
    assert.equal((await pending).Data, 'ret');
  });

  test('camelCase names follow kong-pdk\'s rule (getIP -> get_iP, as the stock bridge sends it)', async () => {
    const id = await start('names');
    const first = await ps.HandleEvent({ InstanceId: id, EventName: 'access' });
    assert.equal(method(first.Data), 'kong.service.request.set_headers');
    const second = await ps.step({ EventId: first.EventId }, false);
    assert.equal(method(second.Data), 'kong.client.get_iP');
    assert.equal((await ps.step({ EventId: first.EventId, Data: '10.0.0.1' }, false)).Data, 'ret');
  });

  test('a handler that returns a non-promise, and a phase the plugin lacks, are answered "ret"', async () => {
    const sync = (await ps.StartInstance({ Name: 'sync', Config: '{}' })).Id;
    assert.equal((await ps.HandleEvent({ InstanceId: sync, EventName: 'access' })).Data, 'ret');
    assert.equal((await ps.HandleEvent({ InstanceId: sync, EventName: 'rewrite' })).Data, 'ret');
    assert.equal(ps.pendingEvents, 0);
  });
});
