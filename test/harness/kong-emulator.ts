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
 * - instances: `kong/runloop/plugin_servers/plugin.lua` get_instance_id / reset_instance;
 * - events: `kong/runloop/plugin_servers/rpc/mp_rpc.lua` bridge_loop / handle_event (see mp-rpc.ts
 *   for the socket side, pdk.ts for the PDK functions);
 * - plugin order, fail-open and the 500 for a Lua error: `kong/init.lua`
 *   execute_collecting_plugins_iterator (access phase, delayed response);
 * - the fail-closed guard: a `post-function` plugin (`kong/plugins/post-function`, priority -1000)
 *   running `GUARD_LUA`;
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
import { MpRpcClient, RpcError } from './mp-rpc.js';
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
 * (config `access: [GUARD_LUA]`). post-function runs at priority -1000, after mtls-pop; it
 * rejects every request the plugin did not mark as verified, which is what Kong would otherwise
 * proxy when the plugin server is down, times out, or its handler throws (Kong fails open).
 */
export const GUARD_LUA = `-- mtls-pop fail-closed guard (post-function, access phase).
-- Rejects any request that mtls-pop did not approve: plugin server down, timed out or crashed.
return function()
  if kong.ctx.shared.${GUARD_FLAG} ~= true then
    return kong.response.exit(401, { message = "Unauthorized" }, { ["WWW-Authenticate"] = "Bearer" })
  end
end
`;

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
  /** The Admin API part: CA certificate entities by UUID. */
  readonly adminApi?: { readonly ca_certificates?: Readonly<Record<string, string>>; readonly port?: number };
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
  /** Connections to the plugin server (default 30). */
  readonly poolSize?: number;
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
  readonly id: string;
  readonly name: string;
  readonly instanceName: string | undefined;
  readonly route: { readonly id: string; readonly name: string };
  storedConfig: Record<string, unknown>;
  /** plugins_iterator `__seq__`: changes when the configuration is reloaded. */
  seq: number;
  readonly plugin: RegisteredPlugin;
}

interface RunningInstance {
  id: number | undefined;
  seq: number;
  starting: Promise<number> | undefined;
}

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
  /** `ret`: handler finished; `exit`: kong.response.exit/error; `lua-error`: 500; `fail-open`: RPC failed, request continues. */
  outcome: 'ret' | 'exit' | 'lua-error' | 'fail-open' | 'unsupported';
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
  failOpen: number;
  luaErrors: number;
  guardRejections: number;
  proxied: number;
  readonly unsupported: string[];
}

/** A started instance handle for the programmatic path. */
export interface InstanceHandle {
  readonly entity: PluginEntity;
}

function isStepReply(value: unknown): value is { EventId: number; Data: unknown } {
  return typeof value === 'object' && value !== null && 'EventId' in value;
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
    instanceRestarts: 0, failOpen: 0, luaErrors: 0, guardRejections: 0, proxied: 0, unsupported: [],
  };
  /** Kong's error log: Kong's own lines and plugins' kong.log.* calls. */
  readonly errorLog: KongLogEntry[] = [];
  readonly plugins = new Map<string, RegisteredPlugin>();
  readonly rpc: MpRpcClient;
  readonly pluginServer: PluginServerProcess;
  readonly prefix: string;
  readonly socketPath: string;
  readonly nodeId = randomUUID();
  private readonly routes: CompiledRoute[] = [];
  private readonly running = new Map<string, RunningInstance>();
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
    this.rpc = new MpRpcClient({ socketPath: this.socketPath, poolSize: options.poolSize, timeoutMs: options.rpcTimeoutMs });
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
    this.adminApi = await AdminApiEmulator.start({
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

  private entity(routeName: string, pluginName?: string): PluginEntity {
    const route = this.routes.find((r) => r.name === routeName);
    const entity = route?.plugins.find((p) => pluginName === undefined || p.name === pluginName);
    if (entity === undefined) throw new Error(`no plugin ${pluginName ?? ''} on route ${routeName}`);
    return entity;
  }

  /** The config JSON Kong sends with StartInstance (plugins_iterator.lua get_plugin_config). */
  instanceConfig(entity: PluginEntity): Record<string, unknown> {
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

  // -------------------------------------------------------------------------------------------
  // Instances (plugin.lua get_instance_id, reset_instance)

  private async instanceId(entity: PluginEntity): Promise<number> {
    let info = this.running.get(entity.id);
    if (info?.starting !== undefined) return info.starting; // another request is starting it
    if (info?.id !== undefined && info.seq === entity.seq) return info.id;
    const oldId = info?.id;
    if (info === undefined) {
      info = { id: undefined, seq: entity.seq, starting: undefined };
      this.running.set(entity.id, info);
    }
    const claim = info;
    claim.id = undefined;
    claim.starting = (async () => {
      try {
        this.stats.startInstance++;
        const status = await this.rpc.call('plugin.StartInstance', { Name: entity.name, Config: JSON.stringify(this.instanceConfig(entity)) });
        const id = (status as { Id?: unknown } | null)?.Id;
        if (typeof id !== 'number') throw new RpcError('protocol', 'StartInstance answered without an Id');
        claim.id = id;
        claim.seq = entity.seq;
        if (oldId !== undefined) {
          this.stats.closeInstance++;
          await this.rpc.call('plugin.CloseInstance', oldId).catch(() => undefined); // "don't care if there's an error"
        }
        return id;
      } catch (err) {
        // kong.log.err("starting instance: ", err); remove claim; error(err): a Lua error (500)
        this.kongLog('err', `starting instance: ${(err as Error).message}`);
        if (this.running.get(entity.id) === claim) this.running.delete(entity.id);
        throw new LuaError((err as Error).message);
      } finally {
        claim.starting = undefined;
      }
    })();
    return claim.starting;
  }

  /** reset_instances_for_plugin: forget every instance of the plugin (the server lost them). */
  private resetInstances(pluginName: string): void {
    for (const route of this.routes) {
      for (const entity of route.plugins) if (entity.name === pluginName) this.running.delete(entity.id);
    }
  }

  /** Starts (or reuses) the instance of a route's plugin, for the programmatic path. */
  async instance(routeName: string, pluginName?: string): Promise<InstanceHandle> {
    const entity = this.entity(routeName, pluginName);
    await this.instanceId(entity);
    return { entity };
  }

  /** The plugin server's instance id currently used for a route plugin (undefined if none). */
  currentInstanceId(routeName: string, pluginName?: string): number | undefined {
    return this.running.get(this.entity(routeName, pluginName).id)?.id;
  }

  // -------------------------------------------------------------------------------------------
  // Events (mp_rpc.lua bridge_loop + handle_event)

  private async bridgeLoop(entity: PluginEntity, instanceId: number, ctx: RequestContext, report: EventReport, phase: string): Promise<void> {
    report.roundTrips++;
    let step = await this.rpc.call('plugin.HandleEvent', { InstanceId: instanceId, EventName: phase });
    if (!isStepReply(step)) throw new LuaError("attempt to index local 'step_in' (a nil value)");
    const eventId = step.EventId;
    for (;;) {
      if (step.Data === 'ret') return;
      const data = step.Data as { Method?: unknown; Args?: unknown } | null;
      if (data === null || typeof data !== 'object') throw new LuaError("attempt to index field 'Data' (a non-table value)");
      const method = String(data.Method);
      report.calls.push(method);
      const outcome = performPdkCall(this.env, ctx, data.Method, data.Args);
      if (outcome.kind === 'exit') {
        report.outcome = 'exit';
        return; // ngx.exit / delayed response: no further Step
      }
      if (outcome.kind === 'unsupported') {
        report.outcome = 'unsupported';
        report.error = `PDK method ${method} is not implemented by the Kong emulator`;
        return;
      }
      const stepMethod = outcome.kind === 'step' ? outcome.stepMethod : 'plugin.Step';
      const stepData = outcome.kind === 'step' ? outcome.data : undefined;
      report.roundTrips++;
      step = await this.rpc.call(stepMethod, { EventId: eventId, Data: stepData });
      if (!isStepReply(step)) throw new LuaError("attempt to index local 'step_in' (a nil value)");
    }
  }

  /**
   * Rpc:handle_event for one plugin: get the instance, run the bridge loop; on "no plugin
   * instance" reset the plugin's instances and retry (Kong recurses without a bound; once here);
   * any other RPC error is logged and the request goes on (fail-open).
   */
  private async runPluginEvent(entity: PluginEntity, ctx: RequestContext, phase = 'access'): Promise<EventReport> {
    const report: EventReport = { outcome: 'ret', roundTrips: 0, calls: [] };
    ctx.currentPlugin = entity.name;
    this.stats.events++;
    try {
      for (let attempt = 0; ; attempt++) {
        const instanceId = await this.instanceId(entity);
        try {
          await this.bridgeLoop(entity, instanceId, ctx, report, phase);
          break;
        } catch (err) {
          if (!(err instanceof RpcError) || err.kind === 'protocol') throw err;
          if (err.message.toLowerCase().includes('no plugin instance') && attempt === 0) {
            this.resetInstances(entity.name);
            this.stats.instanceRestarts++;
            this.kongLog('warn', err.message);
            continue;
          }
          this.kongLog('err', err.message);
          report.outcome = 'fail-open';
          report.error = err.message;
          this.stats.failOpen++;
          break;
        }
      }
    } catch (err) {
      // A Lua error in the handler: kong/init.lua logs it and answers 500.
      const message = err instanceof RpcError ? `${err.message}` : (err as Error).message;
      this.kongLog('err', message);
      report.outcome = 'lua-error';
      report.error = message;
      this.stats.luaErrors++;
      ctx.exit = unexpectedErrorResponse(ctx);
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
    const report = await this.runPluginEvent(handle.entity, ctx);
    this.flushLog(ctx);
    return { report, ctx, response: ctx.exit };
  }

  private flushLog(ctx: RequestContext): void {
    for (const entry of ctx.log) this.errorLog.push(entry);
  }

  /** The access phase of a route: plugins by priority, then the guard; stops at the first response. */
  async runAccess(routeName: string, init: EmulatedRequestInit | EmulatedRequest): Promise<AccessOutcome> {
    const route = this.routes.find((r) => r.name === routeName);
    if (route === undefined) throw new Error(`no route ${routeName}`);
    const request = 'requestId' in init ? init : buildRequest(init);
    return this.access(route, request);
  }

  private async access(route: CompiledRoute, request: EmulatedRequest): Promise<AccessOutcome> {
    const ctx = new RequestContext(request, { id: route.id, name: route.name });
    const steps: Array<{ priority: number; run: () => Promise<void> }> = [];
    const events: EventReport[] = [];
    let guard: AccessOutcome['guard'] = 'absent';
    for (const entity of route.plugins) {
      if (!entity.plugin.phases.includes('access')) continue;
      steps.push({ priority: entity.plugin.priority, run: async () => { events.push(await this.runPluginEvent(entity, ctx)); } });
    }
    if (route.guard) {
      steps.push({
        priority: GUARD_PRIORITY,
        run: async () => {
          // GUARD_LUA, emulated
          if (ctx.shared.get(GUARD_FLAG) !== true) {
            guard = 'rejected';
            this.stats.guardRejections++;
            ctx.exit = buildResponse(ctx, 401, { message: 'Unauthorized' }, { 'WWW-Authenticate': 'Bearer' }, 'guard');
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
    const outcome = await this.access(match.route, request);
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
    this.rpc.drainIdle();
    await this.pluginServer.start();
  }

  async close(): Promise<void> {
    const server = this.gatewayServer;
    this.gatewayServer = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    this.rpc.close();
    await this.pluginServer.stop('SIGTERM').catch(() => undefined);
    if (this.adminApi !== undefined) await this.adminApi.close();
    rmSync(this.prefix, { recursive: true, force: true });
  }
}
