/**
 * Operator log lines of the plugin, written to the plugin server's stderr, which Kong copies into
 * its error log. Writing locally costs no PDK round trip (a `kong.log.*` call is one per line).
 *
 * Rules: one line per rejected request at most, repeats of the same reason rate-limited (a summary
 * line says how many were suppressed), and nothing secret: no token, no certificate; a thumbprint,
 * a subject DN and a peer address are fine. Values are stripped of control characters so a crafted
 * subject cannot forge log lines.
 */

export type LogLevel = 'error' | 'warn' | 'info';

export interface LogSink {
  (level: LogLevel, line: string): void;
}

export const stderrSink: LogSink = (level, line) => {
  process.stderr.write(`${new Date().toISOString()} [${level}] mtls-pop: ${line}\n`);
};

/** Printable ASCII only, quotes escaped, bounded length. */
export function logSafe(value: string, maxLength = 256): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    out += code >= 0x20 && code <= 0x7e ? (ch === '"' ? '\\"' : ch) : '?';
    if (out.length >= maxLength) return `${out}...`;
  }
  return out;
}

interface Window {
  start: number;
  count: number;
  suppressed: number;
}

/** At most `perWindow` lines per key per `windowMs`; the next line after a window reports the rest. */
export class RateLimitedLog {
  readonly #windows = new Map<string, Window>();
  readonly #sink: LogSink;
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(sink: LogSink = stderrSink, perWindow = 10, windowMs = 10_000, now: () => number = Date.now) {
    this.#sink = sink;
    this.#perWindow = perWindow;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  /** `line` may be a function: it is then formatted only when the line is written, not when suppressed. */
  log(level: LogLevel, key: string, line: string | (() => string)): void {
    const now = this.#now();
    let window = this.#windows.get(key);
    if (window === undefined || now - window.start >= this.#windowMs) {
      if (window !== undefined && window.suppressed > 0) {
        this.#sink(level, `${window.suppressed} similar messages suppressed (${key})`);
      }
      if (this.#windows.size >= 1000) this.#windows.clear();
      window = { start: now, count: 0, suppressed: 0 };
      this.#windows.set(key, window);
    }
    if (window.count < this.#perWindow) {
      window.count++;
      this.#sink(level, typeof line === 'string' ? line : line());
    } else {
      window.suppressed++;
    }
  }
}
