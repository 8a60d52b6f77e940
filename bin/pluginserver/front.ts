/**
 * The multi-worker plugin server (`--workers N`, N >= 2): one front process owns Kong's socket and
 * routes each request to one of N worker processes (worker.ts), each a complete plugin host.
 *
 * Kong sends every call on any pooled connection (each `mp_rpc` call takes a connection, sends,
 * reads one answer and returns it), so state cannot be split by connection. It is split by id:
 * - instances: the front issues the id and starts the instance in EVERY worker under that id
 *   (`StartInstanceAs`), so any worker can run any instance's events; the front keeps each
 *   instance's name and config to start it again in a respawned worker, and applies kong-pdk's
 *   60 s idle rule itself (it sees every event): "no plugin instance" makes Kong restart it;
 * - events: `HandleEvent` goes to the next live worker (round robin); that worker issues event
 *   ids congruent to its index modulo N, and every Step is routed by `EventId % N`.
 * The front reads only what routing needs: frame boundaries (MessagePack headers), the method and
 * the first argument's `InstanceId`/`EventId`; the request bytes go to the worker unchanged and
 * the worker's answer bytes go back to Kong unchanged (StartInstance and CloseInstance, which
 * touch every worker, are decoded and answered by the front).
 *
 * A worker that dies fails its in-flight requests with an error answer (Kong logs it and goes on
 * without the plugin's approval: the guard answers 401), is respawned with backoff, and starts
 * the live instances again before it takes events. Steps of its lost events answer "event id not
 * found"; while no worker is up, HandleEvent and StartInstance answer an error that is not
 * "no plugin instance" (Kong does not loop). Metrics: `GET /metrics` on the front sums the
 * workers' registries (prom-client's AggregatorRegistry).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { AggregatorRegistry, Registry } from 'prom-client';

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;
import { CodecError, Incomplete, decodeValue, decodedEnd, encode, encodeResponse } from './codec.js';
import { FrameReader, frameEnd } from './listener.js';
import { INSTANCE_TTL_MS, RPC_METHODS } from './server.js';
import { FRONT_KEY, PipeReader, closeFrame, pipeFrame } from './pipe-frames.js';
import { WORKER_ENV, WORKER_METRICS_ENV } from './worker.js';
import type { RedactingLogger } from './logger.js';

export interface FrontOptions {
  readonly socketPath: string;
  readonly workers: number;
  readonly log: RedactingLogger;
  /** Node arguments and script arguments a worker is started with (the front's own). */
  readonly workerArgs: readonly string[];
  readonly metrics: boolean;
  /** Idle time after which an instance is dropped (kong-pdk's 60 s). */
  readonly instanceTtlMs?: number;
}

type Answer = (error: string | undefined, result: unknown) => void;

interface Worker {
  readonly slot: number;
  child: ChildProcess | null;
  pipe: Socket | null;
  alive: boolean;
  startedAt: number;
  failures: number;
  /** Kong connections with a request in this worker. */
  readonly inflight: Set<KongConnection>;
  /** The front's own requests (key 0), by msgid. */
  readonly own: Map<number, Answer>;
  readonly metricsWaiters: Map<number, (json: MetricsJson) => void>;
}

interface KongConnection {
  readonly key: number;
  readonly socket: Socket;
  readonly reader: FrameReader;
  readonly queue: Buffer[];
  busy: boolean;
  msgid: number;
  worker: Worker | null;
}

interface InstanceEntry {
  readonly name: string;
  readonly config: string;
  readonly startedAt: number;
  lastUsed: number;
}

interface Head {
  readonly msgid: number;
  readonly method: string;
  /** `InstanceId` or `EventId` of the first argument, or the first argument when it is a number. */
  readonly id: number | undefined;
}

class ProtocolError extends CodecError {}

/** Reads `[0, msgid, "plugin.Method", [arg, ...]]` up to the id routing needs; the rest is skipped. */
function readHead(frame: Buffer): Head {
  if (frame[0] !== 0x94) return readHeadSlow(frame);
  const end = frame.length;
  const type = decodeValue(frame, 1, end);
  const msgid = decodeValue(frame, decodedEnd, end);
  const method = decodeValue(frame, decodedEnd, end);
  if (type !== 0 || typeof msgid !== 'number' || !Number.isInteger(msgid) || typeof method !== 'string') return readHeadSlow(frame);
  let at = decodedEnd;
  const a = frame[at] as number;
  if (a < 0x91 || a > 0x9f) return readHeadSlow(frame); // no argument, or not a fixarray
  at++;
  const b = frame[at] as number;
  if ((b >= 0xcc && b <= 0xd3) || b <= 0x7f) return { msgid, method, id: decodeValue(frame, at, end) as number };
  let pairs: number;
  if (b >= 0x80 && b <= 0x8f) { pairs = b & 0x0f; at += 1; } else if (b === 0xde) { pairs = frame.readUInt16BE(at + 1); at += 3; } else return { msgid, method, id: undefined };
  for (let i = 0; i < pairs; i++) {
    const key = decodeValue(frame, at, end);
    at = decodedEnd;
    if (key === 'EventId' || key === 'InstanceId') {
      const id = decodeValue(frame, at, end);
      return { msgid, method, id: typeof id === 'number' ? id : undefined };
    }
    at = frameEnd(frame, at);
    if (at < 0) break;
  }
  return { msgid, method, id: undefined };
}

function readHeadSlow(frame: Buffer): Head {
  const message = decodeValue(frame, 0, frame.length);
  if (!Array.isArray(message) || message.length !== 4 || message[0] !== 0 || typeof message[1] !== 'number' || !Number.isInteger(message[1])) {
    throw new ProtocolError('expected a request [0, msgid, method, args]');
  }
  const method = typeof message[2] === 'string' ? message[2] : '';
  const args: unknown = message[3];
  const arg: unknown = Array.isArray(args) ? args[0] : undefined;
  let id: number | undefined;
  if (typeof arg === 'number') id = arg;
  else if (typeof arg === 'object' && arg !== null) {
    const record = arg as { EventId?: unknown; InstanceId?: unknown };
    const value = record.EventId ?? record.InstanceId;
    if (typeof value === 'number') id = value;
  }
  return { msgid: message[1], method: Array.isArray(args) ? method : '', id };
}

const STEP_PREFIX = 'plugin.Step';

export class Front {
  private readonly workers: Worker[] = [];
  private readonly connections = new Map<number, KongConnection>();
  private readonly instances = new Map<number, InstanceEntry>();
  private nextKey = 1;
  private nextInstance = randomInt(1, 2 ** 30) * 16;
  private nextOwnId = 1;
  private roundRobin = 0;
  private server: NetServer | undefined;
  private stopping = false;
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly instanceTtlMs: number;
  private readonly log: RedactingLogger;

  constructor(private readonly options: FrontOptions) {
    this.log = options.log;
    this.instanceTtlMs = options.instanceTtlMs ?? INSTANCE_TTL_MS;
    for (let slot = 0; slot < options.workers; slot++) {
      this.workers.push({
        slot, child: null, pipe: null, alive: false, startedAt: 0, failures: 0,
        inflight: new Set(), own: new Map(), metricsWaiters: new Map(),
      });
    }
    this.sweepTimer = setInterval(() => this.sweepInstances(), Math.min(1000, this.instanceTtlMs / 4));
    this.sweepTimer.unref();
  }

  /** Starts the workers, then listens on Kong's socket once all are ready. */
  async start(): Promise<NetServer> {
    await Promise.all(this.workers.map((w) => this.spawnWorker(w)));
    try {
      unlinkSync(this.options.socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const server = createServer((socket) => this.accept(socket));
    server.on('error', (err) => { this.log.error(`listener error: ${err.message}`); });
    server.listen(this.options.socketPath);
    this.log.info(`server started at ${this.options.socketPath} with ${this.workers.length} workers`);
    this.server = server;
    return server;
  }

  async close(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweepTimer);
    const server = this.server;
    this.server = undefined;
    for (const conn of this.connections.values()) conn.socket.destroy();
    for (const w of this.workers) w.child?.kill('SIGTERM');
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.options.socketPath);
    } catch {
      // already gone
    }
  }

  /** Worker process ids (tests, the benchmark's CPU accounting). */
  workerPids(): number[] {
    return this.workers.map((w) => w.child?.pid).filter((pid): pid is number => pid !== undefined);
  }

  // -------------------------------------------------------------------------------------------
  // Workers

  private spawnWorker(w: Worker): Promise<void> {
    const child = spawn(process.execPath, [...this.options.workerArgs], {
      env: { ...process.env, [WORKER_ENV]: `${w.slot}/${this.workers.length}`, [WORKER_METRICS_ENV]: this.options.metrics ? '1' : '0' },
      stdio: ['ignore', 'inherit', 'inherit', 'pipe', 'ipc'],
    });
    w.child = child;
    w.startedAt = Date.now();
    const pipe = child.stdio[3] as Socket;
    w.pipe = pipe;
    const reader = new PipeReader((key, payload) => this.fromWorker(w, key, payload));
    pipe.on('data', (chunk: Buffer) => reader.push(chunk));
    pipe.on('error', () => { /* the exit handler takes over */ });
    return new Promise<void>((resolve) => {
      child.on('message', (message: { type?: string; id?: number; json?: MetricsJson }) => {
        if (message?.type === 'ready') {
          this.replayInstances(w);
          w.alive = true;
          this.log.info(`worker ${w.slot} ready (pid ${child.pid})`);
          resolve();
        } else if (message?.type === 'metrics' && typeof message.id === 'number') {
          w.metricsWaiters.get(message.id)?.(message.json ?? []);
          w.metricsWaiters.delete(message.id);
        }
      });
      child.on('exit', (code, signal) => {
        this.workerExited(w, child, code, signal);
        resolve();
      });
    });
  }

  private workerExited(w: Worker, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.child !== child) return;
    w.alive = false;
    w.child = null;
    w.pipe = null;
    const error = `plugin server worker ${w.slot} exited`;
    for (const conn of [...w.inflight]) this.answerLocal(conn, error, undefined);
    w.inflight.clear();
    for (const answer of w.own.values()) answer(error, undefined);
    w.own.clear();
    for (const waiter of w.metricsWaiters.values()) waiter([]);
    w.metricsWaiters.clear();
    if (this.stopping) return;
    w.failures = Date.now() - w.startedAt > 10_000 ? 1 : w.failures + 1;
    const delay = Math.min(5000, 100 * 2 ** (w.failures - 1));
    this.log.error(`worker ${w.slot} exited (${signal ?? `code ${String(code)}`}); restarting in ${delay} ms`);
    setTimeout(() => { if (!this.stopping) void this.spawnWorker(w); }, delay).unref();
  }

  /** A respawned worker starts every live instance before it takes events. */
  private replayInstances(w: Worker): void {
    for (const [id, entry] of this.instances) {
      this.ask(w, 'plugin.StartInstanceAs', [{ Name: entry.name, Config: entry.config, Id: id }], (error) => {
        if (error !== undefined) this.log.warn(`worker ${w.slot} could not start instance #${id}: ${error}`);
      });
    }
  }

  /** Sends the front's own request to a worker (key 0). */
  private ask(w: Worker, method: string, args: unknown[], answer: Answer): void {
    const pipe = w.pipe;
    if (pipe === null) { answer(`plugin server worker ${w.slot} is not running`, undefined); return; }
    const msgid = this.nextOwnId++;
    if (this.nextOwnId > 0x7fff_ffff) this.nextOwnId = 1;
    w.own.set(msgid, answer);
    pipe.write(pipeFrame(FRONT_KEY, encode([0, msgid, method, args])));
  }

  /** Asks every live worker; answers with the first worker's result, or the first error. */
  private askAll(method: string, args: unknown[], answer: Answer): void {
    const live = this.workers.filter((w) => w.alive);
    if (live.length === 0) { answer('no plugin server worker is running', undefined); return; }
    let pending = live.length;
    let firstError: string | undefined;
    const results = new Map<number, unknown>();
    for (const w of live) {
      this.ask(w, method, args, (error, result) => {
        if (error !== undefined) firstError ??= error;
        else results.set(w.slot, result);
        if (--pending === 0) answer(firstError, firstError === undefined ? results.get(live[0]?.slot ?? 0) : undefined);
      });
    }
  }

  private fromWorker(w: Worker, key: number, payload: Buffer | null): void {
    if (key === FRONT_KEY) {
      if (payload === null) return;
      let message: unknown;
      try {
        message = decodeValue(payload, 0, payload.length);
      } catch {
        return;
      }
      if (!Array.isArray(message) || typeof message[1] !== 'number') return;
      const answer = w.own.get(message[1]);
      w.own.delete(message[1]);
      answer?.(typeof message[2] === 'string' ? message[2] : undefined, message[3]);
      return;
    }
    const conn = this.connections.get(key);
    if (conn === undefined || conn.worker !== w) return;
    if (payload === null) { // the worker could not decode the request
      conn.socket.destroy();
      return;
    }
    w.inflight.delete(conn);
    conn.worker = null;
    if (!conn.socket.destroyed) conn.socket.write(payload);
    conn.busy = false;
    this.next(conn);
  }

  // -------------------------------------------------------------------------------------------
  // Kong connections

  private accept(socket: Socket): void {
    const key = this.nextKey++;
    if (this.nextKey > 0xffff_fffe) this.nextKey = 1;
    const conn: KongConnection = { key, socket, reader: new FrameReader(), queue: [], busy: false, msgid: 0, worker: null };
    this.connections.set(key, conn);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => { this.log.debug(`connection error: ${err.code ?? err.message}`); });
    socket.on('close', () => {
      this.connections.delete(key);
      conn.queue.length = 0;
      for (const w of this.workers) {
        if (w.pipe !== null && w.alive) w.pipe.write(closeFrame(key));
        w.inflight.delete(conn);
      }
    });
  }

  private onData(conn: KongConnection, chunk: Buffer): void {
    try {
      if (conn.reader.empty) {
        let at = 0;
        while (at < chunk.length) {
          const end = frameEnd(chunk, at);
          if (end < 0) { conn.reader.push(chunk.subarray(at)); break; }
          conn.queue.push(chunk.subarray(at, end));
          at = end;
        }
      } else {
        for (const frame of conn.reader.push(chunk)) conn.queue.push(frame);
      }
    } catch (err) {
      this.fail(conn, err);
      return;
    }
    this.next(conn);
  }

  private fail(conn: KongConnection, err: unknown): void {
    if (conn.socket.destroyed) return;
    this.log.warn(`closing connection after protocol error: ${err instanceof Error ? err.message : String(err)}`);
    conn.socket.destroy();
  }

  private next(conn: KongConnection): void {
    while (!conn.busy && conn.queue.length > 0 && !conn.socket.destroyed) {
      const frame = conn.queue.shift() as Buffer;
      conn.busy = true;
      try {
        this.route(conn, frame);
      } catch (err) {
        this.fail(conn, err instanceof Incomplete ? new ProtocolError('truncated request') : err);
        return;
      }
    }
  }

  private answerLocal(conn: KongConnection, error: string | undefined, result: unknown): void {
    if (conn.worker !== null) {
      conn.worker.inflight.delete(conn);
      conn.worker = null;
    }
    if (!conn.socket.destroyed) {
      let frame: Buffer;
      try {
        frame = encodeResponse(conn.msgid, error, result);
      } catch {
        frame = encodeResponse(conn.msgid, 'plugin server could not encode the response', undefined);
      }
      conn.socket.write(frame);
    }
    conn.busy = false;
    // Called from a worker's exit or an askAll answer: go on with this connection's queue.
    if (!conn.socket.destroyed) setImmediate(() => this.next(conn));
  }

  private forward(conn: KongConnection, w: Worker, frame: Buffer): void {
    conn.worker = w;
    w.inflight.add(conn);
    (w.pipe as Socket).write(pipeFrame(conn.key, frame));
  }

  private anyLive(): Worker | undefined {
    const n = this.workers.length;
    for (let i = 0; i < n; i++) {
      const w = this.workers[(this.roundRobin++) % n] as Worker;
      if (w.alive) return w;
    }
    return undefined;
  }

  private route(conn: KongConnection, frame: Buffer): void {
    const head = readHead(frame);
    conn.msgid = head.msgid;
    const { method, id } = head;
    if (method.startsWith(STEP_PREFIX)) {
      const owner = typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? this.workers[id % this.workers.length] : undefined;
      if (owner !== undefined && owner.alive) return this.forward(conn, owner, frame);
      return this.answerLocal(conn, `event id ${String(id)} not found`, undefined);
    }
    switch (method) {
      case 'plugin.HandleEvent': {
        const entry = typeof id === 'number' ? this.instances.get(id) : undefined;
        if (entry === undefined) return this.answerLocal(conn, `no plugin instance #${String(id)}`, undefined);
        const now = Date.now();
        if (entry.startedAt < now - this.instanceTtlMs && entry.lastUsed < now - this.instanceTtlMs) {
          this.dropInstance(id as number);
          return this.answerLocal(conn, `no plugin instance #${String(id)}`, undefined);
        }
        entry.lastUsed = now;
        const w = this.anyLive();
        if (w === undefined) return this.answerLocal(conn, 'no plugin server worker is running', undefined);
        return this.forward(conn, w, frame);
      }
      case 'plugin.StartInstance': return this.startInstance(conn, frame);
      case 'plugin.CloseInstance': {
        if (typeof id !== 'number' || !this.instances.has(id)) return this.answerLocal(conn, `no plugin instance #${String(id)}`, undefined);
        this.instances.delete(id);
        return this.askAll('plugin.CloseInstance', [id], (error, result) => this.answerLocal(conn, error, result));
      }
      case 'plugin.InstanceStatus':
      case 'plugin.GetPluginInfo':
      case 'plugin.GetStatus': {
        if (method === 'plugin.InstanceStatus' && (typeof id !== 'number' || !this.instances.has(id))) {
          return this.answerLocal(conn, `no plugin instance #${String(id)}`, undefined);
        }
        const w = this.anyLive();
        if (w === undefined) return this.answerLocal(conn, 'no plugin server worker is running', undefined);
        return this.forward(conn, w, frame);
      }
      default: {
        const dot = method.indexOf('.');
        const ns = dot < 0 ? method : method.slice(0, dot);
        if (ns !== 'plugin') return this.answerLocal(conn, `RPC for ${ns} is not supported`, undefined);
        const cmd = method.slice(dot + 1);
        this.log.error(`rpc: #${conn.msgid} method ${cmd} not implemented`);
        return this.answerLocal(conn, RPC_METHODS.has(cmd) ? `method ${cmd} is not routed` : `method ${cmd} not implemented`, undefined);
      }
    }
  }

  private startInstance(conn: KongConnection, frame: Buffer): void {
    const message = decodeValue(frame, 0, frame.length) as unknown[];
    const cfg = (Array.isArray(message[3]) ? message[3][0] : undefined) as { Name?: unknown; Config?: unknown } | undefined;
    const name = cfg?.Name;
    const config = cfg?.Config;
    if (typeof name !== 'string' || typeof config !== 'string') {
      return this.answerLocal(conn, `${String(name)} not initizlied`, undefined);
    }
    const id = this.nextInstance++;
    this.askAll('plugin.StartInstanceAs', [{ Name: name, Config: config, Id: id }], (error, result) => {
      if (error === undefined) {
        const now = Date.now();
        this.instances.set(id, { name, config, startedAt: now, lastUsed: now });
      } else {
        for (const w of this.workers) if (w.alive) this.ask(w, 'plugin.CloseInstance', [id], () => undefined);
      }
      this.answerLocal(conn, error, result);
    });
  }

  private dropInstance(id: number): void {
    this.instances.delete(id);
    for (const w of this.workers) if (w.alive) this.ask(w, 'plugin.CloseInstance', [id], () => undefined);
  }

  private sweepInstances(): void {
    const cutoff = Date.now() - this.instanceTtlMs;
    for (const [id, entry] of this.instances) {
      if (entry.startedAt < cutoff && entry.lastUsed < cutoff) this.dropInstance(id);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Metrics

  /** The metrics endpoint's registry: the sum of the workers' registries. */
  metricsRegistry(): { readonly contentType: string; collectProcessMetrics(): void; render(): Promise<string> } {
    return {
      contentType: Registry.PROMETHEUS_CONTENT_TYPE,
      collectProcessMetrics: () => undefined, // the workers collect their own (WORKER_METRICS_ENV)
      render: async () => {
        const live = this.workers.filter((w) => w.alive && w.child !== null);
        const jsons = await Promise.all(live.map((w) => new Promise<MetricsJson>((resolve) => {
          const id = this.nextOwnId++;
          const timer = setTimeout(() => { w.metricsWaiters.delete(id); resolve([]); }, 2000);
          w.metricsWaiters.set(id, (json) => { clearTimeout(timer); resolve(json); });
          w.child?.send({ type: 'metrics', id });
        })));
        return AggregatorRegistry.aggregate(jsons.filter((j) => j.length > 0)).metrics();
      },
    };
  }
}
