/**
 * kong-pdk's plugin server, with its event table kept bounded.
 *
 * kong-pdk 0.6.0 deletes an event's entry from `server.events` only when a `Step` answers "ret".
 * Two common endings never do that, so every such request leaks its channel and closures
 * (about 1.6 KB each):
 * - the handler ends the request with `kong.response.exit` / `kong.response.error` (kong-pdk
 *   `pdk.js` NON_RETURN_METHODS): Kong ends the request and sends no further Step;
 * - `HandleEvent` itself answers "ret" (a handler that made no PDK call).
 * This subclass deletes the entry in both cases. Events Kong abandoned mid-way (a Lua error in a
 * PDK call answers the client with 500 and sends no further Step; a socket timeout) are swept
 * after `eventTtlMs` without activity.
 *
 * Plugin discovery is also made tolerant: entries kong-pdk would crash on or misread
 * (a sub-directory without an index, `x.d.ts`, source maps) are skipped with a warning, and so
 * are `.ts` sources (see kong-pdk.ts: ts-node is not loaded).
 */
import { readdirSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { join, parse } from 'node:path';
import {
  StockServerClass, NON_RETURNING_METHODS, MSG_RET,
  type PluginServerLogger, type HandleEventArgs, type StepArgs, type StepReply, type StockPluginModule,
} from './kong-pdk.js';

type ModuleConstructor = new (name: string, path: string) => StockPluginModule;
const { Module } = require('kong-pdk/lib/mod') as { Module: ModuleConstructor };

/** kong-pdk server.js VALID_EXTENSIONS. */
const PLUGIN_EXTENSIONS = new Set(['.js', '.ts', '.node', '.cjs', '']);

/** Kong's cosocket read timeout is 60 s; an event idle for much longer will never be stepped again. */
export const DEFAULT_EVENT_TTL_MS = 300_000;

export interface PluginServerOptions {
  readonly pluginDir: string;
  readonly logger: PluginServerLogger;
  /** Idle time after which an unfinished event is dropped. */
  readonly eventTtlMs?: number;
}

function isTerminal(data: unknown): boolean {
  if (data === MSG_RET) return true;
  if (typeof data === 'object' && data !== null && 'Method' in data) {
    const method = (data as { Method: unknown }).Method;
    return typeof method === 'string' && NON_RETURNING_METHODS.has(method);
  }
  return false;
}

export class PluginServer extends StockServerClass {
  private readonly eventTouched = new Map<number, number>();
  private readonly eventTtlMs: number;
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(options: PluginServerOptions) {
    super(options.pluginDir, options.logger);
    // kong-pdk numbers instances and events from 0 in every process. After a restart, ids Kong
    // still holds (another worker's cached instance, a Step for an event of the dead process)
    // would name a different instance or another request's event. Starting at a random offset
    // turns those into "no plugin instance" / "event id not found" errors instead.
    this.instanceID = randomInt(1, 2 ** 30) * 16;
    this.eventID = randomInt(1, 2 ** 40);
    this.eventTtlMs = options.eventTtlMs ?? DEFAULT_EVENT_TTL_MS;
    this.sweepTimer = setInterval(() => this.sweepIdleEvents(), Math.max(1000, Math.floor(this.eventTtlMs / 4)));
    this.sweepTimer.unref();
  }

  /** Loads every plugin module of the directory, skipping entries that are not plugins. */
  override loadPlugins(): void {
    const dir = this.pluginDir;
    if (dir === undefined) throw new Error('plugin server is not initialized: no plugins directory');
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

  override async HandleEvent(event: HandleEventArgs): Promise<StepReply> {
    const reply = await super.HandleEvent(event);
    this.settle(reply);
    return reply;
  }

  override async step(data: StepArgs, isError: boolean): Promise<StepReply> {
    if (typeof data === 'object' && data !== null) this.touch(data.EventId);
    const reply = await super.step(data, isError);
    this.settle(reply);
    return reply;
  }

  /** kong-pdk's status RPC, plus the number of unfinished events (`Events`) for monitoring and tests. */
  override async GetStatus(): Promise<Record<string, unknown>> {
    const base = await super.GetStatus();
    return { ...base, Events: this.events.size };
  }

  /** Number of events still waiting for a Step (for tests and status). */
  get pendingEvents(): number {
    return this.events.size;
  }

  override close(): void {
    clearInterval(this.sweepTimer);
    super.close();
  }

  private touch(eventId: number): void {
    if (this.events.has(eventId)) this.eventTouched.set(eventId, Date.now());
  }

  private settle(reply: StepReply): void {
    if (isTerminal(reply.Data)) {
      this.events.delete(reply.EventId);
      this.eventTouched.delete(reply.EventId);
    } else {
      this.eventTouched.set(reply.EventId, Date.now());
    }
  }

  private sweepIdleEvents(): void {
    const cutoff = Date.now() - this.eventTtlMs;
    let swept = 0;
    for (const [eventId, touched] of this.eventTouched) {
      if (touched < cutoff) {
        this.events.delete(eventId);
        this.eventTouched.delete(eventId);
        swept++;
      }
    }
    if (swept > 0) this.logger.info(`dropped ${swept} event(s) abandoned by Kong`);
  }
}
