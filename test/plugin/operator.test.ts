/**
 * What operators configure around the verdict, through the REAL plugin server and the Kong
 * emulator: identity headers for the upstream (`upstream_headers`), `hide_credentials`,
 * `hide_certificate_header`, the decision record for Kong's log plugins (`log_serialize`), the PDK
 * round trips each option costs, and rate-limited warning lines.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import {
  KongEmulator, type AccessOutcome, type EchoUpstream, type EchoRecord, type EmulatedRequestInit,
} from '../harness/kong-emulator.js';
import { httpRequest } from '../harness/http.js';
import type { TestPki, Issued } from '../helpers/pki.js';
import type { JwksServer } from '../helpers/jwks-server.js';
import { startPluginWorld, type PluginWorld } from '../helpers/plugin-world.js';
import { RateLimitedLog, type LogLevel } from '../../kong/log.js';
import { strictEntityConfig } from '../helpers/seed.js';

const CA_UUID = '5d0c2f3e-8b61-4c8e-9d6a-1f2e3d4c5b6a';

let pki: TestPki;
let idp: JwksServer;
let echo: EchoUpstream;
let emu: KongEmulator;
let world: PluginWorld;
let adminPort: number;

/** x5t#S256 computed here, independently of src/certificate.ts. */
const x5t = (cert: Issued): string => createHash('sha256').update(cert.der).digest('base64url');

function pluginConfig(extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Record<string, unknown> {
  return strictEntityConfig(idp.issuer, CA_UUID, `http://127.0.0.1:${adminPort}`, extra, header);
}

const IDENTITY_HEADERS = [
  { header: 'X-User-Sub', path: 'sub' },
  { header: 'X-User-Roles', path: 'realm_access.roles' },
  { header: 'X-User-Org', path: 'org' },
  { header: 'X-User-Email', path: 'email' },
  { header: 'X-Cert-Subject', path: 'cert.subject' },
  { header: 'X-Cert-Issuer', path: 'cert.issuer' },
  { header: 'X-Cert-San', path: 'cert.san' },
  { header: 'X-Cert-Serial', path: 'cert.serial' },
  { header: 'X-Cert-Thumbprint', path: 'cert.thumbprint' },
];

function claims(cert: Issued | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: idp.issuer, sub: 'svc-42', iat: now, exp: now + 600, typ: 'Bearer',
    realm_access: { roles: ['reader', 'writer'] }, org: { id: 7, name: 'acme' },
    ...(cert === null ? {} : { cnf: { 'x5t#S256': x5t(cert) } }),
    ...extra,
  };
}

/** HAProxy `%[ssl_c_der,base64],%[ssl_c_chain_der,base64]`. */
function chainHeader(leaf: Issued): string {
  return `${leaf.der.toString('base64')},${pki.intermediate.der.toString('base64')}`;
}

/** Every value the upstream received for `name` (case-insensitive), in order. */
function received(record: EchoRecord | undefined, name: string): string[] {
  return (record?.rawHeaders ?? []).filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
}

async function proxied(path: string, headers: Array<[string, string]>): Promise<EchoRecord> {
  const before = echo.requests.length;
  const res = await httpRequest(`${emu.url}${path}`, { headers });
  assert.equal(res.status, 200, `proxied to the upstream: ${res.body.toString()}`);
  assert.equal(echo.requests.length, before + 1);
  const record = echo.requests[before];
  assert.ok(record);
  return record;
}

/**
 * Runs the request twice and returns the second run: round-trip counts are those of a route whose
 * instance already has the peer's trust cached (the first request also asks kong.ip.is_trusted).
 */
async function steady(routeName: string, init: EmulatedRequestInit): Promise<AccessOutcome> {
  await emu.runAccess(routeName, init);
  return emu.runAccess(routeName, init);
}

before(async () => {
  world = await startPluginWorld(CA_UUID, (base) => {
    ({ pki, idp, echo, adminPort } = base);
    const route = (name: string, config: Record<string, unknown>) => ({
      name, paths: [`/${name}`], plugins: [{ name: 'mtls-pop', config }], guard: true, upstream: echo.url,
    });
    return [
      route('plain', pluginConfig()),
      route('identity', pluginConfig({ upstream_headers: IDENTITY_HEADERS })),
      route('hidden', pluginConfig({ hide_credentials: true, hide_certificate_header: true })),
      route('serialize', pluginConfig({ log_serialize: true })),
      route('everything', pluginConfig({
        upstream_headers: [{ header: 'X-User-Sub', path: 'sub' }], hide_credentials: true, hide_certificate_header: true, log_serialize: true,
      })),
      route('optional', pluginConfig({
        proof_of_possession_mtls: 'optional', log_serialize: true, hide_certificate_header: true,
        upstream_headers: [{ header: 'X-Cert-Thumbprint', path: 'cert.thumbprint' }, { header: 'X-User-Sub', path: 'sub' }],
      })),
      route('rfc9440', pluginConfig({ hide_certificate_header: true }, {
        certificate_header_name: 'client-cert', certificate_header_format: 'rfc9440', certificate_chain_header_name: 'client-cert-chain',
      })),
    ];
  });
  emu = world.emu;
});

after(async () => {
  await world?.close();
});

describe('identity headers for the upstream (upstream_headers)', () => {
  test('verified claims and certificate facts reach the upstream with exact values', async () => {
    const token = await idp.sign(claims(pki.client));
    const record = await proxied('/identity/r', [['Authorization', `Bearer ${token}`], ['X-Client-Cert', chainHeader(pki.client)]]);
    const node = new X509Certificate(pki.client.der);
    assert.deepEqual(received(record, 'x-user-sub'), ['svc-42']);
    assert.deepEqual(received(record, 'x-user-roles'), ['["reader","writer"]']);
    assert.deepEqual(received(record, 'x-user-org'), ['{"id":7,"name":"acme"}']);
    assert.deepEqual(received(record, 'x-user-email'), [], 'absent claim: no header');
    assert.deepEqual(received(record, 'x-cert-subject'), ['CN=client-1,O=mtls-pop tests']);
    assert.deepEqual(received(record, 'x-cert-issuer'), ['CN=mtls-pop Test Intermediate CA,O=mtls-pop tests']);
    assert.deepEqual(received(record, 'x-cert-san'), ['["DNS:client-1.example"]']);
    assert.deepEqual(received(record, 'x-cert-serial'), [node.serialNumber.toUpperCase().replace(/^(00)+(?=.)/, '')]);
    assert.deepEqual(received(record, 'x-cert-thumbprint'), [x5t(pki.client)]);
    // Without hide_credentials the credentials still go upstream.
    assert.deepEqual(received(record, 'authorization'), [`Bearer ${token}`]);
    assert.deepEqual(received(record, 'x-client-cert'), [chainHeader(pki.client)]);
  });

  test('client-sent copies (any case, repeated, -/_ variants) are removed; an absent value removes the forged header too', async () => {
    const token = await idp.sign(claims(pki.client));
    const record = await proxied('/identity/r', [
      ['Authorization', `Bearer ${token}`], ['X-Client-Cert', chainHeader(pki.client)],
      ['X-User-Sub', 'admin'], ['x-user-sub', 'root'], ['X_User_Sub', 'admin'], ['x-user_roles', 'superuser'],
      ['X-User-Email', 'ceo@example.com'], ['X-Cert-Subject', 'CN=admin'], ['X-Unrelated', 'kept'],
    ]);
    assert.deepEqual(received(record, 'x-user-sub'), ['svc-42']);
    assert.deepEqual(received(record, 'x_user_sub'), []);
    assert.deepEqual(received(record, 'x-user-roles'), ['["reader","writer"]']);
    assert.deepEqual(received(record, 'x-user_roles'), []);
    assert.deepEqual(received(record, 'x-user-email'), [], 'the token has no email: the forged header is gone, not passed');
    assert.deepEqual(received(record, 'x-cert-subject'), ['CN=client-1,O=mtls-pop tests']);
    assert.deepEqual(received(record, 'x-unrelated'), ['kept']);
  });

  test('one set_headers call: 5 round trips instead of 4, the flag set after the headers', async () => {
    const token = await idp.sign(claims(pki.client));
    const init = { path: '/identity/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client), 'X-User-Sub': 'forged' } };
    const outcome = await steady('identity', init);
    assert.equal(outcome.response, undefined);
    assert.equal(outcome.guard, 'passed');
    assert.equal(outcome.events[0]?.roundTrips, 5);
    assert.deepEqual(outcome.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.service.request.set_headers', 'kong.ctx.shared.set']);
    assert.deepEqual(outcome.ctx.upstreamHeaders.filter(([n]) => n.toLowerCase() === 'x-user-sub'), [['X-User-Sub', 'svc-42']]);
  });

  test('a rejected request sets no header: 3 round trips as before', async () => {
    const token = await idp.sign(claims(pki.otherClient));
    const outcome = await steady('identity', {
      path: '/identity/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
    });
    assert.equal(outcome.response?.status, 401);
    assert.deepEqual(outcome.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.response.exit']);
    assert.equal(outcome.events[0]?.roundTrips, 3);
  });

  test('a claim value with CR/LF is not sent (header removed) and logged once', async () => {
    const token = await idp.sign(claims(pki.client, { sub: 'svc\r\nX-Admin: true' }));
    const record = await proxied('/identity/r', [['Authorization', `Bearer ${token}`], ['X-Client-Cert', chainHeader(pki.client)], ['X-User-Sub', 'forged']]);
    assert.deepEqual(received(record, 'x-user-sub'), []);
    assert.deepEqual(received(record, 'x-admin'), []);
    await emu.pluginServer.waitForStderr(/upstream header X-User-Sub removed, not set: the value of sub contains a control character/);
  });
});

describe('hide_credentials and hide_certificate_header', () => {
  test('Authorization and the certificate header do not reach the upstream; 5 round trips', async () => {
    const token = await idp.sign(claims(pki.client));
    const record = await proxied('/hidden/r', [
      ['Authorization', `Bearer ${token}`], ['X-Client-Cert', chainHeader(pki.client)], ['X_Client_Cert', 'forged'], ['X-Other', 'kept'],
    ]);
    assert.deepEqual(received(record, 'authorization'), []);
    assert.deepEqual(received(record, 'x-client-cert'), []);
    assert.deepEqual(received(record, 'x_client_cert'), []);
    assert.deepEqual(received(record, 'x-other'), ['kept']);
    const outcome = await steady('hidden', {
      path: '/hidden/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
    });
    assert.equal(outcome.events[0]?.roundTrips, 5);
    assert.deepEqual(outcome.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.service.request.set_headers', 'kong.ctx.shared.set']);
  });

  test('rfc9440: both Client-Cert and Client-Cert-Chain are removed', async () => {
    const token = await idp.sign(claims(pki.client));
    const record = await proxied('/rfc9440/r', [
      ['Authorization', `Bearer ${token}`], ['Client-Cert', `:${pki.client.der.toString('base64')}:`],
      ['Client-Cert-Chain', `:${pki.intermediate.der.toString('base64')}:`],
    ]);
    assert.deepEqual(received(record, 'client-cert'), []);
    assert.deepEqual(received(record, 'client-cert-chain'), []);
    assert.deepEqual(received(record, 'authorization'), [`Bearer ${token}`], 'hide_credentials is off on this route');
  });

  test('without any option nothing is set: still 4 round trips', async () => {
    const token = await idp.sign(claims(pki.client));
    const outcome = await steady('plain', {
      path: '/plain/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
    });
    assert.equal(outcome.guard, 'passed');
    assert.equal(outcome.events[0]?.roundTrips, 4);
    assert.deepEqual(outcome.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.ctx.shared.set']);
    assert.deepEqual(outcome.ctx.serializeValues, []);
  });
});

describe('decision record for Kong log plugins (log_serialize)', () => {
  test('allow: result, reason bound, thumbprint and subject under mtls_pop; never the token; 5 round trips', async () => {
    const token = await idp.sign(claims(pki.client));
    const outcome = await steady('serialize', {
      path: '/serialize/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
    });
    assert.equal(outcome.guard, 'passed');
    assert.deepEqual(outcome.ctx.serializeValues, [{
      key: 'mtls_pop', mode: 'set',
      value: { result: 'allow', reason: 'bound', cert: { thumbprint: x5t(pki.client), subject: 'CN=client-1,O=mtls-pop tests' } },
    }]);
    assert.ok(!JSON.stringify(outcome.ctx.serializeValues).includes(token.slice(0, 20)));
    assert.equal(outcome.events[0]?.roundTrips, 5);
    assert.deepEqual(outcome.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.log.set_serialize_value', 'kong.ctx.shared.set']);
  });

  test('deny: the reason code and the certificate that was presented; 4 round trips', async () => {
    const token = await idp.sign(claims(pki.otherClient));
    const outcome = await steady('serialize', {
      path: '/serialize/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
    });
    assert.equal(outcome.response?.status, 401);
    assert.deepEqual(outcome.ctx.serializeValues, [{
      key: 'mtls_pop', mode: 'set',
      value: { result: 'deny', reason: 'certificate_thumbprint_mismatch', cert: { thumbprint: x5t(pki.client), subject: 'CN=client-1,O=mtls-pop tests' } },
    }]);
    assert.equal(outcome.events[0]?.roundTrips, 4);
    assert.deepEqual(outcome.events[0]?.calls, ['kong.request.get_headers', 'kong.client.get_ip', 'kong.log.set_serialize_value', 'kong.response.exit']);
  });

  test('deny without a token or certificate: reason only, no cert member', async () => {
    const outcome = await emu.runAccess('serialize', { path: '/serialize/x', clientIp: '127.0.0.1', headers: {} });
    assert.equal(outcome.response?.status, 401);
    assert.deepEqual(outcome.ctx.serializeValues.map((v) => v.value), [{ result: 'deny', reason: 'token_missing' }]);
  });

  test('optional mode, unbound token: allow/unbound, certificate headers cleared and hidden', async () => {
    const token = await idp.sign(claims(null));
    const outcome = await emu.runAccess('optional', {
      path: '/optional/x', clientIp: '127.0.0.1',
      headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client), 'x-cert-thumbprint': 'forged' },
    });
    assert.equal(outcome.guard, 'passed');
    assert.deepEqual(outcome.ctx.serializeValues.map((v) => v.value), [{ result: 'allow', reason: 'unbound' }]);
    const names = outcome.ctx.upstreamHeaders.map(([n]) => n.toLowerCase());
    assert.ok(!names.includes('x-cert-thumbprint'), 'no certificate was verified: the forged thumbprint is removed');
    assert.ok(!names.includes('x-client-cert'));
    assert.deepEqual(outcome.ctx.upstreamHeaders.filter(([n]) => n === 'X-User-Sub'), [['X-User-Sub', 'svc-42']]);
  });

  test('everything on: one set_headers and one set_serialize_value, 6 round trips', async () => {
    const token = await idp.sign(claims(pki.client));
    const init = { path: '/everything/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) } };
    const outcome = await steady('everything', init);
    assert.equal(outcome.guard, 'passed');
    assert.equal(outcome.events[0]?.roundTrips, 6);
    assert.deepEqual(outcome.events[0]?.calls, [
      'kong.request.get_headers', 'kong.client.get_ip', 'kong.service.request.set_headers', 'kong.log.set_serialize_value', 'kong.ctx.shared.set',
    ]);
    assert.deepEqual(outcome.ctx.upstreamHeaders.map(([n, v]) => `${n}: ${v}`).filter((l) => !l.startsWith('Host:')), ['X-User-Sub: svc-42']);
  });
});

describe('warning lines', () => {
  test('RateLimitedLog: 10 lines per key per window, then a count of what was suppressed', () => {
    const lines: Array<[LogLevel, string]> = [];
    let now = 1_000;
    const log = new RateLimitedLog((level, line) => lines.push([level, line]), 10, 10_000, () => now);
    for (let i = 0; i < 25; i++) log.log('warn', 'token_expired', `line ${i}`);
    log.log('warn', 'other', 'other key is not limited by the first');
    assert.deepEqual(lines.map(([, l]) => l), [...Array.from({ length: 10 }, (_, i) => `line ${i}`), 'other key is not limited by the first']);
    now += 9_999;
    log.log('warn', 'token_expired', 'still in the window');
    assert.equal(lines.length, 11);
    now += 1;
    log.log('warn', 'token_expired', 'next window');
    assert.deepEqual(lines.slice(11), [['warn', '16 similar messages suppressed (token_expired)'], ['warn', 'next window']]);
  });

  test('RateLimitedLog: a line given as a function is formatted only when it is written', () => {
    const lines: string[] = [];
    const log = new RateLimitedLog((_level, line) => lines.push(line), 2, 10_000, () => 1_000);
    let formatted = 0;
    for (let i = 0; i < 5; i++) log.log('warn', 'certificate_thumbprint_mismatch', () => `line ${++formatted}`);
    assert.deepEqual(lines, ['line 1', 'line 2']);
    assert.equal(formatted, 2, 'the three suppressed lines were never formatted');
  });

  test('through the plugin server: one warn line per rejected request, at most 10 per reason per window', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await idp.sign({ ...claims(pki.client), iat: now - 900, exp: now - 300 });
    const before = (emu.pluginServer.stderr.match(/reason=token_expired/g) ?? []).length;
    assert.equal(before, 0);
    for (let i = 0; i < 13; i++) {
      const outcome = await emu.runAccess('plain', {
        path: '/plain/x', clientIp: '127.0.0.1', headers: { authorization: `Bearer ${token}`, 'x-client-cert': chainHeader(pki.client) },
      });
      assert.equal(outcome.response?.status, 401);
    }
    // Wait for the 10th line (output arrives after the answers), then give stray extra lines a moment.
    await emu.pluginServer.waitForStderr(/(reason=token_expired[^\n]*\n[\s\S]*){10}/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = emu.pluginServer.stderr.split('\n').filter((l) => l.includes('reason=token_expired'));
    assert.equal(lines.length, 10);
    // The token is checked before the certificate (issue 11 item 4): a token failure names no certificate.
    assert.match(lines[0] ?? '', /\[warn\] mtls-pop: rejected 401 reason=token_expired: /);
    assert.ok(!emu.pluginServer.stderr.includes(token.slice(0, 30)), 'no token in the log');
  });
});
