/**
 * The `mtls-pop` diagnostics CLI, run as the operator runs it (`node dist/bin/mtls-pop.js ...`),
 * against a test PKI and a real JWKS server on 127.0.0.1; plus an in-process check that the
 * explanation's verdict is the Verifier's decision on the same request.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type MtlsPopConfig } from '../../src/config.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { explain, encodeCertificateHeader } from '../../src/explain.js';
import { Verifier } from '../../src/verifier.js';
import { issue, makeTestPki, opensslThumbprint, writePemFiles, type Issued, type TestPki } from '../helpers/pki.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';

const CLI = join(__dirname, '..', '..', 'bin', 'mtls-pop.js');

interface Run { readonly code: number; readonly stdout: string; readonly stderr: string; readonly ms: number }

/** Runs the compiled CLI asynchronously (the JWKS server lives in this process). */
function cli(args: readonly string[], input?: string | Buffer): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 30_000, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: performance.now() - started });
    });
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/** `N. Title   STATUS` lines: the step statuses, in order. */
function stepStatuses(stdout: string): { title: string; status: string }[] {
  return [...stdout.matchAll(/^(\d)\. (.+?)\s+(PASS|FAIL|SKIP)\s/gm)].map((m) => ({ title: m[2] ?? '', status: m[3] ?? '' }));
}

/** The lines of one step (from its title to the next step title). */
function stepBlock(stdout: string, number: number): string {
  const start = stdout.search(new RegExp(`^${number}\\. `, 'm'));
  assert.ok(start >= 0, `step ${number} missing in:\n${stdout}`);
  const rest = stdout.slice(start);
  const end = rest.slice(1).search(/^\d\. /m);
  return end < 0 ? rest : rest.slice(0, end + 1);
}

function hexOf(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

function noStackTrace(text: string): void {
  assert.doesNotMatch(text, /^\s+at .+\(.*:\d+:\d+\)$/m, `stack trace in:\n${text}`);
  assert.doesNotMatch(text, /node:internal|Error: .*\n\s+at /);
}

let pki: TestPki;
let idp: JwksServer;
let dir: string;
let rogueIntermediate: Issued;
let rogueLeaf: Issued;

function file(name: string): string {
  return join(dir, name);
}

function claims(cert: Issued | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: idp.issuer, sub: 'svc-orders', azp: 'orders-client', iat: now, exp: now + 600, scope: 'openid orders:read',
    aud: 'orders-api', ...(cert === null ? {} : { cnf: { 'x5t#S256': thumbprintS256(cert.der) } }), ...extra,
  };
}

/** Writes a token file and returns `@path` for --token. */
async function tokenFile(name: string, payload: Record<string, unknown>): Promise<{ arg: string; token: string }> {
  const token = await idp.sign(payload);
  writeFileSync(file(name), `${token}\n`);
  return { arg: `@${file(name)}`, token };
}

function base(certName = 'client'): string[] {
  return ['explain', '--cert', file(`${certName}.pem`), '--chain', file('intermediate.pem'), '--ca', file('root.pem'), '--issuer', idp.issuer];
}

before(async () => {
  pki = await makeTestPki();
  idp = await startJwksServer();
  dir = mkdtempSync(join(tmpdir(), 'mtls-pop-cli-'));
  // A CA with the intermediate's exact name but another key, and a client it issued.
  rogueIntermediate = await issue({ subject: 'CN=mtls-pop Test Intermediate CA, O=mtls-pop tests', ca: true });
  rogueLeaf = await issue({ subject: 'CN=client-1, O=mtls-pop tests', issuer: rogueIntermediate });
  await writePemFiles(dir, {
    root: pki.root, intermediate: pki.intermediate, client: pki.client, other: pki.otherClient,
    rogue: pki.rogueClient, rogueLeaf,
  });
  writeFileSync(file('client.der'), pki.client.der);
});

after(async () => {
  await idp.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('mtls-pop thumbprint', { concurrency: 4 }, () => {
  test('prints the x5t#S256 that openssl computes (PEM, DER and stdin)', async () => {
    const expected = opensslThumbprint(pki.client.pem);
    const [pem, der, stdin] = await Promise.all([
      cli(['thumbprint', file('client.pem')]),
      cli(['thumbprint', file('client.der')]),
      cli(['thumbprint', '-'], pki.client.pem),
    ]);
    for (const run of [pem, der, stdin]) {
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${expected}\n`);
    }
  });

  test('--hex adds the SHA-256 in hex, equal to openssl dgst -sha256 of the DER', async () => {
    const derBytes = execFileSync('openssl', ['x509', '-outform', 'DER'], { input: pki.client.pem });
    const dgst = execFileSync('openssl', ['dgst', '-sha256'], { input: derBytes }).toString().trim();
    const opensslHex = dgst.split(/\s+/).pop() ?? '';
    assert.match(opensslHex, /^[0-9a-f]{64}$/);
    const run = await cli(['thumbprint', '--hex', file('client.pem')]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `x5t#S256:   ${opensslThumbprint(pki.client.pem)}\nsha256 hex: ${opensslHex}\n`);
  });

  test('--json gives x5t#S256, sha256_hex, subject and notAfter', async () => {
    const run = await cli(['thumbprint', '--json', file('client.pem')]);
    assert.equal(run.code, 0, run.stderr);
    const parsed = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.deepEqual(parsed, {
      'x5t#S256': opensslThumbprint(pki.client.pem),
      sha256_hex: hexOf(pki.client.der),
      subject: 'CN=client-1,O=mtls-pop tests',
      notAfter: pki.client.cert.notAfter.toISOString().replace('.000Z', 'Z'),
    });
  });

  test('a missing file or a file without a certificate: exit 2, a message, no stack trace', async () => {
    const [missing, key, none, help] = await Promise.all([
      cli(['thumbprint', file('nope.pem')]),
      cli(['thumbprint', file('client.key')]),
      cli(['thumbprint']),
      cli(['thumbprint', '--help']),
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read certificate .*nope\.pem.*: no such file/);
    assert.equal(missing.stdout, '');
    noStackTrace(missing.stderr);
    assert.equal(key.code, 2);
    assert.match(key.stderr, /has no PEM "CERTIFICATE" block/);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /missing certificate file/);
    assert.match(none.stderr, /Usage: mtls-pop thumbprint/);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: mtls-pop thumbprint/);
  });
});

describe('mtls-pop explain', { concurrency: 4 }, () => {
  test('a good pair: exit 0 and every step PASS', async (t) => {
    const { arg, token } = await tokenFile('good.jwt', claims(pki.client));
    const run = await cli([...base(), '--token', arg]);
    t.diagnostic(`explain (good pair, incl. node start and JWKS discovery): ${run.ms.toFixed(0)} ms`);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const steps = stepStatuses(run.stdout);
    assert.deepEqual(steps.map((s) => s.status), ['PASS', 'PASS', 'PASS', 'PASS', 'PASS'], run.stdout);
    assert.equal(steps[4]?.title, 'Verdict');
    for (const name of ['path to a CA', 'validity dates', 'CA flags', 'EKU clientAuth', 'signatures', 'JWS header', 'JWKS key', 'signature', 'exp', 'iss']) {
      assert.match(run.stdout, new RegExp(`^\\s+${name}\\s+PASS\\s`, 'm'), `${name} in\n${run.stdout}`);
    }
    // The claims are shown; the token and its signature are not.
    assert.match(run.stdout, /"sub": "svc-orders"/);
    assert.equal(run.stdout.includes(token), false);
    assert.equal(run.stdout.includes(token.split('.')[2] ?? 'x'), false);
  });

  test('a token bound to another certificate: exit 1, both thumbprints in base64url and hex', async () => {
    const { arg } = await tokenFile('other.jwt', claims(pki.otherClient));
    const run = await cli([...base(), '--token', arg]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.deepEqual(stepStatuses(run.stdout).map((s) => s.status), ['PASS', 'PASS', 'PASS', 'FAIL', 'FAIL']);
    const binding = stepBlock(run.stdout, 4);
    assert.match(binding, /certificate_thumbprint_mismatch/);
    const cnfLine = binding.split('\n').find((l) => /^\s+cnf x5t#S256\s/.test(l)) ?? '';
    const certLine = binding.split('\n').find((l) => /^\s+certificate\s/.test(l)) ?? '';
    assert.ok(cnfLine.includes(`base64url ${thumbprintS256(pki.otherClient.der)}`), cnfLine);
    assert.ok(cnfLine.includes(`hex ${hexOf(pki.otherClient.der)}`), cnfLine);
    assert.ok(certLine.includes(`base64url ${thumbprintS256(pki.client.der)}`), certLine);
    assert.ok(certLine.includes(`hex ${hexOf(pki.client.der)}`), certLine);
    const verdict = stepBlock(run.stdout, 5);
    assert.match(verdict, /HTTP 401 Unauthorized/);
    assert.ok(verdict.includes('WWW-Authenticate: Bearer realm="kong", error="invalid_token", error_description="the client certificate thumbprint does not match the x5t#S256 claim"'), verdict);
  });

  test('cnf given as hex of the right digest: exit 1 with the hex hint and the base64url to use', async () => {
    const { arg } = await tokenFile('hex.jwt', claims(null, { cnf: { 'x5t#S256': hexOf(pki.client.der) } }));
    const run = await cli([...base(), '--token', arg]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const binding = stepBlock(run.stdout, 4);
    assert.match(binding, /FAIL\s+token_cnf_malformed/);
    assert.ok(binding.includes(`cnf x5t#S256 is the hex SHA-256 of this certificate; RFC 8705 section 3.1 requires base64url without padding: "${thumbprintS256(pki.client.der)}"`), binding);
    assert.match(stepBlock(run.stdout, 5), /rejected: token_cnf_malformed/);
  });

  test('cnf in standard base64 with padding: the hint names the form', async () => {
    const standard = createHash('sha256').update(pki.client.der).digest('base64');
    const { arg } = await tokenFile('b64.jwt', claims(null, { cnf: { 'x5t#S256': standard } }));
    const run = await cli([...base(), '--token', arg]);
    assert.equal(run.code, 1);
    assert.match(stepBlock(run.stdout, 4), /the right digest in (standard base64 with "=" padding|base64url with "=" padding)/);
  });

  test('an expired token: exit 1, the exp line shows the date', async () => {
    const exp = Math.floor(Date.now() / 1000) - 7200;
    const { arg } = await tokenFile('expired.jwt', claims(pki.client, { exp, iat: exp - 300 }));
    const run = await cli([...base(), '--token', arg]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const token = stepBlock(run.stdout, 3);
    assert.match(token, /^3\. Access token\s+FAIL\s+token_expired/m);
    const expDate = new Date(exp * 1000).toISOString().replace('.000Z', 'Z');
    assert.match(token, new RegExp(`^\\s+exp\\s+FAIL\\s+${exp} = ${expDate}, EXPIRED 2 h ago`, 'm'));
    assert.match(stepBlock(run.stdout, 5), /rejected: token_expired/);
  });

  test('a client certificate from a rogue CA: the chain step fails', async () => {
    const { arg } = await tokenFile('rogue.jwt', claims(pki.rogueClient));
    const run = await cli(['explain', '--cert', file('rogue.pem'), '--ca', file('root.pem'), '--issuer', idp.issuer, '--token', arg]);
    assert.equal(run.code, 1);
    const chain = stepBlock(run.stdout, 2);
    assert.match(chain, /^2\. Certificate chain\s+FAIL\s+certificate_untrusted/m);
    assert.match(chain, /path to a CA\s+FAIL\s+.*the issuer CN=Rogue Root CA is neither configured/);
    assert.match(stepBlock(run.stdout, 5), /rejected: certificate_untrusted/);
  });

  test('a rogue CA with the intermediate\'s name: the signature line says so', async () => {
    const { arg } = await tokenFile('rogue-leaf.jwt', claims(rogueLeaf));
    const run = await cli([...base('rogueLeaf'), '--token', arg]);
    assert.equal(run.code, 1);
    const chain = stepBlock(run.stdout, 2);
    assert.match(chain, /FAIL\s+certificate_untrusted/);
    assert.match(chain, /signatures\s+FAIL\s+the certificate named CN=mtls-pop Test Intermediate CA,O=mtls-pop tests does not verify the signature/);
  });

  test('--header-value with an nginx-escaped PEM chain and --format url_encoded decodes', async () => {
    const { arg } = await tokenFile('header.jwt', claims(pki.client));
    const escaped = encodeURIComponent(pki.client.pem + pki.intermediate.pem);
    assert.match(escaped, /^-----BEGIN%20CERTIFICATE-----%0A/);
    const run = await cli(['explain', '--header-value', escaped, '--format', 'url_encoded', '--ca', file('root.pem'),
      '--issuer', idp.issuer, '--token', arg]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(stepBlock(run.stdout, 1), /^1\. Certificate header\s+PASS\s+2 certificates: leaf CN=client-1,O=mtls-pop tests/m);
    assert.match(stepBlock(run.stdout, 1), /url_encoded value of \d+ characters/);
    // The same value declared as base64_encoded: the header step fails as the plugin would.
    const wrong = await cli(['explain', '--header-value', escaped, '--format', 'base64_encoded', '--ca', file('root.pem'),
      '--issuer', idp.issuer, '--token', arg]);
    assert.equal(wrong.code, 1);
    assert.match(stepBlock(wrong.stdout, 1), /FAIL\s+certificate_header_malformed/);
    assert.match(stepBlock(wrong.stdout, 5), /rejected: certificate_header_malformed/);
  });

  test('a missing file: exit 2 with a message and usage, no stack trace', async () => {
    const { arg } = await tokenFile('missing.jwt', claims(pki.client));
    const [cert, ca, token, flag, noToken] = await Promise.all([
      cli(['explain', '--cert', file('absent.pem'), '--ca', file('root.pem'), '--issuer', idp.issuer, '--token', arg]),
      cli(['explain', '--cert', file('client.pem'), '--ca', file('absent-ca.pem'), '--issuer', idp.issuer, '--token', arg]),
      cli(['explain', '--cert', file('client.pem'), '--ca', file('root.pem'), '--issuer', idp.issuer, '--token', `@${file('absent.jwt')}`]),
      cli(['explain', '--cert', file('client.pem'), '--bogus']),
      cli(['explain', '--cert', file('client.pem'), '--ca', file('root.pem'), '--issuer', idp.issuer]),
    ]);
    for (const run of [cert, ca, token, flag, noToken]) {
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /^mtls-pop: /);
      assert.match(run.stderr, /Usage: mtls-pop explain/);
      noStackTrace(run.stderr);
    }
    assert.match(cert.stderr, /cannot read certificate file ".*absent\.pem": no such file/);
    assert.match(ca.stderr, /cannot read CA file ".*absent-ca\.pem": no such file/);
    assert.match(token.stderr, /cannot read token ".*absent\.jwt": no such file/);
    assert.match(flag.stderr, /unknown option '--bogus'/);
    assert.match(noToken.stderr, /missing --token/);
  });

  test('--json parses and carries the verdict and the response, never the token', async () => {
    const { arg, token } = await tokenFile('json.jwt', claims(pki.otherClient));
    const run = await cli([...base(), '--token', arg, '--json']);
    assert.equal(run.code, 1, run.stderr);
    const report = JSON.parse(run.stdout) as {
      command: string; verdict: { allow: boolean; reason: string; response: { status: number; headers: Record<string, string> } };
      steps: { id: string; status: string; failure: { reason: string } | null }[]; inconsistencies: string[];
      token: { claims: Record<string, unknown> };
    };
    assert.equal(report.command, 'explain');
    assert.equal(report.verdict.allow, false);
    assert.equal(report.verdict.reason, 'certificate_thumbprint_mismatch');
    assert.equal(report.verdict.response.status, 401);
    assert.match(report.verdict.response.headers['WWW-Authenticate'] ?? '', /^Bearer realm="kong", error="invalid_token"/);
    assert.deepEqual(report.steps.map((s) => [s.id, s.status]), [['header', 'PASS'], ['chain', 'PASS'], ['token', 'PASS'], ['binding', 'FAIL']]);
    assert.equal(report.steps[3]?.failure?.reason, 'certificate_thumbprint_mismatch');
    assert.deepEqual(report.inconsistencies, []);
    assert.equal(report.token.claims['sub'], 'svc-orders');
    assert.equal(run.stdout.includes(token.split('.')[2] ?? 'x'), false);

    const good = await tokenFile('json-good.jwt', claims(pki.client));
    const pass = await cli([...base(), '--token', good.arg, '--json']);
    assert.equal(pass.code, 0);
    assert.deepEqual((JSON.parse(pass.stdout) as { verdict: unknown }).verdict, {
      allow: true, reason: null, detail: null, response: null, fix: null, notes: [],
    });
  });

  test('a decK kong.yml with the plugin, and flags on top (--audience -> 403)', async () => {
    const { arg } = await tokenFile('deck.jwt', claims(pki.client));
    const pemBlock = pki.root.pem.trim().split('\n').map((l) => `${' '.repeat(20)}${l}`).join('\n');
    writeFileSync(file('kong.yml'), `_format_version: "3.0"
services:
  - name: orders
    url: http://upstream.internal
    routes:
      - name: orders
        paths: [/orders]
        plugins:
          - name: mtls-pop
            config:
              issuer: ${idp.issuer}
              audience_required: [orders-api]
              proof_of_possession_mtls: strict
              proof_of_possession_mtls_from_header:
                certificate_header_name: x-client-cert
                certificate_header_format: base64_encoded
                revocation_check_mode: SKIP
                ca_certificates_pem:
                  - |
${pemBlock}
`);
    const ok = await cli(['explain', '--config', file('kong.yml'), '--cert', file('client.pem'), '--chain', file('intermediate.pem'), '--token', arg]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(stepBlock(ok.stdout, 1), /files encoded as base64_encoded/);
    assert.match(ok.stdout, /revocation\s+SKIP\s+revocation_check_mode SKIP/);
    assert.match(ok.stdout, /aud\s+PASS\s+"orders-api" \(required: one of \["orders-api"\]\)/);
    const forbidden = await cli(['explain', '--config', file('kong.yml'), '--audience', 'billing-api', '--cert', file('client.pem'),
      '--chain', file('intermediate.pem'), '--token', arg]);
    assert.equal(forbidden.code, 1);
    assert.match(stepBlock(forbidden.stdout, 5), /HTTP 403 Forbidden/);
    assert.match(stepBlock(forbidden.stdout, 5), /error="insufficient_scope"/);
    assert.match(stepBlock(forbidden.stdout, 3), /^\s+aud\s+FAIL\s/m);
  });

  test('ca_certificates entity UUIDs: read through --admin-api, else a usage error', async () => {
    const id = '7b1c62e4-4b1a-4a59-9d57-1c9b7a3e2f10';
    const admin = http.createServer((request, response) => {
      if (request.url === `/ca_certificates/${id}`) {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, cert: pki.root.pem }));
      } else {
        response.writeHead(404).end('{}');
      }
    });
    await new Promise<void>((resolve) => admin.listen(0, '127.0.0.1', () => resolve()));
    try {
      const { arg } = await tokenFile('admin.jwt', claims(pki.client));
      writeFileSync(file('entities.json'), JSON.stringify({
        name: 'mtls-pop',
        config: {
          issuer: idp.issuer,
          proof_of_possession_mtls_from_header: { certificate_header_name: 'x-client-cert', ca_certificates: [id], revocation_check_mode: 'SKIP' },
        },
      }));
      const url = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
      const resolved = await cli(['explain', '--config', file('entities.json'), '--admin-api', url, '--cert', file('client.pem'),
        '--chain', file('intermediate.pem'), '--token', arg]);
      assert.equal(resolved.code, 0, resolved.stdout + resolved.stderr);
      assert.match(resolved.stdout, /note: 1 ca_certificates entity read from http:\/\/127\.0\.0\.1:\d+/);
      const unresolved = await cli(['explain', '--config', file('entities.json'), '--cert', file('client.pem'), '--token', arg]);
      assert.equal(unresolved.code, 2);
      assert.match(unresolved.stderr, /ca_certificates \(Kong CA entities\), which need the Admin API/);
    } finally {
      await new Promise<void>((resolve) => admin.close(() => resolve()));
    }
  });

  test('--help for each command', async () => {
    const [main, explainHelp, helpTopic, nothing] = await Promise.all([
      cli(['--help']), cli(['explain', '--help']), cli(['help', 'explain']), cli([]),
    ]);
    assert.equal(main.code, 0);
    assert.match(main.stdout, /^Usage: mtls-pop <command>/);
    assert.equal(explainHelp.code, 0);
    assert.match(explainHelp.stdout, /^Usage: mtls-pop explain/);
    assert.equal(helpTopic.stdout, explainHelp.stdout);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /^Usage: mtls-pop <command>/);
  });
});

describe('explain() agrees with the Verifier', () => {
  function config(overrides: Record<string, unknown> = {}, header: Record<string, unknown> = {}): MtlsPopConfig {
    const result = parseConfig({
      issuer: idp.issuer,
      proof_of_possession_mtls: 'strict',
      proof_of_possession_mtls_from_header: {
        certificate_header_name: 'x-client-cert', certificate_header_format: 'base64_encoded',
        ca_certificates_pem: [pki.root.pem], revocation_check_mode: 'SKIP', ...header,
      },
      ...overrides,
    });
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
    return result.config;
  }

  test('the verdict is the Verifier decision, and the failing step carries its reason', async () => {
    const now = Math.floor(Date.now() / 1000);
    const brokenCa = '-----BEGIN CERTIFICATE-----\nMIIB!!!!\n-----END CERTIFICATE-----\n';
    const cases: { name: string; cfg: MtlsPopConfig; payload: Record<string, unknown>; certs: Issued[]; header?: string; expected: string | null }[] = [
      { name: 'good pair', cfg: config(), payload: claims(pki.client), certs: [pki.client, pki.intermediate], expected: null },
      { name: 'bound to another certificate', cfg: config(), payload: claims(pki.otherClient), certs: [pki.client, pki.intermediate], expected: 'certificate_thumbprint_mismatch' },
      { name: 'hex cnf', cfg: config(), payload: claims(null, { cnf: { 'x5t#S256': hexOf(pki.client.der) } }), certs: [pki.client, pki.intermediate], expected: 'token_cnf_malformed' },
      { name: 'expired token', cfg: config(), payload: claims(pki.client, { exp: now - 60 }), certs: [pki.client, pki.intermediate], expected: 'token_expired' },
      { name: 'rogue CA', cfg: config(), payload: claims(pki.rogueClient), certs: [pki.rogueClient], expected: 'certificate_untrusted' },
      { name: 'rogue CA and expired token (the token is checked first)', cfg: config(), payload: claims(pki.rogueClient, { exp: now - 60 }), certs: [pki.rogueClient], expected: 'token_expired' },
      { name: 'unbound token, strict', cfg: config(), payload: claims(null), certs: [pki.client, pki.intermediate], expected: 'token_not_bound' },
      { name: 'unbound token, optional', cfg: config({ proof_of_possession_mtls: 'optional' }), payload: claims(null), certs: [pki.rogueClient], expected: null },
      { name: 'wrong audience', cfg: config({ audience_required: ['billing-api'] }), payload: claims(pki.client), certs: [pki.client, pki.intermediate], expected: 'audience_not_allowed' },
      { name: 'wrong issuer', cfg: config({ issuers_allowed: ['https://idp.example/realms/other'] }), payload: claims(pki.client), certs: [pki.client, pki.intermediate], expected: 'token_issuer_not_allowed' },
      { name: 'intermediate missing', cfg: config(), payload: claims(pki.client), certs: [pki.client], expected: 'certificate_untrusted' },
      { name: 'url_encoded chain', cfg: config({}, { certificate_header_format: 'url_encoded' }), payload: claims(pki.client), certs: [pki.client, pki.intermediate], expected: null },
      { name: 'xfcc chain', cfg: config({}, { certificate_header_format: 'xfcc' }), payload: claims(pki.client), certs: [pki.client, pki.intermediate], expected: null },
      { name: 'rfc9440 chain', cfg: config({}, { certificate_header_format: 'rfc9440' }), payload: claims(pki.client), certs: [pki.client, pki.intermediate], expected: null },
      { name: 'header in another format', cfg: config(), payload: claims(pki.client), certs: [], header: encodeURIComponent(pki.client.pem), expected: 'certificate_header_malformed' },
      { name: 'broken CA list and a broken header (anchors are loaded first)', cfg: config({}, { ca_certificates_pem: [brokenCa] }), payload: claims(pki.client), certs: [], header: 'not a certificate', expected: 'trust_anchors_unavailable' },
    ];
    for (const c of cases) {
      const token = await idp.sign(c.payload);
      const ders = c.certs.map((cert) => cert.der);
      const report = await explain({
        config: c.cfg, token,
        certificate: c.header === undefined ? { kind: 'certificates', certificates: ders } : { kind: 'header', value: c.header },
      });
      const header = c.header === undefined
        ? encodeCertificateHeader(ders, c.cfg.proof_of_possession_mtls_from_header?.certificate_header_format ?? 'base64_encoded')
        : { value: c.header, chainValue: null };
      const decision = await new Verifier(c.cfg).verify({
        authorization: [`Bearer ${token}`],
        certificateHeader: [header.value],
        certificateChainHeader: header.chainValue === null ? [] : [header.chainValue],
        peerTrusted: true,
      });
      assert.equal(report.verdict.allow, decision.allow, c.name);
      assert.equal(report.verdict.reason, decision.allow ? null : decision.failure.reason, c.name);
      assert.equal(report.verdict.reason, c.expected, c.name);
      assert.deepEqual(report.verdict.response, decision.allow ? null : decision.response, c.name);
      assert.deepEqual(report.inconsistencies, [], c.name);
      if (c.expected !== null) {
        assert.ok(report.steps.some((s) => s.status === 'FAIL' && s.failure?.reason === c.expected), `${c.name}: a step fails with ${c.expected}`);
      } else {
        assert.deepEqual(report.steps.filter((s) => s.status === 'FAIL'), [], c.name);
      }
    }
  });

  test('the header given as received is decoded exactly once, by the plugin decoder', async () => {
    const token = await idp.sign(claims(pki.client));
    const report = await explain({
      config: config(), token,
      certificate: { kind: 'header', value: `${pki.client.der.toString('base64')},${pki.intermediate.der.toString('base64')}` },
      expectedLeaf: pki.otherClient.der,
    });
    assert.equal(report.verdict.allow, true);
    assert.equal(report.certificates.length, 2);
    assert.equal(report.certificates[0]?.thumbprint, thumbprintS256(pki.client.der));
    assert.equal(report.certificates[0]?.sha256Hex, hexOf(pki.client.der));
    assert.ok(report.steps[0]?.checks[0]?.notes.some((n) => n.startsWith('NOTE: the header leaf')), 'the --cert mismatch is noted');
  });
});
