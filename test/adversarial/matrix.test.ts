/**
 * The adversarial matrix (issue 7), through the REAL plugin server driven by the Kong emulator.
 *
 * One table per family (tokens, certificates); each row is a named case with its exact verdict:
 * status, the whole `WWW-Authenticate` challenge, the body (`display_errors: true`, so the body
 * carries `reason: detail`), and what the upstream saw (nothing, for every rejection). The first
 * row of each table is the happy path, so the tables also prove the setup passes what it should.
 *
 * The routes carry no fail-closed guard on purpose: every rejection here comes from the plugin
 * itself, with its own reason, never from the guard (whose challenge is a bare `Bearer`).
 *
 * Requests go over HTTP through the emulated gateway, whose nginx keeps Kong's default
 * `large_client_header_buffers 4 8k`: a header line over 8 KiB (the 64 KiB token, the 50-certificate
 * chain, the 100 KiB certificate header) is answered 400 by nginx before any plugin runs, which is
 * what Kong does with its defaults. Those rows then also check the plugin's own verdict with the
 * buffer raised (an operator setting `nginx_http_large_client_header_buffers`), by running the
 * access phase directly on the same plugin server.
 */
import 'reflect-metadata';
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createHash, randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { KongEmulator, launcherCommand, startEchoUpstream, type EchoUpstream } from '../harness/kong-emulator.js';
import { httpRequest } from '../harness/http.js';
import { issue, makeTestPki, nameConstraintsExtension, type Issued, type TestPki } from '../helpers/pki.js';
import { base64url, makeTestKey, signHmac, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.js';
import {
  assertHttpRejection, assertKongRejection, base64Chain, boundClaims, isoSeconds, x5t, type Rejection,
} from './support.js';

const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');
const REALM = 'matrix';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const DAY_S = 24 * 3600;

type RouteName = 'tokens' | 'certs' | 'certs-pem';

interface Row {
  readonly name: string;
  /** Header lines besides the case tag. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** Query string, with its `?`. */
  readonly query?: string;
  /** null: proxied to the upstream (200). */
  readonly expect: Rejection | null;
  /** A header line over Kong's default 8 KiB buffer: nginx answers 400 over HTTP (see the file comment). */
  readonly oversized?: boolean;
  /** Most milliseconds the plugin may take to answer (the oversized rows, run directly). */
  readonly withinMs?: number;
}

let pki: TestPki;
let idp: JwksServer;
let attacker: JwksServer;
let echo: EchoUpstream;
let emu: KongEmulator;
let caseCounter = 0;

function routeConfig(format: 'base64_encoded' | 'pem'): Record<string, unknown> {
  return {
    issuer: idp.issuer,
    proof_of_possession_mtls: 'strict',
    proof_of_possession_mtls_from_header: {
      certificate_header_name: 'x-client-cert',
      certificate_header_format: format,
      ca_certificates_pem: [pki.root.pem],
      revocation_check_mode: 'SKIP',
      // Room for the 50-certificate chain, so that max_chain_length is what stops it.
      max_header_size: 65536,
    },
    display_errors: true,
    realm: REALM,
  };
}

before(async () => {
  pki = await makeTestPki();
  idp = await startJwksServer();
  attacker = await startJwksServer();
  echo = await startEchoUpstream();
  emu = await KongEmulator.start({
    pluginServer: launcherCommand(PLUGINS_DIR),
    rpcTimeoutMs: 10_000,
    config: {
      routes: [
        { name: 'tokens', paths: ['/tokens'], plugins: [{ name: 'mtls-pop', config: routeConfig('base64_encoded') }], upstream: echo.url },
        { name: 'certs', paths: ['/certs'], plugins: [{ name: 'mtls-pop', config: routeConfig('base64_encoded') }], upstream: echo.url },
        { name: 'certs-pem', paths: ['/certs-pem'], plugins: [{ name: 'mtls-pop', config: routeConfig('pem') }], upstream: echo.url },
      ],
      trusted_ips: ['127.0.0.1'],
    },
  });
});

after(async () => {
  await emu?.close();
  await echo?.close();
  await attacker?.close();
  await idp?.close();
});

/** Sends one row over HTTP (and directly, for oversized rows) and checks every part of the verdict. */
async function runRow(t: TestContext, route: RouteName, row: Row): Promise<void> {
  const tag = `${route}-${++caseCounter}`;
  const lines: Array<[string, string]> = [...row.headers.map(([n, v]): [string, string] => [n, v]), ['X-Case', tag]];
  const attackerBefore = attacker.requests.length;
  const eventsBefore = emu.stats.events;
  const res = await httpRequest(`${emu.url}/${route}/${tag}${row.query ?? ''}`, { headers: lines });
  const reached = echo.requests.filter((r) => r.headers['x-case'] === tag);
  assert.notEqual(res.status, 500, 'never a 500');
  if (row.oversized === true) {
    assert.equal(res.status, 400, 'nginx: 400 Request Header Or Cookie Too Large');
    assert.match(res.body, /Request Header Or Cookie Too Large/);
    assert.equal(emu.stats.events, eventsBefore, 'no plugin ran');
    assert.equal(reached.length, 0, 'nothing proxied');
    assert.ok(row.expect !== null);
    const started = performance.now();
    const outcome = await emu.runAccess(route, { path: `/${route}/${tag}${row.query ?? ''}`, clientIp: '127.0.0.1', headers: lines });
    const elapsed = performance.now() - started;
    t.diagnostic(`with the header buffer raised, the plugin answered in ${elapsed.toFixed(1)} ms`);
    assert.equal(outcome.events[0]?.outcome, 'exit', 'the plugin itself ended the request');
    assertKongRejection(outcome.response, REALM, row.expect, row.name);
    if (row.withinMs !== undefined) assert.ok(elapsed < row.withinMs, `answered in ${elapsed.toFixed(1)} ms, limit ${row.withinMs} ms`);
  } else if (row.expect === null) {
    assert.equal(res.status, 200, `proxied (body ${res.body.slice(0, 300)})`);
    assert.equal(reached.length, 1, 'the upstream received it once');
    const sent = lines.find(([n]) => n.toLowerCase() === 'authorization')?.[1];
    assert.equal(reached[0]?.headers['authorization'], sent, 'with its own token');
  } else {
    assertHttpRejection(res, REALM, row.expect, row.name);
    assert.equal(reached.length, 0, 'the upstream received nothing');
  }
  assert.equal(attacker.requests.length, attackerBefore, 'no request to the attacker server');
}

const reject = (status: Rejection['status'], reason: string, detail: string): Rejection => ({ status, reason, detail });
const bearer = (token: string): [string, string] => ['Authorization', `Bearer ${token}`];
const certHeader = (value: string): [string, string] => ['X-Client-Cert', value];
const b64json = (value: unknown): string => base64url(JSON.stringify(value));

describe('adversarial matrix through the real plugin server', () => {
  test('tokens: every row gets exactly its verdict; only passes reach the upstream; attacker URLs are never fetched', async (t) => {
    const key = idp.keys[0] as TestKey;
    const kid = key.kid;
    const sign = (payload: unknown, header: Record<string, unknown> = {}, signer?: TestKey): string =>
      idp.signRaw({ alg: 'RS256', kid, typ: 'JWT', ...header }, payload, signer);
    const client = pki.client;
    const chain = certHeader(base64Chain(client, pki.intermediate));
    const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => boundClaims(idp.issuer, client, extra);
    const good = sign(claims());
    const rogue = attacker.keys[0] as TestKey; // published on the attacker's JWKS only
    const unpublished = makeTestKey('RS256');
    const now = Math.floor(Date.now() / 1000);
    const thumb = x5t(client);
    assert.notEqual(thumb.toUpperCase(), thumb);
    const hex = createHash('sha256').update(client.der).digest('hex');
    const spkiPem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const pkcs1Pem = key.publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const spkiDer = key.publicKey.export({ type: 'spki', format: 'der' });
    const modulus = Buffer.from(String(key.publicJwk['n']), 'base64url');
    const hsHeader = { alg: 'HS256', kid, typ: 'JWT' };
    const [, goodPayload, goodSignature] = good.split('.') as [string, string, string];
    const noneHeader = b64json({ alg: 'none', typ: 'JWT' });
    const big = sign(claims({ padding: 'x'.repeat(48 * 1024) }));
    const expired = now - 3600;
    const notBefore = now + 3600;
    const notBound = 'the client certificate thumbprint does not match the x5t#S256 claim';

    const rows: Row[] = [
      { name: 'happy path: RS256 token bound to the presented certificate', headers: [bearer(good), chain], expect: null },
      // alg none and algorithm confusion (RFC 8725 3.1, 3.2)
      { name: 'alg none, empty signature', headers: [bearer(`${noneHeader}.${goodPayload}.`), chain],
        expect: reject(401, 'token_algorithm_not_allowed', 'the none algorithm is not allowed') },
      { name: 'alg none with a valid RS256 signature copied over', headers: [bearer(`${noneHeader}.${goodPayload}.${goodSignature}`), chain],
        expect: reject(401, 'token_algorithm_not_allowed', 'the none algorithm is not allowed') },
      { name: 'alg "None" (case variant)', headers: [bearer(`${b64json({ alg: 'None', typ: 'JWT' })}.${goodPayload}.`), chain],
        expect: reject(401, 'token_algorithm_not_allowed', 'the None algorithm is not allowed') },
      { name: 'HS256 keyed with the RSA public key as SPKI PEM text', headers: [bearer(signHmac(hsHeader, claims(), spkiPem)), chain],
        expect: reject(401, 'token_algorithm_not_allowed', 'the HS256 algorithm is not allowed') },
      { name: 'HS256 keyed with the RSA public key as PKCS#1 PEM text', headers: [bearer(signHmac(hsHeader, claims(), pkcs1Pem)), chain],
        expect: reject(401, 'token_algorithm_not_allowed', 'the HS256 algorithm is not allowed') },
      { name: 'HS256 keyed with the raw SPKI DER', headers: [bearer(signHmac(hsHeader, claims(), spkiDer)), chain],
        expect: reject(401, 'token_algorithm_not_allowed', 'the HS256 algorithm is not allowed') },
      { name: 'HS256 keyed with the JWK modulus n bytes', headers: [bearer(signHmac(hsHeader, claims(), modulus)), chain],
        expect: reject(401, 'token_algorithm_not_allowed', 'the HS256 algorithm is not allowed') },
      // key selection
      { name: 'unknown kid', headers: [bearer(sign(claims(), { kid: 'no-such-kid' })), chain],
        expect: reject(401, 'token_key_not_found', 'the JWKS has no RS256 key with kid "no-such-kid"') },
      { name: 'signed by an unpublished key under the published kid', headers: [bearer(sign(claims(), {}, unpublished)), chain],
        expect: reject(401, 'token_signature_invalid', 'the token signature does not verify with the IdP key') },
      { name: 'jku -> attacker JWKS, attacker kid', headers: [bearer(sign(claims(), { kid: rogue.kid, jku: attacker.jwksUri }, rogue)), chain],
        expect: reject(401, 'token_key_not_found', `the JWKS has no RS256 key with kid "${rogue.kid}"`) },
      { name: 'jku -> attacker JWKS, published kid', headers: [bearer(sign(claims(), { jku: attacker.jwksUri }, rogue)), chain],
        expect: reject(401, 'token_signature_invalid', 'the token signature does not verify with the IdP key') },
      { name: 'x5u -> attacker URL, attacker kid', headers: [bearer(sign(claims(), { kid: rogue.kid, x5u: `${attacker.origin}/x5u.pem` }, rogue)), chain],
        expect: reject(401, 'token_key_not_found', `the JWKS has no RS256 key with kid "${rogue.kid}"`) },
      { name: 'embedded jwk (attacker key), no kid', headers: [bearer(sign(claims(), { kid: undefined, jwk: rogue.publicJwk }, rogue)), chain],
        expect: reject(401, 'token_signature_invalid', 'the token signature does not verify with the IdP key') },
      { name: 'embedded jwk (attacker key) with its kid', headers: [bearer(sign(claims(), { kid: rogue.kid, jwk: rogue.publicJwk }, rogue)), chain],
        expect: reject(401, 'token_key_not_found', `the JWKS has no RS256 key with kid "${rogue.kid}"`) },
      { name: 'embedded x5c, no kid', headers: [bearer(sign(claims(), { kid: undefined, x5c: [pki.rogueRoot.der.toString('base64')] }, rogue)), chain],
        expect: reject(401, 'token_signature_invalid', 'the token signature does not verify with the IdP key') },
      // header parameters
      { name: 'crit with an unknown extension', headers: [bearer(sign(claims(), { crit: ['urn:example:must-understand'], 'urn:example:must-understand': true })), chain],
        expect: reject(401, 'token_crit_unsupported', 'the token header lists critical extensions (crit), none are supported') },
      { name: 'crit b64:false (RFC 7797)', headers: [bearer(sign(claims(), { crit: ['b64'], b64: false })), chain],
        expect: reject(401, 'token_crit_unsupported', 'the token header lists critical extensions (crit), none are supported') },
      { name: 'nested JWT (cty JWT)', headers: [bearer(sign(good, { cty: 'JWT' })), chain],
        expect: reject(401, 'token_malformed', 'nested tokens are not supported') },
      { name: 'encrypted JWT (JWE, five parts)', headers: [bearer([b64json({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid }),
        randomBytes(256), randomBytes(12), randomBytes(64), randomBytes(16)].map((p) => (typeof p === 'string' ? p : base64url(p))).join('.')), chain],
      expect: reject(401, 'token_malformed', 'encrypted tokens (JWE) are not supported') },
      { name: 'wrong header typ (dpop+jwt)', headers: [bearer(sign(claims(), { typ: 'dpop+jwt' })), chain],
        expect: reject(401, 'token_type_not_allowed', 'the token header typ is not JWT or at+jwt') },
      { name: 'Keycloak ID token (typ claim ID)', headers: [bearer(sign(claims({ typ: 'ID' }))), chain],
        expect: reject(401, 'token_type_not_allowed', 'the token is not an access token (typ claim is not Bearer)') },
      { name: `64 KiB token (${big.length} characters)`, headers: [bearer(big), chain], oversized: true,
        expect: reject(401, 'token_too_large', `the token has ${big.length} characters; at most 16384 are accepted`) },
      // cnf (RFC 8705 3.1, RFC 7800 3.1)
      // A confirmation the plugin cannot check is refused, even next to a matching x5t#S256.
      { name: 'cnf with extra members is refused', headers: [bearer(sign(claims({ cnf: { 'x5t#S256': thumb, jkt: 'abc', 'x5t': 'legacy', other: [1] } }))), chain],
        expect: reject(401, 'token_cnf_unsupported', 'the token is bound by a confirmation method this plugin does not check (cnf "jkt", "x5t", "other"); only x5t#S256 is checked') },
      { name: 'an empty cnf object', headers: [bearer(sign(claims({ cnf: {} }))), chain],
        expect: reject(401, 'token_cnf_malformed', 'the cnf claim is an empty object: it confirms no key') },
      { name: 'cnf is a number', headers: [bearer(sign(claims({ cnf: 12345 }))), chain],
        expect: reject(401, 'token_cnf_malformed', 'the cnf claim is not a JSON object') },
      { name: 'cnf is an array', headers: [bearer(sign(claims({ cnf: [{ 'x5t#S256': thumb }] }))), chain],
        expect: reject(401, 'token_cnf_malformed', 'the cnf claim is not a JSON object') },
      { name: 'cnf x5t#S256 is a number', headers: [bearer(sign(claims({ cnf: { 'x5t#S256': 12345 } }))), chain],
        expect: reject(401, 'token_cnf_malformed', 'cnf x5t#S256 is not a non-empty string') },
      { name: 'cnf x5t#S256 is an array', headers: [bearer(sign(claims({ cnf: { 'x5t#S256': [thumb] } }))), chain],
        expect: reject(401, 'token_cnf_malformed', 'cnf x5t#S256 is not a non-empty string') },
      { name: 'cnf x5t#S256 upper-cased', headers: [bearer(sign(claims({ cnf: { 'x5t#S256': thumb.toUpperCase() } }))), chain],
        expect: reject(401, 'certificate_thumbprint_mismatch', notBound) },
      { name: 'cnf x5t#S256 as hex', headers: [bearer(sign(claims({ cnf: { 'x5t#S256': hex } }))), chain],
        expect: reject(401, 'token_cnf_malformed', 'cnf x5t#S256 is not a base64url SHA-256 thumbprint (it looks like hex; RFC 8705 requires base64url)') },
      { name: 'cnf x5t#S256 padded base64url', headers: [bearer(sign(claims({ cnf: { 'x5t#S256': `${thumb}=` } }))), chain],
        expect: reject(401, 'token_cnf_malformed', 'cnf x5t#S256 is not a base64url SHA-256 thumbprint (base64url must not be padded)') },
      { name: 'cnf with only jkt (DPoP-bound) on a strict route', headers: [bearer(sign(claims({ cnf: { jkt: thumb } }))), chain],
        expect: reject(401, 'token_cnf_unsupported', 'the token is bound by a confirmation method this plugin does not check (cnf "jkt"); only x5t#S256 is checked') },
      { name: 'bound to another certificate', headers: [bearer(sign(boundClaims(idp.issuer, pki.otherClient))), chain],
        expect: reject(401, 'certificate_thumbprint_mismatch', notBound) },
      // the token in two places (RFC 6750 2, 3.1 invalid_request)
      { name: 'two Authorization headers', headers: [bearer(good), bearer(good), chain],
        expect: reject(400, 'authorization_multiple', '2 Authorization headers; exactly one is allowed') },
      { name: '"Bearer a, Bearer b" in one header', headers: [['Authorization', `Bearer ${good}, Bearer ${good}`], chain],
        expect: reject(400, 'authorization_multiple', 'the Authorization header carries several credentials') },
      { name: '"Bearer a, Basic b" in one header', headers: [['Authorization', `Bearer ${good}, Basic dXNlcjpwYXNz`], chain],
        expect: reject(400, 'authorization_multiple', 'the Authorization header carries several credentials') },
      { name: 'token only in the query (RFC 6750 2.3 not accepted)', headers: [chain], query: `?access_token=${good}`,
        expect: reject(401, 'token_missing', 'no Authorization header') },
      // time and issuer claims (RFC 7519 4.1)
      { name: 'expired', headers: [bearer(sign(claims({ iat: expired - 600, exp: expired }))), chain],
        expect: reject(401, 'token_expired', `the token expired at ${isoSeconds(expired)}`) },
      { name: 'nbf in the future', headers: [bearer(sign(claims({ nbf: notBefore }))), chain],
        expect: reject(401, 'token_not_yet_valid', `the token is not valid before ${isoSeconds(notBefore)}`) },
      { name: 'iat in the future', headers: [bearer(sign(claims({ iat: now + 3600 }))), chain],
        expect: reject(401, 'token_claims_invalid', 'the token was issued in the future (iat)') },
      { name: 'wrong iss', headers: [bearer(sign(claims({ iss: 'https://idp.evil.example/realms/test' }))), chain],
        expect: reject(401, 'token_issuer_not_allowed', 'issuer "https://idp.evil.example/realms/test" is not allowed') },
    ];
    for (const row of rows) await t.test(row.name, (st) => runRow(st, 'tokens', row));
    assert.equal(attacker.requests.length, 0, `the attacker server received ${attacker.requests.join(', ')}`);
  });

  test('certificates: every row gets exactly its verdict although the token is bound to the presented leaf', async (t) => {
    const { root, intermediate } = pki;
    const dayAgo = new Date((Math.floor(Date.now() / 1000) - DAY_S) * 1000);
    const tenDaysAgo = new Date((Math.floor(Date.now() / 1000) - 10 * DAY_S) * 1000);
    const leafUnder = (issuer: Issued, subject: string, extra: Partial<Parameters<typeof issue>[0]> = {}): Promise<Issued> =>
      issue({ subject, issuer, ...extra });

    const selfSigned = await issue({ subject: 'CN=matrix-self-signed' });
    const unrelatedRoot = await issue({ subject: 'CN=matrix-unrelated-root', ca: true });
    const unrelatedLeaf = await leafUnder(unrelatedRoot, 'CN=matrix-unrelated-leaf');
    // An impostor CA with the trusted intermediate's exact name, and a leaf it signed.
    const impostor = await issue({ subject: 'CN=mtls-pop Test Intermediate CA, O=mtls-pop tests', ca: true });
    const impostorLeaf = await leafUnder(impostor, 'CN=matrix-impostor-leaf');
    const expiredLeaf = await leafUnder(intermediate, 'CN=matrix-expired-leaf', { notBefore: tenDaysAgo, notAfter: dayAgo });
    const expiredInt = await issue({ subject: 'CN=matrix-expired-int', issuer: root, ca: true, notBefore: tenDaysAgo, notAfter: dayAgo });
    const underExpiredInt = await leafUnder(expiredInt, 'CN=matrix-under-expired-int');
    const noBcInt = await issue({ subject: 'CN=matrix-int-no-bc', issuer: root, noBasicConstraints: true,
      keyUsage: x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.digitalSignature, eku: null });
    const underNoBc = await leafUnder(noBcInt, 'CN=matrix-under-no-bc');
    const caFalseInt = await issue({ subject: 'CN=matrix-int-ca-false', issuer: root, ca: false,
      keyUsage: x509.KeyUsageFlags.keyCertSign, eku: null });
    const underCaFalse = await leafUnder(caFalseInt, 'CN=matrix-under-ca-false');
    const noKcsInt = await issue({ subject: 'CN=matrix-int-no-kcs', issuer: root, ca: true,
      keyUsage: x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature });
    const underNoKcs = await leafUnder(noKcsInt, 'CN=matrix-under-no-kcs');
    const belowPathLen0 = await issue({ subject: 'CN=matrix-int-below-pathlen0', issuer: intermediate, ca: true });
    const pathLenLeaf = await leafUnder(belowPathLen0, 'CN=matrix-pathlen-leaf');
    const caLeaf = await issue({ subject: 'CN=matrix-ca-leaf', issuer: intermediate, ca: true });
    const serverLeaf = await leafUnder(intermediate, 'CN=matrix-server-eku', { eku: [SERVER_AUTH] });
    const certSignLeaf = await leafUnder(intermediate, 'CN=matrix-keycertsign-leaf', { keyUsage: x509.KeyUsageFlags.keyCertSign });
    const ncInt = await issue({ subject: 'CN=matrix-nc-int', issuer: root, ca: true,
      extensions: [nameConstraintsExtension({ permitted: { dns: ['allowed.example'] } })] });
    const ncInside = await leafUnder(ncInt, 'CN=matrix-nc-inside', { dnsNames: ['api.allowed.example'] });
    const ncOutside = await leafUnder(ncInt, 'CN=matrix-nc-leaf', { dnsNames: ['evil.example'] });
    // Two CAs cross-signing each other (a loop), and a leaf under one of them.
    const loopA = await issue({ subject: 'CN=matrix-loop-a', ca: true });
    const loopB = await issue({ subject: 'CN=matrix-loop-b', ca: true });
    const aByB = await issue({ subject: 'CN=matrix-loop-a', keys: loopA.keys, issuer: loopB, ca: true });
    const bByA = await issue({ subject: 'CN=matrix-loop-b', keys: loopB.keys, issuer: loopA, ca: true });
    const aByRoot = await issue({ subject: 'CN=matrix-loop-a', keys: loopA.keys, issuer: root, ca: true });
    const loopLeaf = await leafUnder(loopA, 'CN=matrix-loop-leaf');
    // 49 CAs in a row under the root, and a leaf: 50 certificates.
    const longChain: Issued[] = [];
    let parent = root;
    for (let i = 1; i <= 49; i++) {
      parent = await issue({ subject: `CN=matrix-deep-${i}`, issuer: parent, ca: true });
      longChain.unshift(parent);
    }
    const deepLeaf = await leafUnder(parent, 'CN=matrix-deep-leaf');
    const fiftyCerts = base64Chain(deepLeaf, ...longChain);

    const sign = (leaf: Issued): string => idp.signRaw({ alg: 'RS256', kid: idp.keys[0]?.kid, typ: 'JWT' }, boundClaims(idp.issuer, leaf));
    /** A row whose token is bound to `leaf`, presenting `value` as the certificate header. */
    const bound = (leaf: Issued, value: string): Array<[string, string]> => [bearer(sign(leaf)), certHeader(value)];
    const client = pki.client;
    const clientB64 = client.der.toString('base64');
    const intB64 = intermediate.der.toString('base64');
    const spaced = (pem: string): string => pem.replace(/\n/g, ' ').trim();
    const intName = 'CN=mtls-pop Test Intermediate CA,O=mtls-pop tests';
    const outside = 'a character outside the standard base64 alphabet';

    const rows: Array<Row & { readonly route?: RouteName }> = [
      { name: 'happy path: leaf + intermediate under the trusted root', headers: bound(client, base64Chain(client, intermediate)), expect: null },
      { name: 'self-signed leaf', headers: bound(selfSigned, base64Chain(selfSigned)),
        expect: reject(401, 'certificate_untrusted', 'the client certificate (CN=matrix-self-signed) is self-issued and not trusted') },
      { name: 'signed by an unrelated CA (its root sent along)', headers: bound(unrelatedLeaf, base64Chain(unrelatedLeaf, unrelatedRoot)),
        expect: reject(401, 'certificate_untrusted', 'no path from the client certificate (CN=matrix-unrelated-leaf) to a configured trust anchor; its issuer is CN=matrix-unrelated-root') },
      { name: 'signed by an impostor CA named like the trusted intermediate', headers: bound(impostorLeaf, base64Chain(impostorLeaf, impostor)),
        expect: reject(401, 'certificate_untrusted', `no path from the client certificate (CN=matrix-impostor-leaf) to a configured trust anchor; its issuer is ${intName}`) },
      { name: 'impostor-signed leaf presented with the real intermediate', headers: bound(impostorLeaf, base64Chain(impostorLeaf, intermediate)),
        expect: reject(401, 'certificate_untrusted', `no path from the client certificate (CN=matrix-impostor-leaf) to a configured trust anchor; its issuer is ${intName}`) },
      { name: 'expired leaf', headers: bound(expiredLeaf, base64Chain(expiredLeaf, intermediate)),
        expect: reject(401, 'certificate_expired', `the client certificate (CN=matrix-expired-leaf) expired at ${dayAgo.toISOString()}`) },
      { name: 'expired intermediate', headers: bound(underExpiredInt, base64Chain(underExpiredInt, expiredInt)),
        expect: reject(401, 'certificate_expired', `the CA certificate CN=matrix-expired-int expired at ${dayAgo.toISOString()}`) },
      { name: 'intermediate without basicConstraints', headers: bound(underNoBc, base64Chain(underNoBc, noBcInt)),
        expect: reject(401, 'certificate_chain_invalid', 'the CA certificate CN=matrix-int-no-bc issued a certificate but is not a CA (basicConstraints cA is not TRUE)') },
      { name: 'intermediate with basicConstraints cA FALSE', headers: bound(underCaFalse, base64Chain(underCaFalse, caFalseInt)),
        expect: reject(401, 'certificate_chain_invalid', 'the CA certificate CN=matrix-int-ca-false issued a certificate but is not a CA (basicConstraints cA is not TRUE)') },
      { name: 'intermediate without keyCertSign', headers: bound(underNoKcs, base64Chain(underNoKcs, noKcsInt)),
        expect: reject(401, 'certificate_chain_invalid', 'the CA certificate CN=matrix-int-no-kcs issued a certificate but its keyUsage lacks keyCertSign') },
      { name: 'pathLenConstraint 0 exceeded', headers: bound(pathLenLeaf, base64Chain(pathLenLeaf, belowPathLen0, intermediate)),
        expect: reject(401, 'certificate_chain_invalid', `the CA certificate ${intName} allows 0 intermediate CA(s) below it (pathLenConstraint), the path has 1`) },
      { name: 'leaf with the CA flag', headers: bound(caLeaf, base64Chain(caLeaf, intermediate)),
        expect: reject(401, 'certificate_is_ca', 'the client certificate (CN=matrix-ca-leaf) is a CA certificate (basicConstraints cA is TRUE)') },
      { name: 'leaf with EKU serverAuth only', headers: bound(serverLeaf, base64Chain(serverLeaf, intermediate)),
        expect: reject(401, 'certificate_not_for_client_auth', 'the client certificate (CN=matrix-server-eku) has an extendedKeyUsage without clientAuth') },
      { name: 'leaf with keyUsage keyCertSign only', headers: bound(certSignLeaf, base64Chain(certSignLeaf, intermediate)),
        expect: reject(401, 'certificate_not_for_client_auth', 'the client certificate (CN=matrix-keycertsign-leaf) has a keyUsage without digitalSignature or keyAgreement') },
      { name: 'name-constrained CA, name inside the permitted subtree passes', headers: bound(ncInside, base64Chain(ncInside, ncInt)), expect: null },
      { name: 'name-constrained CA violated', headers: bound(ncOutside, base64Chain(ncOutside, ncInt)),
        expect: reject(401, 'certificate_chain_invalid', 'the client certificate (CN=matrix-nc-leaf) violates the name constraints of CN=matrix-nc-int: dNSName evil.example is outside the permitted subtrees') },
      { name: 'chain loop: two CAs cross-signing each other, no way out', headers: bound(loopLeaf, base64Chain(loopLeaf, aByB, bByA)),
        expect: reject(401, 'certificate_untrusted', 'no path from the client certificate (CN=matrix-loop-leaf) to a configured trust anchor; its issuer is CN=matrix-loop-a') },
      { name: 'chain loop with an exit: the loop is walked, the path to the root found', headers: bound(loopLeaf, base64Chain(loopLeaf, aByB, bByA, aByRoot)), expect: null },
      { name: `50-certificate chain (${fiftyCerts.length} characters) stopped by max_chain_length`, headers: bound(deepLeaf, fiftyCerts),
        oversized: true, withinMs: 1000,
        expect: reject(401, 'certificate_too_many', 'the certificate header holds more than 10 certificates') },
      { name: 'duplicate certificate header', headers: [...bound(client, base64Chain(client, intermediate)), certHeader(base64Chain(client, intermediate))],
        expect: reject(401, 'certificate_header_multiple', 'the certificate header was sent 2 times') },
      { name: 'spaces around the list comma (RFC 9110 OWS) pass', headers: bound(client, `${clientB64} ,  ${intB64}`), expect: null },
      { name: 'tabs around the list comma (RFC 9110 OWS) pass', headers: bound(client, `${clientB64}\t,\t${intB64}`), expect: null },
      { name: 'a tab inside the leaf base64 (a line break turned into a tab)', headers: bound(client, `${clientB64.slice(0, 64)}\t${clientB64.slice(64)},${intB64}`),
        expect: reject(401, 'certificate_header_malformed', `base64 item 1 is not valid standard base64: ${outside}`) },
      { name: 'a space inside the leaf base64', headers: bound(client, `${clientB64.slice(0, 64)} ${clientB64.slice(64)},${intB64}`),
        expect: reject(401, 'certificate_header_malformed', `base64 item 1 is not valid standard base64: ${outside}`) },
      { name: 'mixed encodings: base64 leaf, PEM intermediate (base64 route)', headers: bound(client, `${clientB64},${spaced(intermediate.pem)}`),
        expect: reject(401, 'certificate_header_malformed', `base64 item 2 is not valid standard base64: ${outside} (it looks like pem: check certificate_header_format)`) },
      { name: 'PEM route: line breaks as spaces pass', route: 'certs-pem', headers: bound(client, spaced(client.pem + intermediate.pem)), expect: null },
      { name: 'PEM route: line breaks as tabs pass', route: 'certs-pem', headers: bound(client, (client.pem + intermediate.pem).replace(/\n/g, '\t').trim()), expect: null },
      { name: 'PEM route: mixed encodings, PEM leaf then a base64 intermediate', route: 'certs-pem', headers: bound(client, `${spaced(client.pem)} ${intB64}`),
        expect: reject(401, 'certificate_header_malformed', 'the header has text after PEM block 1 that is not another PEM block') },
      { name: '100 KiB certificate header', headers: bound(client, 'A'.repeat(100 * 1024)), oversized: true,
        expect: reject(401, 'certificate_header_too_large', 'certificate header is 102400 characters, more than the 65536 allowed') },
    ];
    for (const row of rows) await t.test(row.name, (st) => runRow(st, row.route ?? 'certs', row));
    assert.equal(attacker.requests.length, 0);
  });

  test('afterwards: the plugin server never crashed, never failed open, and logged no token or certificate', () => {
    assert.equal(emu.pluginServer.running, true);
    assert.equal(emu.pluginServer.starts, 1);
    assert.deepEqual(emu.pluginServer.exits, []);
    assert.equal(emu.stats.luaErrors, 0, 'no 500');
    assert.equal(emu.stats.failOpen, 0, 'no RPC failure');
    const logs = emu.pluginServer.stdout + emu.pluginServer.stderr;
    assert.doesNotMatch(logs, /uncaught|unhandled/i);
    assert.match(logs, /rejected 401 reason=certificate_too_many/, 'rejections were logged');
    assert.doesNotMatch(logs, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'a token in the logs');
    assert.ok(!logs.includes(pki.client.der.toString('base64').slice(0, 40)), 'a certificate in the logs');
  });
});
