/**
 * `npm run demo`: the seed's flow on one machine, no Docker, narrated.
 *
 * Generates a PKI, starts oidc-provider as the Keycloak stand-in (mTLS client authentication,
 * certificate-bound access tokens), an echo upstream, the Kong-role gateway (the Kong emulator
 * driving the real mtls-pop plugin server) and a TLS terminator in front (HAProxy when installed,
 * else nginx, else a Node TLS front); then gets a bound token over mTLS, shows its `cnf` next to
 * the certificate's thumbprint computed by openssl, and shows 200 with the certificate, 401
 * without it, 401 with a stolen token. Everything is stopped and the temp dir removed at the end,
 * on a failure, and on Ctrl-C / SIGTERM.
 *
 * Usage: node dist/scripts/demo.js [--terminator haproxy|nginx|node] [--hold] [--idp stand-in|keycloak]
 *   --hold  keep the stack running after the checks (with curl commands to try) until Ctrl-C.
 *   --idp keycloak  the real Keycloak (installed by .ci/run; docs/keycloak-and-deck.md) instead of
 *           the stand-in, with HAProxy in front; slower (Keycloak starts in 30-120 s).
 * Exit code: 0 when every step behaved as expected; 1 when one did not; 2 for bad arguments;
 * 130 / 143 when interrupted by SIGINT / SIGTERM before the end (with --hold, a signal after the
 * checks is the normal way to stop: 0).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { opensslThumbprint } from '../test/helpers/pki.js';
import { findExecutable } from '../test/helpers/terminators.js';
import {
  generateComposeCerts, keycloakMissing, keycloakToken, startKeycloak, startKeycloakStack, KC_ROUTES,
  type KeycloakServer, type KeycloakStack,
} from '../test/helpers/keycloak.js';
import {
  preferredTerminator, startStack, StackAbortedError, StackStepError, STACK_PATH,
  type ClientName, type Stack, type StackResponse, type TerminatorKind,
} from '../test/helpers/stack.js';

const TERMINATORS: readonly TerminatorKind[] = ['haproxy', 'nginx', 'node'];
const INDENT = '      ';

interface Args {
  readonly terminator: TerminatorKind | undefined;
  readonly hold: boolean;
  readonly idp: 'stand-in' | 'keycloak';
}

const USAGE = 'usage: node dist/scripts/demo.js [--terminator haproxy|nginx|node] [--hold] [--idp stand-in|keycloak]';

function parseArgs(argv: readonly string[]): Args | string {
  let terminator: TerminatorKind | undefined;
  let hold = false;
  let idp: Args['idp'] = 'stand-in';
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const idpValue = arg.startsWith('--idp=') ? arg.slice('--idp='.length) : arg === '--idp' ? argv[++i] : undefined;
    if (idpValue !== undefined) {
      if (idpValue !== 'stand-in' && idpValue !== 'keycloak') return `--idp must be stand-in or keycloak; ${USAGE}`;
      idp = idpValue;
      continue;
    }
    const value = arg.startsWith('--terminator=') ? arg.slice('--terminator='.length) : arg === '--terminator' ? argv[++i] : undefined;
    if (value !== undefined) {
      if (!(TERMINATORS as readonly string[]).includes(value)) return `--terminator must be one of ${TERMINATORS.join(', ')}`;
      terminator = value as TerminatorKind;
    } else if (arg === '--hold') {
      hold = true;
    } else if (arg === '--help' || arg === '-h') {
      return USAGE;
    } else {
      return `unknown argument ${JSON.stringify(arg)}; ${USAGE}`;
    }
  }
  if (idp === 'keycloak' && terminator !== undefined && terminator !== 'haproxy') return `--idp keycloak runs with HAProxy in front; ${USAGE}`;
  if (idp === 'keycloak' && hold) return `--hold is not available with --idp keycloak; ${USAGE}`;
  return { terminator, hold, idp };
}

/** False once stdout is gone (e.g. piped into `head`): narration stops, shutdown still runs. */
let stdoutOpen = true;
process.stdout.on('error', () => { stdoutOpen = false; });

function say(line = ''): void {
  if (stdoutOpen) process.stdout.write(`${line}\n`);
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

function msSince(since: number): string {
  return `${Math.round(performance.now() - since)} ms`;
}

function whyTerminator(kind: TerminatorKind, chosen: boolean): string {
  if (!chosen) return `as asked (--terminator ${kind})`;
  if (kind === 'haproxy') return `found at ${findExecutable('haproxy') ?? '?'}`;
  if (kind === 'nginx') return `HAProxy is not installed; nginx found at ${findExecutable('nginx') ?? '?'}`;
  return 'neither HAProxy nor nginx is installed';
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (typeof args === 'string') {
    process.stderr.write(`${args}\n`);
    return 2;
  }
  if (args.idp === 'keycloak') return keycloakDemo();
  const started = performance.now();
  const controller = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  let holding = false;
  let wake: (() => void) | undefined;
  const interrupted = new Promise<void>((resolve) => { wake = resolve; });
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled !== undefined) {
      say(`${signal} received again: still shutting down`);
      return;
    }
    signalled = signal;
    say(holding ? `${signal} received: stopping the stack` : `${signal} received: interrupting and shutting down`);
    controller.abort();
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let step = 0;
  let current = 'start';
  const failed: string[] = [];
  const pass = (text: string): void => { say(`[${++step}] ✓ ${text}`); };
  const fail = (text: string, name: string): void => {
    say(`[${++step}] ✗ ${text}`);
    failed.push(`step ${step} (${name})`);
  };
  const detail = (text: string): void => { say(`${INDENT}${text}`); };
  /** Waits for `work` unless a signal arrives first (then resolves undefined). */
  const unlessInterrupted = async <T>(work: Promise<T>): Promise<T | undefined> => {
    work.catch(() => undefined); // an abandoned request may fail later, when the stack is stopped
    return Promise.race([work, interrupted.then(() => undefined)]);
  };

  const terminator = args.terminator ?? preferredTerminator();
  say('mtls-pop demo: the seed\'s flow on one machine (no Docker, no Kong installation), everything on 127.0.0.1');
  say(`TLS terminator: ${terminator === 'haproxy' ? 'HAProxy' : terminator === 'nginx' ? 'nginx' : 'the Node TLS front'} `
    + `(${whyTerminator(terminator, args.terminator === undefined)})`);
  say();

  const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-demo-'));
  let stack: Stack | undefined;
  try {
    current = 'start the stack';
    stack = await startStack({
      terminator, dir, signal: controller.signal,
      log: (entry) => {
        const [first = '', ...rest] = entry.split('\n');
        pass(first);
        rest.forEach(detail);
      },
    });
    const s = stack;

    // Tokens over mTLS from the IdP.
    const tokens: Partial<Record<ClientName, string>> = {};
    for (const client of ['client-1', 'client-2'] as const) {
      if (signalled !== undefined) break;
      current = `token for ${client}`;
      const t0 = performance.now();
      const token = await unlessInterrupted(s.token(client));
      if (token === undefined) break;
      tokens[client] = token;
      const cnf = decodeJwt(token).cnf as Record<string, unknown> | undefined;
      const claimed = cnf?.['x5t#S256'];
      const openssl = opensslThumbprint(s.certificate(client).pem);
      const bound = claimed === openssl;
      const text = `token for ${client} from ${s.urls.tokenEndpoint} over mTLS (client_credentials, tls_client_auth) (${msSince(t0)})`;
      if (bound) pass(text); else fail(text, current);
      if (client === 'client-1') {
        const header = decodeProtectedHeader(token);
        const claims = decodeJwt(token);
        detail(`header       ${JSON.stringify({ alg: header.alg, typ: header.typ, kid: header.kid })}`);
        detail(`claims       iss ${String(claims.iss)}, aud ${String(claims.aud)}, client_id ${String(claims.client_id)}`);
      }
      detail(`cnf          ${JSON.stringify(cnf ?? null)}`);
      detail(`openssl      ${openssl}   <- x5t#S256 of ${client}.pem: openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url`);
      detail(bound ? `✓ equal: the token is bound to ${client}'s certificate` : `✗ different: the token is not bound to ${client}'s certificate`);
    }

    // The three requests of the seed's "validate the flow".
    const checks: ReadonlyArray<{
      name: string; cert: ClientName | undefined; token: ClientName; status: number; challenge: string | undefined; upstream: boolean;
    }> = [
      { name: 'GET /headers with client-1\'s certificate and client-1\'s token', cert: 'client-1', token: 'client-1', status: 200, challenge: undefined, upstream: true },
      { name: 'GET /headers without a client certificate (client-1\'s token)', cert: undefined, token: 'client-1', status: 401,
        challenge: 'error="invalid_token", error_description="no client certificate was presented"', upstream: false },
      { name: 'stolen token: GET /headers with client-1\'s certificate and client-2\'s token', cert: 'client-1', token: 'client-2', status: 401,
        challenge: 'error="invalid_token", error_description="the client certificate thumbprint does not match the x5t#S256 claim"', upstream: false },
    ];
    for (const check of checks) {
      const token = tokens[check.token];
      if (signalled !== undefined || token === undefined) break;
      current = check.name;
      const t0 = performance.now();
      const before = s.echo.requests.length;
      const response: StackResponse | undefined = await unlessInterrupted(s.request(STACK_PATH, {
        token, ...(check.cert !== undefined ? { cert: check.cert } : {}),
      }));
      if (response === undefined) break;
      const reached = s.echo.requests.length > before;
      const forwarded = s.echo.requests.at(-1)?.headers['x-client-cert'];
      const challengeOk = check.challenge === undefined
        ? response.wwwAuthenticate === undefined
        : response.wwwAuthenticate?.includes(check.challenge) === true;
      const asExpected = response.status === check.status && challengeOk && reached === check.upstream;
      const text = `${check.name} -> ${response.status} (expected ${check.status}) (${msSince(t0)})`;
      if (asExpected) pass(text); else fail(text, check.name);
      detail(`status            ${response.status} ${response.status === 200 ? 'OK' : 'Unauthorized'}`);
      detail(`WWW-Authenticate  ${response.wwwAuthenticate ?? '(none)'}`);
      detail(`upstream          ${reached
        ? `received it, with x-client-cert: ${typeof forwarded === 'string' ? `${forwarded.slice(0, 32)}... (${forwarded.length} chars, set by the terminator)` : '(none)'}`
        : 'received nothing'}`);
      if (reached) {
        const seen = s.echo.requests.at(-1)?.headers ?? {};
        for (const name of ['x-client-id', 'x-client-cert-subject', 'x-client-cert-thumbprint']) {
          detail(`${name.padEnd(26)}${String(seen[name] ?? '(none)')}   <- set by mtls-pop (upstream_headers)`);
        }
      }
    }

    if (args.hold && signalled === undefined && failed.length === 0) {
      writeFileSync(join(dir, 'client-1.token'), tokens['client-1'] ?? '');
      writeFileSync(join(dir, 'client-2.token'), tokens['client-2'] ?? '');
      const curl = (client: ClientName, token: ClientName): string => `curl -sS --cacert ${s.files.rootPem} `
        + `--cert ${s.files.clientCertPem[client]} --key ${s.files.clientKeyPem[client]} `
        + `-H "Authorization: Bearer $(cat ${join(dir, `${token}.token`)})" ${s.urls.terminator}${STACK_PATH} -i`;
      say();
      say('The stack keeps running until Ctrl-C. Try:');
      detail(curl('client-1', 'client-1'));
      detail(curl('client-1', 'client-2'));
      holding = true;
      await interrupted;
    }
  } catch (error) {
    if (error instanceof StackAbortedError) {
      current = `start the stack (at: ${error.step})`;
    } else if (signalled !== undefined) {
      // reported below, with the step that was running
    } else if (error instanceof StackStepError) {
      const [first = '', ...rest] = (error.cause instanceof Error ? error.cause.message : String(error.cause)).trim().split('\n');
      fail(`${error.step}: ${first}`, error.step);
      rest.slice(-30).forEach(detail);
    } else {
      const [first = '', ...rest] = (error instanceof Error ? error.stack ?? error.message : String(error)).trim().split('\n');
      fail(`${current}: unexpected error: ${first}`, current);
      rest.slice(0, 30).forEach(detail);
    }
  } finally {
    const t0 = performance.now();
    let stopError: string | undefined;
    try {
      await stack?.stop();
    } catch (error) {
      stopError = error instanceof Error ? error.message : String(error);
    }
    rmSync(dir, { recursive: true, force: true });
    const removed = !existsSync(dir);
    const text = `shut down: ${stack === undefined ? 'everything started so far' : `${stack.terminatorLabel}, gateway and plugin server, upstream, IdP`} `
      + `stopped; ${dir} removed (${msSince(t0)})`;
    if (stopError === undefined && removed) pass(text);
    else fail(`${text}${stopError !== undefined ? `: ${stopError}` : ''}${removed ? '' : ': the temp dir is still there'}`, 'shut down');
  }

  say();
  if (signalled !== undefined && !holding) {
    say(`✗ interrupted by ${signalled} during: ${current}; everything started was stopped (${seconds(started)})`);
    return signalled === 'SIGINT' ? 130 : 143;
  }
  if (failed.length > 0) {
    say(`✗ ${failed.length} step${failed.length === 1 ? '' : 's'} did not behave as expected: ${failed.join('; ')} (${seconds(started)})`);
    return 1;
  }
  say(`✓ every step behaved as expected: ${step} steps in ${seconds(started)}`);
  return 0;
}

/**
 * The seed's flow with the real Keycloak (docker-compose.yml's options and realm), HAProxy in
 * front, the Kong emulator with the real plugin server: tokens over mTLS, cnf next to openssl's
 * thumbprint, 200 / 401 / 401. Exit 0 when every step behaved, 1 otherwise, 3 when Keycloak or
 * Java is not installed.
 */
async function keycloakDemo(): Promise<number> {
  const missing = keycloakMissing();
  if (missing !== null) {
    process.stderr.write(`--idp keycloak: ${missing}\n`);
    return 3;
  }
  if (findExecutable('haproxy') === null) {
    process.stderr.write('--idp keycloak: HAProxy is not installed (apt-get install haproxy)\n');
    return 3;
  }
  const started = performance.now();
  let step = 0;
  const failed: string[] = [];
  const check = (ok: boolean, text: string): void => {
    say(`[${++step}] ${ok ? '✓' : '✗'} ${text}`);
    if (!ok) failed.push(`step ${step}`);
  };
  const detail = (text: string): void => { say(`${INDENT}${text}`); };
  say('mtls-pop demo with the real Keycloak: HAProxy -> Kong emulator + the real plugin server -> echo, everything on 127.0.0.1');
  say();
  const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-demo-keycloak-'));
  const certsDir = join(dir, 'certs');
  let kc: KeycloakServer | undefined;
  let stack: KeycloakStack | undefined;
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    say('signal received: stopping');
    void (async () => {
      await stack?.stop().catch(() => undefined);
      await kc?.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    generateComposeCerts(certsDir);
    check(true, `demo PKI from docker/gen-certs.sh in ${certsDir}`);
    say(`${INDENT}starting Keycloak (docker-compose.yml options, realm docker/keycloak/realm-mtls-pop.json) ...`);
    kc = await startKeycloak({ dir, certsDir });
    check(true, `Keycloak ${kc.version} on ${kc.issuer} (${(kc.startMs / 1000).toFixed(1)} s${kc.augmented ? ', incl. the one-time Quarkus re-augmentation' : ''})`);
    stack = await startKeycloakStack(kc, { dir, certsDir });
    check(true, `HAProxy on ${stack.terminatorUrl} -> Kong emulator on ${stack.emulator.url} (kong.yml's mtls-pop config + the fail-closed guard)`);
    const tokens: Record<string, string> = {};
    for (const [clientId, cert] of [['mtls-client', 'client-1'], ['mtls-client-2', 'client-2']] as const) {
      const t0 = performance.now();
      const token = await keycloakToken(kc, { clientId, cert: stack.client(cert).cert, key: stack.client(cert).key });
      tokens[cert] = token;
      const cnf = decodeJwt(token).cnf as Record<string, unknown> | undefined;
      const openssl = opensslThumbprint(stack.client(cert).cert);
      check(cnf?.['x5t#S256'] === openssl, `token for ${clientId} over mTLS (client-x509) (${msSince(t0)})`);
      if (cert === 'client-1') {
        const header = decodeProtectedHeader(token);
        const claims = decodeJwt(token);
        detail(`header       ${JSON.stringify({ alg: header.alg, typ: header.typ, kid: header.kid })}`);
        detail(`claims       iss ${String(claims.iss)}, aud ${JSON.stringify(claims.aud)}, azp ${String(claims.azp)}`);
      }
      detail(`cnf          ${JSON.stringify(cnf ?? null)}`);
      detail(`openssl      ${openssl}   <- x5t#S256 of ${cert}.pem`);
    }
    const requests: ReadonlyArray<[string, 'client-1' | 'client-2' | undefined, string, number]> = [
      ['client-1\'s certificate and client-1\'s token', 'client-1', 'client-1', 200],
      ['no client certificate (client-1\'s token)', undefined, 'client-1', 401],
      ['stolen token: client-1\'s certificate and client-2\'s token', 'client-1', 'client-2', 401],
    ];
    for (const [name, cert, token, status] of requests) {
      const t0 = performance.now();
      const response = await stack.request(KC_ROUTES.kongYml, { token: tokens[token] ?? '', ...(cert !== undefined ? { client: cert } : {}) });
      check(response.status === status, `GET ${KC_ROUTES.kongYml} with ${name} -> ${response.status} (expected ${status}) (${msSince(t0)})`);
      detail(`WWW-Authenticate  ${response.wwwAuthenticate ?? '(none)'}`);
    }
  } catch (error) {
    check(false, `unexpected error: ${error instanceof Error ? error.message.split('\n').slice(0, 20).join(`\n${INDENT}`) : String(error)}`);
  } finally {
    stopping = true;
    await stack?.stop().catch(() => undefined);
    await kc?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    check(!existsSync(dir), `shut down: HAProxy, gateway, upstream, Keycloak stopped; ${dir} removed`);
  }
  say();
  if (failed.length > 0) {
    say(`✗ ${failed.length} step(s) did not behave as expected: ${failed.join('; ')} (${seconds(started)})`);
    return 1;
  }
  say(`✓ every step behaved as expected: ${step} steps in ${seconds(started)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  },
);
