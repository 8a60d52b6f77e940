/**
 * Revocation of the path chain validation accepted, end to end through the Verifier (issue 11,
 * items 2, 3, 5, 6, 7): certificates made with the openssl CLI (and a few CRLs and OCSP answers
 * with pkijs), CRLs served by a counting HTTP server on 127.0.0.1, tokens from a real JWKS server.
 *
 * - decoys: a certificate with an intermediate's name and public key but a junk signature must not
 *   hide the real (revoked) intermediate, and no URL of a certificate off the validated path is
 *   ever fetched (requests counted at a server standing for an internal address);
 * - an issuer encoded differently (PrintableString vs UTF8String, case) or signing with DSA is the
 *   same issuer for revocation as for path validation (openssl verify -crl_check agrees);
 * - SHA-1 is refused in RSASSA-PSS (hash and MGF1) and in CRL and OCSP signatures;
 * - a CRL's issuingDistributionPoint scope is honoured;
 * - an answer without nextUpdate is current only for revocation_max_age.
 */
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseConfig } from '../../src/config.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { Verifier, type Decision } from '../../src/verifier.js';
import {
  OpensslCa, craftCrl, craftOcspResponse, serveFiles, startTestServer, stopAllResponders,
  type CertFiles, type CraftOptions, type TestServer,
} from '../helpers/openssl-ca.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { strictPemConfig } from '../helpers/seed.js';

const run = promisify(execFile);
const DAY = 24 * 3600 * 1000;

let dir: string;
let idp: JwksServer;
/** The CRL / OCSP server the CAs name in their certificates. */
let responder: TestServer;
/** Stands for an internal address only decoys name: it must never be asked anything. */
let internal: TestServer;
const files = new Map<string, Buffer>();
let craft: { options: CraftOptions; signer: CertFiles; issuer: CertFiles } | null = null;

let root: OpensslCa;
let inter: OpensslCa;
let client: CertFiles;
let decoy: CertFiles;
let decoyRoot: CertFiles;

async function openssl(args: readonly string[], cwd = dir): Promise<void> {
  await run('openssl', [...args], { cwd });
}

function url(path: string): string {
  return `http://127.0.0.1:${responder.port}${path}`;
}

function readFiles(certPath: string, keyPath: string): CertFiles {
  const pem = readFileSync(certPath, 'utf8');
  return { certPath, keyPath, pem, der: Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, ''), 'base64') };
}

/** An EC key (PKCS#8) and its public key, in `where`. */
async function ecKey(where: string, name: string): Promise<{ key: string; pub: string }> {
  const key = join(where, `${name}.key`);
  const pub = join(where, `${name}.pub`);
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
  await openssl(['pkey', '-in', key, '-pubout', '-out', pub]);
  return { key, pub };
}

const CA_EXT = 'basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n';
const leafExt = (extra: string): string => 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n'
  + `extendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n${extra}`;

/**
 * `openssl x509 -new`: a certificate for `subject` with public key `pub`, signed by `ca` (with
 * `caKey`, which need not be `ca`'s key: that is how decoys get junk signatures).
 */
async function forge(name: string, where: string, subject: string, pub: string, ca: string, caKey: string, ext: string,
  extraArgs: readonly string[] = []): Promise<string> {
  const out = join(where, `${name}.pem`);
  writeFileSync(join(where, `${name}.ext`), `[ ext ]\n${ext}`);
  await openssl(['x509', '-new', '-subj', subject, '-force_pubkey', pub, '-CA', ca, '-CAkey', caKey, '-days', '30',
    '-extfile', join(where, `${name}.ext`), '-extensions', 'ext', '-out', out, ...extraArgs]);
  return out;
}

/** A self-signed CA certificate for `key` with `subject`; `mask` selects the string type of the name. */
async function selfSigned(where: string, name: string, subject: string, key: string, mask: 'default' | 'utf8only', extraArgs: readonly string[] = []): Promise<string> {
  const config = join(where, `${name}.cnf`);
  writeFileSync(config, `[ req ]\ndistinguished_name = dn\nprompt = no\nstring_mask = ${mask}\nx509_extensions = v3_ca\n[ dn ]\nCN = x\n[ v3_ca ]\n${CA_EXT}`);
  const out = join(where, `${name}.pem`);
  await openssl(['req', '-config', config, '-x509', '-new', '-key', key, '-subj', subject, '-days', '30', '-out', out, ...extraArgs]);
  return out;
}

/** An OpensslCa directory (index, CRL numbers) whose CA certificate and key are replaced by ours. */
async function caWith(name: string, certPath: string, keyPath: string): Promise<OpensslCa> {
  const ca = await OpensslCa.createRoot(join(dir, name), '/CN=placeholder');
  copyFileSync(certPath, join(ca.dir, 'ca.pem'));
  copyFileSync(keyPath, join(ca.dir, 'ca.key'));
  return ca;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mtls-pop-revocation-path-'));
  idp = await startJwksServer();
  responder = await startTestServer(async (request, body) => {
    if (craft !== null && request.method === 'POST') {
      return { status: 200, body: await craftOcspResponse(body, craft.signer, craft.issuer, craft.options), type: 'application/ocsp-response' };
    }
    return serveFiles(() => files)(request, body);
  });
  internal = await startTestServer(async () => ({ status: 200, body: Buffer.from('internal secret') }));

  // The real PKI: root -> intermediate (revoked by the root, whose CRL its CDP names) -> client.
  root = await OpensslCa.createRoot(join(dir, 'root'), '/CN=Path Test Root/O=mtls-pop tests');
  inter = await root.createSubCa(join(dir, 'inter'), '/CN=Path Test Intermediate/O=mtls-pop tests', { crlUrl: url('/root.crl') });
  client = await inter.issue('client', '/CN=path-client', { crlUrl: url('/inter.crl'), ocspUrl: url('/ocsp') });
  await root.revoke(inter.files, 'cACompromise');
  files.set('/root.crl', await root.generateCrl({ days: 1 }));
  files.set('/inter.crl', await inter.generateCrl({ days: 1 }));

  // The attacker: its own key, a self-signed certificate named like the real root, and a decoy
  // with the intermediate's name and public key (both public), signed by the attacker's key, whose
  // CRL distribution point and OCSP responder are an internal address.
  const attackDir = join(dir, 'attacker');
  mkdirSync(attackDir);
  const attacker = await ecKey(attackDir, 'attacker');
  decoyRoot = readFiles(await selfSigned(attackDir, 'decoy-root', '/CN=Path Test Root/O=mtls-pop tests', attacker.key, 'utf8only'), attacker.key);
  const interPub = join(attackDir, 'inter.pub');
  await openssl(['x509', '-in', inter.files.certPath, '-pubkey', '-noout', '-out', interPub]);
  decoy = readFiles(await forge('decoy', attackDir, '/CN=Path Test Intermediate/O=mtls-pop tests', interPub, decoyRoot.certPath,
    attacker.key, `${CA_EXT}crlDistributionPoints = URI:http://127.0.0.1:${internal.port}/admin.crl\n`
    + `authorityInfoAccess = OCSP;URI:http://127.0.0.1:${internal.port}/ocsp\n`), attacker.key);
});

after(async () => {
  await stopAllResponders();
  await Promise.all([responder?.close(), internal?.close(), idp?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function verifier(anchorPem: string, header: Record<string, unknown>): Verifier {
  const parsed = parseConfig(strictPemConfig(idp.issuer, anchorPem, {}, header));
  assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.errors));
  return new Verifier(parsed.config);
}

async function tokenFor(cert: CertFiles): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return idp.sign({ iss: idp.issuer, sub: 'svc', iat: now, exp: now + 300, cnf: { 'x5t#S256': thumbprintS256(cert.der) } });
}

/** A request with `chain` (leaf first) in HAProxy/Traefik's comma-separated base64 header and `token`. */
async function decide(v: Verifier, chain: readonly CertFiles[], token?: string): Promise<Decision> {
  return v.verify({
    authorization: [`Bearer ${token ?? await tokenFor(chain[0]!)}`],
    certificateHeader: [chain.map((c) => c.der.toString('base64')).join(',')],
    peerTrusted: true,
    host: 'api.example',
  });
}

function reasonOf(decision: Decision): string {
  return decision.allow ? 'ALLOW' : decision.failure.reason;
}

function detailOf(decision: Decision): string {
  return decision.allow ? '' : decision.failure.detail;
}

function resetCounters(): void {
  responder.requests = 0;
  internal.requests = 0;
  craft = null;
}

describe('revocation checks the path chain validation accepted (item 2)', () => {
  test('a decoy with the intermediate\'s name and key and a junk signature does not hide the revoked intermediate', async () => {
    for (const mode of ['IGNORE_CA_ERROR', 'STRICT'] as const) {
      resetCounters();
      const v = verifier(root.files.pem, { revocation_check_mode: mode, revocation_check_whole_chain: true });
      // Control: the genuine chain is rejected, the intermediate is revoked on the root's CRL.
      const genuine = await decide(v, [client, inter.files]);
      assert.equal(reasonOf(genuine), 'certificate_revoked', `${mode}: ${detailOf(genuine)}`);
      assert.match(detailOf(genuine), /Path Test Intermediate/);
      // The decoy first in the header: the validated path still runs through the real intermediate.
      const v2 = verifier(root.files.pem, { revocation_check_mode: mode, revocation_check_whole_chain: true });
      const withDecoy = await decide(v2, [client, decoy, inter.files]);
      assert.equal(reasonOf(withDecoy), 'certificate_revoked', `${mode}: ${detailOf(withDecoy)}`);
      assert.match(detailOf(withDecoy), /Path Test Intermediate/);
      assert.equal(internal.requests, 0, 'nothing named by the decoy is fetched');
    }
  });

  test('no URL of a certificate off the validated path is ever fetched (decoy chain signed by an attacker "root")', async () => {
    resetCounters();
    const v = verifier(root.files.pem, { revocation_check_mode: 'IGNORE_CA_ERROR', revocation_check_whole_chain: true });
    // A valid token for the client: everything but revocation would pass.
    const decision = await decide(v, [client, decoy, decoyRoot, inter.files]);
    assert.equal(reasonOf(decision), 'certificate_revoked', detailOf(decision));
    assert.equal(internal.requests, 0, 'the decoy\'s CRL distribution point and OCSP responder were never asked');
    assert.ok(responder.requests >= 2, 'the path\'s own responders were asked');
  });

  test('an unauthenticated request (token not valid) makes the plugin fetch nothing, not even the path\'s own URLs', async () => {
    resetCounters();
    const v = verifier(root.files.pem, { revocation_check_mode: 'STRICT', revocation_check_whole_chain: true });
    const forged = `${(await tokenFor(client)).slice(0, -8)}AAAAAAAA`;
    const decision = await decide(v, [client, decoy, decoyRoot, inter.files], forged);
    assert.equal(decision.allow, false);
    assert.notEqual(reasonOf(decision), 'certificate_revoked');
    assert.equal(internal.requests, 0);
    assert.equal(responder.requests, 0, 'revocation runs only after the token and its binding passed');
  });
});
