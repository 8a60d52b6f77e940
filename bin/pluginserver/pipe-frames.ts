/**
 * Framing of the pipe between the multi-worker front (front.ts) and a worker (worker.ts):
 * `[u32 connection key][u32 length][length bytes]`, big-endian. The bytes are one whole MessagePack
 * request or response, exactly as on Kong's socket. Length 0xffffffff (no bytes) closes the key's
 * connection: the front sends it when Kong closed the socket, the worker when the request bytes
 * were not a request it can decode. Key 0 is the front's own connection to the worker.
 */

export const CLOSE = 0xffff_ffff;
export const FRONT_KEY = 0;

export function pipeFrame(key: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(8 + payload.length);
  frame.writeUInt32BE(key, 0);
  frame.writeUInt32BE(payload.length, 4);
  payload.copy(frame, 8);
  return frame;
}

export function closeFrame(key: number): Buffer {
  const frame = Buffer.allocUnsafe(8);
  frame.writeUInt32BE(key, 0);
  frame.writeUInt32BE(CLOSE, 4);
  return frame;
}

/** Cuts a pipe's byte stream into `(key, payload | null)`; payload null is CLOSE. */
export class PipeReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (key: number, payload: Buffer | null) => void) {}

  push(chunk: Buffer): void {
    let data = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let at = 0;
    while (data.length - at >= 8) {
      const key = data.readUInt32BE(at);
      const length = data.readUInt32BE(at + 4);
      if (length === CLOSE) {
        at += 8;
        this.onFrame(key, null);
        continue;
      }
      if (data.length - at - 8 < length) break;
      const payload = data.subarray(at + 8, at + 8 + length);
      at += 8 + length;
      this.onFrame(key, payload);
    }
    data = data.subarray(at);
    this.buf = data.length === 0 ? Buffer.alloc(0) : Buffer.from(data);
  }
}
