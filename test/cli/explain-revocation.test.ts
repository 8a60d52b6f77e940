/**
 * `explain` with revocation checking on, against a real CA (openssl ca, -revoke, -gencrl) whose
 * CRL is served over HTTP on 127.0.0.1: the chain step shows the answer, the verdict agrees, and
 * the CRL is fetched once per run (the chain step and the verdict share one answer), also when the
 * responder fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type MtlsPopConfig } from '../../src/config.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { explain, type ExplainReport } from '../../src/explain.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { OpensslCa, serveFiles, startTestServer, stopAllResponders, type CertFiles, type TestServer } from '../helpers/openssl-ca.js';

let dir: string;
let idp: JwksServer;
let crlServer: TestServer;
let root: OpensslCa;
let good: CertFiles;
let revoked: CertFiles;
const crlFiles = new Map<string, Buffer>();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mtls-pop-explain-revocation-'));
  idp = await startJwksServer();
  crlServer = await startTestServer(serveFiles(() => crlFiles));
  const crlUrl = `http://127.0.0.1:${crlServer.port}/root.crl`;
  root = await OpensslCa.createRoot(join(dir, 'root'), '/CN=Explain Revocation Root');
  good = await root.issue('good', '/CN=explain-good', { crlUrl });
  revoked = await root.issue('revoked', '/CN=explain-revoked', { crlUrl });
  await root.revoke(revoked);
  crlFiles.set('/root.crl', await root.generateCrl());
});

after(async () => {
  await stopAllResponders();
  await crlServer?.close();
  await idp?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function config(mode: 'STRICT' | 'IGNORE_CA_ERROR'): MtlsPopConfig {
  const result = parseConfig({
    issuer: idp.issuer,
    proof_of_possession_mtls: 'strict',
    proof_of_possession_mtls_from_header: {
      certificate_header_name: 'x-client-cert', certificate_header_format: 'base64_encoded',
      ca_certificates_pem: [root.files.pem], revocation_check_mode: mode,
    },
  });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  return result.config;
}

async function run(cert: CertFiles, mode: 'STRICT' | 'IGNORE_CA_ERROR'): Promise<{ report: ExplainReport; fetches: number }> {
  const now = Math.floor(Date.now() / 1000);
  const token = await idp.sign({ iss: idp.issuer, sub: 'svc', iat: now, exp: now + 600, cnf: { 'x5t#S256': thumbprintS256(cert.der) } });
  const before = crlServer.requests;
  const report = await explain({ config: config(mode), token, certificate: { kind: 'certificates', certificates: [cert.der] } });
  return { report, fetches: crlServer.requests - before };
}

function revocationLine(report: ExplainReport): { status: string; text: string } {
  const chain = report.steps.find((s) => s.id === 'chain');
  const line = chain?.checks.find((c) => c.name === 'revocation');
  assert.ok(line !== undefined, 'the chain step has a revocation line');
  return { status: line.status, text: line.text };
}

describe('explain with revocation checking', () => {
  test('good certificate: PASS from the CRL, verdict allow, one CRL fetch', async () => {
    crlServer.mode = 'normal';
    const { report, fetches } = await run(good, 'STRICT');
    assert.equal(report.verdict.allow, true, JSON.stringify(report.verdict));
    assert.deepEqual(revocationLine(report), { status: 'PASS', text: `STRICT: good (crl from 127.0.0.1:${crlServer.port})` });
    assert.equal(fetches, 1, 'the chain step and the verdict share one answer');
  });

  test('revoked certificate: FAIL certificate_revoked, verdict deny, one CRL fetch', async () => {
    crlServer.mode = 'normal';
    const { report, fetches } = await run(revoked, 'IGNORE_CA_ERROR');
    assert.equal(report.verdict.allow, false);
    assert.equal(report.verdict.reason, 'certificate_revoked');
    const line = revocationLine(report);
    assert.equal(line.status, 'FAIL');
    assert.match(line.text, /^IGNORE_CA_ERROR: .*revoked/);
    assert.equal(fetches, 1);
  });

  test('CRL server failing: STRICT denies revocation_unknown after one attempt, not two', async () => {
    crlServer.mode = 'http500';
    try {
      const { report, fetches } = await run(good, 'STRICT');
      assert.equal(report.verdict.allow, false);
      assert.equal(report.verdict.reason, 'revocation_unknown');
      assert.equal(revocationLine(report).status, 'FAIL');
      assert.equal(fetches, 1, 'a failing responder is asked once per run');
    } finally {
      crlServer.mode = 'normal';
    }
  });
});
