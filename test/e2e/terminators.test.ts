/**
 * The whole flow with real processes on 127.0.0.1, once behind HAProxy and once behind nginx:
 * certificate-bound tokens from the real IdP over mTLS, the real TLS terminator forwarding the
 * client certificate in `x-client-cert`, the Kong emulator driving the real plugin server, the
 * fail-closed guard, an echo upstream that records what got through.
 *
 * A missing haproxy/nginx skips its block with a message (CI=true: a failure).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { findExecutable, requireExecutable } from '../helpers/terminators.js';
import { opensslThumbprint } from '../helpers/pki.js';
import { startStack, STACK_PATH, type ClientName, type Stack } from '../helpers/stack.js';
import { GUARD_WWW_AUTHENTICATE } from '../harness/kong-emulator.js';

const REALM = 'Bearer realm="localhost"';
const NO_CERTIFICATE = `${REALM}, error="invalid_token", error_description="no client certificate was presented"`;
const MISMATCH = `${REALM}, error="invalid_token", error_description="the client certificate thumbprint does not match the x5t#S256 claim"`;
/** Same sentence as a missing certificate: without display_errors a client cannot probe trusted_ips. */
const UNTRUSTED_PEER = NO_CERTIFICATE;
/** The post-function guard's own challenge (harness GUARD_LUA). */
const GUARD_CHALLENGE = GUARD_WWW_AUTHENTICATE;

/** Waits (up to 2 s) for the plugin server's output to match: its log lines arrive apart from the HTTP response. */
async function waitForLog(s: Stack, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const output = s.emulator.pluginServer.stdout + s.emulator.pluginServer.stderr;
    if (pattern.test(output)) return;
    if (Date.now() > deadline) assert.fail(`plugin server output does not match ${String(pattern)}:\n${output.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

for (const terminator of ['haproxy', 'nginx'] as const) {
  describe(`end to end behind ${terminator}`, () => {
    let stack: Stack | undefined;
    let dir: string | undefined;
    const tokens: Partial<Record<ClientName, string>> = {};

    before(async () => {
      if (findExecutable(terminator) === null) return; // each test skips (or fails with CI=true)
      dir = mkdtempSync(join(tmpdir(), `mtls-pop-e2e-${terminator}-`));
      stack = await startStack({ terminator, dir });
      tokens['client-1'] = await stack.token('client-1');
      tokens['client-2'] = await stack.token('client-2');
    });

    after(async () => {
      await stack?.stop();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    /** The running stack, or null when the test was skipped for a missing binary. */
    function ready(t: Parameters<typeof requireExecutable>[0]): Stack | null {
      if (requireExecutable(t, terminator) === null) return null;
      assert.ok(stack !== undefined, 'the stack started');
      return stack;
    }

    function token(client: ClientName): string {
      const value = tokens[client];
      assert.ok(value !== undefined);
      return value;
    }

    /** x-client-cert as this terminator writes it: base64 DER (HAProxy) or percent-encoded PEM (nginx). */
    function headerValue(s: Stack, client: ClientName): string {
      const cert = s.certificate(client);
      return s.headerFormat === 'base64_encoded' ? cert.der.toString('base64') : encodeURIComponent(cert.pem);
    }

    /** The x-client-cert the upstream received on its latest request, decoded to PEM or base64 DER. */
    function forwardedCertificate(s: Stack): string | undefined {
      const value = s.echo.requests.at(-1)?.headers['x-client-cert'];
      if (typeof value !== 'string') return undefined;
      return s.headerFormat === 'url_encoded' ? decodeURIComponent(value) : value;
    }

    function expectedForwarded(s: Stack, client: ClientName): string {
      const cert = s.certificate(client);
      return s.headerFormat === 'url_encoded' ? cert.pem : cert.der.toString('base64');
    }

    test('the IdP issues tokens over mTLS bound to each client\'s certificate (openssl thumbprint)', (t) => {
      const s = ready(t);
      if (s === null) return;
      assert.deepEqual(decodeJwt(token('client-1')).cnf, { 'x5t#S256': opensslThumbprint(s.certificate('client-1').pem) });
      assert.deepEqual(decodeJwt(token('client-2')).cnf, { 'x5t#S256': opensslThumbprint(s.certificate('client-2').pem) });
      assert.equal(decodeJwt(token('client-1')).iss, s.urls.idp);
    });

    test('certificate + its token through the terminator: 200, the upstream got the request with the verified identity headers; 5 PDK round trips', async (t) => {
      const s = ready(t);
      if (s === null) return;
      const before = s.echo.requests.length;
      const first = await s.request(STACK_PATH, { cert: 'client-1', token: token('client-1') });
      assert.equal(first.status, 200, first.wwwAuthenticate);
      assert.equal(first.wwwAuthenticate, undefined);
      assert.equal(s.echo.requests.length, before + 1);
      assert.equal(s.echo.requests.at(-1)?.path, STACK_PATH);
      assert.equal(forwardedCertificate(s), expectedForwarded(s, 'client-1'), `${terminator} forwarded client-1's certificate`);
      assert.equal(JSON.parse(first.body).path, STACK_PATH, 'the body is the upstream\'s');

      const seen = s.echo.requests.at(-1)?.headers ?? {};
      assert.equal(seen['x-client-id'], 'client-1');
      assert.equal(seen['x-client-cert-subject'], 'CN=client-1,O=mtls-pop tests');

      // Warm path: HandleEvent (-> get_headers), Step (-> get_ip), Step (-> service.request.set_headers
      // for upstream_headers), Step (-> ctx.shared.set), Step (-> ret). Without upstream_headers: 4.
      const stats = { ...s.emulator.stats };
      const second = await s.request(STACK_PATH, { cert: 'client-1', token: token('client-1'), headers: { 'X-Client-Id': 'forged' } });
      assert.equal(second.status, 200, second.wwwAuthenticate);
      assert.equal(s.echo.requests.at(-1)?.headers['x-client-id'], 'client-1', 'a client-sent copy is replaced');
      assert.equal(s.emulator.stats.events - stats.events, 1);
      assert.equal(s.emulator.stats.lastEventRoundTrips, 5);
      assert.equal(s.emulator.stats.roundTrips - stats.roundTrips, 5);
      assert.equal(s.emulator.stats.proxied - stats.proxied, 1);
      assert.equal(s.emulator.stats.failOpen, 0);
    });

    test('no client certificate: 401 with an invalid_token challenge (bare challenge without a token); nothing proxied', async (t) => {
      const s = ready(t);
      if (s === null) return;
      const before = s.echo.requests.length;
      const withToken = await s.request(STACK_PATH, { token: token('client-1') });
      assert.equal(withToken.status, 401);
      assert.equal(withToken.wwwAuthenticate, NO_CERTIFICATE);
      assert.deepEqual(JSON.parse(withToken.body), { message: 'Unauthorized' });
      const bare = await s.request(STACK_PATH, {});
      assert.equal(bare.status, 401);
      assert.equal(bare.wwwAuthenticate, REALM, 'RFC 6750 3.1: no error code when no credentials were sent');
      assert.equal(s.echo.requests.length, before);
    });

    test('another client\'s token with client-1\'s certificate: 401 certificate_thumbprint_mismatch', async (t) => {
      const s = ready(t);
      if (s === null) return;
      const before = s.echo.requests.length;
      const stolen = await s.request(STACK_PATH, { cert: 'client-1', token: token('client-2') });
      assert.equal(stolen.status, 401);
      assert.equal(stolen.wwwAuthenticate, MISMATCH);
      assert.equal(s.echo.requests.length, before);
      const thumbprint = opensslThumbprint(s.certificate('client-1').pem);
      await waitForLog(s,
        new RegExp(`rejected 401 reason=certificate_thumbprint_mismatch cert=${thumbprint} subject="CN=client-1,O=mtls-pop tests"`));
    });

    test('a client-sent x-client-cert is overwritten by the terminator', async (t) => {
      const s = ready(t);
      if (s === null) return;
      // client-1's TLS certificate, client-2's certificate in the header (mixed case, the terminator's own format).
      const spoof = { 'X-Client-Cert': headerValue(s, 'client-2') };
      const asClient1 = await s.request(STACK_PATH, { cert: 'client-1', token: token('client-1'), headers: spoof });
      assert.equal(asClient1.status, 200, `the header carried client-1's certificate, not the spoofed one: ${String(asClient1.wwwAuthenticate)}`);
      assert.equal(forwardedCertificate(s), expectedForwarded(s, 'client-1'));
      assert.equal(s.echo.requests.at(-1)?.rawHeaders.filter(([n]) => n.toLowerCase() === 'x-client-cert').length, 1);
      const before = s.echo.requests.length;
      const asClient2 = await s.request(STACK_PATH, { cert: 'client-1', token: token('client-2'), headers: spoof });
      assert.equal(asClient2.status, 401);
      assert.equal(asClient2.wwwAuthenticate, MISMATCH);
      // Without any TLS certificate the spoofed header is dropped too.
      const noTls = await s.request(STACK_PATH, { token: token('client-2'), headers: spoof });
      assert.equal(noTls.status, 401);
      assert.equal(noTls.wwwAuthenticate, NO_CERTIFICATE);
      assert.equal(s.echo.requests.length, before);
    });

    test('straight to the gateway from 127.0.0.2 (not in trusted_ips) with a forged header: 401, nothing proxied', async (t) => {
      const s = ready(t);
      if (s === null) return;
      const forged = { 'x-client-cert': headerValue(s, 'client-1') };
      const before = s.echo.requests.length;
      const untrusted = await s.request(STACK_PATH, { via: 'gateway', localAddress: '127.0.0.2', token: token('client-1'), headers: forged });
      assert.equal(untrusted.status, 401);
      assert.equal(untrusted.wwwAuthenticate, UNTRUSTED_PEER);
      assert.equal(s.echo.requests.length, before);
      await waitForLog(s,
        /certificate header from untrusted peer 127\.0\.0\.2 ignored \(not in trusted_ips\)/);
      // Control: the same request from the trusted address passes, so the 401 above is the source check.
      const trusted = await s.request(STACK_PATH, { via: 'gateway', token: token('client-1'), headers: forged });
      assert.equal(trusted.status, 200, trusted.wwwAuthenticate);
      assert.equal(s.echo.requests.length, before + 1);
    });

    test('plugin server killed: the guard answers 401 and nothing is proxied; after a restart the request passes', async (t) => {
      const s = ready(t);
      if (s === null) return;
      const good = { cert: 'client-1', token: token('client-1') } as const;
      const warm = await s.request(STACK_PATH, good);
      assert.equal(warm.status, 200, warm.wwwAuthenticate);
      await s.emulator.pluginServer.kill();
      assert.equal(s.emulator.pluginServer.running, false);
      const stats = { ...s.emulator.stats };
      const before = s.echo.requests.length;
      const down = await s.request(STACK_PATH, good);
      assert.equal(down.status, 401);
      assert.equal(down.wwwAuthenticate, GUARD_CHALLENGE);
      assert.deepEqual(JSON.parse(down.body), { message: 'Unauthorized' });
      assert.equal(s.echo.requests.length, before, 'the guard let nothing through');
      assert.equal(s.emulator.stats.failOpen - stats.failOpen, 1, 'Kong failed open: only the guard stopped it');
      assert.equal(s.emulator.stats.guardRejections - stats.guardRejections, 1);

      await s.emulator.restartPluginServer();
      const again = await s.request(STACK_PATH, good);
      assert.equal(again.status, 200, again.wwwAuthenticate);
      assert.equal(s.echo.requests.length, before + 1);
      const stolen = await s.request(STACK_PATH, { cert: 'client-1', token: token('client-2') });
      assert.equal(stolen.status, 401);
      assert.equal(stolen.wwwAuthenticate, MISMATCH, 'the plugin judges again after the restart');
    });
  });
}
