/**
 * Typed handles on kong-pdk 0.6.0's own plugin server pieces (`server.js`, `listener.js`).
 *
 * kong-pdk ships no type declarations for them, so this module states the parts the launcher
 * relies on and loads the real classes with `require`. The launcher subclasses them; it never
 * re-implements the protocol.
 */
import type { Server as NetServer } from 'node:net';
import { dirname } from 'node:path';

/**
 * kong-pdk's `lib/mod.js` calls `require('ts-node').register()` when it is loaded, which pulls in
 * a whole TypeScript compiler (about 60 MB of RSS and a slower start) so that `.ts` plugins can
 * be required. This server loads compiled JavaScript only, so ts-node is replaced by a no-op
 * before kong-pdk is loaded. `.ts` files in the plugins directory are skipped with a warning.
 */
function skipTsNode(): void {
  let tsNodePath: string;
  try {
    tsNodePath = require.resolve('ts-node', { paths: [dirname(require.resolve('kong-pdk/package.json'))] });
  } catch {
    return; // not installed: nothing to skip
  }
  if (require.cache[tsNodePath] !== undefined) return;
  const stub = new (require('node:module') as typeof import('node:module'))(tsNodePath);
  stub.filename = tsNodePath;
  stub.loaded = true;
  stub.exports = { register: (): undefined => undefined };
  require.cache[tsNodePath] = stub;
}
skipTsNode();

/** The logger interface kong-pdk's Server and Listener call (node-color-log's subset). */
export interface PluginServerLogger {
  debug(...parts: unknown[]): void;
  info(...parts: unknown[]): void;
  warn(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
}

/** `plugin.HandleEvent` argument, as Kong's mp_rpc.lua sends it. */
export interface HandleEventArgs {
  readonly InstanceId: number;
  readonly EventName: string;
}

/** `plugin.Step*` argument: the result of the PDK call Kong performed. */
export interface StepArgs {
  readonly EventId: number;
  readonly Data?: unknown;
}

/** What HandleEvent and every Step answer: the next PDK call (`{Method, Args}`) or `"ret"`. */
export interface StepReply {
  readonly EventId: number;
  readonly Data: unknown;
}

/** `plugin.GetPluginInfo` answer (one element of `--dump-all-plugins`). */
export interface PluginInfo {
  readonly Name: string;
  readonly Version: unknown;
  readonly Phases: readonly string[];
  readonly Priority: unknown;
  readonly Schema: { readonly name: string; readonly fields: readonly unknown[] };
}

/** `plugin.StartInstance` answer. */
export interface InstanceStatus {
  readonly Name: string;
  readonly Id: number;
  readonly Config: unknown;
  readonly StartTime: number;
}

/** A loaded plugin module (kong-pdk `lib/mod.js` Module). */
export interface StockPluginModule {
  readonly name: string;
  readonly path: string;
}

/** kong-pdk `server.js` Server: state and the methods the launcher overrides or calls. */
export interface StockServer {
  pluginDir: string | undefined;
  logger: PluginServerLogger;
  plugins: Map<string, StockPluginModule>;
  instances: Map<number, unknown>;
  events: Map<number, unknown>;
  instanceID: number;
  eventID: number;
  loadPlugins(): void;
  close(): void;
  getPlugins(): Map<string, StockPluginModule>;
  getLogger(): PluginServerLogger;
  GetPluginInfo(name: string): Promise<PluginInfo>;
  GetStatus(): Promise<Record<string, unknown>>;
  StartInstance(config: { readonly Name: string; readonly Config: string }): Promise<InstanceStatus>;
  CloseInstance(instanceId: number): Promise<unknown>;
  HandleEvent(event: HandleEventArgs): Promise<StepReply>;
  step(data: StepArgs, isError: boolean): Promise<StepReply>;
}

export type StockServerConstructor = new (
  pluginDir: string | undefined, logger: PluginServerLogger, expireTtl?: number) => StockServer;

/** kong-pdk `listener.js` Listener. */
export interface StockListener {
  ps: StockServer;
  prefix: string;
  logger: PluginServerLogger;
  serve(): NetServer;
}

export type StockListenerConstructor = new (pluginServer: StockServer, socketPath: string) => StockListener;

export const StockServerClass = require('kong-pdk/server') as StockServerConstructor;

/**
 * The MessagePack library kong-pdk itself uses (its own dependency, resolved from kong-pdk's
 * directory), so the launcher needs no runtime dependency of its own for it.
 */
export const msgpack = require(require.resolve('@msgpack/msgpack', { paths: [dirname(require.resolve('kong-pdk/package.json'))] })) as typeof import('@msgpack/msgpack');
export const StockListenerClass = require('kong-pdk/listener') as StockListenerConstructor;

/** PDK methods that end the request: kong-pdk `pdk.js` NON_RETURN_METHODS. Kong sends no Step after them. */
export const NON_RETURNING_METHODS: ReadonlySet<string> = new Set(['kong.response.exit', 'kong.response.error']);

/** The marker kong-pdk answers when a handler has finished. */
export const MSG_RET = 'ret';

/**
 * The RPC methods Kong calls on a JS plugin server (Kong `kong/runloop/plugin_servers/rpc/mp_rpc.lua`
 * and `plugin.lua`), plus kong-pdk's status calls. Anything else on the Server object (`step`,
 * `close`, `loadPlugins`, `SetPluginDir`, ...) is not reachable from the socket.
 */
export const RPC_METHODS: ReadonlySet<string> = new Set([
  'GetStatus', 'GetPluginInfo', 'StartInstance', 'InstanceStatus', 'CloseInstance', 'HandleEvent',
  'Step', 'StepError', 'StepMultiMap', 'StepService', 'StepConsumer', 'StepRoute', 'StepPlugin',
  'StepCredential', 'StepMemoryStats',
]);
