/**
 * Offline checks of the Kubernetes kit (deploy/kubernetes/, docs/kubernetes.md):
 * - every KongPlugin manifest validates against the openAPIV3Schema of Kong's published KongPlugin
 *   CRD (Kong/kubernetes-configuration, read from ../shared/k8s/crds/ beside the repository; the
 *   CRD tests skip with one line when that folder is absent; MTLS_POP_K8S_CRDS overrides the
 *   folder), plus the CRD's x-kubernetes-validations CEL rules, evaluated by a checker that knows
 *   the rule shapes those CRDs use and fails on any other;
 * - the mtls-pop KongPlugin, with its configPatches applied from the CA Secret, is the seed's
 *   configuration and passes the plugin's own parseConfig; the guard is kong.yml's guard;
 * - the Ingress and HTTPRoute attach exactly those two KongPlugins;
 * - the Helm values use only keys of the kong/kong chart version recorded in kong-chart-keys.json,
 *   and their plugin-server settings agree with the image the Dockerfile builds.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import Ajv from 'ajv';
import { parseConfig } from '../../src/config.js';
import { Name as PLUGIN_NAME, VERIFIED_FLAG } from '../../plugins/mtls-pop.js';
import { seedConfig } from '../helpers/seed.js';
import { issue } from '../helpers/pki.js';
import { findExecutable } from '../helpers/terminators.js';
import { repoRoot } from '../helpers/repo-root.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown, what: string): JsonObject {
  assert.ok(isObject(value), `${what} must be a mapping`);
  return value;
}

function str(value: unknown, what: string): string {
  assert.equal(typeof value, 'string', `${what} must be a string`);
  return value as string;
}


const ROOT = repoRoot();
const KIT = join(ROOT, 'deploy', 'kubernetes');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');
/** Kong's published CRDs, next to the repository (path.join(repoRoot, '..', 'shared', 'k8s', 'crds')). */
const CRD_DIR = process.env.MTLS_POP_K8S_CRDS ?? join(ROOT, '..', 'shared', 'k8s', 'crds');
const CRDS_PRESENT = existsSync(join(CRD_DIR, 'configuration.konghq.com_kongplugins.yaml'));
const CRD_SKIP = `Kong CRDs not found at ${CRD_DIR} (../shared/k8s/crds beside the repository)`;

interface Manifest { readonly file: string; readonly doc: JsonObject }

const manifests: Manifest[] = readdirSync(KIT).filter((f) => f.endsWith('.yaml') && f !== 'values.yaml').sort().flatMap((file) =>
  parseAllDocuments(readFileSync(join(KIT, file), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], `${file}: YAML errors`);
    return { file, doc: obj(d.toJSON() as unknown, file) };
  }));
const ofKind = (kind: string): Manifest[] => manifests.filter((m) => m.doc.kind === kind);
const kongPlugins = ofKind('KongPlugin');
const kongPlugin = (plugin: string): JsonObject => {
  const found = kongPlugins.filter((m) => m.doc.plugin === plugin);
  assert.equal(found.length, 1, `one KongPlugin for ${plugin}`);
  return found[0]!.doc;
};
const metadataName = (doc: JsonObject): string => str(obj(doc.metadata, 'metadata').name, 'metadata.name');

// ---------------------------------------------------------------------------------------------
// CRD schema and CEL rules
// ---------------------------------------------------------------------------------------------

interface CelRule { readonly rule: string; readonly message: string }
interface CrdVersion { readonly schema: JsonObject; readonly rules: Array<{ path: string[]; rule: CelRule }> }

/** The served storage version's openAPIV3Schema and every x-kubernetes-validations rule in it (with its path). */
function loadCrd(file: string, kind: string): CrdVersion {
  const crd = obj(parseYaml(readFileSync(join(CRD_DIR, file), 'utf8')) as unknown, file);
  const spec = obj(crd.spec, 'spec');
  assert.equal(obj(spec.names, 'names').kind, kind);
  const versions = (spec.versions as Json[]).map((v) => obj(v, 'version'));
  const v1 = versions.find((v) => v.name === 'v1' && v.served === true && v.storage === true);
  assert.ok(v1, `${kind} CRD serves v1`);
  const schema = obj(obj(v1.schema, 'schema').openAPIV3Schema, 'openAPIV3Schema');
  const rules: Array<{ path: string[]; rule: CelRule }> = [];
  const walk = (node: JsonObject, path: string[]): void => {
    for (const r of (node['x-kubernetes-validations'] as Json[] | undefined) ?? []) {
      const rule = obj(r, 'validation');
      rules.push({ path, rule: { rule: str(rule.rule, 'rule'), message: str(rule.message, 'message') } });
    }
    for (const [key, child] of Object.entries(obj(node.properties ?? {}, 'properties'))) walk(obj(child, key), [...path, key]);
    if (isObject(node.items)) walk(node.items, [...path, '[]']);
  };
  walk(schema, []);
  return { schema, rules };
}

/**
 * A structural schema as JSON Schema for Ajv: unknown fields are errors wherever the schema lists
 * properties and does not preserve unknown fields (the API server's strict field validation,
 * `kubectl apply --validate=strict`, reports them; without it they are silently dropped, which
 * hides typos such as `configpatch`).
 */
function strictStructural(node: Json): Json {
  if (Array.isArray(node)) return node.map(strictStructural);
  if (!isObject(node)) return node;
  const out: JsonObject = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === 'default' || k === 'example' ? v : strictStructural(v)]));
  if (isObject(node.properties) && node.additionalProperties === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return out;
}

function compileCrd(crd: CrdVersion): (doc: unknown) => string[] {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
  for (const keyword of ['x-kubernetes-preserve-unknown-fields', 'x-kubernetes-validations', 'x-kubernetes-list-map-keys',
    'x-kubernetes-list-type', 'x-kubernetes-map-type', 'x-kubernetes-int-or-string', 'x-kubernetes-embedded-resource']) {
    ajv.addKeyword({ keyword });
  }
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('date-time', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/i);
  const validate = ajv.compile(strictStructural(crd.schema) as JsonObject);
  return (doc) => (validate(doc) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`));
}

/**
 * Evaluates the CEL rule shapes of Kong's KongPlugin/KongClusterPlugin CRDs. `oldSelf` rules are
 * transition rules (checked on update only): re-applying the same manifest, oldSelf = self.
 * Any other rule fails the test, so a new CRD rule cannot pass unchecked.
 */
function celHolds(rule: string, self: JsonObject, oldSelf: JsonObject | undefined): boolean {
  let m = /^!\(has\(self\.(\w+)\) && has\(self\.(\w+)\)\)$/.exec(rule);
  if (m) return !(m[1]! in self && m[2]! in self);
  m = /^self\.(\w+) == oldSelf\.(\w+)$/.exec(rule);
  if (m) return oldSelf === undefined || JSON.stringify(self[m[1]!]) === JSON.stringify(oldSelf[m[2]!]);
  m = /^has\(self\.(\w+)\) \|\| has\(self\.(\w+)\)$/.exec(rule);
  if (m) return m[1]! in self || m[2]! in self;
  throw new assert.AssertionError({ message: `CEL rule not understood by this checker: ${rule}` });
}

function celViolations(crd: CrdVersion, doc: JsonObject, oldDoc?: JsonObject): string[] {
  const out: string[] = [];
  for (const { path, rule } of crd.rules) {
    assert.deepEqual(path, [], `rule at ${path.join('.')}: only object-level rules are expected in this CRD`);
    if (!celHolds(rule.rule, doc, oldDoc)) out.push(rule.message);
  }
  return out;
}

describe('deploy/kubernetes manifests', () => {
  test('the kit has the mtls-pop and the guard KongPlugins, and every file is a known kind', () => {
    assert.deepEqual(kongPlugins.map((m) => m.file), ['kongplugin-guard.yaml', 'kongplugin-mtls-pop.yaml']);
    assert.deepEqual([...new Set(manifests.map((m) => m.doc.kind))].sort(),
      ['HTTPRoute', 'Ingress', 'KongPlugin', 'NetworkPolicy', 'Secret']);
    for (const { file, doc } of manifests) {
      assert.equal(typeof doc.apiVersion, 'string', `${file}: apiVersion`);
      assert.match(metadataName(doc), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${file}: DNS-1123 name`);
    }
  });

});

// One skip line for the whole group when the CRDs are not beside the repository.
describe('KongPlugin manifests against Kong\'s CRD (deploy/kubernetes/kongplugin-*.yaml)', { skip: CRDS_PRESENT ? false : CRD_SKIP }, () => {
  test('each KongPlugin validates against the CRD openAPIV3Schema and its CEL rules', () => {
    const crd = loadCrd('configuration.konghq.com_kongplugins.yaml', 'KongPlugin');
    const validate = compileCrd(crd);
    assert.ok(crd.rules.length >= 3, 'the CRD carries CEL rules');
    for (const { file, doc } of kongPlugins) {
      assert.equal(doc.apiVersion, 'configuration.konghq.com/v1', file);
      assert.deepEqual(validate(doc), [], `${file} against the CRD schema`);
      assert.deepEqual(celViolations(crd, doc, doc), [], `${file} against the CRD's CEL rules`);
    }
  });

  test('the checks can fail: schema errors and CEL violations are reported', () => {
    const crd = loadCrd('configuration.konghq.com_kongplugins.yaml', 'KongPlugin');
    const validate = compileCrd(crd);
    const good = kongPlugin(PLUGIN_NAME);
    const bad = (change: (d: JsonObject) => void): JsonObject => {
      const copy = JSON.parse(JSON.stringify(good)) as JsonObject;
      change(copy);
      return copy;
    };
    assert.notDeepEqual(validate(bad((d) => { delete d.plugin; })), []);
    assert.notDeepEqual(validate(bad((d) => { d.configpatches = d.configPatches!; delete d.configPatches; })), [], 'a misspelt field');
    assert.notDeepEqual(validate(bad((d) => { d.configPatches = [{ path: '/x', valueFrom: { secretKeyRef: { name: 's' } } }]; })), [], 'key is required');
    assert.notDeepEqual(validate(bad((d) => { d.protocols = ['http', 'ftp']; })), []);
    assert.deepEqual(celViolations(crd, bad((d) => { d.configFrom = { secretKeyRef: { name: 's', key: 'k' } }; })),
      ['Using both config and configFrom fields is not allowed.', 'Using both configFrom and configPatches fields is not allowed.']);
    assert.deepEqual(celViolations(crd, good, bad((d) => { d.plugin = 'other'; })), ['The plugin field is immutable']);
    assert.throws(() => celHolds('self.x.size() > 0', good, undefined), /not understood/);
  });

  test('KongClusterPlugin CRD: its CEL rules are of the shapes the checker knows (we ship no cluster plugin)', () => {
    const crd = loadCrd('configuration.konghq.com_kongclusterplugins.yaml', 'KongClusterPlugin');
    for (const { rule } of crd.rules) assert.doesNotThrow(() => celHolds(rule.rule, {}, {}), rule.rule);
    assert.deepEqual(ofKind('KongClusterPlugin'), []);
  });
});

// ---------------------------------------------------------------------------------------------
// What the plugins say
// ---------------------------------------------------------------------------------------------

/** RFC 6902 "add" at a JSON Pointer (RFC 6901), as the controller applies configPatches. */
function jsonPatchAdd(target: JsonObject, pointer: string, value: Json): JsonObject {
  const copy = JSON.parse(JSON.stringify(target)) as JsonObject;
  const tokens = pointer.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
  assert.ok(tokens.length > 0 && pointer.startsWith('/'), `JSON pointer ${pointer}`);
  let node: JsonObject = copy;
  for (const token of tokens.slice(0, -1)) {
    assert.ok(isObject(node[token]), `configPatches path ${pointer}: /${token} must exist (add does not create parents)`);
    node = node[token] as JsonObject;
  }
  node[tokens[tokens.length - 1]!] = value;
  return copy;
}

const secrets = ofKind('Secret').map((m) => m.doc);
function secretValue(name: string, key: string): string {
  const secret = secrets.find((s) => metadataName(s) === name);
  assert.ok(secret, `Secret ${name} is in the kit`);
  return str(obj(secret.stringData, `${name}.stringData`)[key], `${name}.${key}`);
}

/** The plugin config after configPatches, with the Secret values given (name/key -> raw value). */
function effectiveConfig(doc: JsonObject, values: (name: string, key: string) => string): JsonObject {
  let config = obj(doc.config, 'config');
  for (const patch of (doc.configPatches as Json[] | undefined) ?? []) {
    const p = obj(patch, 'configPatch');
    const ref = obj(obj(p.valueFrom, 'valueFrom').secretKeyRef, 'secretKeyRef');
    // The controller takes the Secret value as raw JSON (Kong/kubernetes-ingress-controller#5994).
    const raw = values(str(ref.name, 'name'), str(ref.key, 'key'));
    config = jsonPatchAdd(config, str(p.path, 'path'), JSON.parse(raw) as Json);
  }
  return config;
}

describe('the mtls-pop and guard KongPlugins', () => {
  test('the CA Secret holds what configPatches needs: a JSON array of PEM strings', () => {
    const value = JSON.parse(secretValue('mtls-pop-ca', 'ca_certificates_pem')) as unknown;
    assert.ok(Array.isArray(value) && value.length === 1 && typeof value[0] === 'string');
    assert.match(value[0] as string, /^-----BEGIN CERTIFICATE-----\n[\s\S]*\n-----END CERTIFICATE-----\n$/);
    const doc = kongPlugin(PLUGIN_NAME);
    assert.equal('configFrom' in doc, false);
    const refs = ((doc.configPatches as Json[]) ?? []).map((p) => obj(obj(obj(p, 'p').valueFrom, 'v').secretKeyRef, 'ref'));
    assert.deepEqual(refs, [{ name: 'mtls-pop-ca', key: 'ca_certificates_pem' }]);
  });

  test("the documented `jq -Rs '[.]' ca.pem` makes that value, and the patched config passes parseConfig", async (t) => {
    const ca = await issue({ subject: 'CN=k8s kit test CA', ca: true });
    let raw = JSON.stringify([ca.pem]);
    const jq = findExecutable('jq');
    if (jq !== null) {
      const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-k8s-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(join(dir, 'ca.pem'), ca.pem);
      const out = spawnSync(jq, ['-Rs', '[.]', join(dir, 'ca.pem')], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      assert.deepEqual(JSON.parse(out.stdout), [ca.pem]);
      raw = out.stdout;
    }
    assert.match(read('deploy/kubernetes/mtls-pop-ca-secret.yaml'), /--from-literal=ca_certificates_pem="\$\(jq -Rs '\[\.\]' ca\.pem\)"/);
    const config = effectiveConfig(kongPlugin(PLUGIN_NAME), () => raw);
    assert.deepEqual(obj(config.proof_of_possession_mtls_from_header, 'header').ca_certificates_pem, [ca.pem]);
    const parsed = parseConfig(config);
    assert.equal(parsed.ok, true, parsed.ok ? '' : parsed.errors.join('; '));
  });

  test("mtls-pop's config is the seed's, with the CA as PEM and secure_source on", () => {
    const config = obj(kongPlugin(PLUGIN_NAME).config, 'config');
    const seed = seedConfig() as JsonObject;
    for (const key of ['auth_methods', 'proof_of_possession_mtls', 'proof_of_possession_auth_methods_validation']) {
      assert.deepEqual(config[key], seed[key], key);
    }
    for (const key of Object.keys(config)) assert.ok(key in seed, `${key} is a seed key`);
    const header = obj(config.proof_of_possession_mtls_from_header, 'from_header');
    const seedHeader = obj(seed.proof_of_possession_mtls_from_header, 'seed from_header');
    for (const key of ['certificate_header_name', 'certificate_header_format', 'ssl_verify']) {
      assert.deepEqual(header[key], seedHeader[key], key);
    }
    assert.equal(header.secure_source, true);
    assert.equal('ca_certificates' in header, false, 'no CA entity UUIDs: nothing in the cluster creates them for the plugin to read');
    assert.match(str(config.issuer, 'issuer'), /^https:\/\//);
    assert.ok(str(config.jwks_endpoint, 'jwks_endpoint').startsWith(str(config.issuer, 'issuer')));
  });

  test('the guard is kong.yml\'s post-function, checking the flag mtls-pop sets', () => {
    const guard = kongPlugin('post-function');
    const kongYml = obj(parseYaml(read('kong.yml')) as unknown, 'kong.yml');
    const route = obj((obj((kongYml.services as Json[])[0], 'service').routes as Json[])[0], 'route');
    const composeGuard = (route.plugins as Json[]).map((p) => obj(p, 'plugin')).find((p) => p.name === 'post-function');
    assert.ok(composeGuard);
    assert.deepEqual(guard.config, composeGuard.config);
    const lua = str((obj(guard.config, 'config').access as Json[])[0], 'access[0]');
    assert.ok(lua.includes(`if not kong.ctx.shared.${VERIFIED_FLAG} then`));
    assert.match(lua, /kong\.response\.exit\(401, /);
  });
});

describe('routes: Ingress and HTTPRoute attach both plugins', () => {
  test('konghq.com/plugins names exactly the two KongPlugins, on every route object', () => {
    const names = kongPlugins.map((m) => metadataName(m.doc)).sort();
    assert.deepEqual(names, ['mtls-pop', 'mtls-pop-guard']);
    const routes = [...ofKind('Ingress'), ...ofKind('HTTPRoute')];
    assert.equal(routes.length, 2);
    for (const { file, doc } of routes) {
      const annotations = obj(obj(doc.metadata, 'metadata').annotations, `${file} annotations`);
      assert.deepEqual(str(annotations['konghq.com/plugins'], 'konghq.com/plugins').split(',').map((s) => s.trim()).sort(), names, file);
    }
    const values = obj(parseYaml(read('deploy/kubernetes/values.yaml')) as unknown, 'values');
    const ingress = ofKind('Ingress')[0]!.doc;
    assert.equal(obj(ingress.spec, 'spec').ingressClassName, obj(values.ingressController, 'ingressController').ingressClass);
    assert.equal(ofKind('HTTPRoute')[0]!.doc.apiVersion, 'gateway.networking.k8s.io/v1');
    assert.equal(ingress.apiVersion, 'networking.k8s.io/v1');
  });
});

// ---------------------------------------------------------------------------------------------
// Helm values
// ---------------------------------------------------------------------------------------------

interface ChartKeys {
  readonly chart: string;
  readonly version: string;
  readonly appVersion: string;
  readonly source: string;
  readonly keys: Record<string, string>;
  readonly freeMaps: Record<string, string>;
  readonly chartDefaults: Record<string, Json>;
}

/** Leaf paths of a values tree ("a.b.c"); a free map's entries count as the map's own key. */
function leafPaths(node: Json, freeMaps: readonly string[], prefix = ''): string[] {
  if (freeMaps.includes(prefix)) return [prefix];
  if (!isObject(node)) return [prefix];
  return Object.entries(node).flatMap(([k, v]) => leafPaths(v, freeMaps, prefix === '' ? k : `${prefix}.${k}`));
}

describe('Helm values for kong/kong (deploy/kubernetes/values.yaml)', () => {
  const chartKeys = JSON.parse(read('deploy/kubernetes/kong-chart-keys.json')) as ChartKeys;
  const valuesText = read('deploy/kubernetes/values.yaml');
  const values = obj(parseYaml(valuesText) as unknown, 'values');
  const env = obj(values.env, 'env');

  test('every key is one of the chart\'s documented keys (kong-chart-keys.json, chart version named), none unused', () => {
    assert.equal(chartKeys.chart, 'kong/kong');
    assert.match(chartKeys.version, /^\d+\.\d+\.\d+$/);
    assert.match(chartKeys.source, /^github\.com\/Kong\/charts charts\/kong\/values\.yaml .* at [0-9a-f]{40}$/);
    const used = leafPaths(values, Object.keys(chartKeys.freeMaps)).sort();
    const known = [...Object.keys(chartKeys.keys), ...Object.keys(chartKeys.freeMaps)].sort();
    for (const path of used) assert.ok(known.includes(path), `${path} is not a key of ${chartKeys.chart} ${chartKeys.version}`);
    assert.deepEqual(known, used, 'the committed list is exactly the keys the values use');
    // The version whose keys were checked is the one the docs and the values file install.
    assert.match(valuesText, new RegExp(`kong/kong ${chartKeys.version.replace(/\./g, '\\.')}\\b`));
    assert.match(valuesText, new RegExp(`--version ${chartKeys.version.replace(/\./g, '\\.')} `));
    assert.match(read('docs/kubernetes.md'), new RegExp(`--version ${chartKeys.version.replace(/\./g, '\\.')} `));
    // env keys are kong.conf names: lower case with underscores (the chart upper-cases them).
    for (const key of Object.keys(env)) assert.match(key, /^[a-z][a-z0-9_]*$/, `env.${key}`);
  });

  test('plugin-server settings: Kong\'s variable names, the image\'s node and launcher, the socket in the chart\'s prefix', () => {
    const dockerfile = read('Dockerfile');
    const envLine = (name: string): string => {
      const m = new RegExp(`${name}="([^"]+)"`).exec(dockerfile);
      assert.ok(m, `Dockerfile sets ${name}`);
      return m[1]!;
    };
    // Kong derives pluginserver_<name>_* from pluginserver_names: lower case, "-" -> "_".
    const serverName = str(env.pluginserver_names, 'pluginserver_names');
    assert.equal(serverName, PLUGIN_NAME);
    const prefix = `pluginserver_${serverName.toLowerCase().replace(/-/g, '_')}`;
    const start = str(env[`${prefix}_start_cmd`], 'start_cmd').split(' ');
    const query = str(env[`${prefix}_query_cmd`], 'query_cmd').split(' ');
    const socket = str(env[`${prefix}_socket`], 'socket');
    // Same node and launcher as the image (Dockerfile), every path absolute, no -v.
    const imageStart = envLine('KONG_PLUGINSERVER_MTLS_POP_START_CMD').split(' ');
    assert.deepEqual(start.slice(0, 2), imageStart.slice(0, 2));
    assert.deepEqual(query.slice(0, 2), imageStart.slice(0, 2));
    for (const arg of [...start, ...query]) if (arg.includes('/')) assert.ok(arg.startsWith('/'), arg);
    assert.ok(![...start, ...query].some((a) => /^(-v+|--verbose)$/.test(a)));
    assert.ok(query.includes('--dump-all-plugins'));
    // The socket Kong connects to is where the server listens, inside the chart's writable prefix.
    const option = (args: string[], flag: string): string => args[args.indexOf(flag) + 1]!;
    assert.equal(posix.join(option(start, '-p'), option(start, '--sock-name')), socket);
    const chartPrefix = str(chartKeys.chartDefaults['env.prefix'], 'env.prefix');
    assert.equal(env.prefix ?? chartPrefix, chartPrefix, 'the values keep the chart prefix');
    assert.equal(posix.dirname(socket), chartPrefix.replace(/\/$/, ''));
    assert.equal(chartKeys.chartDefaults['containerSecurityContext.readOnlyRootFilesystem'], true,
      'why the socket cannot stay in /usr/local/kong as in the image');
    // KONG_PLUGINS: the chart turns preInstalled into bundled,<list>.
    assert.deepEqual(str(obj(values.plugins, 'plugins').preInstalled, 'preInstalled').split(','), [PLUGIN_NAME]);
  });

  test('image: the plugin image with Kong\'s version for the chart; trusted_ips set and not everything; proxy not public', () => {
    const image = obj(values.image, 'image');
    assert.match(str(image.effectiveSemver, 'effectiveSemver'), /^3\.\d+\.\d+$/);
    assert.equal(str(image.effectiveSemver, 'effectiveSemver').split('.').slice(0, 2).join('.'), chartKeys.appVersion);
    assert.match(read('Dockerfile'), new RegExp(`ARG KONG_IMAGE=kong:${chartKeys.appVersion.replace('.', '\\.')}\\n`));
    const trusted = str(env.trusted_ips, 'trusted_ips').split(',').map((s) => s.trim());
    assert.ok(trusted.length > 0);
    for (const cidr of trusted) assert.ok(!['0.0.0.0/0', '::/0'].includes(cidr), 'trusting every address lets anyone set the header');
    assert.equal(obj(values.proxy, 'proxy').type, 'ClusterIP');
    assert.equal(env.nginx_http_large_client_header_buffers, '8 32k');
  });

  test('the NetworkPolicy selects the chart\'s pods and lets only the terminator reach the proxy port', () => {
    const policy = ofKind('NetworkPolicy')[0]!.doc;
    const spec = obj(policy.spec, 'spec');
    const release = /helm install (\S+) kong\/kong/.exec(valuesText)?.[1];
    assert.equal(obj(obj(spec.podSelector, 'podSelector').matchLabels, 'matchLabels')['app.kubernetes.io/instance'], release);
    assert.equal(obj(obj(spec.podSelector, 'podSelector').matchLabels, 'matchLabels')['app.kubernetes.io/name'], 'kong');
    assert.deepEqual(spec.policyTypes, ['Ingress']);
    for (const rule of (spec.ingress as Json[]).map((r) => obj(r, 'rule'))) {
      const ports = (rule.ports as Json[]).map((p) => obj(p, 'port').port);
      if (ports.includes(8000)) assert.ok(Array.isArray(rule.from) && rule.from.length > 0, 'the proxy port only from named peers');
    }
  });
});

describe('docs/kubernetes.md', () => {
  test('exists, names every kit file, and is one row of the README\'s reference table', () => {
    const doc = read('docs/kubernetes.md');
    for (const file of readdirSync(KIT)) assert.ok(doc.includes(`deploy/kubernetes/${file}`), `docs/kubernetes.md mentions ${file}`);
    const rows = read('README.md').split('\n').filter((l) => l.startsWith('| [docs/kubernetes.md](docs/kubernetes.md) |'));
    assert.equal(rows.length, 1);
  });
});
