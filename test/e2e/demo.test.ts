/**
 * `npm run demo` as a user runs it: `node dist/scripts/demo.js` in a child process. Checks the exit
 * code, the narrated lines that matter (token bound to the certificate per openssl, 200 / 401 /
 * 401 with their challenges), and that nothing is left behind: every process the demo started
 * (found by walking /proc from the demo's pid while it runs) is gone afterwards, and so are its
 * temp dirs, including when it is interrupted by a signal.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { findExecutable } from '../helpers/terminators.js';
import { preferredTerminator } from '../helpers/stack.js';

/** dist/test/e2e -> dist/scripts/demo.js */
const DEMO = join(__dirname, '..', '..', 'scripts', 'demo.js');

interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly cmdline: string;
}

function readProcess(pid: number): ProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, ppid: Number(rest[1]), state: rest[0] ?? '?', cmdline };
  } catch {
    return undefined; // gone meanwhile
  }
}

/** Every live descendant of `root` (children, their children, ...). */
function descendants(root: number): ProcessInfo[] {
  const all: ProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = readProcess(Number(name));
    if (info !== undefined) all.push(info);
  }
  const found: ProcessInfo[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift();
    for (const child of all) {
      if (child.ppid === parent && !found.some((f) => f.pid === child.pid)) {
        found.push(child);
        queue.push(child.pid);
      }
    }
  }
  return found;
}

/** Still running: the pid exists with the same command line and is not a zombie. */
function stillRunning(seen: ProcessInfo): boolean {
  const now = readProcess(seen.pid);
  return now !== undefined && now.state !== 'Z' && now.cmdline === seen.cmdline;
}

interface DemoRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Every descendant process seen while the demo ran. */
  readonly seen: ReadonlyMap<number, ProcessInfo>;
}

/**
 * Runs the demo; `when` (optional) is called with the output so far after each chunk and may
 * return a signal to send (once); descendants are sampled every 50 ms and right before a signal.
 */
function runDemo(args: readonly string[], when?: (stdout: string, seen: ReadonlyMap<number, ProcessInfo>) => NodeJS.Signals | undefined | Promise<NodeJS.Signals | undefined>): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const seen = new Map<number, ProcessInfo>();
    const sample = (): void => {
      if (child.pid === undefined || child.exitCode !== null) return;
      // The newest non-empty reading wins: between fork and exec a child's /proc cmdline is still
      // its parent's (`node demo.js`), and an exiting process (or a zombie) shows an empty one.
      for (const info of descendants(child.pid)) if (info.cmdline !== '' || !seen.has(info.pid)) seen.set(info.pid, info);
    };
    const sampler = setInterval(sample, 50);
    let stdout = '';
    let stderr = '';
    let signalled = false;
    let deciding = false;
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`demo did not finish in 60 s:\n${stdout}\n${stderr}`)); }, 60_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      // Every progress line is a moment the processes of the steps so far are up: sample then too,
      // not only on the timer (which a loaded machine can delay past a short-lived terminator).
      sample();
      if (when === undefined || signalled || deciding) return;
      deciding = true;
      void Promise.resolve(when(stdout, seen)).then((signal) => {
        deciding = false;
        if (signal !== undefined && !signalled) {
          signalled = true;
          sample();
          child.kill(signal);
        }
      }, (err: unknown) => { child.kill('SIGKILL'); reject(err); });
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearInterval(sampler);
      clearTimeout(timer);
      // Let the stdout pipe drain.
      setImmediate(() => resolve({ code, signal, stdout, stderr, seen }));
    });
  });
}

function line(stdout: string, pattern: RegExp): string {
  const found = stdout.split('\n').find((l) => pattern.test(l));
  assert.ok(found !== undefined, `no line matches ${String(pattern)} in:\n${stdout}`);
  return found;
}

/** The demo's temp dir and the gateway's plugin-server prefix, read from its narration. */
function tempDirs(stdout: string): string[] {
  const dirs: string[] = [];
  const demoDir = /PEM files in (\S+)/.exec(stdout)?.[1];
  if (demoDir !== undefined) dirs.push(demoDir);
  const socket = /plugin server socket (\S+)/.exec(stdout)?.[1];
  if (socket !== undefined) dirs.push(dirname(socket));
  return dirs;
}

function assertNothingLeft(run: DemoRun): void {
  const left = [...run.seen.values()].filter(stillRunning);
  assert.deepEqual(left.map((p) => `${p.pid} ${p.cmdline}`), [], 'processes left running');
  const dirs = tempDirs(run.stdout);
  assert.ok(dirs.length > 0, 'the narration names the temp dir');
  for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} was removed`);
}

function kinds(seen: ReadonlyMap<number, ProcessInfo>): Set<string> {
  const found = new Set<string>();
  for (const { cmdline } of seen.values()) {
    if (/idp-server\.js/.test(cmdline)) found.add('idp');
    if (/mtls-pop-pluginserver\.js/.test(cmdline) && !/--dump-all-plugins/.test(cmdline)) found.add('plugin-server');
    if (/^\S*haproxy /.test(cmdline)) found.add('haproxy');
    if (/^nginx: master/.test(cmdline) || /^\S*nginx /.test(cmdline)) found.add('nginx');
  }
  return found;
}

const CHALLENGE_NO_CERT = 'Bearer realm="localhost", error="invalid_token", error_description="no client certificate was presented"';
const CHALLENGE_STOLEN = 'Bearer realm="localhost", error="invalid_token", error_description="the client certificate thumbprint does not match the x5t#S256 claim"';

/** The narration every successful run prints, whatever the terminator. */
function assertFlow(stdout: string, terminatorLabel: RegExp): void {
  assert.doesNotMatch(stdout, /✗/);
  line(stdout, /^\[1\] ✓ PKI: root CA -> intermediate CA -> client-1, client-2; server certificate for localhost\/127\.0\.0\.1 \(\d+ ms\)$/);
  line(stdout, /^\[2\] ✓ IdP: oidc-provider \(the Keycloak stand-in\) on https:\/\/127\.0\.0\.1:\d+ \(\d+ ms\)$/);
  line(stdout, /^\[3\] ✓ upstream: echo service on http:\/\/127\.0\.0\.1:\d+/);
  line(stdout, /^\[4\] ✓ gateway \(Kong role\) on http:\/\/127\.0\.0\.1:\d+: Kong emulator \+ the real plugin server \(pid \d+\)/);
  line(stdout, new RegExp(`^\\[5\\] ✓ TLS terminator: ${terminatorLabel.source} on https://127\\.0\\.0\\.1:\\d+`));
  line(stdout, /^\[6\] ✓ token for client-1 from https:\/\/127\.0\.0\.1:\d+\/token over mTLS/);
  // cnf next to the openssl thumbprint, for both clients, each equal and the two different.
  const cnfs = [...stdout.matchAll(/^ {6}cnf {10}\{"x5t#S256":"([A-Za-z0-9_-]{43})"\}$/gm)].map((m) => m[1]);
  const openssl = [...stdout.matchAll(/^ {6}openssl {6}([A-Za-z0-9_-]{43}) {3}<- x5t#S256 of client-\d\.pem/gm)].map((m) => m[1]);
  assert.equal(cnfs.length, 2);
  assert.deepEqual(cnfs, openssl);
  assert.notEqual(cnfs[0], cnfs[1]);
  assert.equal(stdout.match(/✓ equal: the token is bound to client-\d's certificate/g)?.length, 2);

  const after = (pattern: RegExp): string[] => {
    const lines = stdout.split('\n');
    const at = lines.findIndex((l) => pattern.test(l));
    assert.ok(at >= 0, `no line matches ${String(pattern)}`);
    return lines.slice(at, at + 4);
  };
  assert.deepEqual(after(/^\[8\] ✓ GET \/headers with client-1's certificate and client-1's token -> 200 \(expected 200\)/).slice(1, 3),
    ['      status            200 OK', '      WWW-Authenticate  (none)']);
  assert.match(after(/^\[8\] /)[3] ?? '', /^ {6}upstream {10}received it, with x-client-cert: \S+\.\.\. \(\d+ chars, set by the terminator\)$/);
  // The verified identity mtls-pop handed to the upstream (upstream_headers).
  line(stdout, /^ {6}x-client-id {15}client-1 {3}<- set by mtls-pop \(upstream_headers\)$/);
  line(stdout, /^ {6}x-client-cert-subject {5}CN=client-1,O=mtls-pop tests {3}<- set by mtls-pop \(upstream_headers\)$/);
  assert.equal(stdout.match(/^ {6}x-client-cert-thumbprint {2}([A-Za-z0-9_-]{43}) {3}<- set by mtls-pop/m)?.[1], cnfs[0]);
  assert.deepEqual(after(/^\[9\] ✓ GET \/headers without a client certificate \(client-1's token\) -> 401 \(expected 401\)/).slice(1),
    ['      status            401 Unauthorized', `      WWW-Authenticate  ${CHALLENGE_NO_CERT}`, '      upstream          received nothing']);
  assert.deepEqual(after(/^\[10\] ✓ stolen token: GET \/headers with client-1's certificate and client-2's token -> 401 \(expected 401\)/).slice(1),
    ['      status            401 Unauthorized', `      WWW-Authenticate  ${CHALLENGE_STOLEN}`, '      upstream          received nothing']);
  line(stdout, /^\[11\] ✓ shut down: .+, gateway and plugin server, upstream, IdP stopped; \/\S+ removed \(\d+ ms\)$/);
}

const LABEL: Record<'haproxy' | 'nginx' | 'node', { chosen: RegExp; label: RegExp }> = {
  haproxy: { chosen: /^TLS terminator: HAProxy \(found at \S+haproxy\)$/m, label: /HAProxy \S+/ },
  nginx: { chosen: /^TLS terminator: nginx \(HAProxy is not installed; nginx found at \S+\)$/m, label: /nginx \S+/ },
  node: { chosen: /^TLS terminator: the Node TLS front \((neither HAProxy nor nginx is installed|as asked \(--terminator node\))\)$/m, label: /Node TLS front \(node \S+\)/ },
};

describe('npm run demo (node dist/scripts/demo.js)', () => {
  test('runs the seed\'s flow with the preferred terminator and exits 0, leaving nothing behind', async (t) => {
    const terminator = preferredTerminator();
    t.diagnostic(`terminator: ${terminator}`);
    const run = await runDemo([]);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.equal(run.stderr, '');
    assert.match(run.stdout, LABEL[terminator].chosen);
    assertFlow(run.stdout, LABEL[terminator].label);
    assert.match(run.stdout, /\n✓ every step behaved as expected: 11 steps in \d+\.\d s\n$/);
    const started = kinds(run.seen);
    for (const kind of ['idp', 'plugin-server', ...(terminator === 'node' ? [] : [terminator])]) {
      assert.ok(started.has(kind), `the demo started a ${kind} process (seen: ${[...run.seen.values()].map((p) => p.cmdline).join(' | ')})`);
    }
    assertNothingLeft(run);
  });

  test('bad arguments: exit 2 with the usage, nothing started', async () => {
    const run = await runDemo(['--terminator', 'envoy']);
    assert.equal(run.code, 2);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, '--terminator must be one of haproxy, nginx, node\n');
  });

  test('SIGINT mid-run (while the gateway starts): exit 130, every process stopped, temp dir removed', async () => {
    const run = await runDemo([], (stdout) => (/^\[2\] ✓ IdP/m.test(stdout) ? 'SIGINT' : undefined));
    assert.equal(run.code, 130, run.stdout);
    assert.match(run.stdout, /^SIGINT received: interrupting and shutting down$/m);
    assert.match(run.stdout, /^\[\d+\] ✓ shut down: everything started so far stopped; \/\S+ removed \(\d+ ms\)$/m);
    assert.match(run.stdout, /\n✗ interrupted by SIGINT during: start the stack \(at: start the (gateway|TLS terminator|echo upstream)[^)]*\)+; everything started was stopped \(\d+\.\d s\)\n$/);
    assert.doesNotMatch(run.stdout, /token for client-1/, 'the flow stopped where it was interrupted');
    assert.ok(kinds(run.seen).has('idp'), 'the IdP was running when the signal came');
    assertNothingLeft(run);
  });

  test('--hold with the Node TLS front fallback: the stack stays up (the printed curl commands work) until SIGTERM', async (t) => {
    const curl = findExecutable('curl');
    let curlResults: string[] = [];
    const run = await runDemo(['--terminator', 'node', '--hold'], async (stdout, seen) => {
      if (!/^The stack keeps running until Ctrl-C\. Try:\n {6}curl .+\n {6}curl .+\n/m.test(stdout)) return undefined;
      const commands = [...stdout.matchAll(/^ {6}(curl .+)$/gm)].map((m) => m[1] ?? '');
      if (curl !== null) {
        curlResults = commands.map((command) => execFileSync('sh', ['-c', command], { encoding: 'utf8' }).split('\r\n')[0] ?? '');
      } else {
        t.diagnostic('curl is not installed: the printed commands were not run');
      }
      const up = kinds(seen);
      assert.ok(up.has('idp') && up.has('plugin-server'), `IdP and plugin server running (seen: ${[...up].join(', ')})`);
      return 'SIGTERM';
    });
    assert.equal(run.code, 0, run.stdout);
    assert.match(run.stdout, LABEL.node.chosen);
    assertFlow(run.stdout, LABEL.node.label);
    if (curl !== null) assert.deepEqual(curlResults, ['HTTP/1.1 200 OK', 'HTTP/1.1 401 Unauthorized']);
    assert.match(run.stdout, /^SIGTERM received: stopping the stack$/m);
    assert.match(run.stdout, /\n✓ every step behaved as expected: 11 steps in \d+\.\d s\n$/);
    assertNothingLeft(run);
  });
});
