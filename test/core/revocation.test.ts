/**
 * Revocation checking against real responders on 127.0.0.1: an openssl CA (index.txt, `openssl ca
 * -revoke`, `-gencrl`), `openssl ocsp` responders behind a counting Node front, CRLs served by a
 * Node server (http and https), and a forward proxy.
 */
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import * as x509 from '@peculiar/x509';
import { ChainValidator, type ValidatedPath } from '../../src/chain.js';
import { toPem } from '../../src/pem.js';
import { RevocationChecker, type RevocationOptions } from '../../src/revocation.js';
import type { Result } from '../../src/errors.js';
import { issue } from '../helpers/pki.js';
import {
  OpensslCa, closedPort, craftOcspResponse, forwardTo, serveFiles, startForwardProxy, startTestServer, stopAllResponders,
  type CertFiles, type CraftOptions, type Handler, type OcspProcess, type TestServer,
} from '../helpers/openssl-ca.js';

type Backend = 'delegated' | 'issuer' | 'rogue' | 'wrongEku' | 'shortLived';

let dir: string | undefined;
let ocspFront: TestServer;
let crlServer: TestServer;
let httpsCrlServer: TestServer;
let proxy: TestServer;
let deadPort: number;
let tlsRootPem: string;
const backends = new Map<Backend, OcspProcess>();
let backend: Backend = 'delegated';
/** When set, the OCSP front replays its last answer instead of asking the responder. */
let replay = false;
let lastOcspAnswer: Awaited<ReturnType<Handler>> | undefined;
/** When set, the OCSP front answers with a response crafted by pkijs (signed by the delegated responder). */
let craft: CraftOptions | null = null;
/** When set, the OCSP front answers with these bytes. */
let rawAnswer: Buffer | null = null;
let impostorCrl: Buffer;
const crlFiles = new Map<string, Buffer>();

let root: OpensslCa;
let inter: OpensslCa;
let inter2: OpensslCa;
let bigCa: OpensslCa;
let rogue: OpensslCa;
const BIG_CRL_ENTRIES = 20000;
const leaf: Record<string, CertFiles> = {};

const HOUR = 3600 * 1000;

function checker(overrides: Partial<RevocationOptions> = {}): RevocationChecker {
  return new RevocationChecker({
    mode: 'IGNORE_CA_ERROR', timeoutMs: 2000, cacheTtlMs: 60000, cacheSize: 100, sslVerify: true, ...overrides,
  });
}

function cert(name: string): CertFiles {
  const found = leaf[name];
  if (found === undefined) throw new Error(`no test certificate ${name}`);
  return found;
}

/** What chain validation accepts for `chain` under `anchors` (revocation checks exactly that path). */
async function validated(chain: readonly Uint8Array[], anchors: readonly Uint8Array[], allowPartialChain = false): Promise<ValidatedPath> {
  const validator = ChainValidator.fromPem(anchors.map((der) => toPem(der, 'CERTIFICATE')), { allowPartialChain, cacheSize: 0, cacheTtlMs: 0 });
  assert.ok(validator.ok, validator.ok ? '' : validator.error.detail);
  const path = await validator.value.validatePath(chain);
  assert.ok(path.ok, path.ok ? '' : path.error.detail);
  return path.value;
}

/** The validated path of chain = [leaf, intermediate] under anchors = [root]. */
function pathOf(name: string, issuer: OpensslCa = inter): Promise<ValidatedPath> {
  return validated([cert(name).der, issuer.files.der], [root.files.der]);
}

function expectFailure<T>(result: Result<T>, reason: string, ...detailIncludes: string[]): string {
  assert.equal(result.ok, false, `expected ${reason}, got ${JSON.stringify(result)}`);
  if (result.ok) throw new Error('unreachable');
  assert.equal(result.error.reason, reason, result.error.detail);
  for (const part of detailIncludes) assert.ok(result.error.detail.includes(part), `detail "${result.error.detail}" lacks "${part}"`);
  return result.error.detail;
}

function expectOk<T>(result: Result<T>): T {
  assert.equal(result.ok, true, `expected ok, got ${JSON.stringify(result)}`);
  if (!result.ok) throw new Error('unreachable');
  return result.value;
}

before(async () => {
  const base = mkdtempSync(join(tmpdir(), 'mtls-pop-revocation-'));
  dir = base;
  // Ports first: the certificates carry the URLs.
  const forward = forwardTo(() => {
    const responder = backends.get(backend);
    if (responder === undefined) throw new Error(`backend ${backend} not started`);
    return responder.port;
  });
  ocspFront = await startTestServer(async (request, body) => {
    if (rawAnswer !== null) return { status: 200, body: rawAnswer };
    if (craft !== null) return { status: 200, body: await craftOcspResponse(body, cert('ocspSigner'), inter.files, craft) };
    if (replay && lastOcspAnswer !== undefined) return lastOcspAnswer;
    lastOcspAnswer = await forward(request, body);
    return lastOcspAnswer;
  });
  crlServer = await startTestServer(serveFiles(() => crlFiles));
  const tlsRoot = await issue({ subject: 'CN=Responder TLS Root', ca: true });
  const tlsServer = await issue({
    subject: 'CN=localhost', issuer: tlsRoot, ipAddresses: ['127.0.0.1'], eku: [x509.ExtendedKeyUsage.serverAuth],
  });
  tlsRootPem = tlsRoot.pem;
  httpsCrlServer = await startTestServer(serveFiles(() => crlFiles), { cert: tlsServer.pem, key: await tlsServer.keyPem() });
  proxy = await startForwardProxy();
  deadPort = await closedPort();

  const ocspUrl = `http://127.0.0.1:${ocspFront.port}/`;
  const crlUrl = (name: string): string => `http://127.0.0.1:${crlServer.port}/${name}.crl`;
  const deadUrl = `http://127.0.0.1:${deadPort}/`;

  root = await OpensslCa.createRoot(join(base, 'root'), '/CN=Revocation Test Root/O=mtls-pop tests', true);
  inter = await root.createSubCa(join(base, 'inter'), '/CN=Revocation Test Intermediate/O=mtls-pop tests', { crlUrl: crlUrl('root') });
  inter2 = await root.createSubCa(join(base, 'inter2'), '/CN=Revoked Intermediate/O=mtls-pop tests', { crlUrl: crlUrl('root') });
  rogue = await OpensslCa.createRoot(join(base, 'rogue'), '/CN=Rogue CA');
  // Same name as the intermediate, different key: its CRLs are forgeries.
  const impostor = await OpensslCa.createRoot(join(base, 'impostor'), '/CN=Revocation Test Intermediate/O=mtls-pop tests');
  impostorCrl = await impostor.generateCrl({ days: 1 });
  bigCa = await root.createSubCa(join(base, 'big'), '/CN=Busy CA/O=mtls-pop tests', { crlUrl: crlUrl('root') });

  const both = { ocspUrl, crlUrl: crlUrl('inter') };
  const specs: Array<[string, OpensslCa, string, Parameters<OpensslCa['issue']>[2]]> = [
    ['good', inter, '/CN=good-client/O=mtls-pop tests', both],
    ['revoked', inter, '/CN=revoked-client/O=mtls-pop tests', both],
    ['sameDnAsRevoked', inter, '/CN=revoked-client/O=mtls-pop tests', both],
    ['ocspOnly', inter, '/CN=ocsp-only', { ocspUrl }],
    ['ocspOnlyRevoked', inter, '/CN=ocsp-only-revoked', { ocspUrl }],
    ['crlOnly', inter, '/CN=crl-only', { crlUrl: crlUrl('inter') }],
    ['crlOnlyRevoked', inter, '/CN=crl-only-revoked', { crlUrl: crlUrl('inter') }],
    ['noInfo', inter, '/CN=no-revocation-info', {}],
    ['down', inter, '/CN=responders-down', { ocspUrl: deadUrl, crlUrl: deadUrl }],
    ['httpsCrl', inter, '/CN=https-crl', { crlUrl: `https://127.0.0.1:${httpsCrlServer.port}/inter.crl` }],
    ['ocspSigner', inter, '/CN=OCSP Responder', { eku: 'OCSPSigning' }],
    ['notOcspSigner', inter, '/CN=Not An OCSP Responder', { eku: 'clientAuth' }],
    ['underRevokedCa', inter2, '/CN=client-of-revoked-ca', { crlUrl: crlUrl('inter2') }],
    ['rogueSigner', rogue, '/CN=OCSP Responder', { eku: 'OCSPSigning' }],
    ['bigGood', bigCa, '/CN=busy-ca-good', { crlUrl: crlUrl('big') }],
    ['bigRevoked', bigCa, '/CN=busy-ca-revoked', { crlUrl: crlUrl('big') }],
  ];
  for (const [name, ca, subject, options] of specs) leaf[name] = await ca.issue(name, subject, options);
  leaf['unrecorded'] = await inter.issueOutsideIndex('unrecorded', '/CN=unrecorded', both);
  leaf['unrecordedOcspOnly'] = await inter.issueOutsideIndex('unrecordedOcspOnly', '/CN=unrecorded-ocsp-only', { ocspUrl });

  await inter.revoke(cert('revoked'));
  await inter.revoke(cert('ocspOnlyRevoked'));
  await inter.revoke(cert('crlOnlyRevoked'));
  await root.revoke(inter2.files, 'cACompromise');
  crlFiles.set('/inter.crl', await inter.generateCrl({ days: 1 }));
  crlFiles.set('/inter2.crl', await inter2.generateCrl({ days: 1 }));
  crlFiles.set('/root.crl', await root.generateCrl({ days: 1 }));
  bigCa.addFakeRevocations(BIG_CRL_ENTRIES / 2);
  await bigCa.revoke(cert('bigRevoked'));
  bigCa.addFakeRevocations(BIG_CRL_ENTRIES / 2);
  crlFiles.set('/big.crl', await bigCa.generateCrl({ days: 1 }));

  // Revocations are in index.txt before the responders read it.
  const started = await Promise.all([
    inter.startOcspResponder(cert('ocspSigner')),
    inter.startOcspResponder(inter.files),
    inter.startOcspResponder(cert('rogueSigner')),
    inter.startOcspResponder(cert('notOcspSigner')),
    inter.startOcspResponder(cert('ocspSigner'), { nmin: 1 }),
  ]);
  (['delegated', 'issuer', 'rogue', 'wrongEku', 'shortLived'] as const).forEach((name, i) => {
    const responder = started[i];
    if (responder !== undefined) backends.set(name, responder);
  });
});

after(async () => {
  await stopAllResponders();
  await Promise.all([ocspFront, crlServer, httpsCrlServer, proxy].map((s) => s?.close()));
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Resets the fronts before a test: delegated responder, normal behaviour, zeroed counters. */
function reset(which: Backend = 'delegated'): void {
  backend = which;
  replay = false;
  craft = null;
  rawAnswer = null;
  for (const server of [ocspFront, crlServer, httpsCrlServer, proxy]) {
    server.mode = 'normal';
    server.requests = 0;
  }
}

describe('OCSP answers', () => {
  test('good certificate passes with an OCSP answer from a delegated responder', async (t) => {
    reset();
    const c = checker();
    const started = process.hrtime.bigint();
    const value = expectOk(await c.check(await pathOf('good')));
    const coldMs = Number(process.hrtime.bigint() - started) / 1e6;
    const again = process.hrtime.bigint();
    expectOk(await checker().check(await pathOf('good')));
    const warmColdMs = Number(process.hrtime.bigint() - again) / 1e6;
    t.diagnostic(`cold OCSP check: first in process ${coldMs.toFixed(1)} ms, next (fresh cache) ${warmColdMs.toFixed(1)} ms`);
    assert.deepEqual(value, { checked: 1, source: 'ocsp', responder: `127.0.0.1:${ocspFront.port}` });
    assert.equal(ocspFront.requests, 2, 'one request per checker (separate caches)');
    assert.equal(crlServer.requests, 0);
    assert.deepEqual(c.stats(), { hits: 0, misses: 1, fetches: 1, coalesced: 0 });
  });

  test('good certificate passes under STRICT with the issuing CA itself as OCSP signer', async () => {
    reset('issuer');
    const value = expectOk(await checker({ mode: 'STRICT' }).check(await pathOf('good')));
    assert.deepEqual(value, { checked: 1, source: 'ocsp', responder: `127.0.0.1:${ocspFront.port}` });
    assert.equal(ocspFront.requests, 1);
  });

  test('revoked certificate is rejected in IGNORE_CA_ERROR and STRICT, naming OCSP and the responder host', async () => {
    for (const mode of ['IGNORE_CA_ERROR', 'STRICT'] as const) {
      reset();
      expectFailure(await checker({ mode }).check(await pathOf('revoked')), 'certificate_revoked',
        'OCSP', `127.0.0.1:${ocspFront.port}`, 'CN=revoked-client');
      assert.equal(ocspFront.requests, 1);
      assert.equal(crlServer.requests, 0, 'a definitive OCSP answer needs no CRL');
    }
  });

  test('SKIP checks nothing and makes no request, even for a revoked certificate', async () => {
    reset();
    const value = expectOk(await checker({ mode: 'SKIP' }).check(await pathOf('revoked')));
    assert.deepEqual(value, { checked: 0, source: 'skipped' });
    assert.equal(ocspFront.requests, 0);
  });

  test('ocspUrlOverride is used for a certificate without AIA', async () => {
    reset();
    const url = `http://127.0.0.1:${ocspFront.port}/`;
    const value = expectOk(await checker({ mode: 'STRICT', ocspUrlOverride: url }).check(await pathOf('noInfo')));
    assert.equal(value.source, 'ocsp');
    assert.equal(ocspFront.requests, 1);
  });

  test('same subject DN but another serial gets its own verdict (cache keyed by issuer + serial)', async () => {
    reset();
    const c = checker();
    expectFailure(await c.check(await pathOf('revoked')), 'certificate_revoked');
    const value = expectOk(await c.check(await pathOf('sameDnAsRevoked')));
    assert.equal(value.source, 'ocsp');
    assert.equal(ocspFront.requests, 2);
  });
});

describe('CRL fallback', () => {
  test('revoked certificate with only a CRL distribution point is rejected; the CRL is fetched once', async () => {
    reset();
    const c = checker();
    expectFailure(await c.check(await pathOf('crlOnlyRevoked')), 'certificate_revoked', 'CRL', `127.0.0.1:${crlServer.port}`);
    const value = expectOk(await c.check(await pathOf('crlOnly')));
    assert.deepEqual(value, { checked: 1, source: 'crl', responder: `127.0.0.1:${crlServer.port}` });
    assert.equal(crlServer.requests, 1, 'both certificates answered from one parsed CRL');
    assert.equal(ocspFront.requests, 0);
  });

  test('OCSP responder answering HTTP 500 falls back to the CRL', async () => {
    reset();
    ocspFront.mode = 'http500';
    expectFailure(await checker().check(await pathOf('revoked')), 'certificate_revoked', 'CRL');
    assert.equal(ocspFront.requests, 1);
    assert.equal(crlServer.requests, 1);
  });

  test('stale CRL (nextUpdate passed) is no answer: IGNORE_CA_ERROR passes, STRICT rejects', async () => {
    reset();
    const now = (): number => Date.now() + 48 * HOUR; // the CRL was issued with -crldays 1
    const ignored = expectOk(await checker({ now }).check(await pathOf('crlOnlyRevoked')));
    assert.equal(ignored.source, 'none');
    assert.match(ignored.detail ?? '', /stale/);
    expectFailure(await checker({ mode: 'STRICT', now }).check(await pathOf('crlOnlyRevoked')), 'revocation_unknown', 'stale');
  });

  test(`CRL with ${BIG_CRL_ENTRIES} entries: revoked entry found, others pass, parsed once`, async (t) => {
    reset();
    const c = checker({ mode: 'STRICT' });
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const started = process.hrtime.bigint();
    expectFailure(await c.check(await validated([cert('bigRevoked').der, bigCa.files.der], [root.files.der])), 'certificate_revoked', 'CRL');
    const coldMs = Number(process.hrtime.bigint() - started) / 1e6;
    loopDelay.disable();
    const crlBytes = crlFiles.get('/big.crl')?.length ?? 0;
    t.diagnostic(`cold CRL check, ${BIG_CRL_ENTRIES + 1} entries (${(crlBytes / 1024).toFixed(0)} KiB): ${coldMs.toFixed(1)} ms, `
      + `longest event-loop delay meanwhile ${(loopDelay.max / 1e6).toFixed(1)} ms`);
    const value = expectOk(await c.check(await validated([cert('bigGood').der, bigCa.files.der], [root.files.der])));
    assert.equal(value.source, 'crl');
    assert.equal(crlServer.requests, 1);
  });

  test('CRL larger than the size cap is no answer', async () => {
    reset();
    expectFailure(await checker({ mode: 'STRICT', maxCrlBytes: 100 }).check(await pathOf('crlOnly')),
      'revocation_unknown', 'exceeds the 100-byte limit');
  });

  test('https CRL: verified with the configured CA, rejected without it, accepted with ssl_verify off', async () => {
    reset();
    const verified = expectOk(await checker({ mode: 'STRICT', caPem: [tlsRootPem] }).check(await pathOf('httpsCrl')));
    assert.equal(verified.source, 'crl');
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('httpsCrl')), 'revocation_unknown', 'TLS certificate rejected');
    const unverified = expectOk(await checker({ mode: 'STRICT', sslVerify: false }).check(await pathOf('httpsCrl')));
    assert.equal(unverified.source, 'crl');
    assert.equal(httpsCrlServer.requests, 2, 'the TLS failure never reached the HTTP layer');
  });

  test('http_proxy carries plain-http responder requests in absolute form', async () => {
    reset();
    const value = expectOk(await checker({ mode: 'STRICT', httpProxy: `http://127.0.0.1:${proxy.port}` }).check(await pathOf('crlOnly')));
    assert.equal(value.source, 'crl');
    assert.equal(proxy.requests, 1);
    assert.equal(crlServer.requests, 1);
  });
});

describe('no answer: the three modes', () => {
  test('responders down: SKIP passes, IGNORE_CA_ERROR passes, STRICT rejects naming both responders', async () => {
    reset();
    assert.deepEqual(expectOk(await checker({ mode: 'SKIP' }).check(await pathOf('down'))), { checked: 0, source: 'skipped' });
    const ignored = expectOk(await checker().check(await pathOf('down')));
    assert.equal(ignored.source, 'none');
    assert.equal(ignored.checked, 0);
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('down')), 'revocation_unknown',
      `OCSP 127.0.0.1:${deadPort}: connection refused`, `CRL 127.0.0.1:${deadPort}: connection refused`);
  });

  test('certificate without AIA OCSP or CRL DP: IGNORE_CA_ERROR passes, STRICT rejects', async () => {
    reset();
    assert.equal(expectOk(await checker().check(await pathOf('noInfo'))).source, 'none');
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('noInfo')), 'revocation_unknown',
      'no OCSP responder and no CRL distribution point');
  });

  test('leaf pinned alone (partial chain) without its issuer: IGNORE_CA_ERROR passes, STRICT rejects', async () => {
    reset();
    const path = await validated([cert('good').der], [cert('good').der], true);
    assert.equal(path.leafIssuer, null);
    assert.equal(expectOk(await checker().check(path)).source, 'none');
    expectFailure(await checker({ mode: 'STRICT' }).check(path), 'revocation_unknown', 'issuer is not among');
    assert.equal(ocspFront.requests, 0);
  });

  test('responder that never answers costs about http_timeout, then the CRL answers', async () => {
    reset();
    ocspFront.mode = 'hang';
    const timeoutMs = 300;
    let started = Date.now();
    const value = expectOk(await checker({ mode: 'STRICT', timeoutMs }).check(await pathOf('good')));
    let elapsed = Date.now() - started;
    assert.equal(value.source, 'crl');
    assert.ok(elapsed >= timeoutMs - 5 && elapsed < timeoutMs + 1500, `elapsed ${elapsed} ms`);

    started = Date.now();
    expectFailure(await checker({ mode: 'STRICT', timeoutMs }).check(await pathOf('ocspOnly')), 'revocation_unknown',
      `no answer within ${timeoutMs} ms`);
    elapsed = Date.now() - started;
    assert.ok(elapsed >= timeoutMs - 5 && elapsed < timeoutMs + 1500, `elapsed ${elapsed} ms`);
  });
});

describe('invalid answers are ignored entirely', () => {
  test('OCSP response signed by an unrelated CA\'s responder: "good" and "revoked" both count as no answer', async () => {
    reset('rogue');
    const good = expectOk(await checker().check(await pathOf('ocspOnly')));
    assert.equal(good.source, 'none');
    assert.match(good.detail ?? '', /not signed by the issuer or a responder it authorised/);
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly')), 'revocation_unknown', 'not signed by the issuer');
    // A forged "revoked" does not reject: it is ignored like a forged "good".
    const forgedRevoked = expectOk(await checker().check(await pathOf('ocspOnlyRevoked')));
    assert.equal(forgedRevoked.source, 'none');
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnlyRevoked')), 'revocation_unknown');
    assert.equal(ocspFront.requests, 4);
  });

  test('responder certificate issued by the CA but without EKU OCSPSigning is not authorised', async () => {
    reset('wrongEku');
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly')), 'revocation_unknown', 'not signed by the issuer');
    assert.equal(expectOk(await checker().check(await pathOf('ocspOnlyRevoked'))).source, 'none');
  });

  test('replayed OCSP response (another request\'s nonce) is no answer', async () => {
    reset();
    expectOk(await checker().check(await pathOf('ocspOnly')));
    replay = true;
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly')), 'revocation_unknown',
      'nonce does not match');
    assert.equal(ocspFront.requests, 2);
  });

  test('responder that does not know the certificate (status unknown) is no answer; the CRL decides', async () => {
    reset();
    // Signed by the intermediate but never recorded in its index.txt: openssl ocsp answers "unknown".
    const value = expectOk(await checker({ mode: 'STRICT' }).check(await pathOf('unrecorded')));
    assert.deepEqual(value, { checked: 1, source: 'crl', responder: `127.0.0.1:${crlServer.port}` });
    assert.equal(ocspFront.requests, 1);
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('unrecordedOcspOnly')), 'revocation_unknown',
      'responder does not know this certificate');
  });

  test('stale OCSP response (nextUpdate passed) is no answer', async () => {
    reset('shortLived'); // openssl ocsp -nmin 1
    const now = (): number => Date.now() + 10 * 60 * 1000;
    expectFailure(await checker({ mode: 'STRICT', now }).check(await pathOf('ocspOnly')), 'revocation_unknown', 'stale');
    assert.equal(expectOk(await checker({ now }).check(await pathOf('ocspOnlyRevoked'))).source, 'none');
  });

  test('OCSP response whose thisUpdate is in the future is no answer', async () => {
    reset('issuer'); // the CA signs itself: a delegated signer would also be "not yet valid" at this clock
    const now = (): number => Date.now() - HOUR;
    expectFailure(await checker({ mode: 'STRICT', now }).check(await pathOf('ocspOnly')), 'revocation_unknown', 'thisUpdate is in the future');
  });
});

describe('crafted OCSP answers (built and signed with pkijs)', () => {
  test('control: a well-formed crafted "good" passes and a crafted "revoked" rejects', async () => {
    reset();
    craft = {};
    assert.equal(expectOk(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly'))).source, 'ocsp');
    craft = { status: 'revoked' };
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly')), 'certificate_revoked', 'OCSP');
  });

  test('ResponderID byKey, a SHA-256 CertID, no nonce echo and no nextUpdate are all accepted', async () => {
    reset();
    craft = { byKey: true, sha256CertId: true, echoNonce: false, noNextUpdate: true };
    assert.equal(expectOk(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly'))).source, 'ocsp');
  });

  test('an answer about another certificate (issuerNameHash or serial differs) is no answer', async () => {
    for (const wrong of [{ wrongNameHash: true }, { wrongSerial: true }]) {
      reset();
      craft = { status: 'revoked', ...wrong };
      expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly')), 'revocation_unknown',
        'response has no status for this certificate');
    }
  });

  test('a delegated responder certificate that has expired is not authorised', async () => {
    reset();
    craft = { noNextUpdate: true }; // so only the responder certificate's own validity can fail
    const now = (): number => Date.now() + 40 * 24 * HOUR; // openssl ca issued it for 30 days
    expectFailure(await checker({ mode: 'STRICT', now }).check(await pathOf('ocspOnly')), 'revocation_unknown',
      'not signed by the issuer or a responder it authorised');
    assert.equal(expectOk(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly'))).source, 'ocsp');
  });

  test('responseStatus tryLater and a body that is not OCSP are no answer', async () => {
    reset();
    craft = { responseStatus: 3 };
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly')), 'revocation_unknown', 'responder status 3');
    craft = null;
    rawAnswer = Buffer.from('<html>proxy error</html>');
    expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('ocspOnly')), 'revocation_unknown',
      'not a well-formed OCSP response');
  });
});

describe('forged CRLs are ignored entirely', () => {
  test('CRL with the issuer\'s name but another key, or another issuer\'s CRL, is no answer', async () => {
    reset();
    const genuine = crlFiles.get('/inter.crl');
    try {
      crlFiles.set('/inter.crl', impostorCrl);
      expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('crlOnlyRevoked')), 'revocation_unknown',
        'CRL is not signed by the issuer');
      assert.equal(expectOk(await checker().check(await pathOf('crlOnlyRevoked'))).source, 'none');
      crlFiles.set('/inter.crl', crlFiles.get('/root.crl') ?? Buffer.alloc(0));
      expectFailure(await checker({ mode: 'STRICT' }).check(await pathOf('crlOnlyRevoked')), 'revocation_unknown',
        'CRL issuer is not the certificate issuer');
    } finally {
      if (genuine !== undefined) crlFiles.set('/inter.crl', genuine);
    }
  });
});

describe('caching and coalescing', () => {
  test('second check is a cache hit with no network call', async (t) => {
    reset();
    const c = checker();
    expectOk(await c.check(await pathOf('good')));
    const cached = expectOk(await c.check(await pathOf('good')));
    assert.deepEqual(cached, { checked: 1, source: 'cache', responder: `127.0.0.1:${ocspFront.port}` });
    assert.equal(ocspFront.requests, 1);
    assert.deepEqual(c.stats(), { hits: 1, misses: 1, fetches: 1, coalesced: 0 });

    const chain = await pathOf('good');
    const measure = async (rounds: number): Promise<number> => {
      const started = process.hrtime.bigint();
      for (let i = 0; i < rounds; i++) await c.check(chain);
      return Number(process.hrtime.bigint() - started) / 1e3 / rounds;
    };
    const firstUs = await measure(1000);
    const warmUs = await measure(5000);
    t.diagnostic(`cache hit (hash 3 DERs, look up parsed certs, verdict cache): first 1000 ${firstUs.toFixed(1)} us/check, `
      + `next 5000 ${warmUs.toFixed(1)} us/check`);
    assert.equal(ocspFront.requests, 1);
  });

  test('a revoked verdict is cached too', async () => {
    reset();
    const c = checker();
    expectFailure(await c.check(await pathOf('revoked')), 'certificate_revoked');
    expectFailure(await c.check(await pathOf('revoked')), 'certificate_revoked');
    assert.equal(ocspFront.requests, 1);
  });

  test('10 concurrent first checks of one certificate make exactly one network call', async () => {
    reset();
    const c = checker();
    const path = await pathOf('good');
    const results = await Promise.all(Array.from({ length: 10 }, () => c.check(path)));
    for (const result of results) assert.equal(expectOk(result).source, 'ocsp');
    assert.equal(ocspFront.requests, 1);
    assert.deepEqual(c.stats(), { hits: 0, misses: 10, fetches: 1, coalesced: 9 });
  });

  test('failures are never cached: down, then up, the next check succeeds', async () => {
    reset();
    const c = checker({ mode: 'STRICT' });
    ocspFront.mode = 'reset';
    expectFailure(await c.check(await pathOf('ocspOnly')), 'revocation_unknown', 'connection reset');
    ocspFront.mode = 'normal';
    assert.equal(expectOk(await c.check(await pathOf('ocspOnly'))).source, 'ocsp');
    assert.equal(ocspFront.requests, 2);
  });

  test('invalid answers are never cached: forged, then genuine, the next check uses the genuine one', async () => {
    reset('rogue');
    const c = checker({ mode: 'STRICT' });
    expectFailure(await c.check(await pathOf('ocspOnlyRevoked')), 'revocation_unknown');
    backend = 'delegated';
    expectFailure(await c.check(await pathOf('ocspOnlyRevoked')), 'certificate_revoked');
    assert.equal(ocspFront.requests, 2);
  });

  test('a cached verdict never outlives the OCSP nextUpdate', async () => {
    reset('shortLived'); // nextUpdate = thisUpdate + 1 minute
    let offset = 0;
    const c = checker({ cacheTtlMs: 24 * HOUR, now: () => Date.now() + offset });
    assert.equal(expectOk(await c.check(await pathOf('ocspOnly'))).source, 'ocsp');
    offset = 30 * 1000;
    assert.equal(expectOk(await c.check(await pathOf('ocspOnly'))).source, 'cache');
    offset = 2 * 60 * 1000;
    assert.equal(expectOk(await c.check(await pathOf('ocspOnly'))).source, 'ocsp');
    assert.equal(ocspFront.requests, 2);
  });

  test('cacheTtlMs bounds the cache when nextUpdate is further away', async () => {
    reset();
    let offset = 0;
    const c = checker({ cacheTtlMs: 1000, now: () => Date.now() + offset });
    expectOk(await c.check(await pathOf('ocspOnly')));
    offset = 1500;
    assert.equal(expectOk(await c.check(await pathOf('ocspOnly'))).source, 'ocsp');
    assert.equal(ocspFront.requests, 2);
  });
});

describe('whole path', () => {
  test('leaf only (default): a client under a revoked intermediate passes on its own good status', async () => {
    reset();
    const value = expectOk(await checker({ mode: 'STRICT' }).check(await pathOf('underRevokedCa', inter2)));
    assert.deepEqual(value, { checked: 1, source: 'crl', responder: `127.0.0.1:${crlServer.port}` });
  });

  test('checkWholePath rejects a client under a revoked intermediate, naming the intermediate', async () => {
    reset();
    expectFailure(await checker({ checkWholePath: true }).check(await pathOf('underRevokedCa', inter2)),
      'certificate_revoked', 'CN=Revoked Intermediate');
  });

  test('checkWholePath checks leaf (OCSP) and intermediate (root CRL, RSA signature)', async () => {
    reset();
    const value = expectOk(await checker({ mode: 'STRICT', checkWholePath: true }).check(await pathOf('good')));
    assert.deepEqual(value, { checked: 2, source: 'ocsp', responder: `127.0.0.1:${ocspFront.port}` });
    assert.equal(ocspFront.requests, 1);
    assert.equal(crlServer.requests, 1);
  });
});

describe('which certificates are checked', () => {
  test('a leaf pinned as a trust anchor is still checked', async () => {
    reset();
    const path = await validated([cert('good').der, inter.files.der], [cert('good').der, inter.files.der], true);
    assert.equal(path.certificates.length, 1);
    const value = expectOk(await checker({ mode: 'STRICT' }).check(path));
    assert.deepEqual(value, { checked: 1, source: 'ocsp', responder: `127.0.0.1:${ocspFront.port}` });
  });

  test('checkWholePath stops at a configured intermediate anchor (it is not checked)', async () => {
    reset();
    const path = await validated([cert('good').der, inter.files.der], [inter.files.der], true);
    const value = expectOk(await checker({ mode: 'STRICT', checkWholePath: true }).check(path));
    assert.equal(value.checked, 1);
    assert.equal(crlServer.requests, 0, 'the root CRL covering the intermediate was not fetched');
  });

  test('a configured intermediate in the middle of the path ends the whole-path check', async () => {
    reset();
    const path = await validated([cert('good').der, inter.files.der], [inter.files.der, root.files.der]);
    assert.deepEqual(path.trusted, [false, true, true]);
    const value = expectOk(await checker({ mode: 'STRICT', checkWholePath: true }).check(path));
    assert.equal(value.checked, 1);
    assert.equal(crlServer.requests, 0, 'the root CRL covering the configured intermediate was not fetched');
  });
});

describe('never a silent pass on internal errors', () => {
  test('an empty path is internal_error in IGNORE_CA_ERROR and STRICT', async () => {
    const good = await pathOf('good');
    for (const mode of ['IGNORE_CA_ERROR', 'STRICT'] as const) {
      expectFailure(await checker({ mode }).check({ ...good, certificates: [], trusted: [] }), 'internal_error');
    }
  });
});
