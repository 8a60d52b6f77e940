/**
 * Typed handles on the kong-pdk 0.6.0 pieces the plugin server still uses (`lib/mod.js`).
 *
 * kong-pdk ships no type declarations for them, so this module states the parts the launcher
 * relies on and loads them with `require`. The launcher uses kong-pdk's plugin module loader
 * (`lib/mod.js`); the socket, the codec and the event machinery are its own (docs/plugin-server.md).
 */
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

/** kong-pdk `lib/mod.js` Module: loads a plugin file and reads its Plugin, Schema, Version, Priority, phases. */
export const Module = (require('kong-pdk/lib/mod') as { Module: new (name: string, path: string) => StockPluginModule }).Module;

/** The marker kong-pdk answers when a handler has finished. */
export const MSG_RET = 'ret';
