/**
 * A scripted stand-in for a plugin server, to drive the Kong emulator into the answers Kong's
 * `mp_rpc.lua` treats specially (tests only; a real server is never this broken on purpose).
 * Run as `node scripted-plugin-server.js [--dump-all-plugins] -p PREFIX --sock-name NAME`.
 *
 * It serves one plugin, "scripted", whose config `mode` picks how HandleEvent is answered for
 * that instance (StartInstance and CloseInstance answer like kong-pdk):
 * - `ret`: `{EventId, Data: "ret"}`, the normal end of a handler;
 * - `nil-answer`: `[1, id, nil, nil]`, neither error nor result;
 * - `nil-step`: a PDK call (kong.request.get_header), then `[1, id, nil, nil]` to its Step;
 * - `false-error`: the error `false`;
 * - `string-error`, `table-error`, `number-error`: an error of that type;
 * - `cut-close`: the first half of a valid answer, then the connection closes;
 * - `cut-stall`: the first half of a valid answer, then nothing (the read times out);
 * - `silent-close`: no byte, the connection closes;
 * - `no-instance`: "no plugin instance #<id>", every time (a server that lost its instances and
 *   keeps losing the new ones).
 */
import { createServer, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { decode, encode } from '@msgpack/msgpack';
import { msgpackValueEnd } from './mp-rpc.js';

export const SCRIPTED_PLUGIN = 'scripted';

export const SCRIPTED_MODES = [
  'ret', 'nil-answer', 'nil-step', 'false-error', 'string-error', 'table-error', 'number-error',
  'cut-close', 'cut-stall', 'silent-close', 'no-instance',
] as const;
export type ScriptedMode = (typeof SCRIPTED_MODES)[number];

const INFO = {
  Name: SCRIPTED_PLUGIN,
  Version: '1.0.0',
  Priority: 1000,
  Phases: ['access'],
  Schema: {
    name: SCRIPTED_PLUGIN,
    fields: [{ config: { type: 'record', fields: [{ mode: { type: 'string', required: true, one_of: [...SCRIPTED_MODES] } }] } }],
  },
};

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

function main(): void {
  if (process.argv.includes('--dump-all-plugins')) {
    process.stdout.write(JSON.stringify([INFO]));
    return;
  }
  const socketPath = join(arg('-p') ?? '.', arg('--sock-name') ?? 'js_pluginserver.sock');
  const instances = new Map<number, ScriptedMode>();
  const events = new Map<number, ScriptedMode>();
  let nextInstance = 1000;
  let nextEvent = 5000;

  const answer = (conn: Socket, msgid: number, method: string, params: unknown): void => {
    const send = (err: unknown, result: unknown): void => { conn.write(encode([1, msgid, err, result])); };
    const p = (params ?? {}) as Record<string, unknown>;
    switch (method) {
      case 'plugin.StartInstance': {
        const config = JSON.parse(String(p.Config)) as { mode?: ScriptedMode };
        const id = nextInstance++;
        instances.set(id, config.mode ?? 'ret');
        send(null, { Name: SCRIPTED_PLUGIN, Id: id, Config: config, StartTime: Date.now() / 1000 });
        return;
      }
      case 'plugin.CloseInstance': {
        const id = Number(params);
        if (!instances.delete(id)) send(`no plugin instance #${id}`, null);
        else send(null, { Name: SCRIPTED_PLUGIN, Id: id });
        return;
      }
      case 'plugin.HandleEvent': {
        const id = Number(p.InstanceId);
        const mode = instances.get(id);
        if (mode === undefined || mode === 'no-instance') {
          send(`no plugin instance #${id}`, null);
          return;
        }
        const eventId = nextEvent++;
        const full = encode([1, msgid, null, { EventId: eventId, Data: 'ret' }]);
        switch (mode) {
          case 'ret': send(null, { EventId: eventId, Data: 'ret' }); return;
          case 'nil-answer': send(null, null); return;
          case 'nil-step':
            events.set(eventId, mode);
            send(null, { EventId: eventId, Data: { Method: 'kong.request.get_header', Args: ['x-anything'] } });
            return;
          case 'false-error': send(false, null); return;
          case 'string-error': send('scripted failure', null); return;
          case 'table-error': send({ code: 7, message: 'scripted failure' }, null); return;
          case 'number-error': send(7, null); return;
          case 'cut-close': conn.end(full.subarray(0, Math.floor(full.length / 2))); return;
          case 'cut-stall': conn.write(full.subarray(0, Math.floor(full.length / 2))); return;
          case 'silent-close': conn.end(); return;
        }
        return;
      }
      case 'plugin.Step': {
        const eventId = Number(p.EventId);
        const mode = events.get(eventId);
        events.delete(eventId);
        if (mode === 'nil-step') send(null, null);
        else send(`event id ${eventId} not found`, null);
        return;
      }
      default:
        send(`method ${method} not implemented`, null);
    }
  };

  try {
    unlinkSync(socketPath);
  } catch {
    // none
  }
  const server = createServer((conn) => {
    conn.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    conn.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (let end = msgpackValueEnd(buffered); end > 0; end = msgpackValueEnd(buffered)) {
        const [, msgid, method, args] = decode(buffered.subarray(0, end)) as [number, number, string, unknown[]];
        buffered = buffered.subarray(end);
        answer(conn, msgid, method, args[0]);
      }
    });
  });
  server.listen(socketPath);
  const stop = (): void => { server.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) main();
