/**
 * A real CA run with the openssl CLI (`openssl req`, `openssl ca` with index.txt / serial /
 * crlnumber, `openssl ca -revoke`, `openssl ca -gencrl`, `openssl ocsp` as responder), plus the
 * small Node servers revocation tests put in front of it: an HTTP(S) responder wrapper that counts
 * requests and can misbehave on demand (reset, hang, HTTP 500), an absolute-form HTTP proxy, and
 * OCSP responses crafted with pkijs when a test needs an answer `openssl ocsp` would never give.
 *
 * Everything lives in a temp dir the caller owns; every spawned process is tracked and killed by
 * `stopAllResponders()` (and, as a last resort, when the test process exits).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash, webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';

const run = promisify(execFile);

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  await run('openssl', [...args], { cwd });
}

/** A certificate and key on disk, issued by an `OpensslCa`. */
export interface CertFiles {
  readonly certPath: string;
  readonly keyPath: string;
  readonly pem: string;
  readonly der: Buffer;
}

export interface LeafOptions {
  /** AIA id-ad-ocsp URL. */
  readonly ocspUrl?: string;
  /** CRL distribution point URL. */
  readonly crlUrl?: string;
  /** extendedKeyUsage value in openssl syntax; default clientAuth. */
  readonly eku?: string;
  /** Issue a CA certificate (basicConstraints CA:TRUE, keyCertSign/cRLSign) instead of a leaf. */
  readonly ca?: boolean;
  /** RSA 2048 instead of EC P-256. */
  readonly rsa?: boolean;
}

function keyArgs(rsa: boolean): string[] {
  return rsa ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
}

const REQ_CONFIG = `[ req ]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[ dn ]
CN = placeholder
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
`;

function extensionSection(options: LeafOptions): string {
  const lines = options.ca === true
    ? ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign']
    : ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature',
      `extendedKeyUsage = ${options.eku ?? 'clientAuth'}`];
  lines.push('subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid');
  if (options.ocspUrl !== undefined) lines.push(`authorityInfoAccess = OCSP;URI:${options.ocspUrl}`);
  if (options.crlUrl !== undefined) lines.push(`crlDistributionPoints = URI:${options.crlUrl}`);
  return `[ ext ]\n${lines.join('\n')}\n`;
}

let serialBase = 0x1000;

/** One CA directory: ca.pem/ca.key, openssl.cnf, index.txt, serial, crlnumber, newcerts/. */
export class OpensslCa {
  readonly dir: string;
  readonly files: CertFiles;
  #fakeRevocations = 0;
  #outsideIndex = 0;
  #crlExtensions = 0;

  private constructor(dir: string, files: CertFiles) {
    this.dir = dir;
    this.files = files;
  }

  get configPath(): string {
    return join(this.dir, 'openssl.cnf');
  }

  get indexPath(): string {
    return join(this.dir, 'index.txt');
  }

  private static prepare(dir: string): void {
    mkdirSync(join(dir, 'newcerts'), { recursive: true });
    mkdirSync(join(dir, 'issued'), { recursive: true });
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
    // Distinct serial ranges per CA so serials never collide by accident across CAs.
    serialBase += 0x1000;
    writeFileSync(join(dir, 'serial'), `${serialBase.toString(16)}\n`);
    writeFileSync(join(dir, 'crlnumber'), '01\n');
    writeFileSync(join(dir, 'req.cnf'), REQ_CONFIG);
    writeFileSync(join(dir, 'openssl.cnf'), `[ ca ]
default_ca = CA_default
[ CA_default ]
dir = ${dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_days = 1
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
organizationName = optional
`);
  }

  /** A self-signed root CA in `dir`. */
  static async createRoot(dir: string, subject: string, rsa = false): Promise<OpensslCa> {
    OpensslCa.prepare(dir);
    await openssl(['req', '-config', 'req.cnf', '-x509', '-new', ...keyArgs(rsa), '-nodes', '-keyout', 'ca.key',
      '-out', 'ca.pem', '-days', '30', '-subj', subject], dir);
    return new OpensslCa(dir, readCertFiles(join(dir, 'ca.pem'), join(dir, 'ca.key')));
  }

  /** A subordinate CA in `dir`, issued by this CA (optionally with its own AIA / CRL DP). */
  async createSubCa(dir: string, subject: string, options: Omit<LeafOptions, 'ca'> = {}): Promise<OpensslCa> {
    OpensslCa.prepare(dir);
    const issued = await this.issue('subca-' + subject.replace(/[^A-Za-z0-9]/g, ''), subject, { ...options, ca: true });
    writeFileSync(join(dir, 'ca.pem'), readFileSync(issued.certPath));
    writeFileSync(join(dir, 'ca.key'), readFileSync(issued.keyPath), { mode: 0o600 });
    return new OpensslCa(dir, readCertFiles(join(dir, 'ca.pem'), join(dir, 'ca.key')));
  }

  /** `openssl req -new` + `openssl ca` with the extensions `options` describe. */
  async issue(name: string, subject: string, options: LeafOptions = {}): Promise<CertFiles> {
    const base = join(this.dir, 'issued', name);
    writeFileSync(`${base}.ext`, extensionSection(options));
    await openssl(['req', '-config', 'req.cnf', '-new', ...keyArgs(options.rsa === true), '-nodes',
      '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subject], this.dir);
    await openssl(['ca', '-batch', '-config', this.configPath, '-in', `${base}.csr`, '-out', `${base}.pem`,
      '-extfile', `${base}.ext`, '-extensions', 'ext', '-notext'], this.dir);
    return readCertFiles(`${base}.pem`, `${base}.key`);
  }

  /**
   * Signs a certificate with this CA's key WITHOUT recording it in index.txt (`openssl x509 -req`),
   * so `openssl ocsp` answers "unknown" for it: a certificate the responder does not know.
   */
  async issueOutsideIndex(name: string, subject: string, options: LeafOptions = {}): Promise<CertFiles> {
    const base = join(this.dir, 'issued', name);
    writeFileSync(`${base}.ext`, extensionSection(options));
    await openssl(['req', '-config', 'req.cnf', '-new', ...keyArgs(options.rsa === true), '-nodes',
      '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subject], this.dir);
    await openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', this.files.certPath, '-CAkey', this.files.keyPath,
      '-set_serial', `0x${(0x7f000000 + ++this.#outsideIndex).toString(16)}`, '-days', '30',
      '-extfile', `${base}.ext`, '-extensions', 'ext', '-out', `${base}.pem`], this.dir);
    return readCertFiles(`${base}.pem`, `${base}.key`);
  }

  /** `openssl ca -revoke` (recorded in index.txt). */
  async revoke(cert: CertFiles, reason = 'keyCompromise'): Promise<void> {
    await openssl(['ca', '-config', this.configPath, '-revoke', cert.certPath, '-crl_reason', reason], this.dir);
  }

  /**
   * Appends `count` revoked entries with made-up serials to index.txt, so the next CRL is large
   * (what a busy CA publishes). Serials start at 0x7e000000 and never collide with issued ones.
   */
  addFakeRevocations(count: number): void {
    const lines: string[] = [];
    for (let n = 0; n < count; n++) {
      const i = this.#fakeRevocations++;
      const serial = (0x7e000000 + i).toString(16).toUpperCase();
      lines.push(`R\t491231235959Z\t240101000000Z,keyCompromise\t${serial}\tunknown\t/CN=fake-${i}`);
    }
    appendFileSync(this.indexPath, `${lines.join('\n')}\n`);
  }

  /**
   * `openssl ca -gencrl`, returned as DER (what an HTTP CRL distribution point serves). `options`:
   * CRL extensions in openssl config syntax (e.g. `issuingDistributionPoint = critical, @idp` plus
   * the `[idp]` section), the digest, and `-sigopt` values (e.g. `rsa_padding_mode:pss`).
   */
  async generateCrl(validity: { days?: number; hours?: number } = { days: 1 },
    options: { extensions?: string; md?: string; sigopts?: readonly string[] } = {}): Promise<Buffer> {
    const pemPath = join(this.dir, 'crl.pem');
    const args = ['ca', '-config', this.configPath, '-gencrl', '-out', pemPath];
    if (validity.days !== undefined) args.push('-crldays', String(validity.days));
    if (validity.hours !== undefined) args.push('-crlhours', String(validity.hours));
    if (options.extensions !== undefined) {
      const section = `crlext_${++this.#crlExtensions}`;
      appendFileSync(this.configPath, `\n[ ${section} ]\n${options.extensions}\n`);
      args.push('-crlexts', section);
    }
    if (options.md !== undefined) args.push('-md', options.md);
    for (const opt of options.sigopts ?? []) args.push('-sigopt', opt);
    await openssl(args, this.dir);
    const derPath = join(this.dir, 'crl.der');
    await openssl(['crl', '-in', pemPath, '-outform', 'DER', '-out', derPath], this.dir);
    return readFileSync(derPath);
  }

  /**
   * `openssl ocsp` answering for this CA's index.txt, signed by `signer` (this CA itself, a delegated
   * responder, or anything else a test wants to try). Listens on a port the kernel picks.
   */
  startOcspResponder(signer: CertFiles, options: { nmin?: number; ndays?: number } = {}): Promise<OcspProcess> {
    const args = ['ocsp', '-index', this.indexPath, '-port', '0', '-rsigner', signer.certPath, '-rkey', signer.keyPath,
      '-CA', this.files.certPath, '-ignore_err'];
    if (options.nmin !== undefined) args.push('-nmin', String(options.nmin));
    else args.push('-ndays', String(options.ndays ?? 1));
    return spawnOcsp(args, this.dir);
  }
}

function readCertFiles(certPath: string, keyPath: string): CertFiles {
  const pem = readFileSync(certPath, 'utf8');
  const b64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  return { certPath, keyPath, pem, der: Buffer.from(b64, 'base64') };
}

// ---------------------------------------------------------------- spawned processes

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export interface OcspProcess {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

async function spawnOcsp(args: readonly string[], cwd: string): Promise<OcspProcess> {
  const child = spawn('openssl', [...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    children.delete(child);
  };
  const port = await new Promise<number>((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`openssl ocsp did not start: ${output}`)), 5000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /ACCEPT .*:(\d+)/.exec(output);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`openssl ocsp exited with ${code}: ${output}`));
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return { port, pid: child.pid ?? -1, stop };
}

export async function stopAllResponders(): Promise<void> {
  await Promise.all([...children].map(async (child) => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    children.delete(child);
  }));
}

// ---------------------------------------------------------------- Node servers

/** How a `TestServer` treats the next requests. */
export type ServerMode = 'normal' | 'reset' | 'hang' | 'http500';

export interface TestServer {
  readonly port: number;
  /** Requests received (in every mode). */
  requests: number;
  mode: ServerMode;
  close(): Promise<void>;
}

export type Handler = (request: http.IncomingMessage, body: Buffer) => Promise<{ status: number; body: Buffer; type?: string }>;

/**
 * An HTTP (or, with `tls`, HTTPS) server on 127.0.0.1 and a kernel-chosen port that counts requests
 * and, depending on `mode`, answers with `handler`, resets the connection, never answers, or says 500.
 */
export async function startTestServer(handler: Handler, tls?: { cert: string; key: string }): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const state = { requests: 0, mode: 'normal' as ServerMode };
  const listener = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    state.requests++;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (state.mode === 'hang') return;
      if (state.mode === 'reset') {
        request.socket.destroy();
        return;
      }
      if (state.mode === 'http500') {
        response.writeHead(500).end('unavailable');
        return;
      }
      handler(request, Buffer.concat(chunks)).then((answer) => {
        response.writeHead(answer.status, { 'content-type': answer.type ?? 'application/octet-stream' });
        response.end(answer.body);
      }, () => {
        response.writeHead(502).end();
      });
    });
  };
  const server = tls !== undefined ? https.createServer(tls, listener) : http.createServer(listener);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    get requests() { return state.requests; },
    set requests(value: number) { state.requests = value; },
    get mode() { return state.mode; },
    set mode(value: ServerMode) { state.mode = value; },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close').catch(() => undefined);
    },
  };
}

/** A handler forwarding OCSP POSTs to an `openssl ocsp` process on 127.0.0.1:`backendPort()`. */
export function forwardTo(backendPort: () => number): Handler {
  return (request, body) => new Promise((resolve, reject) => {
    const upstream = http.request({
      host: '127.0.0.1', port: backendPort(), method: request.method, path: request.url,
      headers: { 'content-type': request.headers['content-type'] ?? 'application/ocsp-request', 'content-length': body.length },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({
        status: response.statusCode ?? 502, body: Buffer.concat(chunks), type: 'application/ocsp-response',
      }));
      response.on('error', reject);
    });
    upstream.on('error', reject);
    upstream.end(body);
  });
}

/** A handler serving whatever `files()` maps the request path to (404 otherwise). */
export function serveFiles(files: () => ReadonlyMap<string, Buffer>): Handler {
  return async (request) => {
    const body = files().get(request.url ?? '');
    return body === undefined ? { status: 404, body: Buffer.from('not found') } : { status: 200, body, type: 'application/pkix-crl' };
  };
}

/** A forward proxy for absolute-form plain-http requests (RFC 9112 3.2.2); counts what it relays. */
export function startForwardProxy(): Promise<TestServer> {
  return startTestServer((request, body) => new Promise((resolve, reject) => {
    const target = new URL(request.url ?? '');
    if (target.protocol !== 'http:') {
      resolve({ status: 400, body: Buffer.from('absolute-form http URL expected') });
      return;
    }
    const headers = { ...request.headers };
    delete headers['proxy-authorization'];
    const upstream = http.request({
      host: target.hostname, port: target.port, method: request.method, path: `${target.pathname}${target.search}`, headers,
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 502, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    upstream.on('error', reject);
    upstream.end(body);
  }));
}

/** A port nothing listens on (bound once by the kernel, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

// ---------------------------------------------------------------- crafted OCSP responses (pkijs)

/** What a crafted response should get wrong (or do differently) on purpose. */
export interface CraftOptions {
  /** Certificate status to claim; default good. */
  readonly status?: 'good' | 'revoked' | 'unknown';
  /** ResponderID byKey instead of byName. */
  readonly byKey?: boolean;
  /** Answer with a SHA-256 CertID instead of echoing the request's (SHA-1) CertID. */
  readonly sha256CertId?: boolean;
  /** Flip a bit of issuerNameHash / of the serial, so the answer is about something else. */
  readonly wrongNameHash?: boolean;
  readonly wrongSerial?: boolean;
  /** Omit nextUpdate; default nextUpdate is thisUpdate + 1 hour. */
  readonly noNextUpdate?: boolean;
  /** responseStatus other than successful (0): no responseBytes then. */
  readonly responseStatus?: number;
  /** Echo the request nonce (default true). */
  readonly echoNonce?: boolean;
  /** thisUpdate (default a minute ago). */
  readonly thisUpdate?: Date;
  /** Digest of the ECDSA signature (default SHA-256). */
  readonly signingHash?: 'SHA-1' | 'SHA-256';
}

const engine = new pkijs.CryptoEngine({ name: 'node-webcrypto', crypto: webcrypto as unknown as Crypto });

/**
 * An OCSP response built and signed with pkijs (an implementation independent of the code under
 * test) for the request `requestDer`, signed by `signer` (certificate + EC P-256 PKCS#8 key files),
 * answering about a certificate of `issuer`.
 */
export async function craftOcspResponse(requestDer: Uint8Array, signer: CertFiles, issuer: CertFiles, options: CraftOptions = {}): Promise<Buffer> {
  if (options.responseStatus !== undefined && options.responseStatus !== 0) {
    const failed = new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: options.responseStatus }) });
    return Buffer.from(failed.toSchema().toBER());
  }
  const request = pkijs.OCSPRequest.fromBER(new Uint8Array(requestDer));
  const asked = request.tbsRequest.requestList[0]?.reqCert;
  if (asked === undefined) throw new Error('request without CertID');
  const signerCert = pkijs.Certificate.fromBER(new Uint8Array(signer.der));
  const issuerCert = pkijs.Certificate.fromBER(new Uint8Array(issuer.der));

  let certID = new pkijs.CertID({
    hashAlgorithm: asked.hashAlgorithm, issuerNameHash: asked.issuerNameHash, issuerKeyHash: asked.issuerKeyHash,
    serialNumber: asked.serialNumber,
  });
  if (options.sha256CertId === true) {
    const subjectDigest = createHash('sha256').update(new Uint8Array(issuerCert.subject.toSchema().toBER())).digest();
    const keyDigest = createHash('sha256').update(issuerCert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView).digest();
    certID = new pkijs.CertID({
      hashAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: '2.16.840.1.101.3.4.2.1', algorithmParams: new asn1js.Null() }),
      issuerNameHash: new asn1js.OctetString({ valueHex: subjectDigest }),
      issuerKeyHash: new asn1js.OctetString({ valueHex: keyDigest }),
      serialNumber: asked.serialNumber,
    });
  }
  const flipLast = (bytes: Uint8Array): Uint8Array => {
    const copy = new Uint8Array(bytes);
    copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 1;
    return copy;
  };
  if (options.wrongNameHash === true) {
    certID.issuerNameHash = new asn1js.OctetString({ valueHex: flipLast(certID.issuerNameHash.valueBlock.valueHexView) });
  }
  if (options.wrongSerial === true) {
    certID.serialNumber = new asn1js.Integer({ valueHex: flipLast(certID.serialNumber.valueBlock.valueHexView) });
  }

  const now = new Date();
  const thisUpdate = options.thisUpdate ?? new Date(now.getTime() - 60 * 1000);
  const status = options.status ?? 'good';
  const certStatus = status === 'revoked'
    ? new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value: [new asn1js.GeneralizedTime({ valueDate: thisUpdate })] })
    : new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: status === 'good' ? 0 : 2 } });
  const single = new pkijs.SingleResponse({
    certID, certStatus, thisUpdate,
    ...(options.noNextUpdate === true ? {} : { nextUpdate: new Date(thisUpdate.getTime() + 3600 * 1000) }),
  });

  const basic = new pkijs.BasicOCSPResponse();
  basic.tbsResponseData.responderID = options.byKey === true
    ? new asn1js.OctetString({
      valueHex: createHash('sha1').update(signerCert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView).digest(),
    })
    : signerCert.subject;
  basic.tbsResponseData.producedAt = now;
  basic.tbsResponseData.responses = [single];
  const nonce = request.tbsRequest.requestExtensions?.find((e) => e.extnID === '1.3.6.1.5.5.7.48.1.2');
  if (nonce !== undefined && options.echoNonce !== false) basic.tbsResponseData.responseExtensions = [nonce];
  basic.certs = [signerCert];

  const keyDer = Buffer.from(readFileSync(signer.keyPath, 'utf8').replace(/-----(BEGIN|END) PRIVATE KEY-----/g, ''), 'base64');
  const key = await webcrypto.subtle.importKey('pkcs8', keyDer, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  await basic.sign(key, options.signingHash ?? 'SHA-256', engine);

  const response = new pkijs.OCSPResponse({
    responseStatus: new asn1js.Enumerated({ value: 0 }),
    responseBytes: new pkijs.ResponseBytes({
      responseType: '1.3.6.1.5.5.7.48.1.1',
      response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER() }),
    }),
  });
  return Buffer.from(response.toSchema().toBER());
}

/**
 * A CRL built and signed with pkijs for `issuer` (certificate + EC P-256 PKCS#8 key files), for the
 * cases `openssl ca -gencrl` cannot produce: no nextUpdate, a thisUpdate in the past or the future.
 */
export async function craftCrl(issuer: CertFiles, options: {
  readonly thisUpdate: Date; readonly nextUpdate: Date | null; readonly revokedSerials?: readonly number[];
}): Promise<Buffer> {
  const issuerCert = pkijs.Certificate.fromBER(new Uint8Array(issuer.der));
  const crl = new pkijs.CertificateRevocationList({
    version: 1,
    issuer: issuerCert.subject,
    thisUpdate: new pkijs.Time({ type: 1, value: options.thisUpdate }),
    ...(options.nextUpdate === null ? {} : { nextUpdate: new pkijs.Time({ type: 1, value: options.nextUpdate }) }),
  });
  const revoked = options.revokedSerials ?? [];
  if (revoked.length > 0) {
    crl.revokedCertificates = revoked.map((serial) => new pkijs.RevokedCertificate({
      userCertificate: new asn1js.Integer({ value: serial }),
      revocationDate: new pkijs.Time({ type: 0, value: options.thisUpdate }),
    }));
  }
  const keyDer = Buffer.from(readFileSync(issuer.keyPath, 'utf8').replace(/-----(BEGIN|END) PRIVATE KEY-----/g, ''), 'base64');
  const key = await webcrypto.subtle.importKey('pkcs8', keyDer, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  await crl.sign(key, 'SHA-256', engine);
  return Buffer.from(crl.toSchema().toBER());
}
