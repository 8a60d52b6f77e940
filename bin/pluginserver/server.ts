/**
 * The plugin host: plugin instances and events, answering Kong's RPCs (ours, replacing kong-pdk
 * 0.6.0's `server.js` event machinery; plugin modules are still loaded by kong-pdk's `lib/mod.js`).
 *
 * Same RPCs and answers as kong-pdk's Server (Kong `rpc/mp_rpc.lua`): StartInstance,
 * InstanceStatus, CloseInstance, GetPluginInfo, GetStatus, HandleEvent and the Step family. What
 * differs is inside:
 * - an event is one object holding the RPC waiting for its next PDK call and the handler's pending
 *   `await`; a handler's call is answered to Kong directly from the call, with no channel pair,
 *   promise queue or `setImmediate` per event (kong-pdk `lib/pipe.js`, `server.js`);
 * - events end when the handler ends, when it calls `kong.response.exit`/`error` (Kong sends no
 *   further Step: kong-pdk kept those forever, ~1.6 KB per rejected request), and after
 *   `eventTtlMs` without activity (an event Kong abandoned after a Lua error in a PDK call);
 * - instance and event ids start at a random offset in every process and, with `idStride` > 1
 *   (the multi-worker front, front.ts), are congruent to `idSlot` modulo the stride, so the id
 *   names the worker that owns it;
 * - instances unused for 60 s are dropped as kong-pdk does (Kong restarts them on "no plugin
 *   instance"): checked when an event arrives, and swept every second instead of every 60 ms.
 * Plugin discovery is tolerant: entries kong-pdk would crash on or misread (a sub-directory
 * without an index, `x.d.ts`, source maps) are skipped with a warning, and so are `.ts` sources.
 */
import { readdirSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { join, parse } from 'node:path';
import { NON_RETURNING_METHODS, PDKError, newKong } from './pdk-bridge.js';
import {
  MSG_RET, Module,
  type PluginServerLogger, type HandleEventArgs, type StepArgs, type StepReply, type StockPluginModule,
  type PluginInfo, type InstanceStatus,
} from './kong-pdk.js';

/** kong-pdk server.js VALID_EXTENSIONS. */
const PLUGIN_EXTENSIONS = new Set(['.js', '.ts', '.node', '.cjs', '']);

/** Kong's cosocket read timeout is 60 s; an event idle for much longer will never be stepped again. */
export const DEFAULT_EVENT_TTL_MS = 300_000;

/** kong-pdk lib/mod.js `isExpired`: an instance neither started nor used for 60 s is dropped. */
export const INSTANCE_TTL_MS = 60_000;

/** Receives the answer of one RPC: an error string, or a result. */
export interface Replier {
  answer(error: string | undefined, result: unknown): void;
}

export interface PluginServerOptions {
  readonly pluginDir: string;
  readonly logger: PluginServerLogger;
  /** Idle time after which an unfinished event is dropped. */
  readonly eventTtlMs?: number;
  /** Ids are `k * idStride + idSlot` (multi-worker: the worker's index and the worker count). */
  readonly idStride?: number;
  readonly idSlot?: number;
  /**
   * Idle time after which an instance is dropped (default 60 s, kong-pdk's). A worker behind the
   * front gets a long one: the front sees every event and applies the 60 s rule itself.
   */
  readonly instanceTtlMs?: number;
  /** Accept `StartInstanceAs` (the front's instance with the front's id); never from Kong's socket. */
  readonly internalRpc?: boolean;
}

/** kong-pdk lib/mod.js Instance, the parts used here. */
interface StockInstance {
  readonly cls: Record<string, unknown>;
  readonly name: string;
  getConfig(): unknown;
  getStartTime(): number;
  close(): void;
}

interface InstanceRecord {
  readonly id: number;
  readonly stock: StockInstance;
  readonly startedAt: number;
  lastUsed: number;
}

interface Waiter {
  resolve(value: unknown): void;
  reject(err: Error): void;
  readonly method: string;
}

/** One request's run of a handler. */
interface EventState {
  readonly id: number;
  /** The RPC (HandleEvent or Step) waiting for the handler's next PDK call or "ret". */
  replier: Replier | null;
  /** Calls made while no RPC was waiting (a handler that does not await each call). */
  outbox: unknown[] | null;
  /** The handler's awaits of PDK results, oldest first. */
  waiter: Waiter | null;
  waiters: Waiter[] | null;
  done: boolean;
  /** Sweep generation of the last activity. */
  touched: number;
}

/** RPC method name -> whether it is a Step; false for the other methods. */
const STEP_METHODS: ReadonlySet<string> = new Set([
  'Step', 'StepError', 'StepMultiMap', 'StepService', 'StepConsumer', 'StepRoute', 'StepPlugin',
  'StepCredential', 'StepMemoryStats',
]);

/** The RPC methods Kong calls (Kong `mp_rpc.lua`, `plugin.lua`), plus kong-pdk's status calls. */
export const RPC_METHODS: ReadonlySet<string> = new Set([
  'GetStatus', 'GetPluginInfo', 'StartInstance', 'InstanceStatus', 'CloseInstance', 'HandleEvent', ...STEP_METHODS,
]);

function errorText(err: unknown): string {
  if (typeof err === 'string') return err;
  if (err instanceof Error) return err.message;
  return 'Unknown plugin listener error encountered';
}

class PluginServerError extends Error {
  override get name(): string {
    return 'PluginServerError';
  }
}

/** A Replier that settles a promise (the in-process API used by tests and the dump). */
function promised<T>(run: (replier: Replier) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run({ answer: (error, result) => (error === undefined ? resolve(result as T) : reject(new PluginServerError(error))) });
  });
}

export class PluginServer {
  readonly pluginDir: string;
  readonly logger: PluginServerLogger;
  readonly plugins = new Map<string, StockPluginModule>();
  private readonly instances = new Map<number, InstanceRecord>();
  private readonly events = new Map<number, EventState>();
  private readonly idStride: number;
  private nextInstance: number;
  private nextEvent: number;
  private generation = 0;
  private readonly eventTtlTicks = 4;
  private readonly eventTimer: NodeJS.Timeout;
  private readonly instanceTimer: NodeJS.Timeout;
  private readonly pid = process.pid;
  private readonly instanceTtlMs: number;
  private readonly internalRpc: boolean;

  constructor(options: PluginServerOptions) {
    this.pluginDir = options.pluginDir;
    this.logger = options.logger;
    this.idStride = options.idStride ?? 1;
    const slot = options.idSlot ?? 0;
    if (!Number.isInteger(this.idStride) || this.idStride < 1 || !Number.isInteger(slot) || slot < 0 || slot >= this.idStride) {
      throw new RangeError(`bad id slot ${slot} of ${this.idStride}`);
    }
    // Ids start at a random offset in every process: after a restart, ids Kong still holds (another
    // nginx worker's cached instance, a Step for an event of the dead process) must not name a
    // different instance or another request's event, but answer "no plugin instance" / "event id
    // not found". Ids stay below 2^53 (Kong's Lua numbers are doubles) for centuries of traffic.
    this.nextInstance = randomInt(1, 2 ** 30) * 16 * this.idStride + slot;
    this.nextEvent = randomInt(1, 2 ** 40) * this.idStride + slot;
    const ttl = options.eventTtlMs ?? DEFAULT_EVENT_TTL_MS;
    this.eventTimer = setInterval(() => this.sweepEvents(), Math.max(50, Math.floor(ttl / this.eventTtlTicks)));
    this.eventTimer.unref();
    this.instanceTtlMs = options.instanceTtlMs ?? INSTANCE_TTL_MS;
    this.internalRpc = options.internalRpc ?? false;
    // Every second (kong-pdk: every 60 ms): instances Kong forgot (an entity replaced, a "no plugin
    // instance" reset in another worker) get no more events, so only the sweep reclaims them.
    this.instanceTimer = setInterval(() => this.sweepInstances(), Math.min(1000, this.instanceTtlMs / 4));
    this.instanceTimer.unref();
    this.loadPlugins();
  }

  /** Loads every plugin module of the directory, skipping entries that are not plugins. */
  private loadPlugins(): void {
    const dir = this.pluginDir;
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith('.') || entry.includes('node_modules')) continue;
      if (entry.endsWith('.d.ts') || entry.endsWith('.map')) continue;
      if (entry.endsWith('.ts')) {
        this.logger.warn(`skipping "${entry}": TypeScript sources are not loaded, ship compiled JavaScript`);
        continue;
      }
      let filePath: string;
      try {
        filePath = require.resolve(join(dir, entry));
      } catch {
        this.logger.warn(`skipping "${entry}" in ${dir}: not a loadable module (a directory needs an index file)`);
        continue;
      }
      const { name, ext } = parse(filePath);
      if (name === '' || !PLUGIN_EXTENSIONS.has(ext)) continue;
      const loaded = this.plugins.get(name);
      if (loaded !== undefined) {
        this.logger.warn(`plugin "${name}" is already loaded from ${loaded.path}, ignoring ${filePath}`);
        continue;
      }
      try {
        const mod = new Module(name, filePath);
        this.plugins.set(mod.name, mod);
        this.logger.debug(`loaded plugin "${mod.name}" from ${filePath}`);
      } catch (err) {
        this.logger.warn(`error loading plugin "${name}" from ${filePath}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      }
    }
  }

  getPlugins(): Map<string, StockPluginModule> {
    return this.plugins;
  }

  /** Number of events still waiting for a Step (for tests and status). */
  get pendingEvents(): number {
    return this.events.size;
  }

  get instanceCount(): number {
    return this.instances.size;
  }

  close(): void {
    clearInterval(this.eventTimer);
    clearInterval(this.instanceTimer);
  }

  // -------------------------------------------------------------------------------------------
  // RPC dispatch

  /** Runs RPC `method` (without the "plugin." prefix) with its argument array; answers `replier` once. */
  call(method: string, args: readonly unknown[], replier: Replier): void {
    const arg = args[0];
    try {
      if (method === 'HandleEvent') return this.handleEvent(arg as HandleEventArgs, replier);
      if (STEP_METHODS.has(method)) return this.step(arg as StepArgs, method === 'StepError', replier);
      let result: unknown;
      switch (method) {
        case 'StartInstance': result = this.startInstance(arg as { Name: string; Config: string }); break;
        case 'StartInstanceAs':
          if (!this.internalRpc) { replier.answer(`method ${method} not implemented`, undefined); return; }
          result = this.startInstance(arg as { Name: string; Config: string; Id: number }); break;
        case 'InstanceStatus': result = this.instanceStatus(arg as number); break;
        case 'CloseInstance': result = this.closeInstance(arg as number); break;
        case 'GetPluginInfo': result = this.pluginInfo(arg as string); break;
        case 'GetStatus': result = this.status(); break;
        default: replier.answer(`method ${method} not implemented`, undefined); return;
      }
      replier.answer(undefined, result);
    } catch (err) {
      replier.answer(errorText(err), undefined);
    }
  }

  // The promise API of kong-pdk's Server (tests, the dump).
  StartInstance(config: { readonly Name: string; readonly Config: string }): Promise<InstanceStatus> {
    return promised((r) => this.call('StartInstance', [config], r));
  }
  HandleEvent(event: HandleEventArgs): Promise<StepReply> {
    return promised((r) => this.call('HandleEvent', [event], r));
  }
  step(data: StepArgs, isError: boolean): Promise<StepReply>;
  step(data: StepArgs, isError: boolean, replier: Replier): void;
  step(data: StepArgs, isError: boolean, replier?: Replier): Promise<StepReply> | void {
    if (replier === undefined) return promised((r) => this.step(data, isError, r));
    this.stepEvent(data, isError, replier);
  }
  GetPluginInfo(name: string): Promise<PluginInfo> {
    return promised((r) => this.call('GetPluginInfo', [name], r));
  }
  GetStatus(): Promise<Record<string, unknown>> {
    return promised((r) => this.call('GetStatus', [], r));
  }
  CloseInstance(id: number): Promise<unknown> {
    return promised((r) => this.call('CloseInstance', [id], r));
  }

  // -------------------------------------------------------------------------------------------
  // Instances

  private startInstance(cfg: { readonly Name: string; readonly Config: string; readonly Id?: number }): InstanceStatus {
    const name = cfg?.Name;
    const plugin = typeof name === 'string' ? this.plugins.get(name) : undefined;
    if (plugin === undefined) throw new PluginServerError(`${String(name)} not initizlied`);
    const config: unknown = JSON.parse(cfg.Config);
    const stock = (plugin as unknown as { ["new"](config: unknown): StockInstance })["new"](config);
    let id: number;
    if (typeof cfg.Id === 'number' && Number.isSafeInteger(cfg.Id)) {
      id = cfg.Id; // the front's id (StartInstanceAs): the same instance in every worker
      this.instances.get(id)?.stock.close();
    } else {
      id = this.nextInstance;
      this.nextInstance += this.idStride;
    }
    const now = Date.now();
    this.instances.set(id, { id, stock, startedAt: now, lastUsed: now });
    this.logger.info(`instance #${id} of ${name} started`);
    return { Name: stock.name, Id: id, Config: config, StartTime: stock.getStartTime() };
  }

  private instance(id: unknown): InstanceRecord {
    const ins = typeof id === 'number' ? this.instances.get(id) : undefined;
    // Kong expects the error to start with "no plugin instance" (it then restarts the instance).
    if (ins === undefined) throw new PluginServerError(`no plugin instance #${String(id)}`);
    return ins;
  }

  private instanceStatus(id: number): InstanceStatus {
    const ins = this.instance(id);
    return { Name: ins.stock.name, Id: id, Config: ins.stock.getConfig(), StartTime: ins.stock.getStartTime() };
  }

  private closeInstance(id: number): unknown {
    const ins = this.instance(id);
    ins.stock.close();
    this.instances.delete(id);
    return { Name: ins.stock.name, Id: id, Config: ins.stock.getConfig() };
  }

  private pluginInfo(name: string): PluginInfo {
    const plugin = this.plugins.get(name);
    if (!name || plugin === undefined) throw new PluginServerError(`${name} not initizlied`);
    const mod = plugin as unknown as { getVersion(): unknown; getPhases(): string[]; getPriority(): unknown; getSchema(): unknown };
    return {
      Name: name,
      Version: mod.getVersion(),
      Phases: mod.getPhases(),
      Priority: mod.getPriority(),
      Schema: { name, fields: [{ config: { type: 'record', fields: mod.getSchema() } }] },
    };
  }

  /** kong-pdk's status answer (with its instance list filled in), plus `Events`: unfinished events. */
  private status(): Record<string, unknown> {
    const plugins: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    for (const [name, plugin] of this.plugins) {
      const mod = plugin as unknown as { getMTime(): number; getLoadTime(): number; getLastStartInstanceTime(): number; getLastCloseInstanceTime(): number };
      const instances = [];
      for (const ins of this.instances.values()) {
        if (ins.stock.name === name) instances.push(this.instanceStatus(ins.id));
      }
      plugins[name] = {
        Name: name, Modtime: mod.getMTime(), LoadTime: mod.getLoadTime(), Instances: instances,
        LastStartInstance: mod.getLastStartInstanceTime(), LastCloseInstance: mod.getLastCloseInstanceTime(),
      };
    }
    return { Pid: this.pid, Plugins: plugins, Events: this.events.size };
  }

  private sweepInstances(): void {
    const cutoff = Date.now() - this.instanceTtlMs;
    for (const [id, ins] of this.instances) {
      if (ins.startedAt < cutoff && ins.lastUsed < cutoff) {
        this.logger.debug(`cleanup instance #${id} of ${ins.stock.name}`);
        this.instances.delete(id);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Events

  private handleEvent(event: HandleEventArgs, replier: Replier): void {
    const ins = this.instance(event?.InstanceId);
    const now = Date.now();
    if (ins.startedAt < now - this.instanceTtlMs && ins.lastUsed < now - this.instanceTtlMs) {
      // Expired (kong-pdk's sweep, every 60 ms, would have dropped it by now): Kong restarts it.
      this.instances.delete(ins.id);
      throw new PluginServerError(`no plugin instance #${ins.id}`);
    }
    ins.lastUsed = now;
    const phase = event.EventName;
    const id = this.nextEvent;
    this.nextEvent += this.idStride;
    const ev: EventState = { id, replier, outbox: null, waiter: null, waiters: null, done: false, touched: this.generation };
    this.events.set(id, ev);
    const kong = newKong((method, args) => this.pdkCall(ev, method, args));
    let running: unknown;
    try {
      const fn = ins.stock.cls[phase];
      if (typeof fn !== 'function') throw new TypeError(`${ins.stock.name} has no ${String(phase)} handler`);
      running = (fn as (k: unknown) => unknown).call(ins.stock.cls, kong);
    } catch (err) {
      this.handlerFailed(ins, phase, err);
      this.finish(ev);
      return;
    }
    if (running instanceof Promise) {
      running.then(() => this.finish(ev), (err: unknown) => { this.handlerFailed(ins, phase, err); this.finish(ev); });
    } else {
      this.finish(ev);
    }
  }

  private handlerFailed(ins: InstanceRecord, phase: unknown, err: unknown): void {
    // kong-pdk answers "ret" after a throw, and Kong proxies the request: the guard must reject it.
    this.logger.warn(`unhandled exception in ${ins.stock.name}.${String(phase)} on instance #${ins.id}: ${String(err)}`);
  }

  /** The handler called a PDK function: send it to Kong now, or queue it. */
  private pdkCall(ev: EventState, method: string, args: unknown[]): Promise<unknown> {
    const terminal = NON_RETURNING_METHODS.has(method);
    this.send(ev, { Method: method, Args: args }, terminal);
    if (terminal) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, method };
      if (ev.waiter === null) ev.waiter = waiter;
      else (ev.waiters ??= []).push(waiter);
    });
  }

  /** The handler is done (returned, threw, or the request was ended by exit). */
  private finish(ev: EventState): void {
    if (ev.done) return;
    this.send(ev, MSG_RET, true);
  }

  private send(ev: EventState, data: unknown, terminal: boolean): void {
    if (ev.done) return; // after exit: Kong sends no further Step, nothing can be answered
    if (terminal) {
      ev.done = true;
      this.events.delete(ev.id);
    }
    const replier = ev.replier;
    if (replier !== null) {
      ev.replier = null;
      replier.answer(undefined, { Data: data, EventId: ev.id });
    } else {
      (ev.outbox ??= []).push(data);
    }
  }

  private stepEvent(data: StepArgs, isError: boolean, replier: Replier): void {
    const id = data?.EventId;
    const ev = typeof id === 'number' ? this.events.get(id) : undefined;
    if (ev === undefined) {
      replier.answer(`event id ${String(id)} not found`, undefined);
      return;
    }
    const waiter = ev.waiter;
    if (waiter === null || ev.replier !== null) {
      replier.answer(`event id ${id} is not waiting for a PDK result`, undefined);
      return;
    }
    ev.touched = this.generation;
    ev.waiter = ev.waiters !== null && ev.waiters.length > 0 ? ev.waiters.shift() ?? null : null;
    const queued = ev.outbox !== null && ev.outbox.length > 0 ? ev.outbox.shift() : undefined;
    if (queued !== undefined) replier.answer(undefined, { Data: queued, EventId: ev.id });
    else ev.replier = replier;
    const din = data.Data;
    if (isError) {
      if (din) waiter.reject(new PDKError(`PDK method ${waiter.method} failed:  ${String(din)}`));
      else waiter.resolve(undefined);
    } else {
      waiter.resolve(din);
    }
  }

  private sweepEvents(): void {
    this.generation++;
    const cutoff = this.generation - this.eventTtlTicks;
    let swept = 0;
    for (const [id, ev] of this.events) {
      if (ev.touched < cutoff) {
        ev.done = true;
        this.events.delete(id);
        swept++;
      }
    }
    if (swept > 0) this.logger.info(`dropped ${swept} event(s) abandoned by Kong`);
  }
}
