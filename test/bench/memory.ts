/**
 * Section 3, memory: RSS (VmRSS from /proc) of the plugin server process (our launcher, run as
 * Kong would run it: no Node flags) before and after a run of mixed requests, after a warm-up
 * that fills every cache with the run's inputs. Requests, 16 in flight, cycling through:
 *   5/10 bound tokens with their certificate (50 distinct tokens)  -> approved
 *   2/10 a token bound to another certificate                      -> 401 invalid_token
 *   1/10 no Authorization header                                   -> 401
 *   1/10 a token whose signature does not verify (checked every time: failures are not cached)
 *   1/10 the certificate header from an untrusted peer             -> 401 certificate_missing
 */
import { readRssKb } from '../harness/plugin-server-process.js';
import type { EmulatedRequestInit } from '../harness/pdk.js';
import { check, fmt, type BenchScale, type Figure, type Log } from './common.js';
import { CERT_HEADER, boundToken, haproxyHeader, type BenchInputs } from './inputs.js';
import { CONNECTIONS, event, startOurs } from './plugin-server.js';

const SECTION = 'memory';
const MB = 1024;

export async function runMemory(inputs: BenchInputs, scale: BenchScale, log: Log): Promise<Figure[]> {
  const { pki, rsaKey, idp } = inputs;
  const header = haproxyHeader(inputs, pki.client);
  const request = (authorization: string | null, clientIp = '127.0.0.1'): EmulatedRequestInit => ({
    path: '/resource', clientIp,
    headers: authorization === null ? { [CERT_HEADER]: header } : { authorization, [CERT_HEADER]: header },
  });
  const happy = Array.from({ length: 50 }, () => request(`Bearer ${boundToken(inputs, pki.client, rsaKey)}`));
  const mismatch = request(`Bearer ${boundToken(inputs, pki.otherClient, rsaKey)}`);
  const missing = request(null);
  // Same kid and claims, signed with a key the IdP never published: the signature check fails.
  const forged = idp.makeKey('RS256', rsaKey.kid);
  const badSignature = request(`Bearer ${boundToken(inputs, pki.client, forged)}`);
  const untrusted = request(`Bearer ${boundToken(inputs, pki.client, rsaKey)}`, '10.11.12.13');
  const mix: Array<{ init: EmulatedRequestInit | null; expect: 'allow' | 'reject' }> = [
    { init: null, expect: 'allow' }, { init: null, expect: 'allow' }, { init: null, expect: 'allow' },
    { init: null, expect: 'allow' }, { init: null, expect: 'allow' },
    { init: mismatch, expect: 'reject' }, { init: mismatch, expect: 'reject' },
    { init: missing, expect: 'reject' }, { init: badSignature, expect: 'reject' }, { init: untrusted, expect: 'reject' },
  ];

  const emu = await startOurs(inputs);
  try {
    const handle = await emu.instance('r');
    const pid = emu.pluginServer.pid;
    check(pid !== undefined, 'plugin server not running');
    let counter = 0;
    const burst = async (n: number): Promise<void> => {
      let sent = 0;
      await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
        while (sent++ < n) {
          const i = counter++;
          const slot = mix[i % mix.length] as (typeof mix)[number];
          const init = slot.init ?? (happy[i % happy.length] as EmulatedRequestInit);
          await event(emu, handle, init, slot.expect);
        }
      }));
    };
    log(`memory: warm-up ${scale.memoryWarmup} mixed requests`);
    await burst(scale.memoryWarmup);
    const beforeKb = await readRssKb(pid);
    const trajectory: number[] = [beforeKb];
    const steps = 10;
    const started = Date.now();
    for (let step = 0; step < steps; step++) {
      await burst(Math.ceil(scale.memoryRequests / steps));
      trajectory.push(await readRssKb(pid));
    }
    const ms = Date.now() - started;
    const afterKb = trajectory[trajectory.length - 1] as number;
    const status = await emu.rpc.call('plugin.GetStatus') as { Events?: unknown };
    const pending = typeof status.Events === 'number' ? status.Events : Number.NaN;
    log(`memory: RSS every ${fmt(scale.memoryRequests / steps, 0)} requests (MB): ${trajectory.map((kb) => (kb / MB).toFixed(1)).join(' ')}`);
    log(`memory: ${scale.memoryRequests} requests in ${ms} ms; events left in the server: ${pending}`);
    check(emu.stats.failOpen === 0 && emu.stats.luaErrors === 0, 'fail-open or Lua errors during the memory run');
    const growthMb = (afterKb - beforeKb) / MB;
    const per100k = growthMb * (100_000 / scale.memoryRequests);
    return [
      { section: SECTION, name: 'plugin server RSS after warm-up', value: beforeKb / MB, unit: 'MB' },
      { section: SECTION, name: `plugin server RSS after ${scale.memoryRequests} mixed requests`, value: afterKb / MB, unit: 'MB' },
      {
        section: SECTION, name: 'RSS growth per 100,000 requests', value: per100k, unit: 'MB', target: { op: '<', limit: 10 },
        note: `measured ${fmt(growthMb, 2)} MB over ${scale.memoryRequests} requests; peak ${fmt(Math.max(...trajectory) / MB)} MB`,
      },
      { section: SECTION, name: 'events left in the plugin server after the run', value: pending, unit: 'events', target: { op: '==', limit: 0 } },
    ];
  } finally {
    await emu.close();
  }
}
