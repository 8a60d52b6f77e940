/**
 * A real identity-provider stand-in for tests: an HTTP or HTTPS server on 127.0.0.1 serving
 * OpenID Connect discovery and a JWK Set at Keycloak-shaped paths, with a request log, switchable
 * failure modes and a signing helper.
 *
 *   const idp = await startJwksServer();                        // HTTP, one RS256 key
 *   const idp = await startJwksServer({ tls: pki.server });     // HTTPS, trust pki.root via caPem
 *   const token = await idp.sign({ iss: idp.issuer, exp, ... });
 *   idp.jwksMode = 'status500';  idp.count('jwks');  await idp.close();
 */
import { constants, createHmac, sign as cryptoSign, type KeyObject } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { SignJWT, type JWTHeaderParameters, type JWTPayload } from 'jose';
import type { Issued } from './pki.js';
import { keyPair } from './keys.js';

/** JWS algorithms the helper can generate keys for. */
export const TEST_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export type TestAlg = (typeof TEST_ALGS)[number];

/**
 * How an endpoint answers:
 * - `ok`: the document;
 * - `status500`: HTTP 500; `notJson`: 200 with HTML; `badJwks`: 200 `{"keys":"nope"}`;
 *   `emptyJwks`: 200 `{"keys":[]}`;
 * - `huge`: 10 MB chunked body; `hugeDeclared`: 10 MB with Content-Length;
 * - `hang`: headers never sent; `drip`: 200 and one byte every 50 ms, forever;
 * - `redirect`: 302 to `/redirected` (which would serve the real document);
 * - `reset`: the connection is destroyed without an answer.
 */
export type ResponseMode =
  | 'ok' | 'status500' | 'notJson' | 'badJwks' | 'emptyJwks' | 'huge' | 'hugeDeclared' | 'hang' | 'drip'
  | 'redirect' | 'reset';

export interface TestKey {
  readonly kid: string;
  readonly alg: TestAlg;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The published JWK (kid, alg, use=sig). */
  readonly publicJwk: Readonly<Record<string, unknown>>;
}

export interface SignOptions {
  /** Key to sign with (default: the first published key). */
  readonly kid?: string;
  /** A key that is not published (an attacker's), taking precedence over `kid`. */
  readonly key?: TestKey;
  /** Protected header overrides; `kid: undefined` removes the kid, `typ` defaults to `JWT`. */
  readonly header?: Readonly<Record<string, unknown>>;
}

export interface JwksServerOptions {
  /** Serve HTTPS with this certificate (e.g. `makeTestPki().server`). */
  readonly tls?: Issued;
  /** Listen on this port (default: a free one). */
  readonly port?: number;
  /** Keys generated at start (default: one RS256 key). */
  readonly algs?: readonly TestAlg[];
  /** Path of the issuer below the origin (default `/realms/test`, as Keycloak). */
  readonly realmPath?: string;
}

export interface JwksServer {
  readonly origin: string;
  /** The issuer identifier (origin + realm path), as tokens carry it in `iss`. */
  readonly issuer: string;
  readonly discoveryUri: string;
  readonly jwksUri: string;
  readonly port: number;
  /** Published keys, in order. */
  keys: TestKey[];
  /** Raw entries appended to the published `keys` array (junk, enc keys, ...). */
  extraJwks: unknown[];
  /** Members merged into the discovery document (e.g. another `jwks_uri`). */
  discoveryOverrides: Record<string, unknown>;
  jwksMode: ResponseMode;
  discoveryMode: ResponseMode;
  /** Every request path received, in order. */
  readonly requests: string[];
  /** Requests to `'jwks'`, `'discovery'` or any exact path. */
  count(what: 'jwks' | 'discovery' | string): number;
  /** Generates a key (not published until pushed to `keys`; `addKey` does both). */
  makeKey(alg?: TestAlg, kid?: string): TestKey;
  addKey(alg?: TestAlg, kid?: string): TestKey;
  /** Publishes a new key and unpublishes all others. */
  rotate(alg?: TestAlg): TestKey;
  /** Signs a JWT with jose SignJWT. */
  sign(claims: JWTPayload, options?: SignOptions): Promise<string>;
  /** Signs any header and payload as given (crit, odd typ, non-object payloads). */
  signRaw(header: Readonly<Record<string, unknown>>, payload: unknown, key?: TestKey): string;
  close(): Promise<void>;
}

let kidCounter = 0;

export function makeTestKey(alg: TestAlg = 'RS256', kid?: string): TestKey {
  // keyPair (PEM, re-imported): exporting the JWK of a generateKeyPairSync KeyObject can deadlock Node 20.
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  if (alg.startsWith('RS') || alg.startsWith('PS')) pair = keyPair('rsa', { modulusLength: 2048 });
  else if (alg === 'ES256') pair = keyPair('ec', { namedCurve: 'P-256' });
  else if (alg === 'ES384') pair = keyPair('ec', { namedCurve: 'P-384' });
  else if (alg === 'ES512') pair = keyPair('ec', { namedCurve: 'P-521' });
  else pair = keyPair('ed25519');
  const id = kid ?? `key-${++kidCounter}-${alg.toLowerCase()}`;
  const publicJwk = { ...pair.publicKey.export({ format: 'jwk' }), kid: id, alg, use: 'sig' };
  return { kid: id, alg, privateKey: pair.privateKey, publicKey: pair.publicKey, publicJwk };
}

export function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

/** Compact JWS over exactly this header and payload, signed with node:crypto (no jose checks). */
export function signCompact(header: Readonly<Record<string, unknown>>, payload: unknown, key: TestKey): string {
  // The header's alg when it is one we can sign with, else the key's (to sign odd headers such as alg "ES256K").
  const alg = typeof header['alg'] === 'string' && TEST_ALGS.includes(header['alg'] as TestAlg) ? header['alg'] : key.alg;
  const input = `${base64url(JSON.stringify(header))}.${base64url(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  const hash = /(\d{3})$/.exec(alg)?.[1];
  const digest = hash === undefined ? null : `sha${hash}`;
  let signature: Buffer;
  if (alg.startsWith('PS')) {
    signature = cryptoSign(digest, Buffer.from(input), { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(hash) / 8 });
  } else if (alg.startsWith('ES')) {
    signature = cryptoSign(digest, Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  } else if (alg.startsWith('HS')) {
    throw new Error('use signHmac for HS* tokens');
  } else {
    signature = cryptoSign(alg === 'EdDSA' || alg === 'Ed25519' ? null : digest, Buffer.from(input), key.privateKey);
  }
  return `${input}.${base64url(signature)}`;
}

/** An HS* token with `secret` as the MAC key (the classic RSA-public-key-as-HMAC-secret attack). */
export function signHmac(header: Readonly<Record<string, unknown>>, payload: unknown, secret: string | Buffer): string {
  const alg = String(header['alg'] ?? 'HS256');
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const mac = createHmac(`sha${alg.slice(2)}`, secret).update(input).digest();
  return `${input}.${base64url(mac)}`;
}

const TEN_MB = 10 * 1024 * 1024;

export async function startJwksServer(options: JwksServerOptions = {}): Promise<JwksServer> {
  const realmPath = options.realmPath ?? '/realms/test';
  const discoveryPath = `${realmPath}/.well-known/openid-configuration`;
  const jwksPath = `${realmPath}/protocol/openid-connect/certs`;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let origin = '';

  const state = {
    keys: (options.algs ?? ['RS256']).map((alg) => makeTestKey(alg)),
    extraJwks: [] as unknown[],
    discoveryOverrides: {} as Record<string, unknown>,
    jwksMode: 'ok' as ResponseMode,
    discoveryMode: 'ok' as ResponseMode,
    requests: [] as string[],
  };

  const documentFor = (path: string): unknown => {
    if (path === jwksPath || path === '/redirected') {
      return { keys: [...state.keys.map((key) => key.publicJwk), ...state.extraJwks] };
    }
    return {
      issuer: `${origin}${realmPath}`,
      jwks_uri: `${origin}${jwksPath}`,
      token_endpoint: `${origin}${realmPath}/protocol/openid-connect/token`,
      id_token_signing_alg_values_supported: ['RS256', 'ES256'],
      ...state.discoveryOverrides,
    };
  };

  const handler = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const path = new URL(request.url ?? '/', 'http://x').pathname;
    state.requests.push(path);
    response.on('error', () => undefined);
    let mode: ResponseMode;
    if (path === jwksPath) mode = state.jwksMode;
    else if (path === discoveryPath) mode = state.discoveryMode;
    else if (path === '/redirected') mode = 'ok';
    else {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const json = (status: number, body: string): void => {
      response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    };
    switch (mode) {
      case 'ok': json(200, JSON.stringify(documentFor(path))); return;
      case 'status500': json(500, '{"error":"internal"}'); return;
      case 'notJson':
        response.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Service Unavailable</body></html>');
        return;
      case 'badJwks': json(200, path === jwksPath ? '{"keys":"nope"}' : '{"issuer":"x"}'); return;
      case 'emptyJwks': json(200, '{"keys":[]}'); return;
      case 'huge':
      case 'hugeDeclared': {
        const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
        if (mode === 'hugeDeclared') headers['content-length'] = TEN_MB;
        response.writeHead(200, headers);
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let sent = 0;
        const pump = (): void => {
          while (sent < TEN_MB && !response.destroyed) {
            sent += chunk.length;
            if (!response.write(chunk)) { response.once('drain', pump); return; }
          }
          if (!response.destroyed) response.end();
        };
        pump();
        return;
      }
      case 'hang': return;
      case 'drip': {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.write('{"keys":[');
        const timer = setInterval(() => { if (!response.destroyed) response.write(' '); }, 50);
        timers.add(timer);
        response.on('close', () => { clearInterval(timer); timers.delete(timer); });
        return;
      }
      case 'redirect':
        response.writeHead(302, { location: `${origin}/redirected`, 'content-length': 0 }).end();
        return;
      case 'reset': request.socket.destroy(); return;
    }
  };

  const server = options.tls === undefined
    ? http.createServer(handler)
    : https.createServer({ cert: options.tls.pem, key: await options.tls.keyPem() }, handler);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  origin = `${options.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;

  const result: JwksServer = {
    origin,
    issuer: `${origin}${realmPath}`,
    discoveryUri: `${origin}${discoveryPath}`,
    jwksUri: `${origin}${jwksPath}`,
    port,
    get keys() { return state.keys; },
    set keys(value) { state.keys = value; },
    get extraJwks() { return state.extraJwks; },
    set extraJwks(value) { state.extraJwks = value; },
    get discoveryOverrides() { return state.discoveryOverrides; },
    set discoveryOverrides(value) { state.discoveryOverrides = value; },
    get jwksMode() { return state.jwksMode; },
    set jwksMode(value) { state.jwksMode = value; },
    get discoveryMode() { return state.discoveryMode; },
    set discoveryMode(value) { state.discoveryMode = value; },
    requests: state.requests,
    count(what) {
      const path = what === 'jwks' ? jwksPath : what === 'discovery' ? discoveryPath : what;
      return state.requests.filter((p) => p === path).length;
    },
    makeKey: makeTestKey,
    addKey(alg = 'RS256', kid) {
      const key = makeTestKey(alg, kid);
      state.keys.push(key);
      return key;
    },
    rotate(alg = 'RS256') {
      const key = makeTestKey(alg);
      state.keys = [key];
      return key;
    },
    async sign(claims, signOptions = {}) {
      const key = signOptions.key ?? (signOptions.kid === undefined
        ? state.keys[0]
        : state.keys.find((k) => k.kid === signOptions.kid));
      if (key === undefined) throw new Error(`no test key ${signOptions.kid ?? '(none published)'}`);
      const header: Record<string, unknown> = { alg: key.alg, kid: key.kid, typ: 'JWT', ...signOptions.header };
      for (const name of Object.keys(header)) if (header[name] === undefined) delete header[name];
      return new SignJWT(claims).setProtectedHeader(header as JWTHeaderParameters).sign(key.privateKey);
    },
    signRaw(header, payload, key) {
      const signer = key ?? state.keys[0];
      if (signer === undefined) throw new Error('no test key published');
      return signCompact(header, payload, signer);
    },
    async close() {
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return result;
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
