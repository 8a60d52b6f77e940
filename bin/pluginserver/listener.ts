/**
 * kong-pdk's socket listener with a streaming MessagePack reader.
 *
 * Wire format unchanged (kong-pdk `listener.js`, Kong `rpc/mp_rpc.lua`): bare MessagePack values
 * on a Unix stream socket, request `[0, msgid, "plugin.Method", [args]]`, response
 * `[1, msgid, error|nil, result]`.
 *
 * The stock listener decodes each 'data' chunk as exactly one message: two messages in one chunk
 * throw inside the event handler and kill the process, and so does a malformed frame. Here each
 * connection's bytes are cut into whole values by their MessagePack headers (any number per
 * chunk, or one across chunks), decoded, and handled strictly in order, one at a time (Kong
 * keeps at most one request in flight per connection); a protocol error closes that connection
 * only. Debug lines name the method, id and
 * argument shapes, never argument values (they carry tokens and certificates).
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { StockListenerClass, RPC_METHODS, type StockServer, type StepReply } from './kong-pdk.js';
import { shapeOf, type RedactingLogger } from './logger.js';

class ProtocolError extends Error {}

/** Largest request accepted; a peer announcing more is cut off (Kong's requests are a few KB). */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * Where the MessagePack value starting at `start` ends, from its headers alone (no decoding);
 * -1 when the buffer does not hold all of it yet.
 */
export function frameEnd(buf: Buffer, start: number): number {
  let pos = start;
  let pending = 1;
  const need = (n: number): boolean => pos + n <= buf.length;
  while (pending > 0) {
    if (pos >= buf.length) return -1;
    const b = buf[pos] as number;
    pending--;
    if (b <= 0x7f || b >= 0xe0) { pos += 1; continue; } // positive / negative fixint
    if (b <= 0x8f) { pending += (b & 0x0f) * 2; pos += 1; continue; } // fixmap
    if (b <= 0x9f) { pending += b & 0x0f; pos += 1; continue; } // fixarray
    if (b <= 0xbf) { pos += 1 + (b & 0x1f); continue; } // fixstr
    switch (b) {
      case 0xc0: case 0xc2: case 0xc3: pos += 1; break; // nil, false, true
      case 0xc1: throw new ProtocolError('invalid MessagePack byte 0xc1');
      case 0xc4: case 0xd9: if (!need(2)) return -1; pos += 2 + (buf[pos + 1] as number); break; // bin8, str8
      case 0xc5: case 0xda: if (!need(3)) return -1; pos += 3 + buf.readUInt16BE(pos + 1); break; // bin16, str16
      case 0xc6: case 0xdb: if (!need(5)) return -1; pos += 5 + buf.readUInt32BE(pos + 1); break; // bin32, str32
      case 0xc7: if (!need(2)) return -1; pos += 3 + (buf[pos + 1] as number); break; // ext8
      case 0xc8: if (!need(3)) return -1; pos += 4 + buf.readUInt16BE(pos + 1); break; // ext16
      case 0xc9: if (!need(5)) return -1; pos += 6 + buf.readUInt32BE(pos + 1); break; // ext32
      case 0xca: pos += 5; break; // float32
      case 0xcb: pos += 9; break; // float64
      case 0xcc: case 0xd0: pos += 2; break; // uint8, int8
      case 0xcd: case 0xd1: pos += 3; break; // uint16, int16
      case 0xce: case 0xd2: pos += 5; break; // uint32, int32
      case 0xcf: case 0xd3: pos += 9; break; // uint64, int64
      case 0xd4: pos += 3; break; // fixext1
      case 0xd5: pos += 4; break; // fixext2
      case 0xd6: pos += 6; break; // fixext4
      case 0xd7: pos += 10; break; // fixext8
      case 0xd8: pos += 18; break; // fixext16
      case 0xdc: if (!need(3)) return -1; pending += buf.readUInt16BE(pos + 1); pos += 3; break; // array16
      case 0xdd: if (!need(5)) return -1; pending += buf.readUInt32BE(pos + 1); pos += 5; break; // array32
      case 0xde: if (!need(3)) return -1; pending += 2 * buf.readUInt16BE(pos + 1); pos += 3; break; // map16
      case 0xdf: if (!need(5)) return -1; pending += 2 * buf.readUInt32BE(pos + 1); pos += 5; break; // map32
      default: throw new ProtocolError(`invalid MessagePack byte 0x${b.toString(16)}`);
    }
  }
  return pos <= buf.length ? pos : -1;
}

/** Splits a byte stream into whole MessagePack values (several per chunk, or one across chunks). */
export class FrameReader {
  private rest: Buffer | undefined;

  push(chunk: Buffer): Buffer[] {
    const buf = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    const frames: Buffer[] = [];
    let offset = 0;
    while (offset < buf.length) {
      const end = frameEnd(buf, offset);
      if (end < 0) break;
      frames.push(buf.subarray(offset, end));
      offset = end;
    }
    this.rest = offset < buf.length ? buf.subarray(offset) : undefined;
    if (this.rest !== undefined && this.rest.length > MAX_FRAME_BYTES) {
      throw new ProtocolError(`request larger than ${MAX_FRAME_BYTES} bytes`);
    }
    return frames;
  }
}

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
    const server = createServer((conn) => this.serveConnection(conn));
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

  private serveConnection(conn: Socket): void {
    this.connections.add(conn);
    const reader = new FrameReader();
    const decoder = new Decoder();
    const encoder = new Encoder();
    const queue: Array<{ message: unknown; bytes: number }> = [];
    let busy = false;
    const fail = (err: unknown): void => {
      if (conn.destroyed) return;
      this.log.warn(`closing connection after protocol error: ${errorText(err)}`);
      conn.destroy();
    };
    const drain = async (): Promise<void> => {
      busy = true;
      try {
        for (let next = queue.shift(); next !== undefined && !conn.destroyed; next = queue.shift()) {
          await this.dispatch(conn, encoder, next.message, next.bytes);
        }
      } catch (err) {
        fail(err);
      } finally {
        busy = false;
      }
    };
    conn.on('data', (chunk: Buffer) => {
      try {
        for (const frame of reader.push(chunk)) queue.push({ message: decoder.decode(frame), bytes: frame.length });
      } catch (err) {
        fail(err);
        return;
      }
      if (!busy && queue.length > 0) void drain();
    });
    conn.on('error', (err: NodeJS.ErrnoException) => { this.log.debug(`connection error: ${err.code ?? err.message}`); });
    conn.on('close', () => { this.connections.delete(conn); queue.length = 0; });
  }

  private async dispatch(conn: Socket, encoder: Encoder, message: unknown, bytes: number): Promise<void> {
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
    if (debug) this.log.debug(`rpc: #${msgid} method: ${method} (${bytes} bytes) args: ${shapeOf(args)}`);
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
    const sent = this.reply(conn, encoder, msgid, undefined, result);
    if (debug) {
      const micros = Number(process.hrtime.bigint() - started) / 1000;
      this.log.debug(`rpc: #${msgid} ${method} answered in ${micros.toFixed(0)} us, ${sent} bytes, ${describeReply(result)}`);
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
