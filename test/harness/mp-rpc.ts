/**
 * Kong's side of the MessagePack RPC to a plugin server, as Kong 3.9.1's
 * `kong/runloop/plugin_servers/rpc/mp_rpc.lua` `Rpc:call` (lines 172-221) does it: one Unix-socket
 * connection per call taken from the cosocket keep-alive pool (`ngx.socket.connect`, line 176),
 * the request `[0, msg_id, method, {args...}]` written (183), MessagePack values read until the
 * response `[1, msg_id, err, result]` arrives (189-220), the connection put back (212).
 * At most one request is in flight per connection.
 *
 * What a call can end with, as Kong sees it (the emulator turns these into Kong's outcomes):
 * - an answer: `if data[3] ~= nil then return nil, data[3] end; return data[4]` (214-218). The
 *   error is returned as the plugin server sent it, string or not (`RpcError.value`), and a
 *   result may be nil: the caller decides what Kong does with either.
 * - connect failure: `kong.log.err("trying to connect: ", err); return nil, err` (177-180).
 * - no byte of the answer before the socket closed or the read timed out: the unpacker's first
 *   read is protected (lua-MessagePack 0.5.4 `m.unpacker`: `pcall(cursor.underflow, ...)`), so
 *   `reader()` returns nothing and Kong returns `nil, "no data"` (195-199): fail-open.
 * - part of an answer, then close or timeout: the unpacker's later reads are not protected and
 *   raise `error "missing bytes"` (lua-MessagePack `cursor_loader` underflow): a Lua error, 500.
 * - bytes that are not MessagePack (`unpack '0xc1' is unimplemented`), a message that is not a
 *   response or has another id (`assert`, 207-209): Lua errors, 500 (`protocol`).
 *
 * Differences, stated: Kong opens as many connections as it has concurrent calls and keeps at most
 * `lua_socket_pool_size` (kong.conf default 256) idle; this client caps open connections at
 * `poolSize` and queues further calls (the benchmark wants a fixed number). Kong's pool hands out
 * the most recently returned connection first (LIFO); `poolOrder: 'fifo'` rotates through them
 * instead, so consecutive calls of one event land on different connections. Kong's cosocket
 * timeouts (connect, send, read: `lua_socket_*_timeout`, 60 s by default) are one `timeoutMs` here.
 * Kong's reader also drops bytes it read past the end of the answer; here they stay queued.
 */
import { connect, type Socket } from 'node:net';
import { decode, Encoder } from '@msgpack/msgpack';

export type RpcFailureKind = 'connect' | 'timeout' | 'closed' | 'remote' | 'protocol';

/**
 * A failed call. `remote`: the plugin server answered an error (`[1, id, err, ...]` with err not
 * nil); `value` is that error as sent (a Lua string when it was a MessagePack str or bin, else
 * whatever it was), `message` its text. `connect`, `timeout`, `closed`: what Kong's `Rpc:call`
 * returns as `nil, err` (the message is Kong's err: nginx's connect error, or "no data" for a
 * read that got nothing). `protocol`: what Kong raises (a Lua error, 500): "missing bytes" for a
 * cut-off answer, an undecodable frame, an unexpected message.
 */
export class RpcError extends Error {
  constructor(readonly kind: RpcFailureKind, message: string, readonly value: unknown = message) {
    super(message);
    this.name = 'RpcError';
  }
}

/** lua-MessagePack unpacks str and bin alike into Lua strings. */
export function luaValueOf(value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString('latin1') : value;
}

/** The text of an error value, for logs and messages. */
function errorMessage(value: unknown): string {
  const lua = luaValueOf(value);
  if (typeof lua === 'string') return lua;
  let shown: string;
  try {
    shown = JSON.stringify(lua) ?? String(lua);
  } catch {
    shown = String(lua);
  }
  return `(non-string error ${Array.isArray(lua) ? 'array' : typeof lua}: ${shown.slice(0, 200)})`;
}

/**
 * Where the MessagePack value at `pos` ends in `buf`, from its headers only; -1 when `buf` does
 * not hold all of it. Throws on a byte that starts no MessagePack value (0xc1).
 */
export function msgpackValueEnd(buf: Uint8Array, pos = 0): number {
  let pending = 1;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const need = (n: number): boolean => pos + n <= buf.length;
  while (pending > 0) {
    if (!need(1)) return -1;
    const b = buf[pos] as number;
    let size = 1;
    let children = 0;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) size = 1;
    else if (b <= 0x8f) children = (b & 0x0f) * 2;
    else if (b <= 0x9f) children = b & 0x0f;
    else if (b <= 0xbf) size = 1 + (b & 0x1f);
    else {
      const fixed: Readonly<Record<number, number>> = {
        0xca: 5, 0xcb: 9, 0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9, 0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9,
        0xd4: 3, 0xd5: 4, 0xd6: 6, 0xd7: 10, 0xd8: 18,
      };
      const lengthBytes: Readonly<Record<number, number>> = {
        0xc4: 1, 0xc5: 2, 0xc6: 4, 0xc7: 1, 0xc8: 2, 0xc9: 4, 0xd9: 1, 0xda: 2, 0xdb: 4, 0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4,
      };
      const f = fixed[b];
      const l = lengthBytes[b];
      if (f !== undefined) size = f;
      else if (l !== undefined) {
        if (!need(1 + l)) return -1;
        const n = l === 1 ? view.getUint8(pos + 1) : l === 2 ? view.getUint16(pos + 1) : view.getUint32(pos + 1);
        if (b >= 0xdc) { size = 1 + l; children = b >= 0xde ? 2 * n : n; } // array16/32, map16/32
        else size = 1 + l + (b >= 0xc7 && b <= 0xc9 ? 1 : 0) + n; // bin, str, ext (+ type byte)
      } else {
        throw new Error(`unpack '0x${b.toString(16)}' is unimplemented`);
      }
    }
    if (!need(size)) return -1;
    pos += size;
    pending += children - 1;
  }
  return pos;
}

export interface MpRpcOptions {
  readonly socketPath: string;
  /** Most connections open at once (default 30, Kong's lua_socket_pool_size). */
  readonly poolSize?: number;
  /** Connect/send/read timeout per call (default 60 000 ms, Kong's cosocket default). */
  readonly timeoutMs?: number;
  /** Which idle connection a call takes: Kong's pool is LIFO (default); 'fifo' rotates. */
  readonly poolOrder?: 'lifo' | 'fifo';
}

interface Pending {
  readonly msgId: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: RpcError) => void;
}

class Connection {
  readonly socket: Socket;
  /** Bytes received and not yet decoded into a message. */
  private buffered: Buffer = Buffer.alloc(0);
  pending: Pending | undefined;
  alive = true;

  constructor(socket: Socket, private readonly onNotification: (label: unknown, args: unknown) => void) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => {
      this.alive = false;
      this.fail(this.readFailure('closed'));
    });
    socket.on('error', () => { this.alive = false; });
  }

  /**
   * What a read that ends now (socket closed, reset, or timed out) means to Kong: with no byte
   * of the answer, `nil, "no data"` (fail-open); with part of one, lua-MessagePack's unprotected
   * "missing bytes" error (a Lua error, 500).
   */
  readFailure(kind: 'closed' | 'timeout'): RpcError {
    if (this.buffered.length > 0) {
      return new RpcError('protocol', `MessagePack.lua: missing bytes (${this.buffered.length} byte(s) of an answer, then ${kind === 'timeout' ? 'the read timed out' : 'the connection closed'})`);
    }
    return new RpcError(kind, 'no data');
  }

  private onData(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length > 0 && this.alive) {
      let end: number;
      let message: unknown;
      try {
        end = msgpackValueEnd(this.buffered);
        if (end < 0) return;
        message = decode(this.buffered.subarray(0, end));
      } catch (err) {
        this.fail(new RpcError('protocol', `could not decode the plugin server's answer: ${(err as Error).message}`));
        this.alive = false;
        this.socket.destroy();
        return;
      }
      this.buffered = this.buffered.subarray(end);
      this.onMessage(message);
    }
  }

  private onMessage(message: unknown): void {
    if (!Array.isArray(message)) {
      // data[1] of a non-table: "attempt to index local 'data'" (a Lua error)
      this.fail(new RpcError('protocol', 'RPC response expected from plugin server'));
      this.alive = false;
      this.socket.destroy();
      return;
    }
    if (message[0] === 2) {
      // notification: [2, label, args] (mp_rpc.lua:201-203 Rpc:notification; the JS server sends none)
      this.onNotification(message[1], message[2]);
      return;
    }
    const pending = this.pending;
    // mp_rpc.lua:207-209: assert(data[1] == 1, "RPC response expected ...") and assert(data[2] == msg_id, ...)
    if (message[0] !== 1 || pending === undefined || message[1] !== pending.msgId) {
      this.fail(new RpcError('protocol', 'unexpected RPC response ID from plugin server'));
      this.alive = false;
      this.socket.destroy();
      return;
    }
    this.pending = undefined;
    // mp_rpc.lua:214-218: `if data[3] ~= nil then return nil, data[3] end; return data[4]`
    const err = message[2];
    if (err !== null && err !== undefined) pending.reject(new RpcError('remote', errorMessage(err), luaValueOf(err)));
    else pending.resolve(message[3]);
  }

  fail(err: RpcError): void {
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }
}

export interface RpcStats {
  calls: number;
  connectionsOpened: number;
  failures: number;
  readonly byMethod: Record<string, number>;
}

export class MpRpcClient {
  readonly socketPath: string;
  readonly poolSize: number;
  readonly timeoutMs: number;
  readonly poolOrder: 'lifo' | 'fifo';
  readonly stats: RpcStats = { calls: 0, connectionsOpened: 0, failures: 0, byMethod: {} };
  /** Notifications received (`[2, label, args]`); Kong's JS server sends none. */
  readonly notifications: Array<{ label: unknown; args: unknown }> = [];
  private msgId = 0;
  private open = 0;
  private readonly idle: Connection[] = [];
  private readonly waiters: Array<(conn: Connection | null) => void> = [];
  private closed = false;
  private readonly encoder = new Encoder(undefined, undefined, undefined, undefined, undefined, undefined, true);

  constructor(options: MpRpcOptions) {
    this.socketPath = options.socketPath;
    this.poolSize = options.poolSize ?? 30;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.poolOrder = options.poolOrder ?? 'lifo';
  }

  /** `Rpc:call(method, ...)`: resolves the result or rejects with an RpcError. */
  async call(method: string, ...args: unknown[]): Promise<unknown> {
    this.stats.calls++;
    this.stats.byMethod[method] = (this.stats.byMethod[method] ?? 0) + 1;
    const msgId = ++this.msgId;
    const deadline = Date.now() + this.timeoutMs;
    let conn: Connection;
    try {
      conn = await this.acquire(deadline);
    } catch (err) {
      this.stats.failures++;
      throw err;
    }
    // mp_rpc.lua packs nil table values by leaving the key out: ignoreUndefined does the same.
    const frame = this.encoder.encode([0, msgId, method, args]);
    try {
      const result = await new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          conn.alive = false;
          conn.fail(conn.readFailure('timeout'));
          conn.socket.destroy();
        }, Math.max(1, deadline - Date.now()));
        conn.pending = {
          msgId,
          resolve: (v) => { clearTimeout(timer); resolve(v); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        };
        conn.socket.write(frame);
      });
      this.release(conn);
      return result;
    } catch (err) {
      this.stats.failures++;
      // A remote error leaves the connection usable (Kong calls setkeepalive); anything else ends it.
      if (err instanceof RpcError && err.kind === 'remote') this.release(conn);
      else this.discard(conn);
      throw err;
    }
  }

  /** Closes every pooled connection. */
  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.socket.destroy();
    for (const waiter of this.waiters.splice(0)) waiter(null);
  }

  /** Drops idle connections (as after a plugin server restart). */
  drainIdle(): void {
    for (const conn of this.idle.splice(0)) {
      this.open--;
      conn.socket.destroy();
    }
  }

  private async acquire(deadline: number): Promise<Connection> {
    if (this.closed) throw new RpcError('closed', 'client closed');
    while (this.idle.length > 0) {
      const conn = this.poolOrder === 'lifo' ? this.idle.pop() : this.idle.shift();
      if (conn !== undefined && conn.alive && !conn.socket.destroyed) return conn;
      this.open--;
    }
    if (this.open < this.poolSize) {
      this.open++;
      try {
        return await this.connect(deadline);
      } catch (err) {
        this.open--;
        this.wakeOne();
        throw err;
      }
    }
    const conn = await new Promise<Connection | null>((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(null);
      }, Math.max(1, deadline - Date.now()));
      const waiter = (c: Connection | null): void => { clearTimeout(timer); resolve(c); };
      this.waiters.push(waiter);
    });
    if (conn === null) {
      if (this.closed) throw new RpcError('closed', 'client closed');
      // A waiter woken without a connection may open one now.
      if (this.open < this.poolSize) return this.acquire(deadline);
      throw new RpcError('timeout', 'timeout');
    }
    return conn;
  }

  private connect(deadline: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new RpcError('timeout', 'timeout'));
      }, Math.max(1, deadline - Date.now()));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        this.stats.connectionsOpened++;
        resolve(new Connection(socket, (label, args) => this.notifications.push({ label, args })));
      });
      socket.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // Kong logs "trying to connect: <err>" with nginx's wording.
        const reason = err.code === 'ECONNREFUSED' ? 'connection refused'
          : err.code === 'ENOENT' ? 'no such file or directory' : err.message;
        reject(new RpcError('connect', reason));
      });
    });
  }

  private release(conn: Connection): void {
    if (!conn.alive || conn.socket.destroyed || this.closed) {
      this.discard(conn);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter(conn);
    else this.idle.push(conn);
  }

  private discard(conn: Connection): void {
    conn.socket.destroy();
    this.open--;
    this.wakeOne();
  }

  private wakeOne(): void {
    const waiter = this.waiters.shift();
    waiter?.(null);
  }
}
