/**
 * The plugin server's socket (ours; kong-pdk's `listener.js` is no longer used).
 *
 * Wire format unchanged (kong-pdk `listener.js`, Kong `rpc/mp_rpc.lua`): bare MessagePack values
 * on a Unix stream socket, request `[0, msgid, "plugin.Method", [args]]`, response
 * `[1, msgid, error|nil, result]`.
 *
 * The stock listener decodes each 'data' chunk as exactly one message: two messages in one chunk
 * throw inside the event handler and kill the process, and so does a malformed frame. Here a
 * chunk is decoded in place, value after value (codec.ts); a value cut by the chunk's end is
 * buffered and completed by its MessagePack headers (FrameReader), so a large value in tiny
 * chunks costs linear time. Requests of one connection are handled strictly in order, one at a
 * time (Kong keeps at most one request in flight per connection); a protocol error closes that
 * connection only. Debug lines name the method, id and argument shapes, never argument values
 * (they carry tokens and certificates).
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import { CodecError, Incomplete, decodeValue, decodedEnd, encodeResponse } from './codec.js';
import { RPC_METHODS, type Replier } from './server.js';
import { shapeOf, type RedactingLogger } from './logger.js';

class ProtocolError extends CodecError {}

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

  /** No partial value is buffered. */
  get empty(): boolean {
    return this.start === this.end;
  }

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

function errorText(err: unknown): string {
  if (typeof err === 'string') return err;
  if (err instanceof Error) return err.message;
  return 'Unknown plugin listener error encountered';
}

function describeReply(result: unknown): string {
  if (typeof result === 'object' && result !== null && 'Data' in result) {
    const data = (result as { Data: unknown }).Data;
    if (typeof data === 'string') return `Data: ${data === 'ret' ? '"ret"' : shapeOf(data)}`;
    if (typeof data === 'object' && data !== null && 'Method' in data) {
      const method = (data as { Method: unknown }).Method;
      return `Data: call ${typeof method === 'string' ? method : shapeOf(method)}`;
    }
  }
  return shapeOf(result);
}

/** Where a connection's requests go: the plugin host in this process, or the multi-worker front. */
export interface RpcTarget {
  call(method: string, args: readonly unknown[], replier: Replier): void;
}

/** Where a connection's answers go: a Kong socket, or a worker's pipe to the front (worker.ts). */
export interface Sink {
  readonly destroyed: boolean;
  write(frame: Buffer): void;
  destroy(): void;
}

/** One Kong connection: its byte stream, its queue of requests and the one being answered. */
export class Connection implements Replier {
  private readonly reader = new FrameReader();
  private readonly queue: unknown[] = [];
  /** Byte size of each queued request (for debug lines). */
  private readonly sizes: number[] = [];
  private busy = false;
  private draining = false;
  private msgid = 0;
  private method = '';
  private started = 0n;

  constructor(
    private readonly socket: Sink, private readonly target: RpcTarget, private readonly log: RedactingLogger,
    private readonly debug: boolean, private readonly methods: ReadonlySet<string> = RPC_METHODS,
  ) {}

  onData(chunk: Buffer): void {
    try {
      if (this.reader.empty) {
        // Kong writes one request per call: decode it from the chunk itself.
        let at = 0;
        while (at < chunk.length) {
          let message: unknown;
          try {
            message = decodeValue(chunk, at, chunk.length);
          } catch (err) {
            if (!(err instanceof Incomplete)) throw err;
            this.reader.push(chunk.subarray(at));
            break;
          }
          this.sizes.push(decodedEnd - at);
          at = decodedEnd;
          this.queue.push(message);
        }
      } else {
        for (const frame of this.reader.push(chunk)) {
          this.queue.push(decodeValue(frame, 0, frame.length));
          this.sizes.push(frame.length);
        }
      }
    } catch (err) {
      this.fail(err);
      return;
    }
    this.drain();
  }

  onClose(): void {
    this.queue.length = 0;
    this.sizes.length = 0;
  }

  private fail(err: unknown): void {
    if (this.socket.destroyed) return;
    this.log.warn(`closing connection after protocol error: ${errorText(err)}`);
    this.socket.destroy();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.busy && this.queue.length > 0 && !this.socket.destroyed) {
        this.busy = true;
        this.dispatch(this.queue.shift(), this.sizes.shift() ?? 0);
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.draining = false;
    }
  }

  private dispatch(message: unknown, bytes: number): void {
    if (!Array.isArray(message) || message.length !== 4 || message[0] !== 0) {
      throw new ProtocolError(`expected a request [0, msgid, method, args], got ${shapeOf(message)}`);
    }
    const msgid: unknown = message[1];
    if (typeof msgid !== 'number' || !Number.isInteger(msgid)) {
      throw new ProtocolError(`request id must be an integer, got ${shapeOf(msgid)}`);
    }
    this.msgid = msgid;
    const method: unknown = message[2];
    const args: unknown = message[3];
    if (typeof method !== 'string') return this.reject('method name must be a string');
    if (!Array.isArray(args)) return this.reject('arguments must be an array');
    const dot = method.indexOf('.');
    const ns = dot < 0 ? method : method.slice(0, dot);
    if (ns !== 'plugin') return this.reject(`RPC for ${ns} is not supported`);
    const cmd = method.slice(dot + 1);
    if (!this.methods.has(cmd)) {
      this.log.error(`rpc: #${msgid} method ${cmd} not implemented`);
      return this.reject(`method ${cmd} not implemented`);
    }
    if (this.debug) {
      this.method = method;
      this.started = process.hrtime.bigint();
      this.log.debug(`rpc: #${msgid} method: ${method} (${bytes} bytes) args: ${shapeOf(args)}`);
    }
    this.target.call(cmd, args, this);
  }

  private reject(error: string): void {
    this.log.warn(`rpc: #${this.msgid} rejected: ${error}`);
    this.answer(error, undefined);
  }

  /** Writes `[1, msgid, error, result]` for the request being handled, then handles the next. */
  answer(error: string | undefined, result: unknown): void {
    if (!this.busy) return; // answered already (a bug elsewhere must not answer twice)
    const msgid = this.msgid;
    if (!this.socket.destroyed) {
      let frame: Buffer;
      try {
        frame = encodeResponse(msgid, error, result);
      } catch (err) {
        this.log.error(`rpc: #${msgid} could not encode the response: ${errorText(err)}`);
        frame = encodeResponse(msgid, 'plugin server could not encode the response', undefined);
      }
      this.socket.write(frame);
      if (this.debug) {
        const micros = Number(process.hrtime.bigint() - this.started) / 1000;
        if (error !== undefined) this.log.debug(`rpc: #${msgid} ${this.method} failed: ${error}`);
        this.log.debug(`rpc: #${msgid} ${this.method} answered in ${micros.toFixed(0)} us, ${frame.length} bytes, ${error === undefined ? describeReply(result) : 'error'}`);
      }
    }
    this.busy = false;
    this.drain();
  }
}

export class StreamingListener {
  private server: NetServer | undefined;
  private readonly connections = new Set<Socket>();

  constructor(private readonly target: RpcTarget, readonly prefix: string, private readonly log: RedactingLogger) {}

  serve(): NetServer {
    try {
      unlinkSync(this.prefix);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const debug = this.log.isEnabled('debug');
    const server = createServer((socket) => {
      this.connections.add(socket);
      const conn = new Connection(socket as Sink, this.target, this.log, debug);
      socket.on('data', (chunk: Buffer) => conn.onData(chunk));
      socket.on('error', (err: NodeJS.ErrnoException) => { this.log.debug(`connection error: ${err.code ?? err.message}`); });
      socket.on('close', () => { this.connections.delete(socket); conn.onClose(); });
    });
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
}
