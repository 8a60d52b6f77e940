/**
 * Test API for the real OpenID Provider in `test/fixtures/idp/idp-server.ts`: start it as a child
 * process, get RFC 8705 certificate-bound access tokens from it over mutual TLS, stop it.
 *
 * Client certificate chains: the IdP's TLS server trusts `clientCaPem`, which should hold the root
 * AND the intermediates (Node then builds leaf -> intermediate -> root itself). A client may also
 * send its chain (`chainPem`), which is what lets an IdP started with only the root as
 * `clientCaPem` accept a leaf issued by an intermediate.
 */
import { spawn } from 'node:child_process';
import type { JsonWebKey } from 'node:crypto';
import { unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { IdpEvent, IdpServerConfig } from '../fixtures/idp/idp-server.js';

export type { IdpEvent };

export interface IdpHandle {
  /** `https://127.0.0.1:<port>` */
  readonly issuer: string;
  readonly jwksUri: string;
  readonly tokenEndpoint: string;
  readonly port: number;
  /** Kills the IdP process and waits for it to exit. Safe to call twice. */
  stop(): Promise<void>;
  /** Token endpoint refusals and server errors logged so far, oldest first. */
  events(): readonly IdpEvent[];
  /**
   * The first event at index >= `from` (take `events().length` before a request), waiting up to
   * `timeoutMs` (default 2000) because the log arrives on stderr, apart from the HTTP response.
   */
  nextEvent(from: number, timeoutMs?: number): Promise<IdpEvent>;
  /** Everything the process wrote to stderr (for diagnostics). */
  stderr(): string;
}

export interface StartIdpOptions {
  /** A directory the caller owns (and removes); the config file is written here and deleted once the IdP is up. */
  readonly dir: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  /** Root plus intermediates, PEM concatenated: the trust store for client certificates. */
  readonly clientCaPem: string;
  /** `tls_client_auth` clients; `subjectDn` in pki.ts notation ("CN=client-1, O=...") or RFC 4514 order. */
  readonly clients: readonly { readonly clientId: string; readonly subjectDn: string }[];
  /** The `aud` claim of issued access tokens. */
  readonly audience: string;
  /** Scopes the resource server (and every client) allows. */
  readonly scopes: readonly string[];
  /** Private JWK with `kid` (RSA for RS256, or EC P-256 for ES256); signs the access tokens. */
  readonly signingJwk: JsonWebKey;
  /** Further private JWKs with `kid`, published in the JWKS too (e.g. an ES256 key, a rotated key). */
  readonly extraJwks?: readonly JsonWebKey[];
  /** RFC 8707 resource indicator that maps to `audience`; defaults to `audience` (must be an absolute URI then). */
  readonly resource?: string;
  /** Access token lifetime in seconds; default 600. */
  readonly accessTokenTtl?: number;
  /** Startup timeout in ms; default 15000. */
  readonly timeoutMs?: number;
}

/** Where the compiled child lives relative to this compiled file (dist/test/helpers -> dist/test/fixtures/idp). */
const SERVER_SCRIPT = join(__dirname, '..', 'fixtures', 'idp', 'idp-server.js');

function kidOf(jwk: JsonWebKey): string {
  const kid = (jwk as { kid?: unknown }).kid;
  if (typeof kid !== 'string' || kid.length === 0) throw new Error('startIdp: signing JWKs need a kid');
  return kid;
}

/** JWS alg for a signing JWK: its own `alg`, else RS256 for RSA and ES256 for P-256. */
function algOf(jwk: JsonWebKey): string {
  const alg = (jwk as { alg?: unknown }).alg;
  if (typeof alg === 'string') return alg;
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  throw new Error(`startIdp: cannot infer alg for kty ${String(jwk.kty)}`);
}

export async function startIdp(opts: StartIdpOptions): Promise<IdpHandle> {
  const jwks = [opts.signingJwk, ...(opts.extraJwks ?? [])];
  jwks.forEach(kidOf);
  const config: IdpServerConfig = {
    serverCertPem: opts.serverCertPem,
    serverKeyPem: opts.serverKeyPem,
    clientCaPem: opts.clientCaPem,
    clients: opts.clients,
    audience: opts.audience,
    resource: opts.resource ?? opts.audience,
    scopes: opts.scopes,
    jwks,
    accessTokenKid: kidOf(opts.signingJwk),
    accessTokenAlg: algOf(opts.signingJwk),
    accessTokenTtl: opts.accessTokenTtl ?? 600,
  };
  const configPath = join(opts.dir, `idp-config-${process.pid}-${Date.now()}.json`);
  writeFileSync(configPath, JSON.stringify(config), { mode: 0o600 });

  const child = spawn(process.execPath, [SERVER_SCRIPT, configPath], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let pending = '';
  const events: IdpEvent[] = [];
  const waiters = new Set<() => void>();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line.startsWith('idp-event ')) events.push(JSON.parse(line.slice('idp-event '.length)) as IdpEvent);
    }
    for (const wake of waiters) wake();
  });
  const exited = new Promise<void>((resolve) => { child.once('exit', () => resolve()); });

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`IdP did not start within ${opts.timeoutMs ?? 15000} ms`)), opts.timeoutMs ?? 15000);
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        const match = /^ready (\d+)$/m.exec(stdout);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.once('error', (err) => { clearTimeout(timer); reject(err); });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`IdP exited before it was ready (code ${String(code)}, signal ${String(signal)})`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${(err as Error).message}\n--- idp-server stderr ---\n${stderr}`);
  } finally {
    try { unlinkSync(configPath); } catch { /* already gone */ }
  }

  const issuer = `https://127.0.0.1:${port}`;
  let stopped: Promise<void> | undefined;
  return {
    issuer,
    port,
    // oidc-provider 9 default routes.
    jwksUri: `${issuer}/jwks`,
    tokenEndpoint: `${issuer}/token`,
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
          await exited;
          clearTimeout(timer);
        }
      })();
      return stopped;
    },
    events: () => events,
    stderr: () => stderr,
    nextEvent(from, timeoutMs = 2000) {
      return new Promise<IdpEvent>((resolve, reject) => {
        const check = (): void => {
          const event = events[from];
          if (event === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(event);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no IdP event #${from} within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}

/** A raw HTTPS response: status and parsed JSON body (undefined if the body is not JSON). */
export interface JsonResponse {
  readonly status: number;
  readonly body: unknown;
}

/** TLS options for talking to the IdP: trust `caPem`; present `certPem` (+ `chainPem`) when given. */
export interface TlsClient {
  readonly caPem: string;
  readonly certPem?: string;
  readonly keyPem?: string;
  readonly chainPem?: string;
}

function httpsJson(url: string, tls: TlsClient, method: 'GET' | 'POST', form?: URLSearchParams): Promise<JsonResponse> {
  const payload = form?.toString();
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      ca: tls.caPem,
      ...(tls.certPem !== undefined ? { cert: tls.certPem + (tls.chainPem ?? '') } : {}),
      ...(tls.keyPem !== undefined ? { key: tls.keyPem } : {}),
      // A fresh connection per request: no pooled socket or resumed session carries another client's certificate.
      agent: false,
      headers: {
        accept: 'application/json',
        ...(payload !== undefined
          ? { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(payload) }
          : {}),
      },
      timeout: 10_000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => {
        let body: unknown;
        try { body = JSON.parse(text); } catch { body = undefined; }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** GET a JSON document from the IdP (discovery, JWKS) trusting `caPem`. */
export function getJson(url: string, caPem: string): Promise<JsonResponse> {
  return httpsJson(url, { caPem }, 'GET');
}

export interface TokenRequest extends TlsClient {
  readonly clientId: string;
  readonly scope?: string;
  readonly resource?: string;
}

/** POST a client_credentials grant to the token endpoint; returns the raw response, success or not. */
export function requestToken(idp: IdpHandle, client: TokenRequest): Promise<JsonResponse> {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: client.clientId });
  if (client.scope !== undefined) form.set('scope', client.scope);
  if (client.resource !== undefined) form.set('resource', client.resource);
  return httpsJson(idp.tokenEndpoint, client, 'POST', form);
}

/** The token endpoint refused: `status` and the OAuth `error` / `error_description` (RFC 6749 5.2). */
export class IdpTokenError extends Error {
  constructor(
    readonly status: number,
    readonly error: string | undefined,
    readonly errorDescription: string | undefined,
  ) {
    super(`token endpoint answered ${status}: ${error ?? '?'} (${errorDescription ?? ''})`);
    this.name = 'IdpTokenError';
  }
}

/**
 * client_credentials over mTLS with the client's certificate and key; returns the access token
 * (a JWT bound to that certificate). Throws `IdpTokenError` when the IdP refuses.
 */
export async function fetchBoundToken(
  idp: IdpHandle,
  client: { clientId: string; certPem: string; keyPem: string; chainPem?: string; caPem: string; scope?: string; resource?: string },
): Promise<string> {
  const { status, body } = await requestToken(idp, client);
  const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const token = str(fields.access_token);
  if (status !== 200 || token === undefined) {
    throw new IdpTokenError(status, str(fields.error), str(fields.error_description));
  }
  return token;
}
