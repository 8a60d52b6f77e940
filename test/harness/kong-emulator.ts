/**
 * Kong emulator: plays Kong Gateway's part against a REAL external plugin server process, as
 * Kong's Lua does, for tests, the demo and the benchmark. It is not Kong: it emulates the parts an
 * authentication plugin meets, and each behaviour cites the Kong source it mirrors (Kong/kong,
 * tags 3.4.0 to 3.9.x):
 *
 * - query and start of the plugin server: `kong/runloop/plugin_servers/process.lua`
 *   (see plugin-server-process.ts); schema check at load: `kong/db/schema/plugin_loader.lua`,
 *   `kong/db/dao/plugins.lua` (PRIORITY integer, VERSION "x.y.z"), `kong/db/schema/metaschema.lua`;
 * - config validation and defaults: `kong/db/schema/init.lua` via test/helpers/kong-metaschema.ts;
 *   the keys Kong adds to the config it sends: `kong/runloop/plugins_iterator.lua` get_plugin_config;
 * - instances: `kong/runloop/plugin_servers/plugin.lua` get_instance_id / reset_instance, one
 *   instance table per nginx worker (`workers`);
 * - events: `kong/runloop/plugin_servers/rpc/mp_rpc.lua` bridge_loop / handle_event (see mp-rpc.ts
 *   for the socket side, pdk.ts for the PDK functions);
 * - plugin order, fail-open and the 500 for a Lua error: `kong/init.lua`
 *   execute_collecting_plugins_iterator (access phase, delayed response);
 * - the fail-closed guard: a `post-function` plugin (`kong/plugins/post-function`, priority -1000)
 *   running `GUARD_LUA`, the text kong.yml ships;
 *
 * Line numbers "file:N" below are Kong 3.9.1's (tag 3.9.1, commit b724fc7154de), read for this
 * emulator: `kong/runloop/plugin_servers/plugin.lua`, `kong/runloop/plugin_servers/rpc/mp_rpc.lua`,
 * `kong/runloop/plugin_servers/init.lua`, `kong/runloop/plugin_servers/process.lua`, `kong/init.lua`.
 * Where Kong has no bound (the "no plugin instance" retry) the emulator stops at a cap and reports
 * the loop (`instance-loop`), so a test fails instead of hanging.
 * - proxying: Kong's nginx template and `kong/runloop/handler.lua` (X-Forwarded-*, X-Real-IP,
 *   strip_path), `large_client_header_buffers 4 8k`.
 *
 * The gateway listens on 127.0.0.1 (HTTP) so HAProxy or nginx can sit in front of it; the client
 * IP is the TCP peer (kong.client.get_ip without real_ip settings).
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { MpRpcClient, RpcError, luaValueOf } from './mp-rpc.js';
import { PluginServerProcess, queryPluginInfo, type DumpedPluginInfo } from './plugin-server-process.js';
import {
  RequestContext, TrustedIps, LuaError, buildRequest, buildResponse, unexpectedErrorResponse, performPdkCall,
  type EmulatedRequestInit, type EmulatedRequest, type KongLogEntry, type KongResponse, type PdkEnvironment,
  type ConsumerEntity,
} from './pdk.js';
import { AdminApiEmulator } from './upstreams.js';
import {
  checkPluginSchema, validateConfig, toRuntimeConfig, KongConfigError, KongSchemaError, type MetaSchemaReport,
} from '../helpers/kong-metaschema.js';

export { startEchoUpstream, AdminApiEmulator, type EchoUpstream, type EchoRecord } from './upstreams.js';
export type { EmulatedRequestInit, KongLogEntry, KongResponse, ConsumerEntity } from './pdk.js';
export { KongConfigError, KongSchemaError } from '../helpers/kong-metaschema.js';

/** The `kong.ctx.shared` key the plugin sets when it approved a request. */
export const GUARD_FLAG = 'mtls_pop_verified';

/**
 * The fail-closed guard: Lua for a `post-function` plugin on the same route(s), `access` phase
 * (config `access: [GUARD_LUA]`), exactly as kong.yml and the README ship it (a test compares
 * them). post-function runs at priority -1000, after mtls-pop; it rejects every request the
 * plugin did not mark as verified, which is what Kong would otherwise proxy when the plugin
 * server is down, times out, answers an error, or its handler throws (Kong fails open).
 * The emulator runs it as written: Lua truthiness (`not x` is true only for nil and false), a
 * table body JSON-encoded by kong.response.exit, the one header.
 */
export const GUARD_LUA = `return function() if not kong.ctx.shared.${GUARD_FLAG} then return kong.response.exit(401, { message = "Unauthorized" }, { ["WWW-Authenticate"] = 'Bearer realm="kong"' }) end end`;

/** The guard's answer: status, JSON body and challenge (GUARD_LUA). */
export const GUARD_STATUS = 401;
export const GUARD_BODY = { message: 'Unauthorized' } as const;
export const GUARD_WWW_AUTHENTICATE = 'Bearer realm="kong"';

/** post-function's priority (kong/plugins/post-function/handler.lua). */
const GUARD_PRIORITY = -1000;

/** The default workspace id used in `__ws_id` / `__key__`. */
const DEFAULT_WORKSPACE_ID = '0dc6f45b-8f8d-40d2-a504-473544ee190b';

// ---------------------------------------------------------------------------------------------
// Configuration

export interface PluginConfigEntry {
  readonly name: string;
  readonly config?: Record<string, unknown>;
  /** Plugin entity id (random when absent). */
  readonly id?: string;
  readonly instance_name?: string;
}

export interface RouteConfig {
  readonly name: string;
  /** Path prefixes (Kong `paths`); the longest matching prefix wins. */
  readonly paths: readonly string[];
  /** Kong's default is true: the matched prefix is removed from the upstream path. */
  readonly strip_path?: boolean;
  readonly plugins?: readonly PluginConfigEntry[];
  /** Add the post-function guard (GUARD_LUA) to this route. */
  readonly guard?: boolean;
  /** Service URL, e.g. http://127.0.0.1:9000 (path appended). */
  readonly upstream?: string;
  readonly id?: string;
}

export interface EmulatorConfig {
  readonly routes: readonly RouteConfig[];
  /** kong.conf trusted_ips: IPs and CIDRs; none by default (nothing trusted). */
  readonly trusted_ips?: readonly string[];
  /**
   * The Admin API part: CA certificate entities by UUID, on `port` (0: any). A config that names the
   * Admin API's address before the emulator starts passes `server`, an AdminApiEmulator already
   * listening (started on port 0 first, so no other process can take the port in between); the
   * emulator then uses and closes it, and ignores the other two fields.
   */
  readonly adminApi?: {
    readonly ca_certificates?: Readonly<Record<string, string>>; readonly port?: number; readonly server?: AdminApiEmulator;
  };
  readonly consumers?: readonly ConsumerEntity[];
  /** Vault references and their values. */
  readonly vault?: Readonly<Record<string, string>>;
}

export interface PluginServerCommand {
  readonly command: string;
  /** Arguments without -p/--sock-name: the emulator adds its own prefix. */
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Arguments of the query command (Kong's separate `_query_cmd`); default `args`. `--dump-all-plugins` is appended. */
  readonly queryArgs?: readonly string[];
  /** Respawn the server when it exits, as Kong does (default false). */
  readonly respawn?: boolean;
}

export interface KongEmulatorOptions {
  readonly pluginServer: PluginServerCommand;
  readonly config: EmulatorConfig;
  /** Cosocket timeout for every RPC (Kong: 60 s). */
  readonly rpcTimeoutMs?: number;
  /** Connections to the plugin server, per worker (default 30). */
  readonly poolSize?: number;
  /** Order in which a worker's idle connections are reused: Kong's pool is LIFO (default). */
  readonly poolOrder?: 'lifo' | 'fifo';
  /**
   * nginx worker processes (default 1; Kong's `nginx_worker_processes` is `auto`, one per core).
   * Each has its own instance table and connection pool; HTTP connections are spread over them
   * round-robin (nginx: the worker that accepted the connection serves all its requests).
   */
  readonly workers?: number;
  /**
   * "no plugin instance" answers one event may get before the emulator calls it a loop
   * (default 50). Kong has no limit (mp_rpc.lua:312-316 retries by tail call).
   */
  readonly maxInstanceRetries?: number;
  /** Start the HTTP gateway (default true). */
  readonly gateway?: boolean;
  /** nginx large_client_header_buffers size: a longer header line gets 400 (default 8192). */
  readonly maxHeaderLineBytes?: number;
}

/** Launcher and stock server commands, for tests. */
export const LAUNCHER_PATH = resolve(__dirname, '..', '..', 'bin', 'mtls-pop-pluginserver.js');
export const STOCK_PLUGINSERVER_PATH = require.resolve('kong-pdk/bin/kong-js-pluginserver');

export function launcherCommand(pluginsDir: string, extraArgs: readonly string[] = []): PluginServerCommand {
  return { command: process.execPath, args: [LAUNCHER_PATH, '-d', pluginsDir, ...extraArgs] };
}

export function stockServerCommand(pluginsDir: string, extraArgs: readonly string[] = []): PluginServerCommand {
  return { command: process.execPath, args: [STOCK_PLUGINSERVER_PATH, '-d', pluginsDir, ...extraArgs] };
}

// ---------------------------------------------------------------------------------------------
// Registered plugins, entities, instances

export interface RegisteredPlugin {
  readonly name: string;
  readonly priority: number;
  readonly version: string;
  readonly phases: readonly string[];
  readonly schema: DumpedPluginInfo['Schema'];
  /** Lint findings on the schema (Kong loads it anyway). */
  readonly schemaWarnings: MetaSchemaReport['warnings'];
}

interface PluginEntity {
  /** The plugin entity's id: Kong's instance key (`kong.plugin.get_id()`, plugin.lua:240). */
  id: string;
  readonly name: string;
  readonly instanceName: string | undefined;
  readonly route: { readonly id: string; readonly name: string };
  storedConfig: Record<string, unknown>;
  /** plugins_iterator `__seq__`: changes when the configuration is reloaded. */
  seq: number;
  readonly plugin: RegisteredPlugin;
}

/** An entry of plugin.lua's `running_instances` (plugin.lua:16, 270-273, 289-294). */
interface RunningInstance {
  /** The Lua value StartInstance answered as `Id` (undefined: nil, i.e. being started). */
  id: unknown;
  seq: unknown;
  conf: Record<string, unknown>;
  /** Set once started (plugin.lua:290); reset_instances_for_plugin matches on it. */
  pluginName: string | undefined;
}

/**
 * One nginx worker: plugin.lua's `running_instances` is a module-level table (plugin.lua:16), so
 * each worker process has its own, and its own cosocket pool and Rpc `msg_id` (mp_rpc.lua:173).
 */
class Worker {
  readonly running = new Map<string, RunningInstance>();
  constructor(readonly index: number, readonly rpc: MpRpcClient) {}
}

/** Lua truthiness: everything but nil and false. */
function luaTruthy(value: unknown): boolean {
  return value !== undefined && value !== null && value !== false;
}

function luaTypeOf(value: unknown): string {
  const v = luaValueOf(value);
  if (v === undefined || v === null) return 'nil';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number' || typeof v === 'bigint') return 'number';
  if (typeof v === 'boolean') return 'boolean';
  return 'table';
}

/**
 * `value.key` in Lua for a value decoded from MessagePack: a table's field (nil when absent), nil
 * for a string (the string library has no such key), a Lua error for nil, a number or a boolean.
 */
function luaIndex(value: unknown, key: string, name: string): unknown {
  const v = luaValueOf(value);
  const type = luaTypeOf(v);
  if (type === 'string') return undefined;
  if (type !== 'table') throw new LuaError(`attempt to index ${name} (a ${type} value)`);
  if (Array.isArray(v)) return undefined;
  const field = (v as Record<string, unknown>)[key];
  return field === null ? undefined : field;
}

/** Lua's tostring for log lines. */
function luaToString(value: unknown): string {
  const v = luaValueOf(value);
  if (v === undefined || v === null) return 'nil';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return 'table: 0x0';
}

/** The emulator's stop for Kong's unbounded "no plugin instance" retry. */
class InstanceLoopError extends Error {}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface CompiledRoute {
  readonly id: string;
  readonly name: string;
  readonly paths: readonly string[];
  readonly stripPath: boolean;
  readonly plugins: readonly PluginEntity[];
  readonly guard: boolean;
  readonly upstream: string | undefined;
}

/** What one event did. */
export interface EventReport {
  /**
   * `ret`: handler finished; `exit`: kong.response.exit/error; `lua-error`: 500; `fail-open`: an
   * RPC failed, Kong logged it and the request continues; `silent-fail-open`: the plugin server
   * answered neither a result nor an error (or the error `false`), Kong continues and logs nothing;
   * `instance-loop`: "no plugin instance" more than `maxInstanceRetries` times (Kong: forever).
   */
  outcome: 'ret' | 'exit' | 'lua-error' | 'fail-open' | 'silent-fail-open' | 'instance-loop' | 'unsupported';
  /** The nginx worker that ran it. */
  worker: number;
  /** "no plugin instance" answers in this event (each one: reset, StartInstance, retry). */
  instanceRetries: number;
  /** PDK round trips: HandleEvent + each Step (StartInstance/CloseInstance not counted). */
  roundTrips: number;
  /** PDK methods the plugin called, in order. */
  readonly calls: string[];
  error?: string;
}

export interface AccessOutcome {
  readonly ctx: RequestContext;
  /** The response Kong produced itself, if any (exit, error, guard, 500). */
  readonly response: KongResponse | undefined;
  readonly events: readonly EventReport[];
  readonly guard: 'passed' | 'rejected' | 'absent';
}

export interface EmulatorStats {
  requests: number;
  events: number;
  roundTrips: number;
  lastEventRoundTrips: number;
  startInstance: number;
  closeInstance: number;
  /** "no plugin instance" answers that made the emulator restart an instance and retry. */
  instanceRestarts: number;
  /** Events stopped at `maxInstanceRetries` "no plugin instance" answers: Kong would loop forever. */
  instanceLoops: number;
  /** The most "no plugin instance" retries one event needed so far. */
  maxEventInstanceRetries: number;
  failOpen: number;
  /** Events Kong let through without a log line (no result and no error from the plugin server). */
  silentFailOpen: number;
  luaErrors: number;
  guardRejections: number;
  proxied: number;
  readonly unsupported: string[];
}

/** A started instance handle for the programmatic path. */
export interface InstanceHandle {
  readonly entity: PluginEntity;
  /** The worker whose instance it is (default 0). */
  readonly worker: number;
}

function parseVersion(v: unknown): string | undefined {
  // kong/db/dao/plugins.lua valid_version: "x.y.z" (a fourth component is refused)
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?([-+.].*)?$/.exec(v);
  if (m === null || (m[4] !== undefined && /^\.\d/.test(m[4]))) return undefined;
  return `${m[1]}.${m[2] ?? 0}.${m[3] ?? 0}`;
}

// ---------------------------------------------------------------------------------------------

export class KongEmulator {
  readonly stats: EmulatorStats = {
    requests: 0, events: 0, roundTrips: 0, lastEventRoundTrips: 0, startInstance: 0, closeInstance: 0,
    instanceRestarts: 0, instanceLoops: 0, maxEventInstanceRetries: 0, failOpen: 0, silentFailOpen: 0, luaErrors: 0, guardRejections: 0, proxied: 0,
    unsupported: [],
  };
  /** Kong's error log: Kong's own lines and plugins' kong.log.* calls. */
  readonly errorLog: KongLogEntry[] = [];
  readonly plugins = new Map<string, RegisteredPlugin>();
  readonly pluginServer: PluginServerProcess;
  readonly prefix: string;
  readonly socketPath: string;
  readonly nodeId = randomUUID();
  private readonly routes: CompiledRoute[] = [];
  private readonly workers: Worker[];
  private readonly connectionWorker = new WeakMap<object, Worker>();
  private nextWorker = 0;
  private readonly maxInstanceRetries: number;
  private readonly env: PdkEnvironment;
  private seqCounter = 0;
  private gatewayServer: Server | undefined;
  adminApi!: AdminApiEmulator;

  private constructor(private readonly options: KongEmulatorOptions) {
    this.prefix = mkdtempSync(join(tmpdir(), 'kong-emu-'));
    this.socketPath = join(this.prefix, 'js_pluginserver.sock');
    this.pluginServer = new PluginServerProcess({
      command: options.pluginServer.command,
      args: [...options.pluginServer.args, '-p', this.prefix, '--sock-name', 'js_pluginserver.sock'],
      socketPath: this.socketPath,
      env: options.pluginServer.env,
      respawn: options.pluginServer.respawn,
    });
    const workers = Math.max(1, options.workers ?? 1);
    this.workers = Array.from({ length: workers }, (_, i) => new Worker(i, new MpRpcClient({
      socketPath: this.socketPath, poolSize: options.poolSize, timeoutMs: options.rpcTimeoutMs, poolOrder: options.poolOrder,
    })));
    this.maxInstanceRetries = options.maxInstanceRetries ?? 50;
    // Owned from now on: closed by close(), also when start() fails.
    if (options.config.adminApi?.server !== undefined) this.adminApi = options.config.adminApi.server;
    const trusted = new TrustedIps(options.config.trusted_ips ?? []);
    this.env = {
      trustedIps: trusted,
      nodeId: this.nodeId,
      hostname: hostname(),
      consumers: options.config.consumers ?? [],
      routeEntity: (ctx) => {
        const route = this.routes.find((r) => r.id === ctx.route.id);
        return route === undefined ? undefined : { id: route.id, name: route.name, paths: route.paths, strip_path: route.stripPath, protocols: ['http', 'https'] };
      },
      serviceEntity: (ctx) => {
        const route = this.routes.find((r) => r.id === ctx.route.id);
        if (route?.upstream === undefined) return undefined;
        const url = new URL(route.upstream);
        return { id: route.id, name: `${route.name}-service`, protocol: url.protocol.replace(':', ''), host: url.hostname, port: Number(url.port || 80), path: url.pathname };
      },
    };
  }

  /**
   * Queries the plugin server (query_cmd), validates the schema and every route's plugin config
   * as Kong would (throws KongSchemaError / KongConfigError), starts the Admin API, the plugin
   * server and the gateway.
   */
  static async start(options: KongEmulatorOptions): Promise<KongEmulator> {
    const emu = new KongEmulator(options);
    try {
      await emu.init();
      return emu;
    } catch (err) {
      await emu.close();
      throw err;
    }
  }

  private async init(): Promise<void> {
    const { command, args, queryArgs } = this.options.pluginServer;
    const query = await queryPluginInfo(command, [...(queryArgs ?? args), '--dump-all-plugins']);
    this.register(query.first);
    this.compileRoutes();
    this.adminApi ??= await AdminApiEmulator.start({
      ca_certificates: this.options.config.adminApi?.ca_certificates, port: this.options.config.adminApi?.port,
    });
    await this.pluginServer.start();
    if (this.options.gateway !== false) await this.startGateway();
  }

  /** plugin_servers/init.lua load_external_plugins + plugin_loader.load_subschema + plugins.lua checks. */
  private register(info: DumpedPluginInfo): void {
    const priority = info.Priority;
    if (typeof priority !== 'number' || !Number.isInteger(priority)) {
      throw new Error(`Plugin "${info.Name}" cannot be loaded because its PRIORITY field is not a valid integer number, got: "${String(priority)}".`);
    }
    const version = parseVersion(info.Version);
    if (version === undefined) {
      throw new Error(`Plugin "${info.Name}" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "${String(info.Version)}".`);
    }
    const report = checkPluginSchema(info.Schema);
    if (report.errors.length > 0) throw new KongSchemaError(report, false);
    this.plugins.set(info.Name, {
      name: info.Name, priority, version, phases: info.Phases, schema: info.Schema, schemaWarnings: report.warnings,
    });
  }

  private compileRoutes(): void {
    for (const route of this.options.config.routes) {
      const routeRef = { id: route.id ?? randomUUID(), name: route.name };
      const plugins: PluginEntity[] = [];
      for (const entry of route.plugins ?? []) {
        const plugin = this.plugins.get(entry.name);
        if (plugin === undefined) {
          // plugins entity subschema_error
          throw new Error(`plugin '${entry.name}' not enabled; add it to the 'plugins' configuration property`);
        }
        const checked = validateConfig(plugin.schema, entry.config ?? {});
        if (!checked.ok) throw new KongConfigError(entry.name, checked.errors);
        plugins.push({
          id: entry.id ?? randomUUID(), name: entry.name, instanceName: entry.instance_name, route: routeRef,
          storedConfig: checked.config, seq: ++this.seqCounter, plugin,
        });
      }
      this.routes.push({
        id: routeRef.id, name: route.name, paths: route.paths, stripPath: route.strip_path ?? true,
        plugins, guard: route.guard === true, upstream: route.upstream,
      });
    }
  }

  /** Replaces a route plugin's config (validated), as a Kong reload would: a new `__seq__`. */
  updatePluginConfig(routeName: string, pluginName: string, config: Record<string, unknown>): void {
    const entity = this.entity(routeName, pluginName);
    const checked = validateConfig(entity.plugin.schema, config);
    if (!checked.ok) throw new KongConfigError(pluginName, checked.errors);
    entity.storedConfig = checked.config;
    entity.seq = ++this.seqCounter;
  }

  /**
   * Replaces a route plugin by a new plugin entity (a new id, a new `__seq__`), as when it is
   * deleted and created again or a declarative config gives it another id. Kong keys instances
   * by plugin id (plugin.lua:240), so every worker starts a new instance on its next request and
   * never closes the old one (plugin.lua closes only a previous instance of the SAME key,
   * :296-300): the plugin server keeps it until its own idle expiry. Returns the new id.
   */
  replacePluginEntity(routeName: string, pluginName?: string): string {
    const entity = this.entity(routeName, pluginName);
    entity.id = randomUUID();
    entity.seq = ++this.seqCounter;
    return entity.id;
  }

  private entity(routeName: string, pluginName?: string): PluginEntity {
    const route = this.routes.find((r) => r.name === routeName);
    const entity = route?.plugins.find((p) => pluginName === undefined || p.name === pluginName);
    if (entity === undefined) throw new Error(`no plugin ${pluginName ?? ''} on route ${routeName}`);
    return entity;
  }

  /** The config JSON Kong sends with StartInstance (plugins_iterator.lua get_plugin_config). */
  /**
   * The plugin's runtime config as Kong's plugins iterator holds it: built once per config version
   * (`__seq__`), as Kong builds it when it loads the configuration (runloop/plugins_iterator.lua),
   * not on every request.
   */
  instanceConfig(entity: PluginEntity): Record<string, unknown> {
    const cached = this.runtimeConfigs.get(entity);
    if (cached !== undefined && cached.seq === entity.seq && cached.id === entity.id) return cached.conf;
    const conf = this.buildInstanceConfig(entity);
    this.runtimeConfigs.set(entity, { seq: entity.seq, id: entity.id, conf });
    return conf;
  }

  private readonly runtimeConfigs = new WeakMap<PluginEntity, { readonly seq: number; readonly id: string; readonly conf: Record<string, unknown> }>();

  private buildInstanceConfig(entity: PluginEntity): Record<string, unknown> {
    const runtime = toRuntimeConfig(entity.plugin.schema, entity.storedConfig, {
      vault: this.options.config.vault,
      onUnresolved: (ref) => this.kongLog('warn', `unable to resolve reference ${ref}`),
    });
    const conf: Record<string, unknown> = { ...runtime };
    // Lua: assigning nil leaves the key out, so service_id / consumer_id are absent for a route plugin.
    conf.route_id = entity.route.id;
    if (entity.instanceName !== undefined) conf.plugin_instance_name = entity.instanceName;
    conf.__plugin_id = entity.id;
    conf.__ws_id = DEFAULT_WORKSPACE_ID; // 3.9; 3.4 has no __ws_id
    conf.__key__ = `plugins:${entity.name}:${entity.route.id}::::${DEFAULT_WORKSPACE_ID}`;
    conf.__seq__ = entity.seq;
    return conf;
  }

  private kongLog(level: string, message: string): void {
    this.errorLog.push({ level, message, source: 'kong' });
  }

  /** The RPC client of worker 0 (tests call the plugin server through it directly). */
  get rpc(): MpRpcClient {
    return (this.workers[0] as Worker).rpc;
  }

  /** Number of emulated nginx workers. */
  get workerCount(): number {
    return this.workers.length;
  }

  private worker(index: number): Worker {
    const worker = this.workers[index];
    if (worker === undefined) throw new Error(`no worker ${index} (${this.workers.length} configured)`);
    return worker;
  }

  /**
   * One `Rpc:call` as Kong's Lua sees it: `(result, err)` (mp_rpc.lua:172-221). A connect failure
   * is logged first ("trying to connect: ", mp_rpc.lua:178); what Kong raises (a cut-off answer:
   * "missing bytes", a bad frame, a wrong id) is thrown as a LuaError.
   */
  private async luaCall(worker: Worker, method: string, arg: unknown): Promise<{ result: unknown; err: unknown }> {
    try {
      return { result: luaValueOf(await worker.rpc.call(method, arg)), err: undefined };
    } catch (error) {
      if (!(error instanceof RpcError)) throw error;
      if (error.kind === 'protocol') throw new LuaError(error.message);
      if (error.kind === 'connect') this.kongLog('err', `trying to connect: ${error.message}`);
      return { result: undefined, err: error.kind === 'remote' ? error.value : error.message };
    }
  }

  // -------------------------------------------------------------------------------------------
  // Instances (plugin.lua get_instance_id, reset_instance)

  /**
   * plugin.lua:237-303 get_instance_id, in one worker. Returns the instance id (any Lua value the
   * server answered as `Id`) or Kong's "Could not claim" error; throws a LuaError where Kong calls
   * `error(err)` (StartInstance failed: the request gets 500, plugin.lua:281-287).
   */
  private async getInstanceId(worker: Worker, entity: PluginEntity, conf: Record<string, unknown>): Promise<{ id: unknown; err?: string }> {
    const key = entity.id; // kong.plugin.get_id() (:240)
    let info = worker.running.get(key);
    // :244-256: another request of this worker is starting it; poll every 0.1 s for up to 10 s.
    let waits = 0;
    while (info !== undefined && !luaTruthy(info.id)) {
      await sleep(100);
      waits++;
      if (waits > 100) {
        worker.running.delete(key);
        return { id: undefined, err: `Could not claim instance_id for ${entity.name} (key: ${key})` };
      }
      info = worker.running.get(key);
    }
    // :258-265: exact match
    if (info !== undefined && luaTruthy(info.id) && info.seq === conf.__seq__ && info.conf.__plugin_id === key) {
      return { id: info.id };
    }
    const oldInstanceId = info?.id; // :267
    if (info === undefined) {
      info = { id: undefined, seq: conf.__seq__, conf, pluginName: undefined }; // :268-274, the claim
      worker.running.set(key, info);
    } else {
      info.id = undefined; // :278
    }
    this.stats.startInstance++;
    // :281 -> mp_rpc.lua:224-241 call_start_instance
    const { result: status, err } = await this.luaCall(worker, 'plugin.StartInstance', { Name: entity.name, Config: JSON.stringify(conf) });
    if (status === undefined || status === null) {
      // :282-287: log, remove the claim, error(err)
      this.kongLog('err', `starting instance: ${luaToString(err)}`);
      if (worker.running.get(key) === info) worker.running.delete(key);
      throw new LuaError(luaToString(err));
    }
    const id = luaIndex(status, 'Id', "local 'status'"); // mp_rpc.lua:235 `id = status.Id`
    info.id = id; // :289-294
    info.pluginName = entity.name;
    info.conf = conf;
    info.seq = conf.__seq__;
    if (luaTruthy(oldInstanceId)) {
      // :296-300: close the previous instance of this key; "don't care if there's an error"
      this.stats.closeInstance++;
      await this.luaCall(worker, 'plugin.CloseInstance', oldInstanceId);
    }
    return { id: info.id };
  }

  /** plugin.lua:201-207 reset_instances_for_plugin: forget (never close) started instances of the plugin. */
  private resetInstancesForPlugin(worker: Worker, pluginName: string): void {
    for (const [key, instance] of worker.running) if (instance.pluginName === pluginName) worker.running.delete(key);
  }

  /**
   * plugin.lua:210-224 reset_instance: this worker's table now, then `kong.worker_events.post`,
   * which every worker (this one included: lua-resty-events broadcasts) handles a moment later
   * (plugin_servers/init.lua:62-64 registers reset_instances_for_plugin for it). Nothing is
   * closed on the plugin server.
   */
  private resetInstance(worker: Worker, pluginName: string): void {
    this.resetInstancesForPlugin(worker, pluginName);
    setTimeout(() => { for (const w of this.workers) this.resetInstancesForPlugin(w, pluginName); }, 0);
  }

  /** Starts (or reuses) a worker's instance of a route's plugin, for the programmatic path. */
  async instance(routeName: string, pluginName?: string, worker = 0): Promise<InstanceHandle> {
    const entity = this.entity(routeName, pluginName);
    await this.getInstanceId(this.worker(worker), entity, this.instanceConfig(entity));
    return { entity, worker };
  }

  /** The plugin server's instance id a worker currently uses for a route plugin (undefined if none). */
  currentInstanceId(routeName: string, pluginName?: string, worker = 0): number | undefined {
    const id = this.worker(worker).running.get(this.entity(routeName, pluginName).id)?.id;
    return typeof id === 'number' ? id : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Events (mp_rpc.lua bridge_loop + handle_event)

  /**
   * mp_rpc.lua:264-298 bridge_loop. Ends with `done` ("ret", or a PDK call that ended the request)
   * or with what Kong's loop returns when a call gives no result: `(step_in, err)` (:272-274,
   * :294-296). Lua errors (indexing a bad answer, a PDK function raising) are thrown as LuaError.
   */
  private async bridgeLoop(worker: Worker, instanceId: unknown, ctx: RequestContext, report: EventReport, phase: string): Promise<'done' | { err: unknown }> {
    report.roundTrips++;
    let { result: stepIn, err } = await this.luaCall(worker, 'plugin.HandleEvent', { InstanceId: instanceId, EventName: phase });
    if (!luaTruthy(stepIn)) return { err }; // :272-274
    const eventId = luaIndex(stepIn, 'EventId', "local 'step_in'"); // :276
    for (;;) {
      const data = luaValueOf(luaIndex(stepIn, 'Data', "local 'step_in'"));
      if (data === 'ret') return 'done'; // :279-281
      const method = luaIndex(data, 'Method', "field 'Data'");
      const args = luaIndex(data, 'Args', "field 'Data'");
      report.calls.push(String(luaValueOf(method)));
      const outcome = performPdkCall(this.env, ctx, luaValueOf(method), args); // :283-286
      if (outcome.kind === 'exit') {
        report.outcome = 'exit';
        return 'done'; // kong.response.exit yields the handler's coroutine for good: no further Step
      }
      if (outcome.kind === 'unsupported') {
        report.outcome = 'unsupported';
        report.error = `PDK method ${String(method)} is not implemented by the Kong emulator`;
        return 'done';
      }
      const stepMethod = outcome.kind === 'step' ? outcome.stepMethod : 'plugin.Step'; // :288
      const stepData = outcome.kind === 'step' ? outcome.data : undefined;
      report.roundTrips++;
      ({ result: stepIn, err } = await this.luaCall(worker, stepMethod, { EventId: eventId, Data: stepData })); // :290-293
      if (!luaTruthy(stepIn)) return { err }; // :294-296
    }
  }

  /**
   * mp_rpc.lua:301-320 Rpc:handle_event for one plugin in one worker.
   * - no error: done (this includes an answer with neither result nor error: bridge_loop returned
   *   `nil, nil`, :272-274, and Kong goes on without a word: `silent-fail-open`);
   * - an error that is not a string: `err:lower()` (:310) raises, 500;
   * - "no plugin instance" anywhere in it (case-insensitive, :312): reset_instance, warn, and a
   *   tail call to handle_event (:313-315): no limit in Kong; here `maxInstanceRetries`;
   * - any other error: logged (:318), the request goes on (fail-open).
   */
  private async handleEventLua(worker: Worker, entity: PluginEntity, conf: Record<string, unknown>, ctx: RequestContext, report: EventReport, phase: string): Promise<void> {
    for (;;) {
      const got = await this.getInstanceId(worker, entity, conf); // :304
      let err: unknown = got.err;
      let silent = false;
      if (err === undefined) {
        const ended = await this.bridgeLoop(worker, got.id, ctx, report, phase); // :305-307
        if (ended !== 'done') {
          err = ended.err;
          silent = !luaTruthy(err);
        }
      }
      if (!luaTruthy(err)) {
        if (silent) {
          report.outcome = 'silent-fail-open';
          this.stats.silentFailOpen++;
        }
        return;
      }
      if (typeof err !== 'string') {
        const type = luaTypeOf(err);
        throw new LuaError(type === 'table' ? "attempt to call method 'lower' (a nil value)" : `attempt to index local 'err' (a ${type} value)`);
      }
      if (err.toLowerCase().includes('no plugin instance')) {
        this.resetInstance(worker, entity.name);
        this.kongLog('warn', err);
        this.stats.instanceRestarts++;
        report.instanceRetries++;
        this.stats.maxEventInstanceRetries = Math.max(this.stats.maxEventInstanceRetries, report.instanceRetries);
        if (report.instanceRetries > this.maxInstanceRetries) throw new InstanceLoopError(err);
        continue; // return self:handle_event(conf, phase)
      }
      this.kongLog('err', err);
      report.outcome = 'fail-open';
      report.error = err;
      this.stats.failOpen++;
      return;
    }
  }

  /** One plugin's event as Kong runs it (kong/init.lua:392-410: a Lua error becomes a 500). */
  private async runPluginEvent(worker: Worker, entity: PluginEntity, ctx: RequestContext, phase = 'access'): Promise<EventReport> {
    const report: EventReport = { outcome: 'ret', worker: worker.index, instanceRetries: 0, roundTrips: 0, calls: [] };
    ctx.currentPlugin = entity.name;
    this.stats.events++;
    try {
      await this.handleEventLua(worker, entity, this.instanceConfig(entity), ctx, report, phase);
    } catch (err) {
      if (err instanceof InstanceLoopError) {
        const message = `"no plugin instance" answered ${report.instanceRetries} times in one event: Kong 3.9.1 retries without limit (mp_rpc.lua:312-316) and this request would never end; last error: ${err.message}`;
        this.kongLog('crit', `kong emulator: ${message}`);
        report.outcome = 'instance-loop';
        report.error = message;
        this.stats.instanceLoops++;
        const base = unexpectedErrorResponse(ctx);
        ctx.exit = { ...base, headers: [...base.headers, ['X-Kong-Emulator-Error', 'no plugin instance loop']] };
      } else {
        // A Lua error in the handler: kong/init.lua:399-410 logs it and answers 500.
        const message = (err as Error).message;
        this.kongLog('err', message);
        report.outcome = 'lua-error';
        report.error = message;
        this.stats.luaErrors++;
        ctx.exit = unexpectedErrorResponse(ctx);
      }
    }
    if (report.outcome === 'unsupported') {
      this.stats.unsupported.push(report.calls[report.calls.length - 1] ?? '?');
      this.kongLog('err', report.error ?? 'unsupported PDK method');
      const base = unexpectedErrorResponse(ctx);
      ctx.exit = { ...base, headers: [...base.headers, ['X-Kong-Emulator-Error', report.error ?? 'unsupported']] };
    }
    this.stats.roundTrips += report.roundTrips;
    this.stats.lastEventRoundTrips = report.roundTrips;
    ctx.currentPlugin = undefined;
    return report;
  }

  /** Runs one event of an instance against a request, without HTTP (benchmark floor). */
  async handleEvent(handle: InstanceHandle, init: EmulatedRequestInit): Promise<{ report: EventReport; ctx: RequestContext; response: KongResponse | undefined }> {
    const ctx = new RequestContext(buildRequest(init), handle.entity.route);
    const report = await this.runPluginEvent(this.worker(handle.worker), handle.entity, ctx);
    this.flushLog(ctx);
    return { report, ctx, response: ctx.exit };
  }

  private flushLog(ctx: RequestContext): void {
    for (const entry of ctx.log) this.errorLog.push(entry);
  }

  /** The access phase of a route: plugins by priority, then the guard; stops at the first response. */
  async runAccess(routeName: string, init: EmulatedRequestInit | EmulatedRequest, worker = 0): Promise<AccessOutcome> {
    const route = this.routes.find((r) => r.name === routeName);
    if (route === undefined) throw new Error(`no route ${routeName}`);
    const request = 'requestId' in init ? init : buildRequest(init);
    return this.access(this.worker(worker), route, request);
  }

  private async access(worker: Worker, route: CompiledRoute, request: EmulatedRequest): Promise<AccessOutcome> {
    const ctx = new RequestContext(request, { id: route.id, name: route.name });
    const steps: Array<{ priority: number; run: () => Promise<void> }> = [];
    const events: EventReport[] = [];
    let guard: AccessOutcome['guard'] = 'absent';
    for (const entity of route.plugins) {
      if (!entity.plugin.phases.includes('access')) continue;
      steps.push({ priority: entity.plugin.priority, run: async () => { events.push(await this.runPluginEvent(worker, entity, ctx)); } });
    }
    if (route.guard) {
      steps.push({
        priority: GUARD_PRIORITY,
        run: async () => {
          // GUARD_LUA as written: `if not kong.ctx.shared.<flag> then return kong.response.exit(...)`
          if (!luaTruthy(ctx.shared.get(GUARD_FLAG))) {
            guard = 'rejected';
            this.stats.guardRejections++;
            ctx.exit = buildResponse(ctx, GUARD_STATUS, { ...GUARD_BODY }, { 'WWW-Authenticate': GUARD_WWW_AUTHENTICATE }, 'guard');
          } else {
            guard = 'passed';
          }
        },
      });
    }
    steps.sort((a, b) => b.priority - a.priority); // plugins_iterator: higher priority first
    for (const step of steps) {
      if (ctx.exit !== undefined) break; // "if not ctx.delayed_response"
      await step.run();
    }
    this.flushLog(ctx);
    return { ctx, response: ctx.exit, events, guard };
  }

  // -------------------------------------------------------------------------------------------
  // Gateway

  /** Base URL of the gateway (http://127.0.0.1:port). */
  get url(): string {
    const address = this.gatewayServer?.address() as AddressInfo | null | undefined;
    if (address === undefined || address === null) throw new Error('gateway not started');
    return `http://127.0.0.1:${address.port}`;
  }

  private async startGateway(): Promise<void> {
    const server = createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
      this.handleHttp(req, res).catch((err: unknown) => {
        this.kongLog('crit', `emulator failure: ${(err as Error).stack ?? String(err)}`);
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end('kong emulator failure');
      });
    });
    await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', () => resolveListen()));
    this.gatewayServer = server;
  }

  private matchRoute(path: string): { route: CompiledRoute; prefix: string } | undefined {
    let best: { route: CompiledRoute; prefix: string } | undefined;
    for (const route of this.routes) {
      for (const prefix of route.paths) {
        if (path.startsWith(prefix) && (best === undefined || prefix.length > best.prefix.length)) best = { route, prefix };
      }
    }
    return best;
  }

  private async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const lines: Array<[string, string]> = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) lines.push([req.rawHeaders[i] ?? '', req.rawHeaders[i + 1] ?? '']);
    const limit = this.options.maxHeaderLineBytes ?? 8192;
    const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const request = buildRequest({
      method: req.method, path: req.url ?? '/', headers: lines, clientIp: peer, clientPort: req.socket.remotePort,
      port: (req.socket.localPort ?? 0), body: Buffer.concat(chunks),
    });
    const ctxForErrors = new RequestContext(request, { id: '', name: '' });
    if (lines.some(([n, v]) => n.length + 2 + v.length > limit)) {
      // nginx: a header line longer than a large_client_header_buffers buffer
      const body = '<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n</body>\r\n</html>\r\n';
      this.send(res, buildResponse(ctxForErrors, 400, body, { 'Content-Type': 'text/html' }, 'nginx'));
      return;
    }
    const match = this.matchRoute(request.rawPath);
    if (match === undefined) {
      const body = `{\n  "message":"no Route matched with those values",\n  "request_id":"${request.requestId}"\n}`;
      this.send(res, buildResponse(ctxForErrors, 404, body, { 'Content-Type': 'application/json; charset=utf-8' }, 'router'));
      return;
    }
    // nginx: the worker that accepted the TCP connection serves every request on it.
    let worker = this.connectionWorker.get(req.socket);
    if (worker === undefined) {
      worker = this.worker(this.nextWorker++ % this.workers.length);
      this.connectionWorker.set(req.socket, worker);
    }
    const outcome = await this.access(worker, match.route, request);
    if (outcome.response !== undefined) {
      this.send(res, outcome.response);
      return;
    }
    this.send(res, await this.proxy(match.route, match.prefix, outcome.ctx));
  }

  private send(res: ServerResponse, response: KongResponse): void {
    const flat: string[] = [];
    for (const [n, v] of response.headers) {
      if (/^(connection|transfer-encoding|keep-alive)$/i.test(n)) continue;
      flat.push(n, v);
    }
    res.writeHead(response.status, flat);
    res.end(response.body);
  }

  /** Proxies to the route's upstream with the headers the plugins left (Kong's proxy_pass). */
  private proxy(route: CompiledRoute, prefix: string, ctx: RequestContext): Promise<KongResponse> {
    const request = ctx.request;
    if (route.upstream === undefined) {
      return Promise.resolve(buildResponse(ctx, 503, { message: 'no upstream configured for this emulated route' }, undefined, 'upstream'));
    }
    this.stats.proxied++;
    const base = new URL(route.upstream);
    let path = route.stripPath ? request.rawPath.slice(prefix.length) : request.rawPath;
    if (!path.startsWith('/')) path = `/${path}`;
    const basePath = base.pathname === '/' ? '' : base.pathname.replace(/\/$/, '');
    const fullPath = `${basePath}${path}${request.rawQuery === '' ? '' : `?${request.rawQuery}`}`;
    const hop = /^(host|connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|upgrade|content-length)$/i;
    const headers: string[] = [];
    for (const [n, v] of ctx.upstreamHeaders) if (!hop.test(n) && !/^x-(forwarded-[a-z]+|real-ip)$/i.test(n)) headers.push(n, v);
    const trusted = this.env.trustedIps.isTrusted(request.clientIp);
    const incoming = (name: string): string | undefined => ctx.upstreamHeaders.find(([n]) => n.toLowerCase() === name)?.[1];
    // kong/runloop/handler.lua: X-Forwarded-For appends; X-Forwarded-Proto/Host/Port only from trusted peers.
    const xff = incoming('x-forwarded-for');
    headers.push('X-Real-IP', request.clientIp);
    headers.push('X-Forwarded-For', xff === undefined ? request.clientIp : `${xff}, ${request.clientIp}`);
    headers.push('X-Forwarded-Proto', (trusted ? incoming('x-forwarded-proto') : undefined) ?? request.scheme);
    headers.push('X-Forwarded-Host', (trusted ? incoming('x-forwarded-host') : undefined) ?? request.host);
    headers.push('X-Forwarded-Port', (trusted ? incoming('x-forwarded-port') : undefined) ?? String(request.port));
    headers.push('X-Forwarded-Path', request.rawPath);
    headers.push('Host', ctx.upstreamHost ?? base.host);
    headers.push('Content-Length', String(request.body.length));
    return new Promise((resolveProxy) => {
      const upstreamReq = httpRequest({
        host: base.hostname, port: base.port || 80, method: request.method, path: fullPath, headers,
      }, (upstreamRes) => {
        const chunks: Buffer[] = [];
        upstreamRes.on('data', (c: Buffer) => chunks.push(c));
        upstreamRes.on('end', () => {
          const lines: Array<[string, string]> = [];
          for (let i = 0; i + 1 < upstreamRes.rawHeaders.length; i += 2) {
            const n = upstreamRes.rawHeaders[i] ?? '';
            if (!/^(connection|transfer-encoding|keep-alive|content-length)$/i.test(n)) lines.push([n, upstreamRes.rawHeaders[i + 1] ?? '']);
          }
          // kong.response.set_header values set in access apply to the proxied response too.
          for (const [n] of ctx.responseHeaders) {
            const lower = n.toLowerCase();
            for (let i = lines.length - 1; i >= 0; i--) if (lines[i]?.[0].toLowerCase() === lower) lines.splice(i, 1);
          }
          const body = Buffer.concat(chunks);
          resolveProxy({
            status: upstreamRes.statusCode ?? 502,
            headers: [...lines, ...ctx.responseHeaders, ['Content-Length', String(body.length)]],
            body, source: 'upstream',
          });
        });
      });
      upstreamReq.on('error', (err) => {
        this.kongLog('err', `connect() to upstream failed: ${err.message}`);
        resolveProxy(buildResponse(ctx, 502, `{\n  "message":"An invalid response was received from the upstream server",\n  "request_id":"${request.requestId}"\n}`,
          { 'Content-Type': 'application/json; charset=utf-8' }, 'upstream'));
      });
      upstreamReq.end(request.body);
    });
  }

  // -------------------------------------------------------------------------------------------

  /** Restarts the plugin server process (instances are lost; Kong finds out via "no plugin instance"). */
  async restartPluginServer(): Promise<void> {
    await this.pluginServer.stop('SIGTERM');
    for (const worker of this.workers) worker.rpc.drainIdle();
    await this.pluginServer.start();
  }

  async close(): Promise<void> {
    const server = this.gatewayServer;
    this.gatewayServer = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    for (const worker of this.workers) worker.rpc.close();
    await this.pluginServer.stop('SIGTERM').catch(() => undefined);
    if (this.adminApi !== undefined) await this.adminApi.close();
    rmSync(this.prefix, { recursive: true, force: true });
  }
}
