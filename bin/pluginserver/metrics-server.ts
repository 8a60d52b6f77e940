/**
 * The opt-in Prometheus endpoint of the plugin server (`--metrics-port`): `GET /metrics` returns
 * the process registry (kong/metrics.ts, with prom-client's process metrics) in text format 0.0.4;
 * anything else is 404 or 405. It listens on 127.0.0.1 unless `--metrics-host` says otherwise: the
 * figures are operational, not secret, but nothing outside the host needs to reach them by default.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from '../../kong/metrics.js';

/** What the endpoint serves: this process's registry, or the front's sum of its workers' (front.ts). */
export interface MetricsSource {
  readonly contentType: string;
  collectProcessMetrics(): void;
  render(): Promise<string>;
}

export interface MetricsEndpoint {
  readonly server: Server;
  /** The bound address (the port is the real one when 0 was asked for). */
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export function startMetricsServer(host: string, port: number, registry: MetricsSource = metrics): Promise<MetricsEndpoint> {
  registry.collectProcessMetrics();
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    registry.render().then((body) => {
      res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    }, () => {
      // A failing collector: no figures rather than a hung scrape (the error carries no secrets,
      // but the scrape only needs the status).
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
    });
  });
  server.keepAliveTimeout = 5000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({
        server,
        address: server.address() as AddressInfo,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}
