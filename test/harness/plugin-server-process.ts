/**
 * Kong's management of a plugin server process, after `kong/runloop/plugin_servers/process.lua`
 * (line numbers: Kong 3.9.1):
 * - the query step (`query_external_plugin_info`, :46-84): run `pluginserver_<n>_query_cmd`, read
 *   stdout to the end, JSON-decode it, and take the FIRST plugin of the dump (Kong 3.9 registers
 *   only that one: `(dump.Plugins or dump)[1]`, :68);
 * - the start step (`pluginserver_timer`, :136-182, run by worker 0 only, :189): spawn
 *   `pluginserver_<n>_start_cmd` with stderr merged into stdout (:153-155), log its lines. Kong
 *   respawns a server that exits, at most once a second (`next_spawn = ngx.now() + 1`, :156);
 *   this class respawns only when `respawn` is set, so tests can keep a server dead.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PluginInfo } from '../../bin/pluginserver/kong-pdk.js';

/** One element of `--dump-all-plugins` (kong-pdk GetPluginInfo): the wire shape the launcher declares. */
export type DumpedPluginInfo = PluginInfo;

export interface QueryResult {
  /** Every plugin the command dumped. */
  readonly all: readonly DumpedPluginInfo[];
  /** What Kong registers: the first entry. */
  readonly first: DumpedPluginInfo;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the query command and parses its stdout as Kong does (cjson.decode of the whole output). */
export function queryPluginInfo(command: string, args: readonly string[], timeoutMs = 30_000): Promise<QueryResult> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`error loading plugins info from [${command}]: ${err.message}\n${stderr}`));
        return;
      }
      let dump: unknown;
      try {
        dump = JSON.parse(stdout);
      } catch (e) {
        reject(new Error(`failed decoding plugin info: ${(e as Error).message}; stdout was: ${stdout.slice(0, 300)}`));
        return;
      }
      const list = (typeof dump === 'object' && dump !== null && 'Plugins' in dump)
        ? (dump as { Plugins: unknown }).Plugins : dump;
      if (!Array.isArray(list) || list.length === 0) {
        reject(new Error(`not a plugin info table: ${stdout.slice(0, 300)}`));
        return;
      }
      const all = list as DumpedPluginInfo[];
      resolve({ all, first: all[0] as DumpedPluginInfo, stdout, stderr });
    });
  });
}

export interface PluginServerProcessOptions {
  readonly command: string;
  /** Arguments; the socket location comes from `socketPath`, so include the matching -p/--sock-name. */
  readonly args: readonly string[];
  readonly socketPath: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Respawn after an exit, as Kong does (default false). */
  readonly respawn?: boolean;
}

export class PluginServerProcess {
  private child: ChildProcess | undefined;
  private stdoutChunks: string[] = [];
  private stderrChunks: string[] = [];
  private stopping = false;
  /** Exit codes/signals seen, oldest first. */
  readonly exits: Array<{ code: number | null; signal: NodeJS.Signals | null }> = [];
  starts = 0;

  constructor(readonly options: PluginServerProcessOptions) {}

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  get running(): boolean {
    return this.pid !== undefined;
  }

  /** Everything the process wrote to stdout so far (all runs). */
  get stdout(): string {
    return this.stdoutChunks.join('');
  }

  get stderr(): string {
    return this.stderrChunks.join('');
  }
  /**
   * Waits until stderr matches `pattern` (the server's output reaches us asynchronously, after
   * the RPC answer that caused it) and returns stderr; throws after `timeoutMs`.
   */
  async waitForStderr(pattern: RegExp, timeoutMs = 3000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stderr)) {
      if (Date.now() > deadline) throw new Error(`plugin server stderr did not match ${pattern} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.stderr;
  }


  /** Spawns the server and waits until its socket accepts connections. */
  async start(timeoutMs = 15_000): Promise<void> {
    this.stopping = false;
    const child = spawn(this.options.command, [...this.options.args], {
      env: this.options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.starts++;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => this.stdoutChunks.push(d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => this.stderrChunks.push(d));
    child.on('exit', (code, signal) => {
      this.exits.push({ code, signal });
      if (this.options.respawn === true && !this.stopping) {
        // process.lua: next_spawn = ngx.now() + 1
        setTimeout(() => { if (!this.stopping) void this.start().catch(() => undefined); }, 1000).unref();
      }
    });
    await this.waitForSocket(child, timeoutMs);
  }

  private async waitForSocket(child: ChildProcess, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`plugin server exited early (${child.exitCode ?? child.signalCode}): ${this.stderr.slice(-2000)}`);
      }
      if (existsSync(this.options.socketPath) && await canConnect(this.options.socketPath)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`plugin server socket ${this.options.socketPath} not ready after ${timeoutMs} ms: ${this.stderr.slice(-2000)}`);
  }

  /** Sends a signal and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.stopping = true;
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      return this.exits[this.exits.length - 1] ?? { code: null, signal: null };
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    });
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const result = await exited;
    clearTimeout(timer);
    return result;
  }

  /** Kills the process abruptly (SIGKILL), as a crash would. */
  kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.stop('SIGKILL');
  }
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Reads VmRSS (kB) of a process from /proc. */
export async function readRssKb(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(join('/proc', String(pid), 'status'), 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (match === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}
