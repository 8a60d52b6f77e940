/**
 * The emulated Kong PDK: what Kong does when a plugin server asks it to run `kong.*` functions
 * during an event, with Kong's semantics and error behaviour. Each function cites the Kong file it
 * mirrors (Kong/kong 3.9.x; unchanged since 3.4 unless noted).
 *
 * Conventions (kong/runloop/plugin_servers/rpc/mp_rpc.lua):
 * - Kong calls the function with the Args array unpacked and sends back only its FIRST return
 *   value (`call_pdk_method`), so `nil, err` arrives as nil.
 * - A Lua error inside the function (bad argument, wrong phase) is not caught there: it fails the
 *   plugin handler, Kong answers the client 500 and sends no further Step. Here that is a thrown
 *   `LuaError`.
 * - A name Kong's PDK does not have: Kong logs "could not find pdk method: X" and answers nil.
 * - A name Kong has but this emulator does not implement: reported as `unsupported` (the request
 *   fails 500 and the emulator records it), never silently answered.
 * - MessagePack `nil` inside the Args arrives as `null` here; it is Lua `nil`.
 */
import { BlockList, isIP } from 'node:net';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

/** A Lua error raised by a PDK function: Kong fails the request with 500. */
export class LuaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LuaError';
  }
}

// ---------------------------------------------------------------------------------------------
// Phases (kong/pdk/private/phases.lua)

/** Phases in the bit order Kong prints them. */
const PHASE_ORDER = [
  'init_worker', 'certificate', 'client_hello', 'rewrite', 'access', 'balancer', 'response',
  'cluster_listener', 'header_filter', 'body_filter', 'log', 'preread', 'error', 'admin_api',
] as const;
export type Phase = (typeof PHASE_ORDER)[number];

const REQUEST_PHASES: readonly Phase[] = ['rewrite', 'access', 'balancer', 'response', 'header_filter', 'body_filter', 'log', 'error', 'admin_api', 'cluster_listener'];
const REWRITE_ACCESS_HEADER: readonly Phase[] = ['rewrite', 'access', 'response', 'balancer', 'header_filter', 'error', 'admin_api'];
const HEADER_BODY_LOG: readonly Phase[] = ['response', 'header_filter', 'body_filter', 'log', 'error', 'admin_api'];
const AUTH_AND_LATER: readonly Phase[] = ['access', 'header_filter', 'response', 'body_filter', 'log'];
const ACCESS_AND_REWRITE: readonly Phase[] = ['rewrite', 'access'];
const ACCESS_REWRITE_BALANCER: readonly Phase[] = ['rewrite', 'access', 'balancer'];
const PHASES_WITH_CTX: readonly Phase[] = ['certificate', 'rewrite', 'access', 'header_filter', 'response', 'body_filter', 'log'];

function checkPhase(ctx: RequestContext, accepted: readonly Phase[]): void {
  if (accepted.includes(ctx.phase)) return;
  const names = PHASE_ORDER.filter((p) => accepted.includes(p));
  throw new LuaError(`function cannot be called in ${ctx.phase} phase (only in: ${names.join(', ')})`);
}

// ---------------------------------------------------------------------------------------------
// Request model

/** A request as the emulated nginx received it. */
export interface EmulatedRequest {
  readonly method: string;
  readonly scheme: 'http' | 'https';
  /** `ngx.var.host`: lower case, no port. */
  readonly host: string;
  /** The gateway's listening port (`ngx.var.server_port`). */
  readonly port: number;
  /** Path as sent (`request_uri` up to `?`). */
  readonly rawPath: string;
  /** Query string without `?` (may be empty). */
  readonly rawQuery: string;
  /** Header lines in arrival order, names as sent. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** `ngx.var.remote_addr`: the TCP peer (no real_ip settings). */
  readonly clientIp: string;
  readonly clientPort: number;
  readonly body: Buffer;
  /** `ngx.var.kong_request_id`. */
  readonly requestId: string;
}

export interface EmulatedRequestInit {
  readonly method?: string;
  /** Path, optionally with `?query`. */
  readonly path?: string;
  readonly host?: string;
  readonly scheme?: 'http' | 'https';
  readonly port?: number;
  readonly headers?: Readonly<Record<string, string | readonly string[]>> | ReadonlyArray<readonly [string, string]>;
  readonly clientIp?: string;
  readonly clientPort?: number;
  readonly body?: string | Buffer;
}

export function buildRequest(init: EmulatedRequestInit): EmulatedRequest {
  const pathWithQuery = init.path ?? '/';
  const q = pathWithQuery.indexOf('?');
  const headers: Array<[string, string]> = [];
  if (Array.isArray(init.headers)) {
    for (const [name, value] of init.headers as ReadonlyArray<readonly [string, string]>) headers.push([name, value]);
  } else if (init.headers !== undefined) {
    for (const [name, value] of Object.entries(init.headers as Record<string, string | readonly string[]>)) {
      for (const v of typeof value === 'string' ? [value] : value) headers.push([name, v]);
    }
  }
  const hostHeader = headers.find(([n]) => n.toLowerCase() === 'host')?.[1];
  const host = (init.host ?? hostHeader ?? 'localhost').toLowerCase().replace(/:\d+$/, '');
  if (hostHeader === undefined) headers.unshift(['Host', init.host ?? 'localhost']);
  return {
    method: (init.method ?? 'GET').toUpperCase(),
    scheme: init.scheme ?? 'http',
    host,
    port: init.port ?? 8000,
    rawPath: q < 0 ? pathWithQuery : pathWithQuery.slice(0, q),
    rawQuery: q < 0 ? '' : pathWithQuery.slice(q + 1),
    headers,
    clientIp: init.clientIp ?? '127.0.0.1',
    clientPort: init.clientPort ?? 40000,
    body: typeof init.body === 'string' ? Buffer.from(init.body) : init.body ?? Buffer.alloc(0),
    requestId: randomUUID().replace(/-/g, ''),
  };
}

export interface KongLogEntry {
  /** Kong log level: alert, crit, err, warn, notice, info, debug. */
  readonly level: string;
  readonly message: string;
  /** `plugin`: the plugin's own kong.log.* call; `kong`: Kong's own line (fail-open, restarts...). */
  readonly source: 'plugin' | 'kong';
  readonly plugin?: string;
}

/** A response Kong produced itself (kong.response.exit/error, a Lua error, the guard). */
export interface KongResponse {
  readonly status: number;
  /** Header lines, names as set. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  readonly source: 'exit' | 'error' | 'lua-error' | 'guard' | 'router' | 'nginx' | 'upstream';
}

export interface ConsumerEntity {
  readonly id: string;
  readonly username?: string;
  readonly custom_id?: string;
  readonly [key: string]: unknown;
}

/** Per-request state: `ngx.ctx`, `kong.ctx.shared`, the headers bound for the service. */
export class RequestContext {
  phase: Phase = 'access';
  /** Name of the plugin whose handler runs now (for namespaced logs). */
  currentPlugin: string | undefined;
  readonly shared = new Map<string, unknown>();
  /**
   * The request's headers as nginx holds them now (`r->headers_in`): kong.service.request.set_header
   * and friends change them (ngx.req.set_header), later kong.request.get_header(s) calls see the
   * change, and they are what is sent to the service.
   */
  upstreamHeaders: Array<[string, string]>;
  /** `ngx.header`: response headers set by kong.response.set_header/add_header. */
  responseHeaders: Array<[string, string]> = [];
  exit: KongResponse | undefined;
  readonly log: KongLogEntry[] = [];
  readonly serializeValues: Array<{ key: string; value: unknown; mode: string }> = [];
  authenticatedConsumer: unknown = undefined;
  authenticatedCredential: unknown = undefined;
  /** `ngx.var.upstream_host` when set through kong.service.request.set_header("host"). */
  upstreamHost: string | undefined;

  constructor(readonly request: EmulatedRequest, readonly route: { readonly id: string; readonly name: string }) {
    this.upstreamHeaders = request.headers.map(([n, v]) => [n, v]);
  }
}

// ---------------------------------------------------------------------------------------------
// Environment shared by requests

/** `trusted_ips` (kong.conf): no default, so nothing is trusted (kong/pdk/ip.lua). */
export class TrustedIps {
  private readonly list = new BlockList();
  private readonly count: number;

  constructor(entries: readonly string[]) {
    let n = 0;
    for (const entry of entries) {
      const [addr, prefix] = entry.split('/');
      const family = isIP(addr ?? '');
      if (addr === undefined || family === 0) continue; // is_valid_ip_or_cidr filters these out
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (prefix === undefined) this.list.addAddress(addr, type);
      else this.list.addSubnet(addr, Number(prefix), type);
      n++;
    }
    this.count = n;
  }

  isTrusted(ip: unknown): boolean {
    if (this.count === 0 || typeof ip !== 'string') return false;
    const family = isIP(ip);
    if (family === 0) return false; // ipmatcher:match returns nil, err: `not not` gives false
    return this.list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }
}

export interface PdkEnvironment {
  readonly trustedIps: TrustedIps;
  readonly nodeId: string;
  readonly hostname: string;
  readonly consumers: readonly ConsumerEntity[];
  /** Entity returned by kong.router.get_route / get_service for the current route. */
  readonly routeEntity: (ctx: RequestContext) => unknown;
  readonly serviceEntity: (ctx: RequestContext) => unknown;
}

// ---------------------------------------------------------------------------------------------
// Lua helpers

function luaType(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (value instanceof Uint8Array) return 'string';
  if (typeof value === 'object') return 'table';
  return typeof value;
}

function luaString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return undefined;
}

function luaToString(value: unknown): string {
  if (value === null || value === undefined) return 'nil';
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value === 'object') return JSON.stringify(value); // Kong would print "table: 0x..."
  return String(value);
}

const isUuid = (v: string): boolean => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v);

/** lua-cjson encoding as Kong uses it: empty tables become `{}`, `/` is escaped, nil values vanish. */
export function cjsonEncode(value: unknown): string {
  const enc = (v: unknown): string => {
    if (v === null || v === undefined) return 'null';
    if (v instanceof Uint8Array) return enc(Buffer.from(v).toString('utf8'));
    if (typeof v === 'string') return JSON.stringify(v).replace(/\//g, '\\/');
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new LuaError('Cannot serialise number: must not be NaN or Infinity');
      return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(14)));
    }
    if (typeof v === 'boolean') return String(v);
    if (Array.isArray(v)) return v.length === 0 ? '{}' : `[${v.map(enc).join(',')}]`;
    if (typeof v === 'object') {
      const items = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== null && x !== undefined);
      return `{${items.map(([k, x]) => `${enc(k)}:${enc(x)}`).join(',')}}`;
    }
    throw new LuaError(`Cannot serialise ${typeof v}`);
  };
  return enc(value);
}

// ---------------------------------------------------------------------------------------------
// Header helpers (kong/pdk/private/checks.lua, ngx.req.get_headers)

/** checks.validate_header: a Lua error for a bad name or value. */
function validateHeader(name: unknown, value: unknown): void {
  if (typeof name !== 'string') throw new LuaError(`invalid header name ${JSON.stringify(luaToString(name))}: got ${luaType(name)}, expected string`);
  const t = luaType(value);
  if (t === 'table') {
    for (const v of Array.isArray(value) ? value : []) {
      if (luaType(v) !== 'string') throw new LuaError(`invalid header value in array "${name}": got ${luaType(v)}, expected string`);
    }
  } else if (t !== 'string' && t !== 'number' && t !== 'boolean') {
    throw new LuaError(`invalid header value for "${name}": got ${t}, expected array of string, string, number or boolean`);
  }
}

/** checks.validate_headers. */
function validateHeaders(headers: unknown): Record<string, unknown> {
  if (luaType(headers) !== 'table') throw new LuaError('headers must be a table');
  const record = (Array.isArray(headers) ? {} : headers) as Record<string, unknown>;
  for (const [k, v] of Object.entries(record)) validateHeader(k, v);
  return record;
}

/** checks.normalize_multi_header: "" becomes " ", numbers and booleans strings. */
function normalizeMultiHeader(value: unknown): string[] {
  const one = (v: unknown): string => {
    const s = luaString(v) ?? String(v);
    return s === '' ? ' ' : s;
  };
  return Array.isArray(value) ? value.map(one) : [one(value)];
}

function setHeader(list: Array<[string, string]>, name: string, values: readonly string[]): Array<[string, string]> {
  const lower = name.toLowerCase();
  const kept = list.filter(([n]) => n.toLowerCase() !== lower);
  for (const v of values) kept.push([name, v]);
  return kept;
}

/** ngx.req.get_headers(max): lower-case names, a string or an array per name; first `max` lines. */
export function getHeaders(lines: ReadonlyArray<readonly [string, string]>, max = 100): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of lines.slice(0, max)) {
    const key = name.toLowerCase();
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

/** mp_rpc.lua fix_mmap: every value becomes an array (`true` an empty one). */
function fixMultiMap(table: Record<string, unknown>): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const [k, v] of Object.entries(table)) out[k] = v === true ? [] : typeof v === 'string' ? [v] : (v as unknown[]);
  return out;
}

/**
 * kong.request.get_header (kong/pdk/request.lua + kong/tools/http.lua get_header, Kong >= 3.6):
 * `$http_<name>` matches header lines by lower-cased name with `-` and `_` equivalent (Kong sets
 * `underscores_in_headers on`); nginx >= 1.23 joins several lines with ", ", in which case Kong
 * looks the name up in ngx.req.get_headers() and returns the first value. Kong 3.4/3.5 (nginx
 * 1.21) returned the first matching line directly.
 */
export function getHeader(lines: ReadonlyArray<readonly [string, string]>, name: string): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/-/g, '_');
  const wanted = norm(name);
  const matching = lines.filter(([n]) => norm(n) === wanted).map(([, v]) => v);
  if (matching.length === 0) return undefined;
  const joined = matching.join(', ');
  if (!joined.includes(', ')) return joined;
  const headers = getHeaders(lines);
  // get_headers' metatable: raw key, then lower case with "_" -> "-".
  const value = headers[name] ?? headers[name.toLowerCase().replace(/_/g, '-')];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : value;
}

function parseQuery(raw: string, max = 100): Record<string, string | true | Array<string | true>> {
  const out: Record<string, string | true | Array<string | true>> = {};
  let n = 0;
  for (const part of raw.split('&')) {
    if (part === '' || n++ >= max) continue;
    const eq = part.indexOf('=');
    const decode = (s: string): string => {
      try {
        return decodeURIComponent(s.replace(/\+/g, ' '));
      } catch {
        return s;
      }
    };
    const key = decode(eq < 0 ? part : part.slice(0, eq));
    const value: string | true = eq < 0 ? true : decode(part.slice(eq + 1));
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

/** kong/tools/uri.lua normalize(path, true): decode unreserved escapes, remove dot segments, merge slashes. */
export function normalizePath(path: string): string {
  if (path === '' || path === '/') return path;
  const reserved = "!*'();:@&=+$,/?%#[]";
  let uri = path.replace(/%([0-9a-fA-F]{2})/g, (m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return reserved.includes(ch) ? m.toUpperCase() : ch;
  });
  uri = uri.replace(/\/{2,}/g, '/');
  const out: string[] = [];
  for (const seg of uri.split('/').slice(1)) {
    if (seg === '.') continue;
    if (seg === '..') { out.pop(); continue; }
    out.push(seg);
  }
  const last = uri.split('/').pop();
  const trailing = last === '.' || last === '..' ? '/' : '';
  return `/${out.join('/')}${trailing && out.length > 0 ? trailing : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Responses (kong/pdk/response.lua send/exit/error)

const HTTP_ERROR_MESSAGES: Readonly<Record<number, string>> = {
  400: 'Bad request', 401: 'Unauthorized', 402: 'Payment required', 403: 'Forbidden', 404: 'Not found',
  405: 'Method not allowed', 406: 'Not acceptable', 407: 'Proxy authentication required',
  408: 'Request timeout', 409: 'Conflict', 410: 'Gone', 411: 'Length required', 412: 'Precondition failed',
  413: 'Payload too large', 414: 'URI too long', 415: 'Unsupported media type', 416: 'Range not satisfiable',
  417: 'Expectation failed', 418: "I'm a teapot", 421: 'Misdirected request', 422: 'Unprocessable entity',
  423: 'Locked', 424: 'Failed dependency', 425: 'Too early', 426: 'Upgrade required', 428: 'Precondition required',
  429: 'Too many requests', 431: 'Request header fields too large', 451: 'Unavailable for legal reasons',
  494: 'Request header or cookie too large', 500: 'An unexpected error occurred', 501: 'Not implemented',
  502: 'An invalid response was received from the upstream server', 503: 'The upstream server is currently unavailable',
  504: 'The upstream server is timing out', 505: 'HTTP version not supported', 506: 'Variant also negotiates',
  507: 'Insufficient storage', 508: 'Loop detected', 510: 'Not extended', 511: 'Network authentication required',
};

const CONTENT_TYPE_JSON = 'application/json; charset=utf-8';

/** kong/tools/http.lua get_response_type: pick by Accept quality; JSON by default. */
function responseType(accept: string | undefined): string {
  const types: Readonly<Record<string, string>> = {
    'application/json': CONTENT_TYPE_JSON, 'application/*': CONTENT_TYPE_JSON, '*/*': CONTENT_TYPE_JSON,
    'text/html': 'text/html; charset=utf-8', 'text/plain': 'text/plain; charset=utf-8', 'text/*': 'text/plain; charset=utf-8',
    'application/xml': 'application/xml; charset=utf-8',
  };
  let best = CONTENT_TYPE_JSON;
  let max = 0;
  for (const part of (accept ?? '').split(',')) {
    const [media, ...params] = part.trim().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    const mapped = types[(media ?? '').trim().toLowerCase()];
    if (mapped !== undefined && q > max) { max = q; best = mapped; }
  }
  return best;
}

function errorTemplate(contentType: string, message: string, requestId: string): string {
  if (contentType.startsWith('text/html')) {
    return `<!doctype html>\n<html>\n  <head>\n    <meta charset="utf-8">\n    <title>Error</title>\n  </head>\n  <body>\n    <h1>Error</h1>\n    <p>${message}.</p>\n    <p>request_id: ${requestId}</p>\n  </body>\n</html>\n`;
  }
  if (contentType.startsWith('text/plain')) return `${message}\nrequest_id: ${requestId}\n`;
  if (contentType.startsWith('application/xml')) {
    return `<?xml version="1.0" encoding="UTF-8"?>\n<error>\n  <message>${message}</message>\n  <requestid>${requestId}</requestid>\n</error>\n`;
  }
  return `{\n  "message":"${message}",\n  "request_id":"${requestId}"\n}`;
}

/** response.lua send(): status, ngx.header, JSON for tables, Content-Length. */
export function buildResponse(ctx: RequestContext, status: number, body: unknown, headers: Record<string, unknown> | undefined,
  source: KongResponse['source']): KongResponse {
  let lines = [...ctx.responseHeaders];
  let hasContentType = false;
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding' || lower === 'transfer_encoding') continue; // "Ignored." with a warning
    lines = setHeader(lines, name, normalizeMultiHeader(value));
    if (lower === 'content-type' || lower === 'content_type') hasContentType = true;
  }
  let payload: Buffer;
  if (body !== null && body !== undefined && luaType(body) === 'table') {
    payload = Buffer.from(cjsonEncode(body));
    if (!hasContentType) lines = setHeader(lines, 'Content-Type', [CONTENT_TYPE_JSON]);
  } else if (body !== null && body !== undefined) {
    payload = body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(String(body));
  } else {
    payload = Buffer.alloc(0);
  }
  if (!lines.some(([n]) => n.toLowerCase() === 'content-length')) lines.push(['Content-Length', String(payload.length)]);
  return { status, headers: lines, body: payload, source };
}

/** The 500 Kong answers when a plugin handler raised a Lua error (kong/init.lua execute_collecting_plugins_iterator). */
export function unexpectedErrorResponse(ctx: RequestContext): KongResponse {
  return buildResponse(ctx, 500, { message: 'An unexpected error occurred' }, undefined, 'lua-error');
}

// ---------------------------------------------------------------------------------------------
// The PDK functions

/** Marker returned by non-returning functions (kong.response.exit/error). */
export const EXITED: unique symbol = Symbol('exited');

type PdkFunction = (env: PdkEnvironment, ctx: RequestContext, args: readonly unknown[]) => unknown;

function logFn(level: string): PdkFunction {
  // kong/pdk/log.lua: arguments concatenated; the plugin server namespaces them by plugin name.
  return (_env, ctx, args) => {
    ctx.log.push({ level, message: args.map(luaToString).join(''), source: 'plugin', plugin: ctx.currentPlugin });
    return undefined;
  };
}

function headerName(name: unknown): string {
  const s = luaString(name);
  if (s === undefined) throw new LuaError('header name must be a string');
  return s;
}

function maxHeadersArg(max: unknown): number {
  if (max === null || max === undefined) return 100; // lua_max_req_headers
  if (typeof max !== 'number') throw new LuaError('max_headers must be a number');
  if (max < 1) throw new LuaError('max_headers must be >= 1');
  if (max > 1000) throw new LuaError('max_headers must be <= 1000');
  return max;
}

function forwarded(env: PdkEnvironment, ctx: RequestContext, header: string, fallback: () => unknown): unknown {
  if (env.trustedIps.isTrusted(ctx.request.clientIp)) {
    const value = getHeader(ctx.upstreamHeaders, header);
    if (value !== undefined) return value.split(',')[0]?.trim();
  }
  return fallback();
}

const PDK: Readonly<Record<string, PdkFunction>> = {
  // kong/pdk/request.lua
  'kong.request.get_header': (_e, ctx, [name]) => {
    checkPhase(ctx, REQUEST_PHASES);
    return getHeader(ctx.upstreamHeaders, headerName(name));
  },
  'kong.request.get_headers': (_e, ctx, [max]) => {
    checkPhase(ctx, REQUEST_PHASES);
    return getHeaders(ctx.upstreamHeaders, maxHeadersArg(max));
  },
  'kong.request.get_host': (_e, ctx) => { checkPhase(ctx, REQUEST_PHASES); return ctx.request.host; },
  'kong.request.get_port': (_e, ctx) => ctx.request.port,
  'kong.request.get_scheme': (_e, ctx) => { checkPhase(ctx, REQUEST_PHASES); return ctx.request.scheme; },
  'kong.request.get_method': (_e, ctx) => { checkPhase(ctx, REQUEST_PHASES); return ctx.request.method; },
  'kong.request.get_path': (_e, ctx) => { checkPhase(ctx, REQUEST_PHASES); return normalizePath(ctx.request.rawPath); },
  'kong.request.get_raw_path': (_e, ctx) => { checkPhase(ctx, REQUEST_PHASES); return ctx.request.rawPath; },
  'kong.request.get_raw_query': (_e, ctx) => { checkPhase(ctx, REQUEST_PHASES); return ctx.request.rawQuery; },
  'kong.request.get_path_with_query': (_e, ctx) => {
    checkPhase(ctx, REQUEST_PHASES);
    const path = normalizePath(ctx.request.rawPath);
    return ctx.request.rawQuery === '' ? path : `${path}?${ctx.request.rawQuery}`;
  },
  'kong.request.get_query': (_e, ctx, [max]) => {
    checkPhase(ctx, REQUEST_PHASES);
    return parseQuery(ctx.request.rawQuery, max === null || max === undefined ? 100 : Number(max));
  },
  'kong.request.get_raw_body': (_e, ctx) => {
    checkPhase(ctx, ['rewrite', 'access', 'response', 'error', 'admin_api']);
    return ctx.request.body; // mp_rpc.lua fix_raw: sent as MessagePack bin
  },
  'kong.request.get_forwarded_scheme': (env, ctx) => forwarded(env, ctx, 'x-forwarded-proto', () => ctx.request.scheme),
  'kong.request.get_forwarded_host': (env, ctx) => forwarded(env, ctx, 'x-forwarded-host', () => ctx.request.host),
  'kong.request.get_forwarded_port': (env, ctx) => {
    const v = forwarded(env, ctx, 'x-forwarded-port', () => ctx.request.port);
    return typeof v === 'string' ? Number(v) : v;
  },

  // kong/pdk/client.lua (no real_ip settings: the forwarded values are the peer's)
  'kong.client.get_ip': (_e, ctx) => ctx.request.clientIp,
  'kong.client.get_forwarded_ip': (_e, ctx) => ctx.request.clientIp,
  'kong.client.get_port': (_e, ctx) => ctx.request.clientPort,
  'kong.client.get_forwarded_port': (_e, ctx) => ctx.request.clientPort,
  'kong.client.get_credential': (_e, ctx) => { checkPhase(ctx, AUTH_AND_LATER); return ctx.authenticatedCredential; },
  'kong.client.get_consumer': (_e, ctx) => { checkPhase(ctx, AUTH_AND_LATER); return ctx.authenticatedConsumer; },
  'kong.client.load_consumer': (env, ctx, [consumerId, byUsername]) => {
    checkPhase(ctx, AUTH_AND_LATER);
    const id = luaString(consumerId);
    if (id === undefined || id === '') throw new LuaError('consumer_id must be a string');
    const search = byUsername !== null && byUsername !== undefined && byUsername !== false;
    if (!isUuid(id) && !search) throw new LuaError('cannot load a consumer with an id that is not a uuid');
    const found = (isUuid(id) ? env.consumers.find((c) => c.id === id) : undefined)
      ?? (search ? env.consumers.find((c) => c.username === id) : undefined);
    return found;
  },
  'kong.client.authenticate': (_e, ctx, [consumer, credential]) => {
    checkPhase(ctx, ['access']);
    const c = consumer ?? undefined;
    const cred = credential ?? undefined;
    if (c !== undefined && luaType(c) !== 'table') throw new LuaError('consumer must be a table or nil');
    if (cred !== undefined && luaType(cred) !== 'table') throw new LuaError('credential must be a table or nil');
    if (c === undefined && cred === undefined) throw new LuaError('either credential or consumer must be provided');
    ctx.authenticatedConsumer = c;
    ctx.authenticatedCredential = cred;
    return undefined;
  },

  // kong/pdk/ip.lua
  'kong.ip.is_trusted': (env, _ctx, [ip]) => env.trustedIps.isTrusted(ip),

  // kong/pdk/node.lua
  'kong.node.get_id': (env) => env.nodeId,
  'kong.node.get_hostname': (env) => env.hostname,

  // kong/runloop/plugin_servers/plugin.lua exposed_api (kong.ctx.shared is a plain table in Lua)
  'kong.ctx.shared.get': (_e, ctx, [key]) => ctx.shared.get(luaToString(key)),
  'kong.ctx.shared.set': (_e, ctx, [key, value]) => {
    if (value === null || value === undefined) ctx.shared.delete(luaToString(key));
    else ctx.shared.set(luaToString(key), value);
    return undefined;
  },

  // kong/pdk/log.lua
  'kong.log.alert': logFn('alert'),
  'kong.log.crit': logFn('crit'),
  'kong.log.err': logFn('err'),
  'kong.log.warn': logFn('warn'),
  'kong.log.notice': logFn('notice'),
  'kong.log.info': logFn('info'),
  'kong.log.debug': logFn('debug'),
  'kong.log.set_serialize_value': (_e, ctx, [key, value, options]) => {
    checkPhase(ctx, PHASES_WITH_CTX);
    const k = luaString(key);
    if (k === undefined) throw new LuaError('key must be a string');
    const mode = (options !== null && typeof options === 'object' && 'mode' in options)
      ? (options as { mode: unknown }).mode : 'set';
    if (mode !== 'set' && mode !== 'add' && mode !== 'replace') throw new LuaError("mode must be 'set', 'add' or 'replace'");
    ctx.serializeValues.push({ key: k, value, mode });
    return undefined;
  },

  // kong/pdk/response.lua
  'kong.response.exit': (_e, ctx, [status, body, headers]) => {
    checkPhase(ctx, REWRITE_ACCESS_HEADER);
    if (typeof status !== 'number') throw new LuaError('code must be a number');
    if (status < 100 || status > 599) throw new LuaError('code must be a number between 100 and 599');
    const bt = luaType(body);
    if (bt !== 'nil' && bt !== 'string' && bt !== 'table') throw new LuaError('body must be a nil, string or table');
    if (headers !== null && headers !== undefined && luaType(headers) !== 'table') throw new LuaError('headers must be a nil or table');
    const h = headers === null || headers === undefined ? undefined : validateHeaders(headers);
    ctx.exit = buildResponse(ctx, status, body, h, 'exit');
    return EXITED;
  },
  'kong.response.error': (_e, ctx, [status, message, headers]) => {
    checkPhase(ctx, REWRITE_ACCESS_HEADER);
    if (typeof status !== 'number') throw new LuaError('code must be a number');
    if (status < 400 || status > 599) throw new LuaError('code must be a number between 400 and 599');
    let text: string | undefined;
    if (message !== null && message !== undefined) {
      text = luaType(message) === 'table' ? cjsonEncode(message) : luaString(message);
      if (text === undefined) throw new LuaError('message must be a nil, a string or a table');
    }
    if (headers !== null && headers !== undefined && luaType(headers) !== 'table') throw new LuaError('headers must be a nil or table');
    const h = { ...(headers === null || headers === undefined ? {} : validateHeaders(headers)) };
    const given = h['Content-Type'];
    const contentType = (Array.isArray(given) ? luaString(given[0]) : luaString(given))
      ?? responseType(getHeader(ctx.upstreamHeaders, 'accept'));
    h['Content-Type'] = contentType;
    const body = errorTemplate(contentType, text ?? HTTP_ERROR_MESSAGES[status] ?? 'The upstream server responded with ' + status, ctx.request.requestId);
    ctx.exit = buildResponse(ctx, status, body, h, 'error');
    return EXITED;
  },
  'kong.response.set_header': (_e, ctx, [name, value]) => {
    checkPhase(ctx, REWRITE_ACCESS_HEADER);
    validateHeader(name, value);
    const n = name as string;
    if (!/^transfer[-_]encoding$/i.test(n)) ctx.responseHeaders = setHeader(ctx.responseHeaders, n, normalizeMultiHeader(value));
    return undefined;
  },
  'kong.response.add_header': (_e, ctx, [name, value]) => {
    checkPhase(ctx, REWRITE_ACCESS_HEADER);
    validateHeader(name, value);
    for (const v of normalizeMultiHeader(value)) ctx.responseHeaders.push([name as string, v]);
    return undefined;
  },
  'kong.response.clear_header': (_e, ctx, [name]) => {
    checkPhase(ctx, REWRITE_ACCESS_HEADER);
    const n = headerName(name).toLowerCase();
    ctx.responseHeaders = ctx.responseHeaders.filter(([h]) => h.toLowerCase() !== n);
    return undefined;
  },
  'kong.response.set_headers': (_e, ctx, [headers]) => {
    checkPhase(ctx, REWRITE_ACCESS_HEADER);
    for (const [n, v] of Object.entries(validateHeaders(headers))) {
      if (!/^transfer[-_]encoding$/i.test(n)) ctx.responseHeaders = setHeader(ctx.responseHeaders, n, normalizeMultiHeader(v));
    }
    return undefined;
  },
  'kong.response.get_status': (_e, ctx) => { checkPhase(ctx, HEADER_BODY_LOG); return undefined; },
  'kong.response.get_header': (_e, ctx) => { checkPhase(ctx, HEADER_BODY_LOG); return undefined; },
  'kong.response.get_headers': (_e, ctx) => { checkPhase(ctx, HEADER_BODY_LOG); return undefined; },

  // kong/pdk/service/request.lua
  'kong.service.request.set_header': (_e, ctx, [name, value]) => {
    checkPhase(ctx, ACCESS_REWRITE_BALANCER);
    validateHeader(name, value);
    const n = name as string;
    if (n.toLowerCase() === 'host') ctx.upstreamHost = normalizeMultiHeader(value)[0];
    if (n.toLowerCase() === ':authority') return undefined; // "cannot set :authority pseudo-header on non-grpc requests" (2nd value)
    ctx.upstreamHeaders = setHeader(ctx.upstreamHeaders, n, normalizeMultiHeader(value));
    return undefined;
  },
  'kong.service.request.add_header': (_e, ctx, [name, value]) => {
    checkPhase(ctx, ACCESS_AND_REWRITE);
    validateHeader(name, value);
    if ((name as string).toLowerCase() === 'host') ctx.upstreamHost = normalizeMultiHeader(value)[0];
    for (const v of normalizeMultiHeader(value)) ctx.upstreamHeaders.push([name as string, v]);
    return undefined;
  },
  'kong.service.request.clear_header': (_e, ctx, [name]) => {
    checkPhase(ctx, ACCESS_AND_REWRITE);
    const n = luaString(name);
    if (n === undefined) throw new LuaError('header must be a string');
    ctx.upstreamHeaders = ctx.upstreamHeaders.filter(([h]) => h.toLowerCase() !== n.toLowerCase());
    return undefined;
  },
  'kong.service.request.set_headers': (_e, ctx, [headers]) => {
    checkPhase(ctx, ACCESS_AND_REWRITE);
    if (luaType(headers) !== 'table') throw new LuaError('headers must be a table');
    for (const [n, v] of Object.entries(validateHeaders(headers))) {
      if (n.toLowerCase() === 'host') ctx.upstreamHost = normalizeMultiHeader(v)[0];
      ctx.upstreamHeaders = setHeader(ctx.upstreamHeaders, n, normalizeMultiHeader(v));
    }
    return undefined;
  },

  // kong/pdk/router.lua
  'kong.router.get_route': (env, ctx) => env.routeEntity(ctx),
  'kong.router.get_service': (env, ctx) => env.serviceEntity(ctx),
};

/** mp_rpc.lua get_step_method: the Step variant that carries each PDK function's result. */
const STEP_BY_METHOD: Readonly<Record<string, string>> = {
  'kong.client.get_credential': 'plugin.StepCredential',
  'kong.client.load_consumer': 'plugin.StepConsumer',
  'kong.client.get_consumer': 'plugin.StepConsumer',
  'kong.client.authenticate': 'plugin.StepCredential',
  'kong.node.get_memory_stats': 'plugin.StepMemoryStats',
  'kong.router.get_route': 'plugin.StepRoute',
  'kong.router.get_service': 'plugin.StepService',
  'kong.request.get_query': 'plugin.StepMultiMap',
  'kong.request.get_headers': 'plugin.StepMultiMap',
  'kong.response.get_headers': 'plugin.StepMultiMap',
  'kong.service.response.get_headers': 'plugin.StepMultiMap',
};

/** mp_rpc.lua must_fix: multimaps. */
const MULTIMAP_METHODS = new Set(['kong.request.get_query', 'kong.request.get_headers', 'kong.response.get_headers', 'kong.service.response.get_headers']);

/** Names Kong's PDK resolves, read from kong-pdk's generated typings (Kong 3.8) plus plugin.lua's exposed_api. */
function loadKnownMethods(): Set<string> {
  const known = new Set<string>([
    'kong.log.serialize', 'kong.nginx.get_var', 'kong.nginx.get_tls1_version_str', 'kong.nginx.get_ctx',
    'kong.nginx.set_ctx', 'kong.ctx.shared.get', 'kong.ctx.shared.set', 'kong.request.get_uri_captures',
    'kong.nginx.req_start_time',
  ]);
  const root = join(dirname(require.resolve('kong-pdk/package.json')), 'kong');
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const full = join(dir, entry);
      if (statSync(full).isDirectory()) { walk(full); continue; }
      if (!entry.endsWith('.d.ts')) continue;
      const rel = relative(root, full).replace(/\.d\.ts$/, '').replace(/(^|\/)index$/, '');
      const ns = ['kong', ...rel.split('/').filter((s) => s !== '')].join('.');
      const text = readFileSync(full, 'utf8');
      for (const m of text.matchAll(/^\s{4}(\w+)\(/gm)) {
        const name = (m[1] ?? '').replace(/[a-z][A-Z]/g, (s) => `${s[0]}_${(s[1] ?? '').toLowerCase()}`);
        known.add(`${ns}.${name}`);
      }
    }
  };
  walk(root);
  return known;
}

let knownMethods: Set<string> | undefined;

export type PdkOutcome =
  | { readonly kind: 'step'; readonly stepMethod: string; readonly data: unknown }
  | { readonly kind: 'exit' }
  | { readonly kind: 'not-found' }
  | { readonly kind: 'unsupported' };

/**
 * Performs one PDK call as Kong's bridge loop does. Throws LuaError for what would be a Lua error.
 */
export function performPdkCall(env: PdkEnvironment, ctx: RequestContext, method: unknown, args: unknown): PdkOutcome {
  if (typeof method !== 'string') throw new LuaError(`bad PDK method name: ${luaType(method)}`);
  const fn = PDK[method];
  if (fn === undefined) {
    knownMethods ??= loadKnownMethods();
    if (knownMethods.has(method)) return { kind: 'unsupported' };
    // call_pdk_method: kong.log.err("could not find pdk method: ", cmd); return (nil)
    ctx.log.push({ level: 'err', message: `could not find pdk method: ${method}`, source: 'kong' });
    return { kind: 'not-found' };
  }
  const list = Array.isArray(args) ? args : [args];
  const result = fn(env, ctx, list);
  if (result === EXITED) return { kind: 'exit' };
  const data = MULTIMAP_METHODS.has(method) && result !== null && typeof result === 'object'
    ? fixMultiMap(result as Record<string, unknown>) : result;
  // get_step_method: StepError only for (nil, err), which call_pdk_method never produces.
  return { kind: 'step', stepMethod: STEP_BY_METHOD[method] ?? 'plugin.Step', data };
}
