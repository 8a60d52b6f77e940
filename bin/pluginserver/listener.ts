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
import type { Encoder } from '@msgpack/msgpack';
import { StockListenerClass, RPC_METHODS, msgpack, type StockServer, type StepReply } from './kong-pdk.js';
import { shapeOf, type RedactingLogger } from './logger.js';

class ProtocolError extends Error {}

/** Largest request accepted; a peer announcing more is cut off (Kong's requests are a few KB). */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/**
 * Walks MessagePack items from `pos` (with `pending` items still to read) using their headers
 * only, without decoding, and stops at the first item `limit` does not wholly contain. Returns
 * where it stopped and how many items remain; `pending === 0` means the value is complete.
 */
function scanItems(buf: Buffer, pos: number, pending: number, limit: number): { pos: number; pending: number } {
  while (pending > 0) {
    if (pos >= limit) break;
    const b = buf[pos] as number;
    let size: number; // bytes of this item (header + payload), children counted in `more`
    let more = 0;
    if (b <= 0x7f || b >= 0xe0) size = 1; // positive / negative fixint
    else if (b <= 0x8f) { size = 1; more = (b & 0x0f) * 2; } // fixmap
    else if (b <= 0x9f) { size = 1; more = b & 0x0f; } // fixarray
    else if (b <= 0xbf) size = 1 + (b & 0x1f); // fixstr
    else {
      const u8 = (): number | undefined => (pos + 2 <= limit ? buf[pos + 1] : undefined);
      const u16 = (): number | undefined => (pos + 3 <= limit ? buf.readUInt16BE(pos + 1) : undefined);
      const u32 = (): number | undefined => (pos + 5 <= limit ? buf.readUInt32BE(pos + 1) : undefined);
      let n: number | undefined;
      switch (b) {
        case 0xc0: case 0xc2: case 0xc3: size = 1; break; // nil, false, true
        case 0xc4: case 0xd9: n = u8(); size = 2 + (n ?? 0); break; // bin8, str8
        case 0xc5: case 0xda: n = u16(); size = 3 + (n ?? 0); break; // bin16, str16
        case 0xc6: case 0xdb: n = u32(); size = 5 + (n ?? 0); break; // bin32, str32
        case 0xc7: n = u8(); size = 3 + (n ?? 0); break; // ext8
        case 0xc8: n = u16(); size = 4 + (n ?? 0); break; // ext16
        case 0xc9: n = u32(); size = 6 + (n ?? 0); break; // ext32
        case 0xca: size = 5; break; // float32
        case 0xcb: size = 9; break; // float64
        case 0xcc: case 0xd0: size = 2; break; // uint8, int8
        case 0xcd: case 0xd1: size = 3; break; // uint16, int16
        case 0xce: case 0xd2: size = 5; break; // uint32, int32
        case 0xcf: case 0xd3: size = 9; break; // uint64, int64
        case 0xd4: size = 3; break; // fixext1
        case 0xd5: size = 4; break; // fixext2
        case 0xd6: size = 6; break; // fixext4
        case 0xd7: size = 10; break; // fixext8
        case 0xd8: size = 18; break; // fixext16
        case 0xdc: n = u16(); size = 3; more = n ?? 0; break; // array16
        case 0xdd: n = u32(); size = 5; more = n ?? 0; break; // array32
        case 0xde: n = u16(); size = 3; more = 2 * (n ?? 0); break; // map16
        case 0xdf: n = u32(); size = 5; more = 2 * (n ?? 0); break; // map32
        default: throw new ProtocolError(`invalid MessagePack byte 0x${b.toString(16)}`);
      }
      const needsLength = [0xc4, 0xd9, 0xc5, 0xda, 0xc6, 0xdb, 0xc7, 0xc8, 0xc9, 0xdc, 0xdd, 0xde, 0xdf].includes(b);
      if (needsLength && n === undefined) break; // the length field itself is not here yet
    }
    if (pos + size > limit) break;
    pos += size;
    pending += more - 1;
  }
  return { pos, pending };
}

/** Where the MessagePack value starting at `start` ends; -1 when `buf` does not hold all of it. */
export function frameEnd(buf: Buffer, start: number): number {
  const { pos, pending } = scanItems(buf, start, 1, buf.length);
  return pending === 0 ? pos : -1;
}

/**
 * Splits a byte stream into whole MessagePack values (several per chunk, or one across chunks).
 * Bytes are appended to a growing buffer and scanned once each, so tiny chunks of a large value
 * cost linear time.
 */
export class FrameReader {
  private buf = Buffer.alloc(4096);
  private start = 0; // first byte of the value being read
  private end = 0; // end of the data received
  private scanPos = 0; // where the scan of the current value stopped
  private pending = 1; // items of the current value still to read

  push(chunk: Buffer): Buffer[] {
    this.append(chunk);
    const frames: Buffer[] = [];
    for (;;) {
      const state = scanItems(this.buf, this.scanPos, this.pending, this.end);
      this.scanPos = state.pos;
      this.pending = state.pending;
      if (this.pending > 0) break;
      frames.push(Buffer.from(this.buf.subarray(this.start, this.scanPos)));
      this.start = this.scanPos;
      this.pending = 1;
      if (this.start === this.end) break;
    }
    if (this.end - this.start > MAX_FRAME_BYTES) throw new ProtocolError(`request larger than ${MAX_FRAME_BYTES} bytes`);
    return frames;
  }

  private append(chunk: Buffer): void {
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
      this.scanPos = 0;
    }
    if (this.end + chunk.length > this.buf.length) {
      const used = this.end - this.start;
      const size = Math.max(this.buf.length, (used + chunk.length) * 2);
      const next = size > this.buf.length ? Buffer.alloc(size) : this.buf;
      this.buf.copy(next, 0, this.start, this.end);
      this.scanPos -= this.start;
      this.start = 0;
      this.end = used;
      this.buf = next;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
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
    const decoder = new msgpack.Decoder();
    const encoder = new msgpack.Encoder();
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
