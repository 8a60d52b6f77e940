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

/** `openssl verify -crl_check` of `leaf` under `anchor` with `crl` (DER): its combined output. */
async function opensslVerify(anchor: string, crl: Buffer, leaf: string, where: string): Promise<string> {
  const crlPath = join(where, `verify-${Date.now()}.crl`);
  writeFileSync(crlPath, crl);
  const crlPem = `${crlPath}.pem`;
  await openssl(['crl', '-inform', 'DER', '-in', crlPath, '-out', crlPem]);
  try {
    const { stdout, stderr } = await run('openssl', ['verify', '-crl_check', '-CAfile', anchor, '-CRLfile', crlPem, leaf], { cwd: where });
    return `${stdout}${stderr}`;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
}

describe('one issuer rule for path validation and revocation (item 3)', () => {
  let encRoot: CertFiles;
  let encRevoked: CertFiles;
  let encGood: CertFiles;
  let encCrl: Buffer;
  let dsaRoot: CertFiles;
  let dsaRevoked: CertFiles;
  let dsaGood: CertFiles;
  let encDir: string;

  before(async () => {
    // A root whose subject is PrintableString; its leaves were issued (same key) under a copy of the
    // root certificate whose subject is UTF8String and upper case, so their issuer field differs
    // from the root's subject in string type and case only (RFC 5280 7.1: the same name).
    encDir = join(dir, 'encoding');
    mkdirSync(encDir);
    const rootKey = await ecKey(encDir, 'root');
    encRoot = readFiles(await selfSigned(encDir, 'root', '/CN=Encoding Root/O=mtls-pop tests', rootKey.key, 'default'), rootKey.key);
    const variant = await selfSigned(encDir, 'root-variant', '/CN=ENCODING ROOT/O=MTLS-POP TESTS', rootKey.key, 'utf8only');
    const ca = await caWith('encoding-ca', encRoot.certPath, rootKey.key);
    const leaf = async (name: string, serial: string): Promise<CertFiles> => {
      const key = await ecKey(encDir, name);
      return readFiles(await forge(name, encDir, `/CN=${name}`, key.pub, variant, rootKey.key,
        leafExt(`crlDistributionPoints = URI:${url('/encoding.crl')}\n`), ['-set_serial', serial]), key.key);
    };
    encRevoked = await leaf('encoding-revoked', '0x5001');
    encGood = await leaf('encoding-good', '0x5002');
    await ca.revoke(encRevoked);
    encCrl = await ca.generateCrl({ days: 1 });
    files.set('/encoding.crl', encCrl);

    // A DSA root (dsa-with-SHA256) signing EC leaves and its CRL.
    const dsaDir = join(dir, 'dsa');
    mkdirSync(dsaDir);
    const params = join(dsaDir, 'params.pem');
    await openssl(['genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:2048', '-pkeyopt', 'dsa_paramgen_q_bits:256', '-out', params]);
    const dsaKey = join(dsaDir, 'dsa.key');
    await openssl(['genpkey', '-paramfile', params, '-out', dsaKey]);
    dsaRoot = readFiles(await selfSigned(dsaDir, 'dsa-root', '/CN=DSA Root/O=mtls-pop tests', dsaKey, 'utf8only', ['-sha256']), dsaKey);
    const dsaCa = await caWith('dsa-ca', dsaRoot.certPath, dsaKey);
    const dsaLeaf = async (name: string, serial: string): Promise<CertFiles> => {
      const key = await ecKey(dsaDir, name);
      return readFiles(await forge(name, dsaDir, `/CN=${name}`, key.pub, dsaRoot.certPath, dsaKey,
        leafExt(`crlDistributionPoints = URI:${url('/dsa.crl')}\n`), ['-set_serial', serial, '-sha256']), key.key);
    };
    dsaRevoked = await dsaLeaf('dsa-revoked', '0x6001');
    dsaGood = await dsaLeaf('dsa-good', '0x6002');
    await dsaCa.revoke(dsaRevoked);
    files.set('/dsa.crl', await dsaCa.generateCrl({ days: 1 }));
  });

  test('openssl verify -crl_check says the differently encoded leaf is revoked', async () => {
    const output = await opensslVerify(encRoot.certPath, encCrl, encRevoked.certPath, encDir);
    assert.match(output, /certificate revoked/);
    assert.match(await opensslVerify(encRoot.certPath, encCrl, encGood.certPath, encDir), /: OK/);
  });

  test('issuer name in another string type and case: the CRL listing the leaf rejects it (IGNORE_CA_ERROR), good passes STRICT', async () => {
    resetCounters();
    const ignore = verifier(encRoot.pem, { revocation_check_mode: 'IGNORE_CA_ERROR' });
    const decision = await decide(ignore, [encRevoked]);
    assert.equal(reasonOf(decision), 'certificate_revoked', detailOf(decision));
    const strict = verifier(encRoot.pem, { revocation_check_mode: 'STRICT' });
    assert.equal(reasonOf(await decide(strict, [encGood])), 'ALLOW');
    assert.equal(responder.requests, 2);
  });

  test('a CRL whose issuer name is encoded like the leaf\'s issuer field (not like the CA certificate) is the CA\'s CRL', async () => {
    resetCounters();
    const variantCa = await caWith('encoding-variant-ca', join(encDir, 'root-variant.pem'), encRoot.keyPath);
    await variantCa.revoke(encRevoked);
    const crl = await variantCa.generateCrl({ days: 1 });
    files.set('/encoding.crl', crl);
    try {
      const decision = await decide(verifier(encRoot.pem, { revocation_check_mode: 'IGNORE_CA_ERROR' }), [encRevoked]);
      assert.equal(reasonOf(decision), 'certificate_revoked', detailOf(decision));
      assert.equal(reasonOf(await decide(verifier(encRoot.pem, { revocation_check_mode: 'STRICT' }), [encGood])), 'ALLOW');
      assert.match(await opensslVerify(encRoot.certPath, crl, encRevoked.certPath, encDir), /certificate revoked/);
    } finally {
      files.set('/encoding.crl', encCrl);
    }
  });

  test('a DSA issuer: its CRL is verified like its certificates (revoked rejected, good passes STRICT)', async () => {
    resetCounters();
    const ignore = verifier(dsaRoot.pem, { revocation_check_mode: 'IGNORE_CA_ERROR' });
    const decision = await decide(ignore, [dsaRevoked]);
    assert.equal(reasonOf(decision), 'certificate_revoked', detailOf(decision));
    const strict = verifier(dsaRoot.pem, { revocation_check_mode: 'STRICT' });
    const good = await decide(strict, [dsaGood]);
    assert.equal(reasonOf(good), 'ALLOW', detailOf(good));
  });

  test('OCSP signed by the issuer and naming it byName in another encoding is the issuer\'s answer', async () => {
    resetCounters();
    // ResponderID byName from the UTF8String / upper-case copy of the root certificate (same key).
    const variant = readFiles(join(encDir, 'root-variant.pem'), encRoot.keyPath);
    const key = await ecKey(encDir, 'ocsp-client');
    const leaf = readFiles(await forge('ocsp-client', encDir, '/CN=ocsp-client', key.pub, variant.certPath, encRoot.keyPath,
      leafExt(`authorityInfoAccess = OCSP;URI:${url('/ocsp')}\n`), ['-set_serial', '0x5003']), key.key);
    craft = { signer: variant, issuer: encRoot, options: { status: 'revoked' } };
    const revoked = await decide(verifier(encRoot.pem, { revocation_check_mode: 'IGNORE_CA_ERROR' }), [leaf]);
    assert.equal(reasonOf(revoked), 'certificate_revoked', detailOf(revoked));
    craft = { signer: variant, issuer: encRoot, options: {} };
    const good = await decide(verifier(encRoot.pem, { revocation_check_mode: 'STRICT' }), [leaf]);
    assert.equal(reasonOf(good), 'ALLOW', detailOf(good));
  });
});

describe('one hash rule for every signature scheme (item 5)', () => {
  let rsaRoot: CertFiles;
  let rsaCa: OpensslCa;
  const leaves: Record<string, CertFiles> = {};

  before(async () => {
    const rsaDir = join(dir, 'rsa');
    mkdirSync(rsaDir);
    const rootKey = join(rsaDir, 'root.key');
    await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', rootKey]);
    rsaRoot = readFiles(await selfSigned(rsaDir, 'rsa-root', '/CN=RSA Root/O=mtls-pop tests', rootKey, 'utf8only', ['-sha256']), rootKey);
    rsaCa = await caWith('rsa-ca', rsaRoot.certPath, rootKey);
    const variants: Array<[string, string[]]> = [
      ['pss-sha256', ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32']],
      ['pss-sha1', ['-sha1', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:20']],
      ['pss-mgf1-sha1', ['-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_mgf1_md:sha1', '-sigopt', 'rsa_pss_saltlen:32']],
      ['pkcs1-sha1', ['-sha1']],
      ['crl-client', ['-sha256']],
    ];
    let serial = 0x7001;
    for (const [name, args] of variants) {
      const key = await ecKey(rsaDir, name);
      leaves[name] = readFiles(await forge(name, rsaDir, `/CN=${name}`, key.pub, rsaRoot.certPath, rootKey,
        leafExt(`crlDistributionPoints = URI:${url(`/rsa-${name}.crl`)}\n`), ['-set_serial', `0x${(serial++).toString(16)}`, ...args]), key.key);
    }
  });

  test('RSASSA-PSS over SHA-1, or with MGF1 over SHA-1, is refused like PKCS#1 v1.5 over SHA-1; PSS over SHA-256 passes', async () => {
    const v = verifier(rsaRoot.pem, { revocation_check_mode: 'SKIP' });
    assert.equal(reasonOf(await decide(v, [leaves['pss-sha256']!])), 'ALLOW');
    for (const name of ['pkcs1-sha1', 'pss-sha1', 'pss-mgf1-sha1']) {
      const decision = await decide(v, [leaves[name]!]);
      assert.equal(reasonOf(decision), 'certificate_untrusted', `${name}: ${detailOf(decision)}`);
      assert.match(detailOf(decision), /SHA-1 or MD5 signature was refused/, name);
    }
  });

  test('a CRL signed over SHA-1 (PKCS#1 v1.5 or PSS) proves nothing; over SHA-256 (PKCS#1 v1.5 or PSS) it does', async () => {
    const leaf = leaves['crl-client']!;
    const crls: Array<[string, { md: string; sigopts?: string[] }, string]> = [
      ['pkcs1-sha1', { md: 'sha1' }, 'revocation_unknown'],
      ['pss-sha1', { md: 'sha1', sigopts: ['rsa_padding_mode:pss'] }, 'revocation_unknown'],
      ['pkcs1-sha256', { md: 'sha256' }, 'ALLOW'],
      ['pss-sha256', { md: 'sha256', sigopts: ['rsa_padding_mode:pss', 'rsa_pss_saltlen:32'] }, 'ALLOW'],
    ];
    for (const [name, options, expected] of crls) {
      files.set('/rsa-crl-client.crl', await rsaCa.generateCrl({ days: 1 }, options));
      const decision = await decide(verifier(rsaRoot.pem, { revocation_check_mode: 'STRICT' }), [leaf]);
      assert.equal(reasonOf(decision), expected, `${name}: ${detailOf(decision)}`);
      if (expected !== 'ALLOW') assert.match(detailOf(decision), /SHA-1 or MD5, which is refused/, name);
    }
  });

  test('an OCSP response signed with ecdsa-with-SHA1 proves nothing', async () => {
    resetCounters();
    // The path ends at the configured intermediate (partial chain); its CRL is withheld, so the
    // OCSP answer alone decides.
    files.delete('/inter.crl');
    try {
      const v = (): Verifier => verifier(inter.files.pem, { revocation_check_mode: 'STRICT', allow_partial_chain: true });
      craft = { signer: inter.files, issuer: inter.files, options: { signingHash: 'SHA-1' } };
      const refused = await decide(v(), [client]);
      assert.equal(reasonOf(refused), 'revocation_unknown', detailOf(refused));
      assert.match(detailOf(refused), /response is signed with SHA-1 or MD5, which is refused/);
      craft = { signer: inter.files, issuer: inter.files, options: {} };
      assert.equal(reasonOf(await decide(v(), [client])), 'ALLOW', 'the same answer over SHA-256 is accepted');
      // A delegated responder whose certificate the CA signed over SHA-1 is not authorised.
      const where = join(dir, 'sha1-responder');
      mkdirSync(where, { recursive: true });
      const key = await ecKey(where, 'responder');
      const ext = 'basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = OCSPSigning\n'
        + 'subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n';
      const sha1Responder = readFiles(await forge('responder', where, '/CN=SHA-1 OCSP Responder', key.pub, inter.files.certPath,
        inter.files.keyPath, ext, ['-sha1']), key.key);
      const sha256Responder = readFiles(await forge('responder256', where, '/CN=SHA-256 OCSP Responder', key.pub, inter.files.certPath,
        inter.files.keyPath, ext, ['-sha256']), key.key);
      craft = { signer: sha1Responder, issuer: inter.files, options: {} };
      const delegated = await decide(v(), [client]);
      assert.equal(reasonOf(delegated), 'revocation_unknown', detailOf(delegated));
      craft = { signer: sha256Responder, issuer: inter.files, options: {} };
      assert.equal(reasonOf(await decide(v(), [client])), 'ALLOW', 'the same responder certified over SHA-256 is authorised');
    } finally {
      files.set('/inter.crl', await inter.generateCrl({ days: 1 }));
    }
  });
});

describe('CRL scope: issuingDistributionPoint (item 6)', () => {
  let scopeRoot: CertFiles;
  let scopeCa: OpensslCa;
  let revokedLeaf: CertFiles;
  let goodLeaf: CertFiles;
  let otherPartition: Buffer;
  let scopeDir: string;
  const point = (): string => url('/scope-p1.crl');
  let sections = 0;
  /** CRL extensions with an issuingDistributionPoint of `fields` (each in its own config section: openssl merges same-named ones). */
  const idp = (fields: string): string => {
    const name = `idp_${++sections}`;
    return `issuingDistributionPoint = critical, @${name}\n[ ${name} ]\n${fields}`;
  };

  before(async () => {
    scopeDir = join(dir, 'scope');
    mkdirSync(scopeDir);
    const key = await ecKey(scopeDir, 'root');
    scopeRoot = readFiles(await selfSigned(scopeDir, 'root', '/CN=Scope Root/O=mtls-pop tests', key.key, 'utf8only'), key.key);
    scopeCa = await caWith('scope-ca', scopeRoot.certPath, key.key);
    const leaf = async (name: string, serial: string): Promise<CertFiles> => {
      const k = await ecKey(scopeDir, name);
      return readFiles(await forge(name, scopeDir, `/CN=${name}`, k.pub, scopeRoot.certPath, key.key,
        leafExt(`crlDistributionPoints = URI:${point()}\n`), ['-set_serial', serial]), k.key);
    };
    revokedLeaf = await leaf('scope-revoked', '0x8001');
    goodLeaf = await leaf('scope-good', '0x8002');
    // Partition 2's CRL, current and validly signed, issued before the leaf was revoked.
    otherPartition = await scopeCa.generateCrl({ days: 1 }, { extensions: idp(`fullname = URI:${url('/scope-p2.crl')}`) });
    await scopeCa.revoke(revokedLeaf);
  });

  async function strictWith(crl: Buffer, leaf: CertFiles): Promise<Decision> {
    files.set('/scope-p1.crl', crl);
    return decide(verifier(scopeRoot.pem, { revocation_check_mode: 'STRICT' }), [leaf]);
  }

  test('another partition\'s CRL served at the certificate\'s CRL URL proves nothing (openssl: different CRL scope)', async () => {
    const decision = await strictWith(otherPartition, revokedLeaf);
    assert.equal(reasonOf(decision), 'revocation_unknown', detailOf(decision));
    assert.match(detailOf(decision), /issuingDistributionPoint/);
    assert.match(await opensslVerify(scopeRoot.certPath, otherPartition, revokedLeaf.certPath, scopeDir), /different CRL scope/);
  });

  test('the CRL of the certificate\'s own point (fullName matches) answers: revoked and good', async () => {
    const own = await scopeCa.generateCrl({ days: 1 }, { extensions: idp(`fullname = URI:${point()}`) });
    assert.equal(reasonOf(await strictWith(own, revokedLeaf)), 'certificate_revoked');
    assert.equal(reasonOf(await strictWith(own, goodLeaf)), 'ALLOW');
  });

  test('onlyContainsCACerts, indirectCRL and onlySomeReasons never prove a leaf good; onlySomeReasons can prove it revoked', async () => {
    const onlyCa = await scopeCa.generateCrl({ days: 1 }, { extensions: idp(`fullname = URI:${point()}\nonlyCA = TRUE`) });
    assert.match(detailOf(await strictWith(onlyCa, goodLeaf)), /CRL scope covers only CA certificates/);
    const indirect = await scopeCa.generateCrl({ days: 1 }, { extensions: idp(`fullname = URI:${point()}\nindirectCRL = TRUE`) });
    assert.match(detailOf(await strictWith(indirect, goodLeaf)), /indirect CRLs are not supported/);
    const someReasons = await scopeCa.generateCrl({ days: 1 }, { extensions: idp(`fullname = URI:${point()}\nonlysomereasons = keyCompromise`) });
    const good = await strictWith(someReasons, goodLeaf);
    assert.equal(reasonOf(good), 'revocation_unknown', detailOf(good));
    assert.match(detailOf(good), /only some revocation reasons/);
    assert.equal(reasonOf(await strictWith(someReasons, revokedLeaf)), 'certificate_revoked');
  });
});

describe('answers without nextUpdate: revocation_max_age (item 7)', () => {
  const years2 = (): Date => new Date(Date.now() - 2 * 365 * DAY);

  test('an OCSP "good" without nextUpdate from two years ago is no answer in STRICT (a replayed pre-revocation answer)', async () => {
    resetCounters();
    files.delete('/inter.crl');
    try {
      const v = (header: Record<string, unknown> = {}): Verifier =>
        verifier(inter.files.pem, { revocation_check_mode: 'STRICT', allow_partial_chain: true, ...header });
      craft = { signer: inter.files, issuer: inter.files, options: { noNextUpdate: true, thisUpdate: years2() } };
      const replayed = await decide(v(), [client]);
      assert.equal(reasonOf(replayed), 'revocation_unknown', detailOf(replayed));
      assert.match(detailOf(replayed), /no nextUpdate and its thisUpdate is more than 86400 s old/);
      // Two days old: too old by default (one day), current with revocation_max_age three days.
      craft = { signer: inter.files, issuer: inter.files, options: { noNextUpdate: true, thisUpdate: new Date(Date.now() - 2 * DAY) } };
      assert.equal(reasonOf(await decide(v(), [client])), 'revocation_unknown');
      const threeDays = await decide(v({ revocation_max_age: 3 * 86400 }), [client]);
      assert.equal(reasonOf(threeDays), 'ALLOW', detailOf(threeDays));
      // A fresh one without nextUpdate passes by default.
      craft = { signer: inter.files, issuer: inter.files, options: { noNextUpdate: true } };
      const fresh = await decide(v(), [client]);
      assert.equal(reasonOf(fresh), 'ALLOW', detailOf(fresh));
    } finally {
      files.set('/inter.crl', await inter.generateCrl({ days: 1 }));
    }
  });

  test('a CRL without nextUpdate is current for revocation_max_age; one whose thisUpdate is in the future is no answer', async () => {
    const crlDir = join(dir, 'crl-age');
    mkdirSync(crlDir);
    const key = await ecKey(crlDir, 'root');
    const ageRoot = readFiles(await selfSigned(crlDir, 'root', '/CN=CRL Age Root/O=mtls-pop tests', key.key, 'utf8only'), key.key);
    const k = await ecKey(crlDir, 'leaf');
    const leaf = readFiles(await forge('leaf', crlDir, '/CN=crl-age-leaf', k.pub, ageRoot.certPath, key.key,
      leafExt(`crlDistributionPoints = URI:${url('/age.crl')}\n`), ['-set_serial', '0x9001']), k.key);
    const strict = (): Verifier => verifier(ageRoot.pem, { revocation_check_mode: 'STRICT' });
    files.set('/age.crl', await craftCrl(ageRoot, { thisUpdate: years2(), nextUpdate: null }));
    const old = await decide(strict(), [leaf]);
    assert.equal(reasonOf(old), 'revocation_unknown', detailOf(old));
    assert.match(detailOf(old), /CRL has no nextUpdate and its thisUpdate is more than 86400 s old/);
    files.set('/age.crl', await craftCrl(ageRoot, { thisUpdate: new Date(Date.now() - 60_000), nextUpdate: null }));
    assert.equal(reasonOf(await decide(strict(), [leaf])), 'ALLOW');
    files.set('/age.crl', await craftCrl(ageRoot, { thisUpdate: new Date(Date.now() + DAY), nextUpdate: new Date(Date.now() + 2 * DAY) }));
    const future = await decide(strict(), [leaf]);
    assert.match(detailOf(future), /thisUpdate is in the future/);
  });
});
