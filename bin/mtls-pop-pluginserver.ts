#!/usr/bin/env node
/**
 * mtls-pop-pluginserver: Kong's external plugin server for mtls-pop, built on kong-pdk 0.6.0's own
 * Server and Listener (same protocol, same flags as `kong-js-pluginserver`), with these fixes:
 * - events ended by `kong.response.exit`/`error`, or answered "ret" at once, are released
 *   (kong-pdk keeps them forever: ~1.6 KB per rejected request);
 * - a streaming MessagePack reader: back-to-back or malformed messages close one connection at
 *   worst, never the process;
 * - logs go to stderr, scrubbed, and never include RPC arguments (tokens, certificates), at any
 *   verbosity; stdout carries only the `--dump-all-plugins` JSON;
 * - SIGTERM/SIGINT close the listener and remove the socket.
 *
 * Kong configuration (kong.conf or KONG_* variables; -d may be left out: it defaults to this
 * package's own dist/plugins):
 *   pluginserver_names = mtls-pop
 *   pluginserver_mtls_pop_socket = /usr/local/kong/mtls-pop.sock
 *   pluginserver_mtls_pop_start_cmd = /usr/bin/node <dir>/dist/bin/mtls-pop-pluginserver.js -d <dir>/dist/plugins -p /usr/local/kong --sock-name mtls-pop.sock
 *   pluginserver_mtls_pop_query_cmd = /usr/bin/node <dir>/dist/bin/mtls-pop-pluginserver.js -d <dir>/dist/plugins --dump-all-plugins
 *
 * Prometheus metrics (opt-in): add `--metrics-port 9542` to the start command (Kong runs it with
 * a cleared environment, so `MTLS_POP_METRICS_PORT` only helps outside Kong); `GET /metrics` on
 * 127.0.0.1 (`--metrics-host` to change).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseCli, PACKAGE_PLUGINS_DIRECTORY, USAGE, type CliOptions } from './pluginserver/cli.js';
import { RedactingLogger, scrubSecrets } from './pluginserver/logger.js';
import { PluginServer, INSTANCE_TTL_MS } from './pluginserver/server.js';
import { metrics } from '../kong/metrics.js';
import type { Server as NetServer } from 'node:net';
import { StreamingListener } from './pluginserver/listener.js';
import { encode } from './pluginserver/codec.js';
import { startMetricsServer, type MetricsEndpoint, type MetricsSource } from './pluginserver/metrics-server.js';
import { Front } from './pluginserver/front.js';
import { WORKER_ENV, parseWorkerEnv, serveWorker } from './pluginserver/worker.js';
import { packageVersion } from '../src/package-info.js';

type StdoutWrite = (chunk: string | Uint8Array, callback?: (err?: Error | null) => void) => boolean;

/**
 * Keeps the real stdout for the dump and sends everything else written there (plugins' console.log,
 * library warnings) to stderr. Kong merges both streams into its log when it runs the server.
 */
function claimStdout(): StdoutWrite {
  const stdout = process.stdout;
  const real = stdout.write.bind(stdout) as StdoutWrite;
  const toStderr = process.stderr.write.bind(process.stderr) as StdoutWrite;
  (stdout as unknown as { write: StdoutWrite }).write = toStderr;
  return real;
}


function fail(message: string): never {
  process.stderr.write(`mtls-pop-pluginserver: ${message}\n`);
  process.exit(1);
}

async function dump(server: PluginServer, options: CliOptions, writeStdout: StdoutWrite): Promise<void> {
  let output: string | Uint8Array;
  if (options.dumpPluginInfo !== undefined) {
    output = encode(await server.GetPluginInfo(options.dumpPluginInfo));
  } else {
    const infos = [];
    for (const name of server.getPlugins().keys()) infos.push(await server.GetPluginInfo(name));
    output = `${JSON.stringify(infos)}\n`;
  }
  server.close();
  writeStdout(output, () => process.exit(0));
}

/** What serves Kong's socket: the listener of the single-process server, or the multi-worker front. */
interface Service {
  start(): Promise<NetServer>;
  close(): Promise<void>;
  readonly metrics: MetricsSource;
}

function serve(service: Service, options: CliOptions, logger: RedactingLogger): void {
  let stopping = false;
  let metricsEndpoint: MetricsEndpoint | null = null;
  async function shutdown(code: number): Promise<void> {
    if (stopping) return;
    stopping = true;
    // Whatever happens below (a listener that does not close, a log write that fails), exit.
    setTimeout(() => process.exit(code), 2000).unref();
    logger.info(`stopping (pid ${process.pid})`);
    await Promise.all([service.close(), metricsEndpoint?.close()]);
    process.exit(code);
  }
  handleProcessEvents(logger, () => { void shutdown(0); });
  service.start().then((netServer) => {
    netServer.on('error', () => {
      if (!netServer.listening) void shutdown(1);
    });
  }, (err: unknown) => {
    logger.error(`could not start: ${err instanceof Error ? err.message : String(err)}`);
    void shutdown(1);
  });
  if (options.metricsPort !== null) {
    const host = options.metricsHost;
    startMetricsServer(host, options.metricsPort, service.metrics).then((endpoint) => {
      metricsEndpoint = endpoint;
      const shown = endpoint.address.family === 'IPv6' ? `[${endpoint.address.address}]` : endpoint.address.address;
      logger.info(`metrics on http://${shown}:${endpoint.address.port}/metrics`);
      if (stopping) void endpoint.close();
    }, (err: unknown) => {
      // Metrics are optional: the plugin keeps serving Kong without them.
      logger.error(`metrics endpoint not started on ${host}:${options.metricsPort}: ${err instanceof Error ? err.message : String(err)}`);
    });
  }
}

/** Signals, broken stdio pipes, a plugin's stray errors: the same in every process of the server. */
function handleProcessEvents(logger: RedactingLogger, stop: () => void): void {
  // When Kong (the parent) is gone, writes to our stdout/stderr pipes fail with EPIPE. Those
  // errors must not become uncaught exceptions whose logging fails again, in a loop.
  const ignoreStdioError = (): void => { /* the reader is gone: nothing to report to */ };
  process.stdout.on('error', ignoreStdioError);
  process.stderr.on('error', ignoreStdioError);
  const isStdioError = (err: unknown): boolean => {
    const code = (err as { code?: unknown } | null)?.code;
    return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
  };
  // Handlers first: a signal that arrives as soon as the socket exists must still clean up.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // A plugin's stray asynchronous error must not take every request down with it (Kong would
  // proxy them all, fail-open, until it respawns the server).
  process.on('uncaughtException', (err) => {
    if (isStdioError(err)) return;
    logger.error(`uncaught exception: ${scrubSecrets(String(err?.stack ?? err))}`);
  });
  process.on('unhandledRejection', (reason) => { logger.error(`unhandled rejection: ${scrubSecrets(String(reason instanceof Error ? reason.stack : reason))}`); });
}

function main(): void {
  const writeStdout = claimStdout();
  const parsed = parseCli(process.argv.slice(2), process.cwd(), process.env, PACKAGE_PLUGINS_DIRECTORY);
  if (parsed.kind === 'error') fail(`${parsed.message}\n\n${USAGE}`);
  if (parsed.kind === 'help') { writeStdout(USAGE); return; }
  if (parsed.kind === 'version') { writeStdout(`${packageVersion()}\n`); return; }
  const options = parsed.options;
  if (!existsSync(options.pluginsDirectory) || !statSync(options.pluginsDirectory).isDirectory()) {
    fail(`plugins directory ${options.pluginsDirectory} does not exist`);
  }
  const logger = new RedactingLogger({ level: options.verbose > 0 ? 'debug' : 'info' });
  const socketPath = join(options.kongPrefix, options.sockName);
  const worker = parseWorkerEnv(process.env[WORKER_ENV]);
  if (worker !== null && !options.dumpAllPlugins && options.dumpPluginInfo === undefined) {
    // A worker of the front (front.ts): requests arrive on fd 3; the front handles signals' cleanup.
    const host = new PluginServer({
      pluginDir: options.pluginsDirectory, logger, idStride: worker.count, idSlot: worker.slot,
      instanceTtlMs: 10 * INSTANCE_TTL_MS, internalRpc: true,
    });
    handleProcessEvents(logger, () => process.exit(0));
    serveWorker(host, logger);
    return;
  }
  if (options.workers > 1 && !options.dumpAllPlugins && options.dumpPluginInfo === undefined) {
    const front = new Front({
      socketPath, workers: options.workers, log: logger, metrics: options.metricsPort !== null,
      workerArgs: [...process.execArgv, ...process.argv.slice(1)],
    });
    serve({ start: () => front.start(), close: () => front.close(), metrics: front.metricsRegistry() }, options, logger);
    return;
  }
  const server = new PluginServer({ pluginDir: options.pluginsDirectory, logger });
  if (options.dumpAllPlugins || options.dumpPluginInfo !== undefined) {
    dump(server, options, writeStdout).catch((err: unknown) => fail(err instanceof Error ? err.message : String(err)));
    return;
  }
  if (server.getPlugins().size === 0) logger.warn(`no plugin loaded from ${options.pluginsDirectory}`);
  const listener = new StreamingListener(server, socketPath, logger);
  serve({
    start: () => Promise.resolve(listener.serve()),
    close: () => { server.close(); return listener.close(); },
    metrics,
  }, options, logger);
}

main();
