/**
 * Prometheus metrics of the plugin server (`--metrics-port`), through the REAL launcher and the
 * Kong emulator: exact counter values after known allow/deny requests, the text format, the
 * listener only on 127.0.0.1 and only when asked for, and the command line / environment.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminApiEmulator, KongEmulator, launcherCommand } from '../harness/kong-emulator.js';
import { httpRequest } from '../harness/http.js';
import { freePort } from '../helpers/terminators.js';
import { makeTestPki, type TestPki, type Issued } from '../helpers/pki.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { parseCli } from '../../bin/pluginserver/cli.js';
import { MetricsRegistry } from '../../kong/metrics.js';

const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');
const LAUNCHER = join(__dirname, '..', '..', 'bin', 'mtls-pop-pluginserver.js');
const CA_UUID = '0b7a4c1e-2f3d-4e5a-8b6c-7d8e9f0a1b2c';

let pki: TestPki;
let idp: JwksServer;
let emu: KongEmulator;
let adminPort: number;
let metricsPort: number;
let deadIdpPort: number;

const x5t = (cert: Issued): string => createHash('sha256').update(cert.der).digest('base64url');

function claims(cert: Issued | null): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: idp.issuer, sub: 'svc-1', iat: now, exp: now + 600, ...(cert === null ? {} : { cnf: { 'x5t#S256': x5t(cert) } }) };
}

function chainHeader(leaf: Issued): string {
  return `${leaf.der.toString('base64')},${pki.intermediate.der.toString('base64')}`;
}

function pluginConfig(issuer: string, mode: string): Record<string, unknown> {
  return {
    issuer,
    proof_of_possession_mtls: mode,
    proof_of_possession_mtls_from_header: {
      certificate_header_name: 'x-client-cert', certificate_header_format: 'base64_encoded', ca_certificates: [CA_UUID], revocation_check_mode: 'SKIP',
    },
    admin_api_url: `http://127.0.0.1:${adminPort}`,
    timeout: 2000,
  };
}

/** Samples of the exposition as `name{labels}` -> value (comments skipped). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `a valid sample line: ${line}`);
    out.set(m[1] ?? '', Number(m[2]));
  }
  return out;
}

async function scrape(port: number): Promise<{ status: number; contentType: string | undefined; body: string }> {
  const res = await httpRequest(`http://127.0.0.1:${port}/metrics`);
  return { status: res.status, contentType: res.headers['content-type'] as string | undefined, body: res.body };
}

/** TCP ports a process listens on (Linux /proc), with their local address in hex as /proc shows it. */
function listeningPorts(pid: number): Array<{ address: string; port: number }> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1] !== undefined) inodes.add(m[1]);
    } catch { /* fd closed meanwhile */ }
  }
  const out: Array<{ address: string; port: number }> = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const row of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = row.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9] ?? '')) continue;
      const [address = '', port = '0'] = (cols[1] ?? '').split(':');
      out.push({ address, port: parseInt(port, 16) });
    }
  }
  return out;
}

/** Starts the launcher alone (no Kong) and waits for its socket. */
async function startLauncher(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; stderr: () => string; stop: () => Promise<void> }> {
  const prefix = mkdtempSync(join(tmpdir(), 'mtls-pop-metrics-'));
  const child = spawn(process.execPath, [LAUNCHER, '-d', PLUGINS_DIR, '-p', prefix, '--sock-name', 'm.sock', ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const deadline = Date.now() + 10_000;
  while (!existsSync(join(prefix, 'm.sock'))) {
    if (child.exitCode !== null) throw new Error(`launcher exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`launcher not ready: ${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    child,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

before(async () => {
  pki = await makeTestPki();
  idp = await startJwksServer();
  // Bound on port 0 before the routes name it (a port probed free and bound later may be taken).
  const adminApi = await AdminApiEmulator.start({ ca_certificates: { [CA_UUID]: pki.root.pem } });
  adminPort = adminApi.port;
  metricsPort = await freePort();
  deadIdpPort = await freePort();
  const route = (name: string, config: Record<string, unknown>) => ({ name, paths: [`/${name}`], plugins: [{ name: 'mtls-pop', config }], guard: true });
  emu = await KongEmulator.start({
    pluginServer: launcherCommand(PLUGINS_DIR, ['--metrics-port', String(metricsPort)]),
    rpcTimeoutMs: 5000,
    config: {
      routes: [
        route('strict', pluginConfig(idp.issuer, 'strict')),
        route('optional', pluginConfig(idp.issuer, 'optional')),
        route('dead', pluginConfig(`http://127.0.0.1:${deadIdpPort}/realms/none`, 'strict')),
      ],
      trusted_ips: ['127.0.0.1'],
      adminApi: { server: adminApi },
    },
  });
  await waitFor(() => emu.pluginServer.stderr.includes('metrics on'), 'the metrics endpoint');
});

after(async () => {
  await emu?.close();
  await idp?.close();
});

describe('GET /metrics through the real plugin server', () => {
  test('exact counters after known allow and deny requests', async () => {
    const fresh = samples((await scrape(metricsPort)).body);
    assert.equal(fresh.get('mtls_pop_jwks_fetches_total'), 0);
    assert.equal(fresh.get('mtls_pop_cache_hits_total{cache="token"}'), 0);
    assert.equal([...fresh.keys()].filter((k) => k.startsWith('mtls_pop_requests_total')).length, 0, 'no request yet');

    const bound = await idp.sign(claims(pki.client));
    const other = await idp.sign(claims(pki.otherClient));
    const unbound = await idp.sign(claims(null));
    const cert = chainHeader(pki.client);
    const run = async (route: string, headers: Record<string, string>): Promise<number | undefined> =>
      (await emu.runAccess(route, { path: `/${route}/x`, clientIp: '127.0.0.1', headers })).response?.status;

    assert.equal(await run('strict', { authorization: `Bearer ${bound}`, 'x-client-cert': cert }), undefined, 'allowed');
    assert.equal(await run('strict', { authorization: `Bearer ${bound}`, 'x-client-cert': cert }), undefined, 'allowed again');
    assert.equal(await run('strict', { authorization: `Bearer ${other}`, 'x-client-cert': cert }), 401);
    assert.equal(await run('strict', {}), 401);
    assert.equal(await run('optional', { authorization: `Bearer ${unbound}` }), undefined, 'allowed, unbound');
    assert.equal(await run('dead', { authorization: `Bearer ${bound}`, 'x-client-cert': cert }), 401);

    const scraped = await scrape(metricsPort);
    assert.equal(scraped.status, 200);
    assert.equal(scraped.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    const m = samples(scraped.body);
    const requests = Object.fromEntries([...m].filter(([k]) => k.startsWith('mtls_pop_requests_total')));
    assert.deepEqual(requests, {
      'mtls_pop_requests_total{outcome="allow",reason="bound"}': 2,
      'mtls_pop_requests_total{outcome="allow",reason="unbound"}': 1,
      'mtls_pop_requests_total{outcome="deny",reason="certificate_thumbprint_mismatch"}': 1,
      'mtls_pop_requests_total{outcome="deny",reason="jwks_unavailable"}': 1,
      'mtls_pop_requests_total{outcome="deny",reason="token_missing"}': 1,
    });
    const caches = Object.fromEntries([...m].filter(([k]) => k.startsWith('mtls_pop_cache_')));
    assert.deepEqual(caches, {
      'mtls_pop_cache_hits_total{cache="token"}': 0,
      'mtls_pop_cache_hits_total{cache="certificate"}': 1,
      'mtls_pop_cache_hits_total{cache="decision"}': 1,
      'mtls_pop_cache_misses_total{cache="token"}': 4,
      'mtls_pop_cache_misses_total{cache="certificate"}': 1, // the dead route fails at the token, before the certificate is looked up
      'mtls_pop_cache_misses_total{cache="decision"}': 3, // the optional route's request has no certificate header: no decision key
    });
    assert.equal(m.get('mtls_pop_jwks_fetches_total'), 3, 'one fetch cycle per route (strict, optional, dead)');
    assert.equal(m.get('mtls_pop_jwks_fetch_failures_total'), 1, 'the dead IdP');
    assert.ok((m.get('process_resident_memory_bytes') ?? 0) > 1e6);
    assert.ok((m.get('process_start_time_seconds') ?? 0) > 1.7e9);
    // No subject, thumbprint, token or address in any label.
    assert.ok(!scraped.body.includes(x5t(pki.client)));
    assert.ok(!scraped.body.includes('CN='));
    assert.ok(!scraped.body.includes('127.0.0.1'));
    assert.match(scraped.body, /^# HELP mtls_pop_requests_total .+\n# TYPE mtls_pop_requests_total counter\n/);

    // The same request again moves exactly its own counters.
    assert.equal(await run('strict', { authorization: `Bearer ${bound}`, 'x-client-cert': cert }), undefined);
    const again = samples((await scrape(metricsPort)).body);
    assert.equal(again.get('mtls_pop_requests_total{outcome="allow",reason="bound"}'), 3);
    assert.equal(again.get('mtls_pop_cache_hits_total{cache="decision"}'), 2);
    assert.equal(again.get('mtls_pop_cache_misses_total{cache="decision"}'), 3);
    assert.equal(again.get('mtls_pop_jwks_fetches_total'), 3);
  });

  test('listens on 127.0.0.1 at the given port only; other paths 404, other methods 405', async () => {
    const ports = listeningPorts(emu.pluginServer.pid ?? 0);
    assert.deepEqual(ports, [{ address: '0100007F', port: metricsPort }]);
    assert.equal((await httpRequest(`http://127.0.0.1:${metricsPort}/`)).status, 404);
    assert.equal((await httpRequest(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST', body: 'x' })).status, 405);
  });
});

describe('opt-in', () => {
  test('without --metrics-port no TCP listener is opened', async () => {
    const env = { ...process.env };
    delete env['MTLS_POP_METRICS_PORT'];
    const launcher = await startLauncher([], env);
    try {
      assert.ok(launcher.child.pid !== undefined);
      // The endpoint would be bound right after the socket: give it time to show up if it were.
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(listeningPorts(launcher.child.pid), []);
      assert.ok(!launcher.stderr().includes('metrics on'));
    } finally {
      await launcher.stop();
    }
  });

  test('MTLS_POP_METRICS_PORT is the fallback when the flag is absent', async () => {
    const port = await freePort();
    const launcher = await startLauncher([], { ...process.env, MTLS_POP_METRICS_PORT: String(port) });
    try {
      await waitFor(() => launcher.stderr().includes('metrics on'), 'the metrics endpoint');
      assert.match(launcher.stderr(), new RegExp(`metrics on http://127\\.0\\.0\\.1:${port}/metrics`));
      const scraped = await scrape(port);
      assert.equal(scraped.status, 200);
      assert.equal(samples(scraped.body).get('mtls_pop_jwks_fetches_total'), 0);
      assert.deepEqual(listeningPorts(launcher.child.pid ?? 0), [{ address: '0100007F', port }]);
    } finally {
      await launcher.stop();
    }
  });

  test('a port already in use is logged and the plugin server keeps running', async () => {
    const launcher = await startLauncher(['--metrics-port', String(metricsPort)], process.env);
    try {
      await waitFor(() => launcher.stderr().includes('metrics endpoint not started'), 'the error line');
      assert.equal(launcher.child.exitCode, null);
    } finally {
      await launcher.stop();
    }
  });
});

describe('command line', () => {
  test('--metrics-port / --metrics-host / MTLS_POP_METRICS_PORT', () => {
    const run = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const parsed = parseCli(['-d', '/p', ...argv], '/', env);
      return parsed.kind === 'run' ? { port: parsed.options.metricsPort, host: parsed.options.metricsHost } : parsed;
    };
    assert.deepEqual(run([]), { port: null, host: '127.0.0.1' });
    assert.deepEqual(run(['--metrics-port', '9542']), { port: 9542, host: '127.0.0.1' });
    assert.deepEqual(run(['--metrics-port=9542', '--metrics-host', '::1']), { port: 9542, host: '::1' });
    assert.deepEqual(run([], { MTLS_POP_METRICS_PORT: '9100' }), { port: 9100, host: '127.0.0.1' });
    assert.deepEqual(run(['--metrics-port', '9542'], { MTLS_POP_METRICS_PORT: '9100' }), { port: 9542, host: '127.0.0.1' }, 'the flag wins');
    assert.deepEqual(run([], { MTLS_POP_METRICS_PORT: '' }), { port: null, host: '127.0.0.1' });
    assert.deepEqual(run(['--metrics-port', '65536']), { kind: 'error', message: "option '--metrics-port': '65536' is not a port number (0-65535)" });
    assert.deepEqual(run(['--metrics-port', '-1']), { kind: 'error', message: "option '--metrics-port': '-1' is not a port number (0-65535)" });
    assert.deepEqual(run([], { MTLS_POP_METRICS_PORT: 'abc' }), { kind: 'error', message: "MTLS_POP_METRICS_PORT: 'abc' is not a port number (0-65535)" });
    assert.deepEqual(run(['--metrics-port']), { kind: 'error', message: "option '--metrics-port' argument missing" });
  });
});

describe('registry', () => {
  test('an unknown reason never becomes a label value', async () => {
    const registry = new MetricsRegistry();
    registry.countRequest({ outcome: 'deny', reason: 'token_expired' });
    registry.countRequest({ outcome: 'deny', reason: 'CN=evil"} 1\nx' as 'token_expired' });
    const m = samples(await registry.render());
    assert.equal(m.get('mtls_pop_requests_total{outcome="deny",reason="token_expired"}'), 1);
    assert.equal(m.get('mtls_pop_requests_total{outcome="deny",reason="other"}'), 1);
    assert.equal(m.size, 2 + 6 + 2);
  });
});
