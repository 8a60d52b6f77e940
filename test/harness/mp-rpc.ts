/**
 * Kong's side of the MessagePack RPC to a plugin server, as `kong/runloop/plugin_servers/rpc/mp_rpc.lua`
 * (`Rpc:call`) does it: one Unix-socket connection per call taken from a keep-alive pool
 * (OpenResty's cosocket pool), the request `[0, msg_id, method, {args...}]` written, MessagePack
 * values read until the response `[1, msg_id, err, result]` arrives, the connection put back.
 * At most one request is in flight per connection.
 *
 * Differences, stated: Kong opens as many connections as it has concurrent calls and keeps at most
 * `lua_socket_pool_size` (30) idle; this client caps open connections at `poolSize` and queues
 * further calls (the benchmark wants a fixed number). Kong's cosocket timeouts (connect, send,
 * read: 60 s by default) are one `timeoutMs` here.
 */
import { connect, type Socket } from 'node:net';
import { Decoder, Encoder } from '@msgpack/msgpack';

export type RpcFailureKind = 'connect' | 'timeout' | 'closed' | 'remote' | 'protocol';

/**
 * A failed call. `remote` is an error string the plugin server answered (`[1, id, err, nil]`);
 * the others are what Kong's `Rpc:call` returns as `nil, err` (connect, send or read failures) or
 * raises (`protocol`: Kong asserts on an unexpected message, a Lua error).
 */
export class RpcError extends Error {
  constructor(readonly kind: RpcFailureKind, message: string) {
    super(message);
    this.name = 'RpcError';
  }
}

export interface MpRpcOptions {
  readonly socketPath: string;
  /** Most connections open at once (default 30, Kong's lua_socket_pool_size). */
  readonly poolSize?: number;
  /** Connect/send/read timeout per call (default 60 000 ms, Kong's cosocket default). */
  readonly timeoutMs?: number;
}

interface Pending {
  readonly msgId: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: RpcError) => void;
}

class Connection {
  readonly socket: Socket;
  private readonly decoder = new Decoder();
  pending: Pending | undefined;
  alive = true;

  constructor(socket: Socket, private readonly onNotification: (label: unknown, args: unknown) => void) {
    this.socket = socket;
    socket.on('close', () => {
      this.alive = false;
      this.fail(new RpcError('closed', 'closed'));
    });
    socket.on('error', () => { this.alive = false; });
    void this.read();
  }

  private async read(): Promise<void> {
    try {
      for await (const message of this.decoder.decodeStream(this.socket)) this.onMessage(message);
    } catch (err) {
      // A socket error (ECONNRESET, EPIPE: the server died mid-call) is no answer, not a bad one:
      // Kong's reader gets no data and Rpc:call returns nil, "no data", so the request goes on
      // (fail-open). Only bytes that do not decode are a protocol error (Kong's assert: a Lua error).
      if (typeof (err as NodeJS.ErrnoException).syscall === 'string') this.fail(new RpcError('closed', 'no data'));
      else this.fail(new RpcError('protocol', `could not decode the plugin server's answer: ${(err as Error).message}`));
      this.socket.destroy();
    }
  }

  private onMessage(message: unknown): void {
    if (!Array.isArray(message)) {
      this.fail(new RpcError('protocol', 'RPC response expected from plugin server'));
      this.socket.destroy();
      return;
    }
    if (message[0] === 2) {
      // notification: [2, label, args] (mp_rpc.lua Rpc:notification; the JS server sends none)
      this.onNotification(message[1], message[2]);
      return;
    }
    const pending = this.pending;
    // mp_rpc.lua: assert(data[1] == 1, "RPC response expected ...") and assert(data[2] == msg_id, ...)
    if (message[0] !== 1 || pending === undefined || message[1] !== pending.msgId) {
      this.fail(new RpcError('protocol', 'unexpected RPC response ID from plugin server'));
      this.socket.destroy();
      return;
    }
    this.pending = undefined;
    const err = message[2];
    if (err !== null && err !== undefined) pending.reject(new RpcError('remote', String(err)));
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
          conn.fail(new RpcError('timeout', 'timeout'));
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
      const conn = this.idle.pop();
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
