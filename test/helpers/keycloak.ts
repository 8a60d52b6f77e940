/**
 * The real Keycloak (the server distribution `.ci/run` installs from Maven Central) on loopback,
 * configured from docker-compose.yml's `keycloak` service, and the local stack around it:
 *
 *   client --mTLS--> HAProxy --x-client-cert--> Kong emulator + the REAL plugin server --> echo
 *   client --mTLS--> Keycloak (client-x509 / client secret; certificate-bound tokens)
 *
 * The compose service is the single source of the Keycloak options: its `KC_*` environment is
 * passed to `kc.sh` with `/certs/...` mapped to the certificates generated here by the compose
 * `certs` script (docker/gen-certs.sh, so the realm's exact subject and CA DNs match), its command
 * (`start-dev --import-realm`) is run as given, and every realm file it mounts into the import
 * directory is imported. Only the listener addresses change: HTTPS on a free loopback port, the
 * issuer `https://localhost:<port>`, dev mode's HTTP listener on another free loopback port.
 *
 * Keycloak runs from an overlay home (a temp dir): its own `data/` (H2 dev-file database, import
 * directory) and `conf/`, the distribution's jars through symlinks. `lib/quarkus` (the Quarkus
 * augmentation output) is the installation's own, so the dev-mode re-augmentation, the slow part of
 * a first start, is done once per installation.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import {
  copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { findExecutable, freePort, startHaproxy, type RunningTerminator } from './terminators.js';
import { haproxyConfig } from './stack.js';
import { KongEmulator, launcherCommand, startEchoUpstream, type EchoUpstream } from '../harness/kong-emulator.js';
import { repoRoot } from './repo-root.js';

/** The pinned Keycloak: `.ci/run` installs this version, docker-compose.yml's image tag names it. */
export const KEYCLOAK_VERSION = '26.7.3';
/** The pinned decK (`go install`ed by `.ci/run`). */
export const DECK_VERSION = 'v1.64.0';

/** Where `.ci/run` installs the tools (outside the repository): MTLS_POP_TOOLS_DIR or ~/.cache/mtls-pop. */
export function toolsDir(): string {
  return process.env.MTLS_POP_TOOLS_DIR ?? join(homedir(), '.cache', 'mtls-pop');
}

/** The Keycloak installation: MTLS_POP_KEYCLOAK_HOME or <tools>/keycloak-<version>. */
export function keycloakHome(): string {
  return process.env.MTLS_POP_KEYCLOAK_HOME ?? join(toolsDir(), `keycloak-${KEYCLOAK_VERSION}`);
}

/** The decK binary: MTLS_POP_DECK or <tools>/deck-<version>/deck. */
export function deckBinary(): string {
  return process.env.MTLS_POP_DECK ?? join(toolsDir(), `deck-${DECK_VERSION}`, 'deck');
}


/** What is missing to run Keycloak here (one line), or null. */
export function keycloakMissing(): string | null {
  const java = process.env.JAVA_HOME !== undefined && existsSync(join(process.env.JAVA_HOME, 'bin', 'java'))
    ? join(process.env.JAVA_HOME, 'bin', 'java')
    : findExecutable('java');
  if (java === null) return 'Java is not installed (Keycloak needs Java 17, 21 or 25)';
  const version = spawnSync(java, ['-version'], { encoding: 'utf8', timeout: 30_000 });
  if (version.status !== 0) return `${java} -version failed: ${(version.stderr ?? '').trim().split('\n')[0] ?? ''}`;
  const kc = join(keycloakHome(), 'bin', 'kc.sh');
  if (!existsSync(kc)) return `Keycloak ${KEYCLOAK_VERSION} is not installed (no ${kc}; bash .ci/run installs it)`;
  return null;
}

/** What is missing to run decK here (one line), or null. */
export function deckMissing(): string | null {
  const deck = deckBinary();
  if (!existsSync(deck)) return `decK ${DECK_VERSION} is not installed (no ${deck}; bash .ci/run installs it)`;
  return null;
}

/**
 * Skip reason for a suite that needs `missing`, or undefined to run it. With CI=true a missing
 * tool is not a skip: the suite runs and fails on it (see `assertPresent`).
 */
export function skipUnlessPresent(what: string, missing: string | null): string | undefined {
  if (missing === null || process.env.CI === 'true') return undefined;
  return `${what} skipped: ${missing}`;
}

/** Throws when `missing` is set (CI=true: a missing Keycloak, Java or decK fails the run). */
export function assertPresent(missing: string | null): void {
  if (missing !== null) throw new Error(`${missing}; CI=true, so this is a failure, not a skip`);
}

// ---------------------------------------------------------------------------------------------
// The compose service, mapped to a local process

export interface ComposeKeycloak {
  /** The image reference's default, e.g. quay.io/keycloak/keycloak:26.7.3. */
  readonly image: string;
  readonly command: readonly string[];
  readonly environment: Readonly<Record<string, string>>;
  /** Host paths (repository-relative) of the realm files mounted into the import directory. */
  readonly realmFiles: readonly string[];
}

const IMPORT_DIR = '/opt/keycloak/data/import/';
const CERTS_MOUNT = '/certs/';

/** docker-compose.yml's keycloak service, as the facts the local start needs. */
export function composeKeycloak(root = repoRoot()): ComposeKeycloak {
  const doc = parseYaml(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services?: Record<string, Record<string, unknown>> };
  const service = doc.services?.keycloak;
  if (service === undefined) throw new Error('docker-compose.yml has no keycloak service');
  const imageRef = String(service.image);
  const image = /^\$\{[A-Z_]+:-(.+)\}$/.exec(imageRef)?.[1] ?? imageRef;
  const rawEnv = service.environment;
  const environment: Record<string, string> = {};
  if (Array.isArray(rawEnv)) {
    for (const entry of rawEnv as string[]) {
      const at = entry.indexOf('=');
      environment[at < 0 ? entry : entry.slice(0, at)] = at < 0 ? '' : entry.slice(at + 1);
    }
  } else if (rawEnv !== null && typeof rawEnv === 'object') {
    for (const [k, v] of Object.entries(rawEnv as Record<string, unknown>)) environment[k] = String(v);
  }
  const realmFiles: string[] = [];
  for (const volume of (service.volumes as unknown[] | undefined) ?? []) {
    if (typeof volume !== 'string') continue;
    const [source = '', target = ''] = volume.split(':');
    if (target.startsWith(IMPORT_DIR)) realmFiles.push(source);
  }
  const command = Array.isArray(service.command) ? (service.command as unknown[]).map(String) : String(service.command ?? '').split(/\s+/);
  return { image, command, environment, realmFiles };
}

export interface KeycloakPorts {
  readonly https: number;
  readonly http: number;
}

/**
 * The compose environment for a local process: `/certs/x` -> `<certsDir>/x`, the hostname and
 * ports to loopback. Throws on a value naming another container path, so a compose change that
 * this mapping does not understand fails here instead of being silently dropped.
 */
export function localKeycloakEnv(compose: ComposeKeycloak, certsDir: string, ports: KeycloakPorts): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(compose.environment)) {
    if (!name.startsWith('KC_')) throw new Error(`keycloak environment ${name}: only KC_* options are mapped`);
    const mapped = value.split(',').map((part) => {
      if (part.startsWith(CERTS_MOUNT)) return join(certsDir, part.slice(CERTS_MOUNT.length));
      if (part.startsWith('/')) throw new Error(`keycloak environment ${name}=${value}: no local mapping for ${part}`);
      return part;
    }).join(',');
    env[name] = mapped;
  }
  env.KC_HTTPS_PORT = String(ports.https);
  env.KC_HOSTNAME = `https://localhost:${ports.https}`;
  // Dev mode also listens on HTTP (the compose healthcheck uses it): loopback, a free port.
  env.KC_HTTP_PORT = String(ports.http);
  env.KC_HTTP_HOST = '127.0.0.1';
  return env;
}

// ---------------------------------------------------------------------------------------------
// Keycloak process

export interface KeycloakServer {
  readonly version: string;
  readonly port: number;
  /** https://localhost:<port>/realms/<realm> */
  readonly issuer: string;
  readonly realm: string;
  readonly tokenEndpoint: string;
  readonly jwksUri: string;
  readonly caPem: string;
  /** Milliseconds from spawn to the realm's discovery document answering 200. */
  readonly startMs: number;
  /** Whether this start re-augmented Quarkus (a first start of an installation). */
  readonly augmented: boolean;
  output(): string;
  stop(): Promise<void>;
}

export interface StartKeycloakOptions {
  /** A directory the caller owns: the overlay home is made in it. */
  readonly dir: string;
  /** The compose certificates (docker/gen-certs.sh output). */
  readonly certsDir: string;
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

/** Runs docker/gen-certs.sh into `certsDir` (the compose `certs` service's PKI). */
export function generateComposeCerts(certsDir: string, root = repoRoot()): void {
  const run = spawnSync('sh', [join(root, 'docker', 'gen-certs.sh'), certsDir], { encoding: 'utf8', timeout: 120_000 });
  if (run.status !== 0) throw new Error(`gen-certs.sh failed (${run.status}): ${run.stderr}`);
}

function makeOverlayHome(dir: string, installation: string, realmSources: readonly string[]): string {
  const home = join(dir, 'keycloak-home');
  mkdirSync(join(home, 'bin'), { recursive: true });
  mkdirSync(join(home, 'lib'), { recursive: true });
  mkdirSync(join(home, 'data', 'import'), { recursive: true });
  mkdirSync(join(home, 'conf'), { recursive: true });
  // kc.sh takes its home from its own (resolved) location: a copy, not a symlink.
  copyFileSync(join(installation, 'bin', 'kc.sh'), join(home, 'bin', 'kc.sh'));
  for (const entry of ['lib/lib', 'lib/app', 'lib/quarkus', 'lib/quarkus-run.jar', 'themes', 'providers']) {
    const source = join(installation, entry);
    if (existsSync(source)) symlinkSync(source, join(home, entry));
  }
  for (const file of readdirSync(join(installation, 'conf'))) {
    const source = join(installation, 'conf', file);
    if (statSync(source).isFile()) copyFileSync(source, join(home, 'conf', file));
  }
  for (const source of realmSources) copyFileSync(source, join(home, 'data', 'import', basename(source)));
  return home;
}

/** GET url over HTTPS with the given CA (and client certificate): status and body. */
export function httpsGet(url: string, ca: string, init: { cert?: string; key?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return httpsRequest(url, ca, { ...init, method: 'GET' });
}

export function httpsRequest(url: string, ca: string, init: {
  method?: string; cert?: string; key?: string; headers?: Record<string, string>; body?: string;
}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = https.request({
      host: '127.0.0.1', port: Number(u.port), servername: u.hostname === '127.0.0.1' ? undefined : u.hostname,
      path: `${u.pathname}${u.search}`, method: init.method ?? 'GET', agent: false, ca,
      headers: { Host: u.host, ...(init.headers ?? {}) },
      ...(init.cert !== undefined ? { cert: init.cert, key: init.key } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`${url} timed out`)));
    req.on('error', reject);
    req.end(init.body);
  });
}

/**
 * Starts Keycloak as docker-compose.yml configures it and waits until the imported realm's
 * discovery document answers. Fails with the server's output when it exits or times out.
 */
export async function startKeycloak(options: StartKeycloakOptions): Promise<KeycloakServer> {
  const root = repoRoot();
  const compose = composeKeycloak(root);
  const tag = compose.image.split(':').pop();
  if (tag !== KEYCLOAK_VERSION) {
    throw new Error(`docker-compose.yml runs Keycloak ${compose.image}, the tests run ${KEYCLOAK_VERSION}: pin the same version`);
  }
  const installation = keycloakHome();
  const realmSources = compose.realmFiles.map((f) => join(root, f));
  if (realmSources.length === 0) throw new Error('docker-compose.yml mounts no realm file into the import directory');
  const realmName = (JSON.parse(readFileSync(realmSources[0]!, 'utf8')) as { realm: string }).realm;
  const home = makeOverlayHome(options.dir, installation, realmSources);
  const ports: KeycloakPorts = { https: await freePort(), http: await freePort() };
  const env = localKeycloakEnv(compose, options.certsDir, ports);
  const caPem = readFileSync(join(options.certsDir, 'ca.pem'), 'utf8');

  const t0 = performance.now();
  const child: ChildProcess = spawn(join(home, 'bin', 'kc.sh'), compose.command, {
    cwd: home, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    // C1 JIT only: a faster start on a small, shared machine (a JVM flag, not a Keycloak option).
    env: { ...process.env, JAVA_OPTS_APPEND: '-XX:TieredStopAtLevel=1', ...env },
  });
  let output = '';
  const append = (chunk: Buffer): void => {
    output += chunk.toString();
    if (output.length > 400_000) output = output.slice(-200_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => { gone = true; });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (gone || child.pid === undefined) return;
      const pid = child.pid;
      try { process.kill(-pid, 'SIGTERM'); } catch { /* gone */ }
      const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 20_000).unref());
      if ((await Promise.race([exited.then(() => 'exited' as const), timer])) === 'timeout') {
        try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
        await exited;
      }
    })();
    return stopping;
  };

  const issuer = `https://localhost:${ports.https}/realms/${realmName}`;
  const deadline = Date.now() + (options.timeoutMs ?? 420_000);
  for (;;) {
    if (gone) throw new Error(`Keycloak exited before it was ready:\n${output.slice(-6000)}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Keycloak was not ready within ${options.timeoutMs ?? 420_000} ms:\n${output.slice(-6000)}`);
    }
    const answer = await httpsGet(`${issuer}/.well-known/openid-configuration`, caPem).catch(() => null);
    if (answer?.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const startMs = performance.now() - t0;
  const augmented = output.includes('Updating the configuration');
  options.log?.(`Keycloak ${KEYCLOAK_VERSION} ready on ${issuer} in ${(startMs / 1000).toFixed(1)} s${augmented ? ' (including the one-time Quarkus re-augmentation)' : ''}`);
  return {
    version: KEYCLOAK_VERSION,
    port: ports.https,
    issuer,
    realm: realmName,
    tokenEndpoint: `${issuer}/protocol/openid-connect/token`,
    jwksUri: `${issuer}/protocol/openid-connect/certs`,
    caPem,
    startMs,
    augmented,
    output: () => output,
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// Tokens and the admin REST API

export class KeycloakTokenError extends Error {
  constructor(readonly status: number, readonly body: string) {
    super(`token request failed: HTTP ${status} ${body.slice(0, 300)}`);
    this.name = 'KeycloakTokenError';
  }
}

export interface TokenRequest {
  readonly clientId: string;
  /** Client secret (client-secret clients), sent in the form. */
  readonly clientSecret?: string;
  /** TLS client certificate and key presented to Keycloak. */
  readonly cert?: string;
  readonly key?: string;
}

/** client_credentials at the token endpoint over (m)TLS: the access token, or KeycloakTokenError. */
export async function keycloakToken(kc: KeycloakServer, request: TokenRequest): Promise<string> {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: request.clientId });
  if (request.clientSecret !== undefined) form.set('client_secret', request.clientSecret);
  const { status, body } = await httpsRequest(kc.tokenEndpoint, kc.caPem, {
    method: 'POST', body: form.toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    ...(request.cert !== undefined ? { cert: request.cert, key: request.key } : {}),
  });
  if (status !== 200) throw new KeycloakTokenError(status, body);
  const token = (JSON.parse(body) as { access_token?: unknown }).access_token;
  if (typeof token !== 'string') throw new KeycloakTokenError(status, body);
  return token;
}

/** The admin REST API as the bootstrap admin of the compose environment. */
export class KeycloakAdmin {
  private constructor(private readonly kc: KeycloakServer, private readonly token: string) {}

  static async login(kc: KeycloakServer): Promise<KeycloakAdmin> {
    const env = composeKeycloak().environment;
    const form = new URLSearchParams({
      grant_type: 'password', client_id: 'admin-cli',
      username: env.KC_BOOTSTRAP_ADMIN_USERNAME ?? 'admin', password: env.KC_BOOTSTRAP_ADMIN_PASSWORD ?? 'admin',
    });
    const base = kc.issuer.slice(0, kc.issuer.indexOf('/realms/'));
    const { status, body } = await httpsRequest(`${base}/realms/master/protocol/openid-connect/token`, kc.caPem, {
      method: 'POST', body: form.toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    if (status !== 200) throw new Error(`admin login: HTTP ${status} ${body.slice(0, 300)}`);
    return new KeycloakAdmin(kc, (JSON.parse(body) as { access_token: string }).access_token);
  }

  async call(method: string, path: string, json?: unknown): Promise<{ status: number; body: string }> {
    const base = this.kc.issuer.slice(0, this.kc.issuer.indexOf('/realms/'));
    return httpsRequest(`${base}/admin/realms/${this.kc.realm}${path}`, this.kc.caPem, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, ...(json !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const answer = await this.call(method, path, body);
    if (answer.status < 200 || answer.status >= 300) throw new Error(`${method} ${path}: HTTP ${answer.status} ${answer.body.slice(0, 300)}`);
    return (answer.body === '' ? undefined : JSON.parse(answer.body)) as T;
  }
}

export interface KeyComponent {
  readonly id: string;
  readonly name: string;
  readonly providerId: string;
  readonly parentId: string;
  readonly config: Record<string, string[]>;
}

/**
 * Key rotation as an operator does it through the admin REST API: a new `rsa-generated` RS256
 * provider with a higher priority than every existing one, then each older RS256 provider
 * disabled (`enabled: false`, so its key leaves the JWKS). Returns the new key's kid.
 */
export async function rotateRs256Key(admin: KeycloakAdmin, name: string): Promise<{ kid: string; disabled: string[] }> {
  const realm = await admin.json<{ id: string }>('GET', '');
  const components = await admin.json<KeyComponent[]>('GET', `/components?parent=${realm.id}&type=org.keycloak.keys.KeyProvider`);
  const rs256 = components.filter((c) => (c.providerId === 'rsa-generated' || c.providerId === 'rsa')
    && (c.config.algorithm?.[0] ?? 'RS256') === 'RS256');
  const top = Math.max(0, ...rs256.map((c) => Number(c.config.priority?.[0] ?? 0)));
  const created = await admin.call('POST', '/components', {
    name, providerId: 'rsa-generated', providerType: 'org.keycloak.keys.KeyProvider', parentId: realm.id,
    config: { priority: [String(top + 100)], algorithm: ['RS256'], keySize: ['2048'], enabled: ['true'], active: ['true'] },
  });
  if (created.status !== 201) throw new Error(`creating the key provider: HTTP ${created.status} ${created.body}`);
  for (const old of rs256) {
    await admin.json('PUT', `/components/${old.id}`, { ...old, config: { ...old.config, enabled: ['false'] } });
  }
  const keys = await admin.json<{ keys: Array<{ kid: string; algorithm: string; providerPriority: number; status: string; use?: string }> }>('GET', '/keys');
  const active = keys.keys.filter((k) => k.algorithm === 'RS256' && k.status === 'ACTIVE')
    .sort((a, b) => b.providerPriority - a.providerPriority);
  if (active[0] === undefined) throw new Error('no active RS256 key after the rotation');
  return { kid: active[0].kid, disabled: rs256.map((c) => c.name) };
}

// ---------------------------------------------------------------------------------------------
// The gateway stack in front of an echo upstream

/** The CA entity id kong.yml names; the emulated Admin API serves the compose CA under it. */
function kongYmlMtlsPop(root: string): { config: Record<string, unknown>; caIds: string[] } {
  const doc = parseYaml(readFileSync(join(root, 'kong.yml'), 'utf8')) as {
    services: Array<{ routes?: Array<{ plugins?: Array<{ name: string; config?: Record<string, unknown> }> }> }>;
    ca_certificates?: Array<{ id: string }>;
  };
  for (const service of doc.services) {
    for (const route of service.routes ?? []) {
      for (const plugin of route.plugins ?? []) {
        if (plugin.name === 'mtls-pop' && plugin.config !== undefined) {
          return { config: plugin.config, caIds: (doc.ca_certificates ?? []).map((c) => c.id) };
        }
      }
    }
  }
  throw new Error('kong.yml has no mtls-pop plugin');
}

/** A string with `https://keycloak:8443` (the compose address) replaced by the local Keycloak's. */
function localize(value: unknown, from: string, to: string, caPem: string): unknown {
  if (typeof value === 'string') return value.trim() === '@@MTLS_POP_CA_PEM@@' ? caPem : value.split(from).join(to);
  if (Array.isArray(value)) return value.map((v) => localize(v, from, to, caPem));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, localize(v, from, to, caPem)]));
  }
  return value;
}

/** Counts requests to the JWKS and forwards them to Keycloak (a test's view of "one JWKS fetch"). */
export interface CountingJwks {
  readonly url: string;
  count(): number;
  close(): Promise<void>;
}

async function startCountingJwks(kc: KeycloakServer, certPem: string, keyPem: string): Promise<CountingJwks> {
  let count = 0;
  const server = https.createServer({ cert: certPem, key: keyPem }, (req, res) => {
    count += 1;
    httpsGet(kc.jwksUri, kc.caPem).then(({ status, body }) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(body);
    }, (err: Error) => {
      res.writeHead(502);
      res.end(err.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://localhost:${port}/certs`,
    count: () => count,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export type DemoClient = 'client-1' | 'client-2' | 'rogue-client-1';

export interface KeycloakStack {
  readonly kc: KeycloakServer;
  readonly certsDir: string;
  readonly emulator: KongEmulator;
  readonly echo: EchoUpstream;
  readonly terminatorUrl: string;
  readonly jwksCounter: CountingJwks;
  /** kong.yml's mtls-pop config with the local Keycloak's URLs and the generated CA. */
  readonly kongYmlConfig: Readonly<Record<string, unknown>>;
  /** PEM certificate and key of a client (rogue-client-1: same subject as client-1, a look-alike CA with the demo CA's DN). */
  client(name: DemoClient): { cert: string; key: string };
  request(path: string, init?: { client?: DemoClient; token?: string }): Promise<{ status: number; body: string; wwwAuthenticate?: string }>;
  stop(): Promise<void>;
}

/** Routes of the Keycloak stack, each with its own plugin instance (its own JWKS cache). */
export const KC_ROUTES = {
  /** kong.yml's config as shipped (issuer and jwks_endpoint), localized. */
  kongYml: '/headers',
  /** Discovery from `issuer` alone (no jwks_endpoint). */
  discovery: '/discovery',
  /** jwks_endpoint through a counting forwarder, rediscovery_lifetime 0: the rotation test. */
  rotation: '/rotation',
} as const;

/** A look-alike CA with the demo CA's exact subject DN (a different key) and a client-1 under it. */
function makeRogueClient(dir: string): { cert: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const sh = (args: string[]): void => {
    const run = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`openssl ${args[0]}: ${run.stderr}`);
  };
  sh(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-days', '30', '-subj', '/O=mtls-pop demo/CN=mtls-pop demo root CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  sh(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'client.key', '-out', 'client.csr',
    '-subj', '/O=mtls-pop demo/CN=client-1']);
  writeFileSync(join(dir, 'ext.cnf'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  sh(['x509', '-req', '-in', 'client.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '30', '-extfile', 'ext.cnf', '-out', 'client.pem']);
  return { cert: readFileSync(join(dir, 'client.pem'), 'utf8'), key: readFileSync(join(dir, 'client.key'), 'utf8') };
}

/** dist/test/helpers -> dist/plugins */
const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');

/**
 * Echo upstream, the Kong emulator with the real plugin server (kong.yml's config and two
 * variants, each behind the fail-closed guard) and HAProxy in front, for a running Keycloak.
 */
export async function startKeycloakStack(kc: KeycloakServer, options: { dir: string; certsDir: string }): Promise<KeycloakStack> {
  const root = repoRoot();
  const haproxy = findExecutable('haproxy');
  if (haproxy === null) throw new Error('haproxy is not installed');
  const { certsDir } = options;
  const read = (file: string): string => readFileSync(join(certsDir, file), 'utf8');
  const clients: Record<DemoClient, { cert: string; key: string }> = {
    'client-1': { cert: read('client-1.pem'), key: read('client-1.key') },
    'client-2': { cert: read('client-2.pem'), key: read('client-2.key') },
    'rogue-client-1': makeRogueClient(join(options.dir, 'rogue')),
  };
  const stoppers: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
    stoppers.length = 0;
  };
  try {
    const jwksCounter = await startCountingJwks(kc, read('keycloak.pem'), read('keycloak.key'));
    stoppers.push(() => jwksCounter.close());
    const echo = await startEchoUpstream();
    stoppers.push(() => echo.close());
    const adminPort = await freePort();
    const { config: shipped, caIds } = kongYmlMtlsPop(root);
    const composeOrigin = 'https://keycloak:8443';
    const localOrigin = `https://localhost:${kc.port}`;
    const kongYmlConfig: Record<string, unknown> = {
      ...(localize(shipped, composeOrigin, localOrigin, kc.caPem) as Record<string, unknown>),
      admin_api_url: `http://127.0.0.1:${adminPort}`,
    };
    const discoveryConfig = { ...kongYmlConfig };
    delete discoveryConfig.jwks_endpoint;
    const rotationConfig = { ...kongYmlConfig, jwks_endpoint: jwksCounter.url, rediscovery_lifetime: 0 };
    const route = (name: string, path: string, config: Record<string, unknown>) => ({
      name, paths: [path], strip_path: false, upstream: echo.url, guard: true,
      // display_errors: the tests read the reason code in the 401 body.
      plugins: [{ name: 'mtls-pop', config: { ...config, display_errors: true, cache_tokens_salt: randomBytes(16).toString('base64url') } }],
    });
    const emulator = await KongEmulator.start({
      pluginServer: launcherCommand(PLUGINS_DIR),
      config: {
        routes: [
          route('headers', KC_ROUTES.kongYml, kongYmlConfig),
          route('discovery', KC_ROUTES.discovery, discoveryConfig),
          route('rotation', KC_ROUTES.rotation, rotationConfig),
        ],
        trusted_ips: ['127.0.0.1'],
        adminApi: { ca_certificates: Object.fromEntries(caIds.map((id) => [id, kc.caPem])), port: adminPort },
      },
    });
    stoppers.push(() => emulator.close());
    const gatewayPort = Number(new URL(emulator.url).port);
    const port = await freePort();
    const front: RunningTerminator = await startHaproxy(haproxy, options.dir,
      haproxyConfig(port, gatewayPort, join(certsDir, 'haproxy.pem'), join(certsDir, 'ca.pem')), port);
    stoppers.push(() => front.stop());

    return {
      kc, certsDir, emulator, echo, jwksCounter, kongYmlConfig,
      terminatorUrl: `https://localhost:${port}`,
      client: (name) => clients[name],
      request(path, init = {}) {
        return new Promise((resolve, reject) => {
          const headers: Record<string, string> = { Host: 'localhost' };
          if (init.token !== undefined) headers.Authorization = `Bearer ${init.token}`;
          const c = init.client !== undefined ? clients[init.client] : undefined;
          const req = https.request({
            host: '127.0.0.1', port, servername: 'localhost', path, method: 'GET', agent: false, ca: kc.caPem, headers,
            ...(c !== undefined ? { cert: c.cert, key: c.key } : {}),
          }, (res: http.IncomingMessage) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('end', () => {
              const www = res.headers['www-authenticate'];
              resolve({
                status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'),
                ...(www !== undefined ? { wwwAuthenticate: Array.isArray(www) ? www.join(', ') : www } : {}),
              });
            });
            res.on('error', reject);
          });
          req.setTimeout(30_000, () => req.destroy(new Error(`${path} timed out`)));
          req.on('error', reject);
          req.end();
        });
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** x5t#S256 of a PEM certificate (Node's parser; the tests compare it with openssl's). */
export function thumbprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}
