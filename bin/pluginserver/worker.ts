/**
 * A worker of the multi-worker plugin server (front.ts): the plugin host of this process, fed by
 * the front over the pipe on fd 3 instead of Kong's socket. Each front connection key gets its own
 * `Connection` (listener.ts), so requests are decoded, handled and answered exactly as on the
 * single-process server. Control messages (metrics, readiness) use the Node IPC channel.
 */
import { Socket } from 'node:net';
import { Connection, type Sink } from './listener.js';
import { RPC_METHODS, type PluginServer } from './server.js';
import { PipeReader, closeFrame, pipeFrame } from './pipe-frames.js';
import { metrics } from '../../kong/metrics.js';
import type { RedactingLogger } from './logger.js';

/** `MTLS_POP_WORKER=slot/count`, set by the front for its children. */
export const WORKER_ENV = 'MTLS_POP_WORKER';
/** Set by the front when its metrics endpoint is on: workers then collect process metrics. */
export const WORKER_METRICS_ENV = 'MTLS_POP_WORKER_METRICS';

/** Methods a worker accepts from the front: Kong's, plus the front's StartInstanceAs. */
const WORKER_METHODS: ReadonlySet<string> = new Set([...RPC_METHODS, 'StartInstanceAs']);

export interface WorkerMessage {
  readonly type: 'metrics';
  readonly id: number;
}

export function parseWorkerEnv(value: string | undefined): { slot: number; count: number } | null {
  const match = /^([0-9]{1,3})\/([0-9]{1,3})$/.exec(value ?? '');
  if (match === null) return null;
  const slot = Number(match[1]);
  const count = Number(match[2]);
  return slot < count ? { slot, count } : null;
}

export function serveWorker(host: PluginServer, log: RedactingLogger): void {
  const pipe = new Socket({ fd: 3, readable: true, writable: true });
  const debug = log.isEnabled('debug');
  const connections = new Map<number, Connection>();
  const sinks = new Map<number, { destroyed: boolean }>();
  const reader = new PipeReader((key, payload) => {
    if (payload === null) {
      connections.delete(key);
      const sink = sinks.get(key);
      if (sink !== undefined) sink.destroyed = true;
      sinks.delete(key);
      return;
    }
    let conn = connections.get(key);
    if (conn === undefined) {
      const sink: Sink & { destroyed: boolean } = {
        destroyed: false,
        write: (frame) => { pipe.write(pipeFrame(key, frame)); },
        destroy: () => {
          if (sink.destroyed) return;
          sink.destroyed = true;
          connections.delete(key);
          sinks.delete(key);
          pipe.write(closeFrame(key));
        },
      };
      conn = new Connection(sink, host, log, debug, WORKER_METHODS);
      connections.set(key, conn);
      sinks.set(key, sink);
    }
    conn.onData(payload);
  });
  pipe.on('data', (chunk: Buffer) => reader.push(chunk));
  pipe.on('error', () => process.exit(1));
  pipe.on('close', () => process.exit(0));
  if (process.env[WORKER_METRICS_ENV] === '1') metrics.collectProcessMetrics();
  process.on('message', (message: WorkerMessage) => {
    if (message?.type !== 'metrics') return;
    metrics.registry.getMetricsAsJSON().then(
      (json) => process.send?.({ type: 'metrics', id: message.id, json }),
      () => process.send?.({ type: 'metrics', id: message.id, json: [] }),
    );
  });
  // The front is gone: nothing can reach this worker any more.
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'ready' });
}
