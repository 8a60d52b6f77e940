/**
 * The plugin server's logger: one line per message on stderr, with secrets scrubbed.
 *
 * kong-pdk's listener logs every RPC's arguments at debug level, and Kong copies the plugin
 * server's output into its error log; for this plugin those arguments are bearer tokens and
 * client certificates. This logger never receives RPC arguments from the launcher (it logs method
 * names, ids and shapes), and as a second line of defence it scrubs anything that looks like a
 * PEM block, a JWT or a long base64 run from every line, whatever the verbosity. Output goes to
 * stderr so stdout stays clean for `--dump-all-plugins` (Kong reads that JSON with `io.popen`).
 */
import type { PluginServerLogger } from './kong-pdk.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVEL_RANK: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 };

const PEM_BLOCK = /-----BEGIN[^-]*-----[\s\S]*?(?:-----END[^-]*-----|$)/g;
/** Runs of base64 / base64url / percent-encoded / dotted (JWT) characters. */
const LONG_RUN = /[A-Za-z0-9+/=_%.-]{32,}/g;

function looksEncoded(run: string): boolean {
  // Paths and identifiers are mostly lower case; base64 of key material mixes cases and digits.
  let upper = 0;
  let lower = 0;
  let digit = 0;
  for (const ch of run) {
    if (ch >= 'A' && ch <= 'Z') upper++;
    else if (ch >= 'a' && ch <= 'z') lower++;
    else if (ch >= '0' && ch <= '9') digit++;
  }
  return upper >= 2 && lower >= 2 && digit >= 1;
}

/** Removes PEM blocks and long encoded runs (tokens, certificates, keys) from a log line. */
export function scrubSecrets(text: string): string {
  return text
    .replace(PEM_BLOCK, (block) => `[redacted PEM, ${block.length} chars]`)
    .replace(LONG_RUN, (run) => (looksEncoded(run) ? `[redacted ${run.length} chars]` : run));
}

function render(part: unknown): string {
  if (typeof part === 'string') return part;
  if (part instanceof Error) return part.stack ?? `${part.name}: ${part.message}`;
  try {
    return JSON.stringify(part) ?? String(part);
  } catch {
    return String(part);
  }
}

/** Describes a value by shape only (types, key names, lengths), never by content. */
export function shapeOf(value: unknown, depth = 0): string {
  if (value === null || value === undefined) return 'nil';
  if (typeof value === 'string') return `string(${Buffer.byteLength(value)})`;
  if (typeof value === 'number' || typeof value === 'boolean') return typeof value;
  if (value instanceof Uint8Array) return `bin(${value.byteLength})`;
  if (Array.isArray(value)) {
    if (depth >= 2) return `array(${value.length})`;
    return `[${value.map((v) => shapeOf(v, depth + 1)).join(', ')}]`;
  }
  if (typeof value === 'object') {
    const keys = Object.keys(value);
    if (depth >= 2) return `map(${keys.length})`;
    const record = value as Record<string, unknown>;
    // Key names of RPC envelopes (EventId, Data, Method, Args...) are safe; header names are not
    // secret either, but keep it short.
    return `{${keys.slice(0, 8).map((k) => `${k}: ${shapeOf(record[k], depth + 1)}`).join(', ')}${keys.length > 8 ? ', ...' : ''}}`;
  }
  return typeof value;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Where lines go; stderr by default. */
  readonly write?: (line: string) => void;
}

/** A kong-pdk compatible logger that writes scrubbed lines to stderr. */
export class RedactingLogger implements PluginServerLogger {
  private readonly rank: number;
  private readonly write: (line: string) => void;

  constructor(options: LoggerOptions) {
    this.rank = LEVEL_RANK[options.level];
    this.write = options.write ?? ((line) => {
      // A closed stderr (the parent died) reports through its 'error' event; never throw here.
      if (!process.stderr.destroyed) process.stderr.write(line);
    });
  }

  isEnabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= this.rank;
  }

  private log(level: LogLevel, parts: readonly unknown[]): void {
    if (!this.isEnabled(level)) return;
    const message = scrubSecrets(parts.map(render).join(' '));
    this.write(`${new Date().toISOString()} [${level}] ${message.replace(/\n/g, '\n    ')}\n`);
  }

  debug(...parts: unknown[]): void { this.log('debug', parts); }
  info(...parts: unknown[]): void { this.log('info', parts); }
  warn(...parts: unknown[]): void { this.log('warn', parts); }
  error(...parts: unknown[]): void { this.log('error', parts); }
}
