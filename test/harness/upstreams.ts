/**
 * Small HTTP servers the Kong emulator talks to in tests: an echo upstream (the proxied service)
 * and an emulated Kong Admin API answering `GET /ca_certificates/{id}`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { X509Certificate, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------

export interface EchoRecord {
  readonly method: string;
  /** Path with query, as received. */
  readonly path: string;
  /** Node's view: lower-case names, repeated values joined. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Header lines as received. */
  readonly rawHeaders: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
}

export interface EchoUpstream {
  readonly url: string;
  readonly port: number;
  /** Every request received, oldest first. */
  readonly requests: EchoRecord[];
  close(): Promise<void>;
}

/** An upstream that answers 200 with JSON `{method, path, headers, rawHeaders, body}`. */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const requests: EchoRecord[] = [];
  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const raw: Array<[string, string]> = [];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) raw.push([req.rawHeaders[i] ?? '', req.rawHeaders[i + 1] ?? '']);
      const record: EchoRecord = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, rawHeaders: raw, body: body.toString('utf8') };
      requests.push(record);
      const payload = Buffer.from(JSON.stringify(record));
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': payload.length, 'X-Echo-Upstream': '1' });
      res.end(payload);
    });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, port, requests, close: () => close(server) };
}

// ---------------------------------------------------------------------------------------------

export type AdminApiMode = 'up' | 'error' | 'down';

export interface AdminApiOptions {
  /** CA certificate entities by UUID (PEM text). */
  readonly ca_certificates?: Readonly<Record<string, string>>;
  /** Listen on this port (default: a free one), so a plugin config can name the URL up front. */
  readonly port?: number;
}

interface CaCertificateEntity {
  readonly id: string;
  readonly cert: string;
  readonly cert_digest: string;
  readonly created_at: number;
  readonly updated_at: number;
  readonly tags: null;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function entity(id: string, pem: string): CaCertificateEntity {
  // kong/db/schema/entities/ca_certificates.lua: cert_digest = hex SHA-256 of the DER.
  const der = new X509Certificate(pem).raw;
  const now = Math.floor(Date.now() / 1000);
  return { id, cert: pem, cert_digest: createHash('sha256').update(der).digest('hex'), created_at: now, updated_at: now, tags: null };
}

/**
 * Kong's Admin API, the part the plugin reads: `GET /ca_certificates/{id}` answers 200 with the
 * entity (`id, cert, cert_digest, created_at, updated_at, tags`), 404 `{"message":"Not found"}`,
 * 400 for a non-UUID id (kong/api/endpoints.lua select_entity: invalid primary key).
 * `mode` makes it fail: `error` answers 500, `down` stops listening (connection refused).
 */
export class AdminApiEmulator {
  private server: Server;
  private readonly entities = new Map<string, CaCertificateEntity>();
  mode: AdminApiMode = 'up';
  /** Requests answered (any path). */
  requests = 0;
  readonly log: Array<{ readonly method: string; readonly path: string; readonly status: number }> = [];

  private constructor(readonly port: number, server: Server) {
    this.server = server;
  }

  static async start(options: AdminApiOptions = {}): Promise<AdminApiEmulator> {
    let self: AdminApiEmulator | undefined;
    const server = createServer((req, res) => self?.handle(req, res));
    const port = await listen(server, options.port);
    self = new AdminApiEmulator(port, server);
    for (const [id, pem] of Object.entries(options.ca_certificates ?? {})) self.setCaCertificate(id, pem);
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  setCaCertificate(id: string, pem: string): void {
    this.entities.set(id, entity(id, pem));
  }

  deleteCaCertificate(id: string): void {
    this.entities.delete(id);
  }

  async setMode(mode: AdminApiMode): Promise<void> {
    if (mode === this.mode) return;
    if (mode === 'down') {
      this.mode = mode;
      await close(this.server);
      return;
    }
    if (this.mode === 'down') {
      const server = createServer((req, res) => this.handle(req, res));
      await listen(server, this.port);
      this.server = server;
    }
    this.mode = mode;
  }

  async close(): Promise<void> {
    if (this.mode !== 'down') await close(this.server);
    this.mode = 'down';
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests++;
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const send = (status: number, body: unknown): void => {
      const payload = Buffer.from(JSON.stringify(body));
      this.log.push({ method: req.method ?? '', path, status });
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': payload.length, Server: 'kong/3.9.1' });
      res.end(payload);
    };
    if (this.mode === 'error') {
      send(500, { message: 'An unexpected error occurred' });
      return;
    }
    const match = /^\/ca_certificates\/([^/]+)\/?$/.exec(path);
    if (req.method === 'GET' && match !== null) {
      const id = decodeURIComponent(match[1] ?? '');
      if (!UUID_RE.test(id)) {
        send(400, { code: 3, fields: { id: 'expected a valid UUID' }, message: `invalid primary key: '{id="${id}"}'`, name: 'invalid primary key' });
        return;
      }
      const found = this.entities.get(id.toLowerCase()) ?? this.entities.get(id);
      if (found === undefined) send(404, { message: 'Not found' });
      else send(200, found);
      return;
    }
    if (req.method === 'GET' && /^\/ca_certificates\/?$/.test(path)) {
      send(200, { data: [...this.entities.values()], next: null });
      return;
    }
    send(404, { message: 'Not found' });
  }
}
