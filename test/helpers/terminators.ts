/**
 * Real TLS terminators (nginx, HAProxy) for tests: start one from a config string, wait for its
 * port, stop it cleanly. Plus a raw upstream that records request heads byte for byte, and an mTLS
 * client, so a test can see exactly what a load balancer forwards.
 *
 * Everything listens on 127.0.0.1 and lives in a temp dir the caller owns. When a binary is
 * missing the test is skipped with a message, unless CI=true, where that is a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { delimiter, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { TestContext } from 'node:test';

/** Absolute path of an executable on PATH or in the sbin directories, or null. */
export function findExecutable(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/**
 * The executable, or null after skipping the test with a clear message. With CI=true a missing
 * binary throws instead: CI must run these tests, not skip them.
 */
export function requireExecutable(t: TestContext, name: string): string | null {
  const found = findExecutable(name);
  if (found !== null) return found;
  const message = `${name} is not installed: this test needs a real ${name} (apt-get install ${name === 'nginx' ? 'nginx-light' : name})`;
  if (process.env.CI === 'true') throw new Error(`${message}; CI=true, so this is a failure, not a skip`);
  t.skip(message);
  return null;
}

/**
 * A free TCP port on 127.0.0.1 (listen on 0, read it, close). Racy by nature: any listen(0) on the
 * machine (this process's next server included) may take it before the caller binds it, about 1 in
 * 7000 per bind meanwhile on Linux. Prefer binding on 0 and reading the port; where a test needs a
 * port with nothing behind it for a while, hold it with `reservePort` until that moment.
 */
export async function freePort(): Promise<number> {
  const reserved = await reservePort();
  await reserved.release();
  return reserved.port;
}

/**
 * A TCP port on 127.0.0.1 held by a listener (nothing connects to it meanwhile) until `release()`: the
 * port can go into a config now and be left free ("connection refused") only when the test wants.
 */
export async function reservePort(): Promise<{ readonly port: number; release(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  let released: Promise<void> | undefined;
  return {
    port,
    release: () => (released ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

export interface RunningTerminator {
  readonly name: string;
  /** stdout + stderr so far (plus the error log for nginx, read by the caller from its dir). */
  output(): string;
  /** SIGTERM, then SIGKILL to the process group after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `command args` in its own process group and waits until `port` accepts connections. */
export async function startProcess(
  name: string, command: string, args: readonly string[], port: number, timeoutMs = 10_000,
): Promise<RunningTerminator> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.on('error', (error) => { output += `\nspawn failed: ${error.message}`; });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const handle: RunningTerminator = {
    name,
    output: () => output,
    stop: async (graceMs = 5000) => stopChild(child, exited, graceMs),
  };
  try {
    await waitForPort(port, timeoutMs, () => child.exitCode !== null || child.signalCode !== null);
  } catch (error) {
    await handle.stop();
    throw new Error(`${name} did not start listening on 127.0.0.1:${port}: ${(error as Error).message}\n${output}`);
  }
  return handle;
}

async function stopChild(child: ChildProcess, exited: Promise<void>, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const pid = child.pid;
  try { child.kill('SIGTERM'); } catch { /* already gone */ }
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
  if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* group already gone */ }
    await exited;
  }
}

/** Polls until a TCP connect to 127.0.0.1:port succeeds; `gaveUp()` true aborts early. */
export async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gaveUp()) throw new Error('the process exited');
    const connected = await new Promise<boolean>((resolve) => {
      const socket = netConnect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => { socket.destroy(); resolve(false); });
    });
    if (connected) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The global part of an nginx config that runs without root-owned paths: pid, error log and all
 * temp paths inside `dir`. Put `http { ... }` after it.
 */
export function nginxPreamble(dir: string): string {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return [
    'worker_processes 1;',
    asRoot ? 'user root root;' : '',
    `error_log ${join(dir, 'error.log')} info;`,
    `pid ${join(dir, 'nginx.pid')};`,
    'events { worker_connections 64; }',
  ].join('\n');
}

/** Temp paths for an nginx `http {}` block, inside `dir`. */
export function nginxHttpTempPaths(dir: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((kind) => `${kind}_temp_path ${join(dir, `${kind}_temp`)};`)
    .join('\n');
}

/** Writes `config` to dir/nginx.conf and runs `nginx -p dir -c ... -g 'daemon off;'`. */
export async function startNginx(binary: string, dir: string, config: string, port: number): Promise<RunningTerminator> {
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, config);
  return startProcess('nginx', binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, 'error.log'), '-g', 'daemon off;'], port);
}

/** Writes `config` to dir/haproxy.cfg and runs `haproxy -f ... -db` (foreground). */
export async function startHaproxy(binary: string, dir: string, config: string, port: number): Promise<RunningTerminator> {
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  return startProcess('haproxy', binary, ['-f', file, '-db'], port);
}

/** A raw HTTP upstream recording each request head exactly as received (Latin-1), answering 200. */
export interface HeadRecorder {
  readonly port: number;
  readonly heads: string[];
  close(): Promise<void>;
}

export async function startHeadRecorder(): Promise<HeadRecorder> {
  const heads: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0 && received !== '') {
        heads.push(received.slice(0, end + 2));
        received = '';
        socket.end('HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nrecorded');
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    heads,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The raw value of header `name` in a recorded head: from after "name:" and its OWS up to the
 * CRLF that ends the field, with any bare LF (as nginx's `$ssl_client_cert` emits) kept as is.
 */
export function rawHeaderValue(head: string, name: string): string | undefined {
  const lower = head.toLowerCase();
  const start = lower.indexOf(`\r\n${name.toLowerCase()}:`);
  if (start < 0) return undefined;
  let from = start + name.length + 3;
  while (head[from] === ' ' || head[from] === '\t') from++;
  const end = head.indexOf('\r\n', from);
  let to = end < 0 ? head.length : end;
  while (to > from && (head[to - 1] === ' ' || head[to - 1] === '\t')) to--;
  return head.slice(from, to);
}

export interface MtlsRequest {
  readonly port: number;
  readonly path: string;
  /** Client certificate chain PEM (leaf first) and its key; omit both for no client certificate. */
  readonly certPem?: string;
  readonly keyPem?: string;
  /** CA PEM to verify the terminator's server certificate. */
  readonly caPem: string;
}

/** One HTTP/1.1 GET over TLS (with a client certificate); resolves to status and body. */
export async function mtlsGet(request: MtlsRequest): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      host: '127.0.0.1', port: request.port, servername: 'localhost', ca: request.caPem,
      ...(request.certPem !== undefined ? { cert: request.certPem, key: request.keyPem } : {}),
    }, () => {
      socket.write(`GET ${request.path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    });
    let response = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { response += chunk; });
    socket.on('end', () => {
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(response);
      const bodyStart = response.indexOf('\r\n\r\n');
      if (match === null) reject(new Error(`no HTTP response: ${JSON.stringify(response.slice(0, 200))}`));
      else resolve({ status: Number(match[1]), body: bodyStart < 0 ? '' : response.slice(bodyStart + 4) });
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('mTLS request timed out')));
  });
}
