/**
 * kong-pdk's socket listener with a streaming MessagePack reader.
 *
 * Wire format unchanged (kong-pdk `listener.js`, Kong `rpc/mp_rpc.lua`): bare MessagePack values
 * on a Unix stream socket, request `[0, msgid, "plugin.Method", [args]]`, response
 * `[1, msgid, error|nil, result]`.
 *
 * The stock listener decodes each 'data' chunk as exactly one message: two messages in one chunk
 * throw inside the event handler and kill the process, and so does a malformed frame. Here each
 * connection is read as a stream of messages (any number per chunk, split across chunks),
 * handled strictly in order, one at a time (Kong keeps at most one request in flight per
 * connection); a protocol error closes that connection only. Debug lines name the method, id and
 * argument shapes, never argument values (they carry tokens and certificates).
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { StockListenerClass, RPC_METHODS, type StockServer, type StepReply } from './kong-pdk.js';
import { shapeOf, type RedactingLogger } from './logger.js';

class ProtocolError extends Error {}

interface RpcRequest {
  readonly msgid: number;
  readonly method: string;
  readonly args: readonly unknown[];
}

function parseRequest(message: unknown): RpcRequest | { readonly msgid: number; readonly error: string } {
  if (!Array.isArray(message) || message.length !== 4 || message[0] !== 0) {
    throw new ProtocolError(`expected a request [0, msgid, method, args], got ${shapeOf(message)}`);
  }
  const [, msgid, method, args] = message as [number, unknown, unknown, unknown];
  if (typeof msgid !== 'number' || !Number.isInteger(msgid)) {
    throw new ProtocolError(`request id must be an integer, got ${shapeOf(msgid)}`);
  }
  if (typeof method !== 'string') return { msgid, error: 'method name must be a string' };
  if (!Array.isArray(args)) return { msgid, error: 'arguments must be an array' };
  return { msgid, method, args };
}

function errorText(err: unknown): string {
  if (typeof err === 'string') return err;
  if (err instanceof Error) return err.message;
  return 'Unknown plugin listener error encountered';
}

function describeReply(result: unknown): string {
  if (typeof result === 'object' && result !== null && 'Data' in result) {
    const data = (result as StepReply).Data;
    if (typeof data === 'string') return `Data: ${data === 'ret' ? '"ret"' : shapeOf(data)}`;
    if (typeof data === 'object' && data !== null && 'Method' in data) {
      const method = (data as { Method: unknown }).Method;
      return `Data: call ${typeof method === 'string' ? method : shapeOf(method)}`;
    }
  }
  return shapeOf(result);
}

export class StreamingListener extends StockListenerClass {
  private server: NetServer | undefined;
  private readonly connections = new Set<Socket>();
  private readonly log: RedactingLogger;

  constructor(pluginServer: StockServer, socketPath: string, logger: RedactingLogger) {
    super(pluginServer, socketPath);
    this.log = logger;
  }

  override serve(): NetServer {
    try {
      unlinkSync(this.prefix);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const server = createServer((conn) => { void this.serveConnection(conn); });
    server.on('error', (err) => { this.log.error(`listener error: ${errorText(err)}`); });
    server.listen(this.prefix);
    this.log.info('server started at', this.prefix);
    this.server = server;
    return server;
  }

  /** Stops listening, drops open connections and removes the socket file. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const conn of this.connections) conn.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.prefix);
    } catch {
      // already gone
    }
  }

  private async serveConnection(conn: Socket): Promise<void> {
    this.connections.add(conn);
    conn.on('close', () => this.connections.delete(conn));
    const decoder = new Decoder();
    const encoder = new Encoder();
    try {
      for await (const message of decoder.decodeStream(conn)) {
        await this.dispatch(conn, encoder, message);
        if (conn.destroyed) break;
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET' || code === 'EPIPE') {
        this.log.debug(`connection closed by peer: ${code}`);
      } else {
        this.log.warn(`closing connection after protocol error: ${errorText(err)}`);
      }
      conn.destroy();
    }
  }

  private async dispatch(conn: Socket, encoder: Encoder, message: unknown): Promise<void> {
    const request = parseRequest(message);
    if ('error' in request) {
      this.log.warn(`rpc: #${request.msgid} rejected: ${request.error}`);
      this.reply(conn, encoder, request.msgid, request.error, undefined);
      return;
    }
    const { msgid, method, args } = request;
    const dot = method.indexOf('.');
    const ns = dot < 0 ? method : method.slice(0, dot);
    const cmd = dot < 0 ? '' : method.slice(dot + 1);
    if (ns !== 'plugin') {
      this.reply(conn, encoder, msgid, `RPC for ${ns} is not supported`, undefined);
      return;
    }
    const debug = this.log.isEnabled('debug');
    if (debug) this.log.debug(`rpc: #${msgid} method: ${method} args: ${shapeOf(args)}`);
    const target = this.ps as unknown as Record<string, unknown>;
    const fn = target[cmd];
    if (!RPC_METHODS.has(cmd) || typeof fn !== 'function') {
      const err = `method ${cmd} not implemented`;
      this.log.error(`rpc: #${msgid} ${err}`);
      this.reply(conn, encoder, msgid, err, undefined);
      return;
    }
    const started = debug ? process.hrtime.bigint() : 0n;
    let result: unknown;
    try {
      result = await (fn as (...a: unknown[]) => unknown).apply(this.ps, [...args]);
    } catch (err) {
      this.log.warn(`rpc: #${msgid} ${method} failed: ${errorText(err)}`);
      this.reply(conn, encoder, msgid, errorText(err), undefined);
      return;
    }
    const bytes = this.reply(conn, encoder, msgid, undefined, result);
    if (debug) {
      const micros = Number(process.hrtime.bigint() - started) / 1000;
      this.log.debug(`rpc: #${msgid} ${method} answered in ${micros.toFixed(0)} us, ${bytes} bytes, ${describeReply(result)}`);
    }
  }

  /** Writes `[1, msgid, error, result]`; returns the frame size. */
  private reply(conn: Socket, encoder: Encoder, msgid: number, error: string | undefined, result: unknown): number {
    if (conn.destroyed) return 0;
    let frame: Uint8Array;
    try {
      frame = encoder.encode([1, msgid, error, result]);
    } catch (err) {
      this.log.error(`rpc: #${msgid} could not encode the response: ${errorText(err)}`);
      frame = encoder.encode([1, msgid, 'plugin server could not encode the response', undefined]);
    }
    conn.write(frame);
    return frame.byteLength;
  }
}
