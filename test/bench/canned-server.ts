/**
 * Benchmark baseline (not shipped): the least a Node.js process can do to serve the
 * bench-same-calls plugin's flow over Kong's protocol, to show where the floor of issue 14 goal 1
 * lies. No plugin module, no PDK bridge, no promise, no event object: each request is decoded
 * from the socket chunk (our codec) and answered at once with the next canned PDK call of its
 * event, one `write` per answer, exactly the frames our server would send:
 *
 *   HandleEvent        -> kong.request.get_headers(1000)
 *   Step (headers)     -> kong.client.get_ip()
 *   Step (ip)          -> kong.ip.is_trusted(ip)   first time per instance and address, else as below
 *   Step               -> kong.ctx.shared.set("mtls_pop_verified", true)   outcome "allow"
 *                         kong.response.exit(401, body, headers)           outcome "reject"
 *   Step               -> "ret"
 *
 * Whatever this costs per event is what the socket round trips alone cost a Node process driven
 * by the same emulator: no plugin server written for Node can make the same calls for less.
 * Plugin info comes from the real launcher (the emulator's query command), so the emulator sees
 * bench-same-calls' schema. Usage: `node canned-server.js -p <prefix> --sock-name <name>`.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { unlinkSync } from 'node:fs';
import { decodeValue, decodedEnd, encodeResponse } from '../../bin/pluginserver/codec.js';
import { EXIT_ARGS } from '../fixtures/plugins/bench-same-calls/bench-same-calls.js';

const GET_HEADERS = { Method: 'kong.request.get_headers', Args: [1000] };
const GET_IP = { Method: 'kong.client.get_ip', Args: [] };
const SET_FLAG = { Method: 'kong.ctx.shared.set', Args: ['mtls_pop_verified', true] };
const EXIT = { Method: 'kong.response.exit', Args: EXIT_ARGS };

type Stage = 'headers' | 'ip' | 'trusted' | 'last';

interface Instance {
  readonly reject: boolean;
  readonly trusted: Set<string>;
}

interface CannedEvent {
  readonly instance: Instance;
  stage: Stage;
}

function option(name: string): string {
  const at = process.argv.indexOf(name);
  const value = at < 0 ? undefined : process.argv[at + 1];
  if (value === undefined) throw new Error(`canned-server: missing ${name}`);
  return value;
}

const instances = new Map<number, Instance>();
const events = new Map<number, CannedEvent>();
let nextInstance = 1;
let nextEvent = 1;

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? value as Record<string, unknown> : {};
}

/** The answer to one request: [error, result]. */
function answer(method: unknown, arg: unknown): [string | undefined, unknown] {
  const a = record(arg);
  if (method === 'plugin.StartInstance') {
    const config = record(JSON.parse(String(a['Config'])));
    const id = nextInstance++;
    instances.set(id, { reject: config['outcome'] === 'reject', trusted: new Set() });
    return [undefined, { Name: a['Name'], Id: id, Config: config, StartTime: 0 }];
  }
  if (method === 'plugin.HandleEvent') {
    const instance = instances.get(Number(a['InstanceId']));
    if (instance === undefined) return [`no plugin instance #${String(a['InstanceId'])}`, undefined];
    const id = nextEvent++;
    events.set(id, { instance, stage: 'headers' });
    return [undefined, { Data: GET_HEADERS, EventId: id }];
  }
  const id = Number(a['EventId']);
  const event = events.get(id);
  if (event === undefined) return [`event id ${id} not found`, undefined];
  let data: unknown;
  if (event.stage === 'headers') {
    event.stage = 'ip';
    data = GET_IP;
  } else if (event.stage === 'ip' && !event.instance.trusted.has(String(a['Data']))) {
    const ip = String(a['Data']);
    event.instance.trusted.add(ip);
    event.stage = 'trusted';
    data = { Method: 'kong.ip.is_trusted', Args: [ip] };
  } else if (event.stage === 'ip' || event.stage === 'trusted') {
    // the address is known: the outcome's call
    if (event.instance.reject) {
      events.delete(id); // Kong sends no Step after exit
      data = EXIT;
    } else {
      event.stage = 'last';
      data = SET_FLAG;
    }
  } else {
    events.delete(id);
    data = 'ret';
  }
  return [undefined, { Data: data, EventId: id }];
}

const path = join(option('-p'), option('--sock-name'));
try {
  unlinkSync(path);
} catch {
  // not there
}
createServer((socket) => {
  socket.on('data', (chunk: Buffer) => {
    let at = 0;
    while (at < chunk.length) {
      const message = decodeValue(chunk, at, chunk.length) as unknown[]; // Kong writes whole requests
      at = decodedEnd;
      const [error, result] = answer(message[2], (message[3] as unknown[])[0]);
      socket.write(encodeResponse(message[1] as number, error, result));
    }
  });
  socket.on('error', () => socket.destroy());
}).listen(path);
process.on('SIGTERM', () => process.exit(0));
