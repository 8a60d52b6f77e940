/**
 * The real decK (`go install`ed by .ci/run), offline, on everything we tell operators to feed it:
 * kong.yml with its placeholders rendered, every decK / kong.yml snippet in README.md and docs/,
 * and the seed's decK block with its `${{ env "DECK_..." }}` variables rendered by `deck file
 * render`, whose mtls-pop config then passes the Kong emulator's schema check and StartInstance.
 * Also the shipped lint ruleset (deck/mtls-pop-lint.yaml) on good and bad state files.
 *
 * Without decK the suite is skipped with one line saying what is missing; with CI=true that is a
 * failure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { assertPresent, deckBinary, deckMissing, generateComposeCerts, skipUnlessPresent } from '../helpers/keycloak.js';
import { repoRoot } from '../helpers/repo-root.js';
import { KongEmulator, launcherCommand } from '../harness/kong-emulator.js';

const missing = deckMissing();
const ROOT = repoRoot();
const RULESET = join(ROOT, 'deck', 'mtls-pop-lint.yaml');
const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');
const CA_ID = '3f2b6a1e-7c4d-4e8a-9b1f-2d5c6e7f8a90';
const GUARD = 'return function() if not kong.ctx.shared.mtls_pop_verified then return kong.response.exit(401, { message = "Unauthorized" }, { ["WWW-Authenticate"] = \'Bearer realm="kong"\' }) end end';

/**
 * The seed's decK block: the Kong Enterprise how-to's file (reference-behaviour.md) with the plugin
 * name mtls-pop and the environment-specific values as decK env variables, as the how-to writes them.
 */
const SEED_DECK_FILE = `_format_version: "3.0"
plugins:
- name: mtls-pop
  route: headers
  config:
    issuer: \${{ env "DECK_ISSUER" }}
    jwks_endpoint: \${{ env "DECK_JWKS_ENDPOINT" }}
    auth_methods:
    - bearer
    proof_of_possession_mtls: strict
    proof_of_possession_auth_methods_validation: true
    proof_of_possession_mtls_from_header:
      certificate_header_name: x-client-cert
      certificate_header_format: base64_encoded
      ca_certificates:
      - \${{ env "DECK_CA_CERT_ID" }}
      ssl_verify: true
      secure_source: false
    cache_tokens_salt: \${{ env "DECK_CACHE_TOKENS_SALT" }}
`;
/**
 * The route the snippets and the seed block attach their plugins to (`route: headers`), as the
 * operator's file has it: decK resolves the reference and refuses a file without the route.
 */
const ROUTE_CONTEXT = `services:
- name: echo
  url: http://echo:8080
  routes:
  - name: headers
    paths:
    - /headers
`;

/** A state file as an operator adds a snippet to it: the snippet, plus the route it names when it has none. */
function inOperatorFile(snippet: string): string {
  const withVersion = /^_format_version:/m.test(snippet) ? snippet : `_format_version: "3.0"\n${snippet}`;
  const namesRoute = /^\s+route: headers$/m.test(snippet);
  const definesRoutes = /^(?:services|routes):/m.test(snippet);
  return namesRoute && !definesRoutes ? `${withVersion.trimEnd()}\n${ROUTE_CONTEXT}` : withVersion;
}

const SEED_ENV = {
  DECK_ISSUER: 'http://localhost:8080/realms/master',
  DECK_JWKS_ENDPOINT: 'http://keycloak:8080/realms/master/protocol/openid-connect/certs',
  DECK_CA_CERT_ID: CA_ID,
  DECK_CACHE_TOKENS_SALT: 'c2VlZC1zYWx0LXJhbmRvbQ',
};

interface Run { status: number | null; stdout: string; stderr: string }

/** A Go runtime panic of decK itself (its output then says nothing about the file). */
const GO_PANIC = /^panic: .*\n[\s\S]*^goroutine \d+ \[/m;

/**
 * Runs decK offline. `deck file lint` v1.64.0 sometimes panics inside its linter (vacuum 0.29.2
 * marshalling a node with go.yaml.in/yaml v4.0.0-rc.5: nil pointer in `desolveCollection`, from
 * goroutines running rules in parallel): measured here 2 panics in 60 lints of one file with the
 * default GOMAXPROCS, 0 in 100 with GOMAXPROCS=1. So decK runs on one OS thread, and a run that
 * still ends in a Go panic is repeated (at most 3 runs): the verdict asserted is always that of a
 * run that completed.
 */
function deck(args: readonly string[], env: Record<string, string> = {}): Run {
  let run: Run = { status: null, stdout: '', stderr: '' };
  for (let attempt = 0; attempt < 3; attempt++) {
    const result = spawnSync(deckBinary(), [...args], {
      encoding: 'utf8', timeout: 120_000,
      // Offline: no Kong, no Konnect, no analytics.
      env: { ...process.env, DECK_ANALYTICS: 'off', GOMAXPROCS: '1', ...env },
    });
    run = { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
    if (!GO_PANIC.test(`${run.stdout}${run.stderr}`)) break;
  }
  return run;
}

/** ```yaml blocks of a Markdown file that are decK / kong.yml state (they hold plugins, services or routes). */
function deckSnippets(markdown: string): string[] {
  const blocks = [...markdown.matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? '');
  return blocks.filter((b) => /^(?:_format_version|plugins|services|routes|ca_certificates):/m.test(b));
}

/** Every plugin entry named `name`, wherever decK put it (top level, service, route, consumer). */
function findPlugins(node: unknown, name: string): Array<{ name: string; config: Record<string, unknown> }> {
  if (Array.isArray(node)) return node.flatMap((n) => findPlugins(n, name));
  if (node === null || typeof node !== 'object') return [];
  const record = node as Record<string, unknown>;
  const here = record.name === name && typeof record.config === 'object' && record.config !== null
    ? [record as { name: string; config: Record<string, unknown> }] : [];
  return [...here, ...Object.values(record).flatMap((v) => findPlugins(v, name))];
}

/** Placeholders operators replace: `<CA certificate entity UUID>` and friends. */
function renderPlaceholders(snippet: string): string {
  return snippet.replace(/<CA certificate entity UUID>/g, CA_ID);
}

describe('decK (the real binary, offline)', { skip: skipUnlessPresent('decK tests', missing) }, () => {
  let dir: string;
  let renderedKongYml: string;

  before(() => {
    assertPresent(missing);
    dir = mkdtempSync(join(tmpdir(), 'mtls-pop-deck-'));
    // kong.yml rendered exactly as the compose certs service does it (CA PEM in the placeholders).
    renderedKongYml = join(dir, 'kong.yml');
    generateComposeCerts(join(dir, 'certs'));
    const run = spawnSync('sh', [join(ROOT, 'docker', 'gen-certs.sh'), join(dir, 'certs'), join(ROOT, 'kong.yml'), renderedKongYml], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
  });

  after(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, text: string): string => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  test('deck version is the pinned one', (t) => {
    const run = deck(['version']);
    assert.equal(run.status, 0, run.stderr);
    t.diagnostic(run.stdout.trim());
    assert.match(run.stdout, /v?1\.64\.0/);
  });

  test('deck file validate: kong.yml with its placeholders rendered', () => {
    assert.doesNotMatch(readFileSync(renderedKongYml, 'utf8'), /@@MTLS_POP_CA_PEM@@/);
    const run = deck(['file', 'validate', renderedKongYml]);
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
  });

  test('deck file validate refuses a broken state file (the check can fail)', () => {
    const bad = write('bad.yml', '_format_version: "3.0"\nservices:\n- name: echo\n  url: http://echo:8080\n  routes:\n  - name: headers\n    paths: /headers\n');
    const run = deck(['file', 'validate', bad]);
    assert.notEqual(run.status, 0, run.stdout);
  });

  test('deck file validate: every decK / kong.yml snippet in README.md and docs/', () => {
    const sources = ['README.md', 'docker/README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    let count = 0;
    for (const source of sources) {
      deckSnippets(readFileSync(join(ROOT, source), 'utf8')).forEach((snippet, i) => {
        count += 1;
        const file = write(`snippet-${source.replace(/\W/g, '_')}-${i}.yml`, renderPlaceholders(inOperatorFile(snippet)));
        const run = deck(['file', 'validate', file]);
        assert.equal(run.status, 0, `${source} snippet ${i + 1}:\n${snippet}\n${run.stdout}${run.stderr}`);
      });
    }
    assert.ok(count >= 1, 'README.md shows at least one decK snippet');
  });

  test('the seed\'s decK block: deck file render with DECK_ variables, validate, then the emulator\'s schema check and StartInstance accept it', async () => {
    const source = write('seed.yml', inOperatorFile(SEED_DECK_FILE));
    const rendered = join(dir, 'seed-rendered.yml');
    const render = deck(['file', 'render', '--populate-env-vars', source, '-o', rendered], SEED_ENV);
    assert.equal(render.status, 0, `${render.stdout}${render.stderr}`);
    const text = readFileSync(rendered, 'utf8');
    assert.doesNotMatch(text, /\$\{\{/);
    const validate = deck(['file', 'validate', rendered]);
    assert.equal(validate.status, 0, `${validate.stdout}${validate.stderr}`);

    const plugin = findPlugins(parseYaml(text), 'mtls-pop')[0];
    assert.ok(plugin !== undefined, text);
    assert.equal(plugin.config.issuer, SEED_ENV.DECK_ISSUER);
    assert.deepEqual((plugin.config.proof_of_possession_mtls_from_header as Record<string, unknown>).ca_certificates, [CA_ID]);

    const emulator = await KongEmulator.start({
      pluginServer: launcherCommand(PLUGINS_DIR),
      gateway: false,
      config: { routes: [{ name: 'headers', paths: ['/headers'], plugins: [{ name: 'mtls-pop', config: plugin.config }] }] },
    });
    try {
      await emulator.instance('headers', 'mtls-pop');
      assert.equal(typeof emulator.currentInstanceId('headers', 'mtls-pop'), 'number');
      assert.equal(emulator.stats.startInstance, 1);
      // A request without credentials: the plugin answers with its own 401 (not a config error).
      const outcome = await emulator.runAccess('headers', { path: '/headers', clientIp: '127.0.0.1' });
      assert.equal(outcome.response?.status, 401);
      const logged = [...emulator.errorLog, ...outcome.ctx.log].map((e) => e.message);
      assert.deepEqual(logged.filter((m) => /invalid configuration/.test(m)), []);
    } finally {
      await emulator.close();
    }
  });

  // --- lint ruleset

  const lint = (name: string, state: unknown): Run => deck(['file', 'lint', '-s', write(name, stringifyYaml(state)), '--fail-severity', 'error', RULESET]);
  const guard = (extra: Record<string, unknown> = {}) => ({ name: 'post-function', config: { access: [GUARD] }, ...extra });
  const mtlsPop = (header: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
    name: 'mtls-pop',
    config: {
      issuer: 'https://keycloak:8443/realms/mtls-pop',
      proof_of_possession_mtls: 'strict',
      proof_of_possession_mtls_from_header: { certificate_header_name: 'x-client-cert', ca_certificates: [CA_ID], ...header },
    },
    ...extra,
  });
  const onRoute = (plugins: unknown[]) => ({
    _format_version: '3.0',
    services: [{ name: 'echo', url: 'http://echo:8080', routes: [{ name: 'headers', paths: ['/headers'], plugins }] }],
  });

  test('lint: kong.yml and the good shapes pass (route, service, top level, mtls-pop disabled)', () => {
    const shipped = deck(['file', 'lint', '-s', renderedKongYml, '--fail-severity', 'error', RULESET]);
    assert.equal(shipped.status, 0, `${shipped.stdout}${shipped.stderr}`);
    const good: Array<[string, unknown]> = [
      ['route', onRoute([mtlsPop(), guard()])],
      ['service', { _format_version: '3.0', services: [{ name: 'echo', url: 'http://echo:8080', plugins: [mtlsPop({ secure_source: true }), guard()] }] }],
      ['top level', { _format_version: '3.0', plugins: [{ ...mtlsPop(), route: 'headers' }, { ...guard(), route: 'headers' }] }],
      ['disabled', onRoute([mtlsPop({}, { enabled: false })])],
    ];
    for (const [name, state] of good) {
      const run = lint(`good-${name.replace(/\W/g, '-')}.yml`, state);
      assert.equal(run.status, 0, `${name}: ${run.stdout}${run.stderr}`);
    }
  });

  test('lint: mtls-pop without the fail-closed guard fails (route, service, top level, disabled guard, guard without the flag)', () => {
    const bad: Array<[string, unknown]> = [
      ['route without guard', onRoute([mtlsPop()])],
      ['service without guard', { _format_version: '3.0', services: [{ name: 'echo', url: 'http://echo:8080', plugins: [mtlsPop()] }] }],
      ['top level without guard', { _format_version: '3.0', plugins: [{ ...mtlsPop(), route: 'headers' }] }],
      ['top-level routes', { _format_version: '3.0', routes: [{ name: 'r', paths: ['/r'], plugins: [mtlsPop()] }] }],
      ['guard disabled', onRoute([mtlsPop(), guard({ enabled: false })])],
      ['post-function without the flag', onRoute([mtlsPop(), { name: 'post-function', config: { access: ['return function() end'] } }])],
    ];
    for (const [name, state] of bad) {
      const run = lint(`bad-${name.replace(/\W/g, '-')}.yml`, state);
      assert.notEqual(run.status, 0, `${name} passed: ${run.stdout}${run.stderr}`);
      assert.match(`${run.stdout}${run.stderr}`, /fail-closed guard/, name);
    }
  });

  test('lint: secure_source: false fails (route, service, top level), the seed block included', () => {
    const bad: Array<[string, unknown]> = [
      ['route', onRoute([mtlsPop({ secure_source: false }), guard()])],
      ['service', { _format_version: '3.0', services: [{ name: 'echo', url: 'http://echo:8080', plugins: [mtlsPop({ secure_source: false }), guard()] }] }],
      ['top level', { _format_version: '3.0', plugins: [{ ...mtlsPop({ secure_source: false }), route: 'headers' }, { ...guard(), route: 'headers' }] }],
    ];
    for (const [name, state] of bad) {
      const run = lint(`insecure-${name.replace(/\W/g, '-')}.yml`, state);
      assert.notEqual(run.status, 0, `${name} passed: ${run.stdout}${run.stderr}`);
      assert.match(`${run.stdout}${run.stderr}`, /secure_source: false/, name);
    }
    const seedFile = join(dir, 'seed-lint.yml');
    assert.equal(deck(['file', 'render', '--populate-env-vars', write('seed-for-lint.yml', inOperatorFile(SEED_DECK_FILE)), '-o', seedFile], SEED_ENV).status, 0);
    const seed = deck(['file', 'lint', '-s', seedFile, '--fail-severity', 'error', RULESET]);
    assert.notEqual(seed.status, 0, 'the seed block (secure_source: false, no guard) fails the lint');
  });
});
