/**
 * XFCC element injection through the REAL plugin server (Kong emulator).
 *
 * Envoy writes `x-forwarded-client-cert` by plain concatenation (source/common/http/
 * conn_manager_utility.cc, mutateXfccRequestHeader): `By=<local URI SAN>` per local URI SAN,
 * `Hash=<hex SHA-256>`, then in this order `Cert="<url-encoded PEM>"`, `Chain="<url-encoded PEM>"`,
 * `Subject="<RFC 2253 DN>"`, `URI=<SAN>` per URI SAN (bare `URI=` when none) and `DNS=<SAN>` per DNS
 * SAN, joined with `;`. The URI and DNS values are neither quoted nor escaped, so a client whose own
 * certificate carries a SAN such as `spiffe://x,Cert="<victim PEM>"` makes Envoy write a header
 * whose structure the client chose. These tests build exactly those bytes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { EchoUpstream, KongEmulator } from '../harness/kong-emulator.js';
import { issue, type TestPki, type Issued } from '../helpers/pki.js';
import type { JwksServer } from '../helpers/jwks-server.js';
import { startPluginWorld, type PluginWorld } from '../helpers/plugin-world.js';
import { thumbprintS256 } from '../../src/certificate.js';
import { strictEntityConfig } from '../helpers/seed.js';

const CA_UUID = '5d0c1b2a-3e4f-4a5b-8c6d-7e8f9a0b1c2d';

let pki: TestPki;
let idp: JwksServer;
let echo: EchoUpstream;
let emu: KongEmulator;
let world: PluginWorld;
let adminPort: number;

/** Envoy's `urlEncodedPemEncodedPeerCertificate`: StrReplaceAll of \n, space, +, /, = in the PEM. */
function envoyUrlEncode(pem: string): string {
  return pem.replace(/[\n +/=]/g, (c) => ({ '\n': '%0A', ' ': '%20', '+': '%2B', '/': '%2F', '=': '%3D' })[c] ?? c);
}

/**
 * The element Envoy (SANITIZE_SET or APPEND_FORWARD) writes for a peer certificate with
 * set_current_client_cert_details {cert, subject, uri, dns}, byte for byte.
 */
function envoyElement(peer: Issued, subject: string, uris: readonly string[], dns: readonly string[]): string {
  const details = ['By=spiffe://cluster.local/ns/edge/sa/envoy', `Hash=${createHash('sha256').update(peer.der).digest('hex')}`,
    `Cert="${envoyUrlEncode(peer.pem)}"`, `Subject="${subject}"`];
  if (uris.length === 0) details.push('URI=');
  for (const uri of uris) details.push(`URI=${uri}`);
  for (const name of dns) details.push(`DNS=${name}`);
  return details.join(';');
}

function bound(cert: Issued): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: idp.issuer, sub: 'victim', iat: now, exp: now + 600, cnf: { 'x5t#S256': thumbprintS256(cert.der) } };
}

function config(header: Record<string, unknown> = {}): Record<string, unknown> {
  return strictEntityConfig(idp.issuer, CA_UUID, `http://127.0.0.1:${adminPort}`, { display_errors: true },
    { certificate_header_name: 'x-forwarded-client-cert', certificate_header_format: 'xfcc', ...header });
}

before(async () => {
  world = await startPluginWorld(CA_UUID, (base) => {
    ({ pki, idp, echo, adminPort } = base);
    return [
      { name: 'xfcc', paths: ['/xfcc'], plugins: [{ name: 'mtls-pop', config: config() }], guard: true, upstream: echo.url },
      { name: 'two-hops', paths: ['/two-hops'], plugins: [{ name: 'mtls-pop', config: config({ xfcc_element_count: 2 }) }], guard: true, upstream: echo.url },
    ];
  });
  emu = world.emu;
});

after(async () => {
  await world?.close();
});

async function run(route: string, token: string, xfcc: string): Promise<{ status: number | undefined; message: string | null }> {
  const outcome = await emu.runAccess(route, {
    path: `/${route}/x`, clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-forwarded-client-cert': xfcc },
  });
  if (outcome.response === undefined) {
    assert.equal(outcome.guard, 'passed');
    return { status: undefined, message: null };
  }
  return { status: outcome.response.status, message: (JSON.parse(outcome.response.body.toString()) as { message: string }).message };
}

describe('XFCC element injection through a SAN (real plugin server)', () => {
  test('a genuine Envoy element is accepted (the baseline the attacks are measured against)', async () => {
    const token = await idp.sign(bound(pki.directClient));
    const xfcc = envoyElement(pki.directClient, 'O=mtls-pop tests,CN=client-direct', ['spiffe://example.org/client-1'], ['client-1.example']);
    assert.deepEqual(await run('xfcc', token, xfcc), { status: undefined, message: null });
  });

  test('URI SAN `spiffe://x,Cert="<victim>"` on a self-signed attacker certificate: refused, nothing proxied', async () => {
    // The victim's certificate is public; its token was stolen. The attacker's own certificate is
    // self-signed (a terminator that leaves chain validation to the plugin accepts it).
    const injected = `spiffe://x,Cert="${envoyUrlEncode(pki.directClient.pem)}"`;
    const attacker = await issue({ subject: 'CN=attacker', uris: [injected] });
    const xfcc = envoyElement(attacker, 'CN=attacker', [injected], []);
    const stolen = await idp.sign(bound(pki.directClient));
    const before = echo.requests.length;
    const outcome = await run('xfcc', stolen, xfcc);
    assert.equal(outcome.status, 401, 'the injected victim certificate must not be thumbprinted');
    assert.match(outcome.message ?? '', /^Unauthorized \(certificate_header_malformed: .*2 elements/);
    assert.equal(echo.requests.length, before);
  });

  test('the same through a DNS SAN, with Hash= and Subject= injected too so the fake element looks like Envoy\'s', async () => {
    const victimHash = createHash('sha256').update(pki.directClient.der).digest('hex');
    const injected = `a.example,By=spiffe://cluster.local/ns/edge/sa/envoy;Hash=${victimHash};Cert="${envoyUrlEncode(pki.directClient.pem)}";Subject="CN=client-direct"`;
    const attacker = await issue({ subject: 'CN=attacker', dnsNames: [injected] });
    const xfcc = envoyElement(attacker, 'CN=attacker', [], [injected]);
    const outcome = await run('xfcc', await idp.sign(bound(pki.directClient)), xfcc);
    assert.equal(outcome.status, 401);
    assert.match(outcome.message ?? '', /certificate_header_malformed/);
  });

  test('a `;` injection (Cert= in the same element) is refused: nothing but URI=/DNS= may follow a URI= or DNS= value', async () => {
    const injected = `spiffe://x;Cert="${envoyUrlEncode(pki.directClient.pem)}"`;
    const attacker = await issue({ subject: 'CN=attacker', uris: [injected] });
    // Envoy with details {uri} only: no Cert of its own, so the injected one would be the only Cert.
    const xfcc = `Hash=${createHash('sha256').update(attacker.der).digest('hex')};URI=${injected}`;
    const outcome = await run('xfcc', await idp.sign(bound(pki.directClient)), xfcc);
    assert.equal(outcome.status, 401);
    assert.match(outcome.message ?? '', /certificate_header_malformed/);
  });

  test('xfcc_element_count 2 (edge SANITIZE_SET, then an APPEND_FORWARD hop): the first element is the client\'s; an injected third is refused', async () => {
    const hop = `By=spiffe://cluster.local/ns/kong/sa/kong;Hash=${createHash('sha256').update(pki.server.der).digest('hex')};Subject="CN=localhost";URI=`;
    const token = await idp.sign(bound(pki.directClient));
    const genuine = envoyElement(pki.directClient, 'O=mtls-pop tests,CN=client-direct', [], ['client-1.example']);
    assert.deepEqual(await run('two-hops', token, `${genuine},${hop}`), { status: undefined, message: null });
    // One element where two are expected: refused (the deployment does not look as configured).
    assert.equal((await run('two-hops', token, genuine)).status, 401);
    const injected = `spiffe://x,Cert="${envoyUrlEncode(pki.directClient.pem)}"`;
    const attacker = await issue({ subject: 'CN=attacker', uris: [injected] });
    const outcome = await run('two-hops', token, `${envoyElement(attacker, 'CN=attacker', [injected], [])},${hop}`);
    assert.equal(outcome.status, 401);
    assert.match(outcome.message ?? '', /certificate_header_malformed: .*3 elements/);
  });
});
