/**
 * The local end-to-end stack: every piece of the seed's flow as a real process or server on
 * 127.0.0.1, built in one place for the e2e tests, `npm run demo` and the benchmark.
 *
 *   client --mTLS--> TLS terminator (HAProxy | nginx | Node TLS front)
 *          --x-client-cert--> Kong-role gateway (Kong emulator + the REAL plugin server running
 *          mtls-pop, fail-closed guard, trusted_ips 127.0.0.1) --> echo upstream
 *   client --mTLS--> IdP (oidc-provider, tls_client_auth) for certificate-bound access tokens
 *
 * `startStack` starts, in order: the PKI (files in `dir`), the IdP, the echo upstream, the gateway
 * (with its Admin API serving the CA certificate entities), the terminator. Each step logs one
 * readable line through `log`; a failing step throws `StackStepError` naming it, after stopping
 * what was already started. `stop()` stops everything and is safe to call twice. The caller owns
 * `dir` (and removes it).
 *
 * Terminator configurations are the ones an operator would deploy:
 * - HAProxy: `verify optional`, `del-header` + `set-header x-client-cert %[ssl_c_der,base64]` only
 *   for a verified certificate -> `certificate_header_format: base64_encoded`;
 * - nginx: `ssl_verify_client optional`, `proxy_set_header x-client-cert $ssl_client_escaped_cert`
 *   (empty, so not sent, without a certificate; a client's own copy is never passed on) ->
 *   `url_encoded`;
 * - node: a Node TLS front doing what the HAProxy configuration does, for machines with neither
 *   (the demo's last resort).
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type JsonWebKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { makeTestPki, writePemFiles, type Issued, type TestPki } from './pki.js';
import { fetchBoundToken, startIdp, type IdpHandle } from './idp.js';
import {
  findExecutable, freePort, nginxHttpTempPaths, nginxPreamble, startHaproxy, startNginx, type RunningTerminator,
} from './terminators.js';
import { AdminApiEmulator, KongEmulator, launcherCommand, startEchoUpstream, type EchoUpstream } from '../harness/kong-emulator.js';

export type TerminatorKind = 'haproxy' | 'nginx' | 'node';
export type ClientName = 'client-1' | 'client-2';
export type HeaderFormat = 'base64_encoded' | 'url_encoded';

/** The audience (and RFC 8707 resource) of the IdP's access tokens, required by the plugin. */
export const STACK_AUDIENCE = 'https://api.mtls-pop.test';
/** Kong CA certificate entity ids the plugin config names (served by the emulated Admin API). */
export const ROOT_CA_UUID = '6a1d3c2e-5b4f-4e7a-8c9d-0e1f2a3b4c5d';
export const INTERMEDIATE_CA_UUID = '7b2e4d3f-6c5a-4f8b-9dae-1f2a3b4c5d6e';
/** The seed's route (kong.yml `routes: - name: headers, paths: [/headers]`). */
export const STACK_ROUTE = 'headers';
export const STACK_PATH = '/headers';
/** The Host header the stack's client sends (the realm of the challenges). */
export const STACK_HOST = 'localhost';
const SIGNING_KID = 'mtls-pop-demo-rs256';

/** dist/test/helpers -> dist/plugins: the compiled plugin directory given to the plugin server. */
const PLUGINS_DIR = join(__dirname, '..', '..', 'plugins');

export interface StackOptions {
  readonly terminator: TerminatorKind;
  /** A directory the caller owns and removes; PEM files and configs are written here. */
  readonly dir: string;
  /** One readable entry per started component: a line with its start time, then detail lines (joined by \n). */
  readonly log?: (line: string) => void;
  /** Put the fail-closed guard on the route (default true). */
  readonly guard?: boolean;
  /** Aborts the start between steps: what was started is stopped, then `StackAbortedError` is thrown. */
  readonly signal?: AbortSignal;
}

/** A start step failed; `step` names it ("start the IdP", ...). */
export class StackStepError extends Error {
  constructor(readonly step: string, cause: unknown) {
    super(`${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StackStepError';
  }
}

/**
 * The start was aborted through `signal`; everything started so far was stopped. `step` is the
 * step that was running (and failed or was not kept) or about to run when the abort was noticed.
 */
export class StackAbortedError extends Error {
  constructor(readonly step: string) {
    super(`stack start aborted at: ${step}`);
    this.name = 'StackAbortedError';
  }
}

export interface StackRequestOptions {
  /** Client certificate presented in the TLS handshake to the terminator (none when absent). */
  readonly cert?: ClientName;
  /** Bearer token for `Authorization`. */
  readonly token?: string;
  /** Extra header lines, sent as given. */
  readonly headers?: Readonly<Record<string, string>> | ReadonlyArray<readonly [string, string]>;
  /** `terminator` (default): HTTPS through the terminator; `gateway`: plain HTTP straight to the gateway. */
  readonly via?: 'terminator' | 'gateway';
  /** Source address for `via: 'gateway'` (e.g. 127.0.0.2, a peer outside trusted_ips). */
  readonly localAddress?: string;
  readonly method?: string;
}

export interface StackResponse {
  readonly status: number;
  /** Node's view: lower-case names. */
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  /** The WWW-Authenticate header, if any. */
  readonly wwwAuthenticate: string | undefined;
}

export interface StackUrls {
  /** https://127.0.0.1:<port> of the TLS terminator. */
  readonly terminator: string;
  /** http://127.0.0.1:<port> of the Kong-role gateway. */
  readonly gateway: string;
  /** The IdP issuer, https://127.0.0.1:<port>. */
  readonly idp: string;
  readonly tokenEndpoint: string;
  readonly jwks: string;
  /** The emulated Kong Admin API (CA certificate entities). */
  readonly adminApi: string;
  readonly upstream: string;
}

export interface StackFiles {
  readonly dir: string;
  readonly rootPem: string;
  /** Root + intermediate: what the terminators verify client certificates against. */
  readonly caBundlePem: string;
  readonly clientCertPem: Readonly<Record<ClientName, string>>;
  readonly clientKeyPem: Readonly<Record<ClientName, string>>;
}

export interface Stack {
  readonly terminator: TerminatorKind;
  /** e.g. "HAProxy 2.6.12", "nginx 1.22.1", "Node TLS front (node 20.20.0)". */
  readonly terminatorLabel: string;
  /** The plugin's `certificate_header_format` for this terminator. */
  readonly headerFormat: HeaderFormat;
  readonly urls: StackUrls;
  readonly files: StackFiles;
  readonly pki: TestPki;
  readonly idp: IdpHandle;
  readonly emulator: KongEmulator;
  readonly echo: EchoUpstream;
  /** The plugin config the route carries (as given to Kong). */
  readonly pluginConfig: Readonly<Record<string, unknown>>;
  /** Certificate of a client (client-1 = pki.client, client-2 = pki.otherClient). */
  certificate(client: ClientName): Issued;
  /** A certificate-bound access token from the IdP, obtained over mTLS with the client's certificate. */
  token(client: ClientName): Promise<string>;
  request(path: string, options?: StackRequestOptions): Promise<StackResponse>;
  /** Stops the terminator, the gateway (and plugin server), the upstream and the IdP. Idempotent. */
  stop(): Promise<void>;
}

function ms(since: number): string {
  return `${Math.round(performance.now() - since)} ms`;
}

/** "2.6.12" from `haproxy -v` (stdout) or "1.22.1" from `nginx -v` (stderr); "?" when unknown. */
function versionOf(binary: string, kind: 'haproxy' | 'nginx'): string {
  const out = spawnSync(binary, ['-v'], { encoding: 'utf8', timeout: 5000 });
  const text = `${out.stdout ?? ''}${out.stderr ?? ''}`;
  const match = kind === 'haproxy' ? /HAProxy version (\S+)/.exec(text) : /nginx\/(\S+)/.exec(text);
  return match?.[1] ?? '?';
}

function rsaSigningJwk(): JsonWebKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: SIGNING_KID, alg: 'RS256', use: 'sig' };
}

export function haproxyConfig(port: number, gatewayPort: number, serverBundle: string, caBundle: string): string {
  return `# mtls-pop stack: HAProxy terminates TLS and forwards the verified client certificate to the gateway.
global
  log stderr format raw local0 err
defaults
  mode http
  log global
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend mtls
  bind 127.0.0.1:${port} ssl crt ${serverBundle} ca-file ${caBundle} verify optional
  # Never pass on a client's own copy of the header.
  http-request del-header x-client-cert
  http-request set-header x-client-cert %[ssl_c_der,base64] if { ssl_c_used } { ssl_c_verify 0 }
  default_backend kong
backend kong
  server gateway 127.0.0.1:${gatewayPort}
`;
}

export function nginxConfig(dir: string, port: number, gatewayPort: number, files: { cert: string; key: string; caBundle: string }): string {
  return `# mtls-pop stack: nginx terminates TLS and forwards the client certificate to the gateway.
${nginxPreamble(dir)}
http {
  access_log off;
  ${nginxHttpTempPaths(dir)}
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${files.cert};
    ssl_certificate_key ${files.key};
    ssl_verify_client optional;
    ssl_client_certificate ${files.caBundle};
    ssl_verify_depth 3;
    location / {
      proxy_pass http://127.0.0.1:${gatewayPort};
      proxy_set_header Host $http_host;
      # Empty (so not sent) without a certificate; replaces any client-sent x-client-cert.
      proxy_set_header x-client-cert $ssl_client_escaped_cert;
    }
  }
}
`;
}

const HOP_BY_HOP = /^(connection|keep-alive|proxy-connection|te|trailer|transfer-encoding|upgrade)$/i;

/**
 * A Node TLS front that behaves like the HAProxy configuration: client certificate optional, a
 * presented certificate that does not verify against `ca` fails the connection, any client-sent
 * x-client-cert is dropped, a verified certificate is forwarded as one line of base64 DER.
 */
export async function startNodeTlsFront(options: {
  port: number; gatewayPort: number; certPem: string; keyPem: string; caPem: string;
}): Promise<RunningTerminator> {
  let output = '';
  const server = https.createServer({
    cert: options.certPem, key: options.keyPem, ca: options.caPem, requestCert: true, rejectUnauthorized: false,
  }, (req, res) => {
    const socket = req.socket as TLSSocket;
    const headers: string[] = [];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i] ?? '';
      if (name.toLowerCase() === 'x-client-cert' || HOP_BY_HOP.test(name)) continue;
      headers.push(name, req.rawHeaders[i + 1] ?? '');
    }
    const peer = socket.getPeerCertificate(false) as { raw?: Buffer } | null;
    if (socket.authorized && peer?.raw !== undefined) headers.push('x-client-cert', peer.raw.toString('base64'));
    const upstream = http.request({
      host: '127.0.0.1', port: options.gatewayPort, method: req.method, path: req.url, headers, agent: false,
    }, (upstreamRes) => {
      const out: string[] = [];
      for (let i = 0; i + 1 < upstreamRes.rawHeaders.length; i += 2) {
        const name = upstreamRes.rawHeaders[i] ?? '';
        if (!HOP_BY_HOP.test(name)) out.push(name, upstreamRes.rawHeaders[i + 1] ?? '');
      }
      res.writeHead(upstreamRes.statusCode ?? 502, out);
      upstreamRes.pipe(res);
    });
    upstream.on('error', (err) => {
      output += `upstream error: ${err.message}\n`;
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end('bad gateway');
    });
    req.pipe(upstream);
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    const peer = socket.getPeerCertificate(false) as { raw?: Buffer } | null;
    if (peer?.raw !== undefined && !socket.authorized) {
      output += `client certificate refused: ${String(socket.authorizationError)}\n`;
      socket.destroy(); // HAProxy `verify optional`: a certificate that does not verify ends the handshake.
    }
  });
  server.on('tlsClientError', (err) => { output += `tls: ${err.message}\n`; });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  let stopped: Promise<void> | undefined;
  return {
    name: 'node-tls-front',
    output: () => output,
    stop: () => {
      stopped ??= new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      return stopped;
    },
  };
}

/** Reads a whole response into a StackResponse. */
function collect(res: http.IncomingMessage): Promise<StackResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', reject);
    res.on('end', () => {
      const www = res.headers['www-authenticate'];
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        wwwAuthenticate: Array.isArray(www) ? www.join(', ') : www,
      });
    });
  });
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const log = options.log ?? (() => undefined);
  /** A function, not a property read: TypeScript would narrow the property across awaits. */
  const aborted = (): boolean => options.signal?.aborted === true;
  const { dir } = options;
  const stoppers: Array<{ name: string; stop: () => Promise<void> }> = [];
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> => {
    stopping ??= (async () => {
      const errors: string[] = [];
      for (const { name, stop } of [...stoppers].reverse()) {
        try { await stop(); } catch (err) { errors.push(`${name}: ${(err as Error).message}`); }
      }
      if (errors.length > 0) throw new Error(`stopping the stack: ${errors.join('; ')}`);
    })();
    return stopping;
  };

  /** Runs one start step: logs its line on success, stops everything and names the step on failure. */
  async function step<T>(name: string, run: () => Promise<T>, line: (value: T) => string): Promise<T> {
    if (aborted()) {
      await stopAll().catch(() => undefined);
      throw new StackAbortedError(name);
    }
    const t0 = performance.now();
    let value: T;
    try {
      value = await run();
    } catch (err) {
      await stopAll().catch(() => undefined);
      if (aborted()) throw new StackAbortedError(name);
      throw new StackStepError(name, err);
    }
    const [first = '', ...rest] = line(value).split('\n');
    log([`${first} (${ms(t0)})`, ...rest].join('\n'));
    return value;
  }

  const { terminator } = options;
  const headerFormat: HeaderFormat = terminator === 'nginx' ? 'url_encoded' : 'base64_encoded';
  const binary = terminator === 'node' ? null : findExecutable(terminator);
  if (terminator !== 'node' && binary === null) {
    throw new StackStepError(`start the TLS terminator (${terminator})`, new Error(`${terminator} is not installed`));
  }

  // 1. PKI
  const files = {
    dir,
    rootPem: join(dir, 'root.pem'),
    caBundlePem: join(dir, 'ca-bundle.pem'),
    serverPem: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    serverBundle: join(dir, 'server-bundle.pem'),
    clientCertPem: { 'client-1': join(dir, 'client-1.pem'), 'client-2': join(dir, 'client-2.pem') },
    clientKeyPem: { 'client-1': join(dir, 'client-1.key'), 'client-2': join(dir, 'client-2.key') },
  } as const;
  const { pki, keys } = await step('generate the PKI', async () => {
    const made = await makeTestPki();
    await writePemFiles(dir, {
      root: made.root, intermediate: made.intermediate, 'client-1': made.client, 'client-2': made.otherClient, server: made.server,
    });
    const serverKey = await made.server.keyPem();
    writeFileSync(files.caBundlePem, made.root.pem + made.intermediate.pem);
    writeFileSync(files.serverBundle, made.server.pem + serverKey, { mode: 0o600 });
    return {
      pki: made,
      keys: { 'client-1': await made.client.keyPem(), 'client-2': await made.otherClient.keyPem(), server: serverKey },
    };
  }, () => `PKI: root CA -> intermediate CA -> client-1, client-2; server certificate for localhost/127.0.0.1\nPEM files in ${dir}`);

  const certificate = (client: ClientName): Issued => (client === 'client-1' ? pki.client : pki.otherClient);

  // 2. IdP
  const idp = await step('start the IdP (oidc-provider)', async () => {
    const started = await startIdp({
      dir,
      serverCertPem: pki.server.pem,
      serverKeyPem: keys.server,
      clientCaPem: pki.root.pem + pki.intermediate.pem,
      clients: [
        { clientId: 'client-1', subjectDn: pki.client.cert.subject },
        { clientId: 'client-2', subjectDn: pki.otherClient.cert.subject },
      ],
      audience: STACK_AUDIENCE,
      scopes: ['read'],
      signingJwk: rsaSigningJwk(),
    });
    stoppers.push({ name: 'IdP', stop: () => started.stop() });
    return started;
  }, (started) => `IdP: oidc-provider (the Keycloak stand-in) on ${started.issuer}\n`
    + 'mTLS client authentication (tls_client_auth); clients client-1 and client-2 registered by subject DN; '
    + 'RS256 certificate-bound access tokens');

  // 3. Upstream
  const echo = await step('start the echo upstream', async () => {
    const started = await startEchoUpstream();
    stoppers.push({ name: 'echo upstream', stop: () => started.close() });
    return started;
  }, (started) => `upstream: echo service on ${started.url}`);

  // 4. Gateway: the Kong emulator with the real plugin server, the seed's route and plugin config.
  // The emulated Admin API, bound on port 0 now (the config names its port); the emulator owns it.
  const adminApi = await AdminApiEmulator.start({ ca_certificates: { [ROOT_CA_UUID]: pki.root.pem, [INTERMEDIATE_CA_UUID]: pki.intermediate.pem } });
  const adminPort = adminApi.port;
  const pluginConfig: Record<string, unknown> = {
    issuer: idp.issuer,
    jwks_endpoint: idp.jwksUri,
    auth_methods: ['bearer'],
    audience_required: [STACK_AUDIENCE],
    proof_of_possession_mtls: 'strict',
    proof_of_possession_auth_methods_validation: true,
    proof_of_possession_mtls_from_header: {
      certificate_header_name: 'x-client-cert',
      certificate_header_format: headerFormat,
      // The terminators forward the leaf only: the intermediate entity completes the path to the root.
      ca_certificates: [ROOT_CA_UUID, INTERMEDIATE_CA_UUID],
      ssl_verify: true,
      secure_source: true,
    },
    ssl_verify: true,
    idp_ca_certificates_pem: [pki.root.pem],
    admin_api_url: `http://127.0.0.1:${adminPort}`,
    cache_tokens_salt: randomBytes(16).toString('base64url'),
    // Verified identity for the upstream (client-sent copies of these headers are removed).
    upstream_headers: [
      { header: 'X-Client-Id', path: 'client_id' },
      { header: 'X-Client-Cert-Subject', path: 'cert.subject' },
      { header: 'X-Client-Cert-Thumbprint', path: 'cert.thumbprint' },
    ],
  };
  const guard = options.guard !== false;
  const emulator = await step('start the gateway (Kong emulator + plugin server)', async () => {
    const started = await KongEmulator.start({
      pluginServer: launcherCommand(PLUGINS_DIR),
      config: {
        routes: [{
          name: STACK_ROUTE, paths: [STACK_PATH], strip_path: false, upstream: echo.url, guard,
          plugins: [{ name: 'mtls-pop', config: pluginConfig }],
        }],
        trusted_ips: ['127.0.0.1'],
        adminApi: { server: adminApi },
      },
    });
    stoppers.push({ name: 'gateway', stop: () => started.close() });
    return started;
  }, (started) => `gateway (Kong role) on ${started.url}: Kong emulator + the real plugin server (pid ${started.pluginServer.pid ?? '?'})\n`
    + `plugin server socket ${started.socketPath}\n`
    + `route ${STACK_PATH}: mtls-pop (strict, x-client-cert ${headerFormat}, CA entities root + intermediate from the Admin API on :${adminPort})`
    + `${guard ? ' + fail-closed guard' : ''}; trusted_ips 127.0.0.1`);

  // 5. TLS terminator
  const gatewayPort = Number(new URL(emulator.url).port);
  const terminatorLabel = terminator === 'haproxy'
    ? `HAProxy ${versionOf(binary ?? 'haproxy', 'haproxy')}`
    : terminator === 'nginx'
      ? `nginx ${versionOf(binary ?? 'nginx', 'nginx')}`
      : `Node TLS front (node ${process.versions.node})`;
  const front = await step(`start the TLS terminator (${terminatorLabel})`, async () => {
    const port = await freePort();
    let running: RunningTerminator;
    if (terminator === 'haproxy') {
      running = await startHaproxy(binary ?? 'haproxy', dir, haproxyConfig(port, gatewayPort, files.serverBundle, files.caBundlePem), port);
    } else if (terminator === 'nginx') {
      running = await startNginx(binary ?? 'nginx', dir,
        nginxConfig(dir, port, gatewayPort, { cert: files.serverPem, key: files.serverKey, caBundle: files.caBundlePem }), port);
    } else {
      running = await startNodeTlsFront({
        port, gatewayPort, certPem: pki.server.pem, keyPem: keys.server, caPem: pki.root.pem + pki.intermediate.pem,
      });
    }
    stoppers.push({ name: terminatorLabel, stop: () => running.stop() });
    return { port, running };
  }, ({ port }) => `TLS terminator: ${terminatorLabel} on https://127.0.0.1:${port}\n`
    + 'client certificate optional, verified against root + intermediate; drops any client-sent x-client-cert and sets its own'
    + ` (${headerFormat === 'base64_encoded' ? 'base64 DER' : 'percent-encoded PEM'})`);

  if (aborted()) {
    await stopAll().catch(() => undefined);
    throw new StackAbortedError('the stack is up');
  }

  const urls: StackUrls = {
    terminator: `https://127.0.0.1:${front.port}`,
    gateway: emulator.url,
    idp: idp.issuer,
    tokenEndpoint: idp.tokenEndpoint,
    jwks: idp.jwksUri,
    adminApi: `http://127.0.0.1:${adminPort}`,
    upstream: echo.url,
  };

  return {
    terminator,
    terminatorLabel,
    headerFormat,
    urls,
    files,
    pki,
    idp,
    emulator,
    echo,
    pluginConfig,
    certificate,
    token: (client) => fetchBoundToken(idp, {
      clientId: client, certPem: certificate(client).pem, keyPem: keys[client], caPem: pki.root.pem,
    }),
    request(path, requestOptions = {}) {
      const lines: string[] = ['Host', STACK_HOST];
      if (requestOptions.token !== undefined) lines.push('Authorization', `Bearer ${requestOptions.token}`);
      const given = requestOptions.headers ?? [];
      const pairs = Array.isArray(given)
        ? given as ReadonlyArray<readonly [string, string]>
        : Object.entries(given as Readonly<Record<string, string>>);
      for (const [n, v] of pairs) lines.push(n, v);
      const method = requestOptions.method ?? 'GET';
      return new Promise<StackResponse>((resolve, reject) => {
        const onResponse = (res: http.IncomingMessage): void => { collect(res).then(resolve, reject); };
        const req = (requestOptions.via ?? 'terminator') === 'terminator'
          ? https.request({
            host: '127.0.0.1', port: front.port, servername: 'localhost', path, method, headers: lines, agent: false,
            ca: pki.root.pem,
            ...(requestOptions.cert !== undefined ? { cert: certificate(requestOptions.cert).pem, key: keys[requestOptions.cert] } : {}),
          }, onResponse)
          : http.request({
            host: '127.0.0.1', port: gatewayPort, path, method, headers: lines, agent: false,
            ...(requestOptions.localAddress !== undefined ? { localAddress: requestOptions.localAddress } : {}),
          }, onResponse);
        req.setTimeout(15_000, () => req.destroy(new Error(`request ${path} timed out`)));
        req.on('error', reject);
        req.end();
      });
    },
    stop: stopAll,
  };
}

/** The terminator the demo uses: HAProxy when installed, else nginx, else the Node TLS front. */
export function preferredTerminator(): TerminatorKind {
  if (findExecutable('haproxy') !== null) return 'haproxy';
  if (findExecutable('nginx') !== null) return 'nginx';
  return 'node';
}
