/**
 * Identity headers for the upstream: verified values (token claims, certificate facts) copied into
 * request headers, and the headers a client must never be able to set or read back upstream.
 *
 * `UpstreamHeaderPlan.build` turns an approved decision into ONE header table for Kong's
 * `kong.service.request.set_headers`: a value per configured header, and an empty array for every
 * header to remove. Kong's set_headers replaces all existing values of a name (any case), and an
 * empty array clears the header (lua-nginx-module `ngx.req.set_header` with an empty table is
 * `clear_header`), so a client-sent copy is removed in the same call that sets the real value.
 *
 * Names that differ only by `-` vs `_` are distinct headers to nginx, but many upstream stacks (CGI,
 * WSGI, PHP, Rack: `HTTP_X_USER`) read them as one; client-sent variants of a managed name are
 * cleared too.
 */
import type { CertificateFacts } from './certificate.js';

/** Certificate facts a header can carry (`cert.<fact>`). */
export const CERTIFICATE_PATHS = ['cert.subject', 'cert.san', 'cert.thumbprint', 'cert.issuer', 'cert.serial'] as const;
export type CertificatePath = (typeof CERTIFICATE_PATHS)[number];

/** Largest header value sent, in UTF-8 bytes; a longer value is not sent (never truncated). */
export const MAX_UPSTREAM_VALUE_BYTES = 4096;

/** Largest accepted header name (RFC 9110 section 5.1 token). */
const MAX_NAME_LENGTH = 256;

/**
 * Header names an identity header may not use: message framing and routing that nginx or Kong own
 * (RFC 9110 section 7.6.1 connection options, RFC 9112 framing), Kong's X-Forwarded-* set, and the
 * credentials (use `hide_credentials` to remove Authorization).
 */
const RESERVED_NAMES = new Set([
  'host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection',
  'te', 'trailer', 'upgrade', 'expect', 'authorization', 'proxy-authorization', 'cookie', 'forwarded',
  'x-real-ip', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-path',
  'x-forwarded-prefix',
]);

/** Where a header's value comes from. */
export type ValuePath =
  | { readonly kind: 'cert'; readonly fact: CertificatePath }
  | { readonly kind: 'claim'; readonly segments: readonly string[] };

/** One configured identity header, parsed. */
export interface UpstreamHeaderRule {
  readonly header: string;
  readonly path: ValuePath;
}

/** Names compare case-insensitively with `-` and `_` equivalent. */
export function headerKey(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

/** RFC 9110 section 5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Why `name` cannot be an identity header, or null when it can. `extraReserved` holds the certificate header names. */
export function headerNameProblem(name: string, extraReserved: readonly string[] = []): string | null {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || !TOKEN.test(name)) {
    return 'is not a valid header name (RFC 9110 token, at most 256 characters)';
  }
  const key = headerKey(name);
  if (RESERVED_NAMES.has(key)) return 'is reserved (framing, routing or credentials)';
  if (extraReserved.some((r) => headerKey(r) === key)) return 'is the certificate header';
  return null;
}

/**
 * Parses a value path: `cert.subject|san|thumbprint|issuer|serial`, or a claim path whose segments
 * are separated by dots (`sub`, `realm_access.roles`). A claim whose own name contains dots
 * (`https://example.com/roles`) is matched as a whole first.
 */
export function parseValuePath(path: string): { readonly ok: true; readonly path: ValuePath } | { readonly ok: false; readonly error: string } {
  if (path.startsWith('cert.')) {
    const fact = CERTIFICATE_PATHS.find((p) => p === path);
    return fact === undefined
      ? { ok: false, error: `unknown certificate fact (expected one of ${CERTIFICATE_PATHS.join(', ')})` }
      : { ok: true, path: { kind: 'cert', fact } };
  }
  const segments = path.split('.');
  if (segments.some((s) => s.length === 0)) return { ok: false, error: 'a claim path has no empty segments' };
  return { ok: true, path: { kind: 'claim', segments } };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The claim at `segments[from..]`; at each level the longest dotted key present wins. */
function resolveClaim(value: unknown, segments: readonly string[], from = 0): unknown {
  if (from === segments.length) return value;
  if (!isPlainObject(value)) return undefined;
  for (let to = segments.length; to > from; to--) {
    const key = to === from + 1 ? (segments[from] ?? '') : segments.slice(from, to).join('.');
    if (!Object.hasOwn(value, key)) continue;
    const found = resolveClaim(value[key], segments, to);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * A claim value as header text: strings as they are, numbers and booleans printed, arrays and
 * objects as JSON (RFC 8259). Null, "" and [] are absent.
 *
 * Arrays are JSON, not items joined with ", ": joined, a role named "a, b" would read upstream
 * exactly like the two roles "a" and "b". JSON keeps every element's boundary (a string element's
 * own quotes and commas are escaped), and JSON.stringify escapes control characters, so the value
 * never carries CR/LF. An upstream reads the header with one JSON.parse when it starts with "[".
 */
export function formatClaimValue(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.length === 0 ? null : jsonArray(value);
  if (isPlainObject(value)) return JSON.stringify(value);
  return null;
}

/** A JSON array; elements JSON.stringify cannot represent (undefined, functions) become null, as in JSON. */
function jsonArray(values: readonly unknown[]): string {
  return `[${values.map((v: unknown) => JSON.stringify(v) ?? 'null').join(',')}]`;
}

function certificateValue(fact: CertificatePath, cert: CertificateFacts | null): string | null {
  if (cert === null) return null;
  switch (fact) {
    case 'cert.subject': return cert.subject === '' ? null : cert.subject;
    case 'cert.issuer': return cert.issuer === '' ? null : cert.issuer;
    case 'cert.serial': return cert.serialNumber;
    case 'cert.thumbprint': return cert.thumbprint;
    // A JSON array of "TYPE:value" strings: a SAN is the certificate holder's text, and a crafted
    // one holding ", URI:..." must not read upstream like a second name.
    case 'cert.san': return cert.subjectAltNames.length === 0 ? null : jsonArray(cert.subjectAltNames);
  }
}

/** C0 controls, DEL and C1 controls: CR/LF would split the header, the others confuse parsers. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why a value cannot be sent, or null. */
export function headerValueProblem(value: string): string | null {
  if (CONTROL.test(value)) return 'contains a control character';
  if (Buffer.byteLength(value, 'utf8') > MAX_UPSTREAM_VALUE_BYTES) return `is longer than ${MAX_UPSTREAM_VALUE_BYTES} bytes`;
  return null;
}

/** The table for `kong.service.request.set_headers`: a value sets, an empty array clears. */
export type UpstreamHeaderTable = Record<string, string | readonly string[]>;

export interface UpstreamHeaderResult {
  readonly headers: UpstreamHeaderTable;
  /** Configured headers whose value was withheld (the header is cleared instead), for the log. */
  readonly withheld: ReadonlyArray<{ readonly header: string; readonly path: string; readonly problem: string }>;
}

const CLEAR: readonly string[] = Object.freeze([]);

export class UpstreamHeaderPlan {
  readonly #rules: readonly UpstreamHeaderRule[];
  readonly #clear: readonly string[];
  /** headerKey -> exact lower-case names we manage, to find client-sent variants. */
  readonly #managed: ReadonlyMap<string, string>;

  /**
   * @param rules identity headers to set
   * @param clear headers to remove (Authorization for hide_credentials, the certificate headers)
   */
  constructor(rules: readonly UpstreamHeaderRule[], clear: readonly string[]) {
    this.#rules = rules;
    this.#clear = clear;
    const managed = new Map<string, string>();
    for (const name of [...rules.map((r) => r.header), ...clear]) managed.set(headerKey(name), name.toLowerCase());
    this.#managed = managed;
  }

  /** Whether there is anything to do (no PDK call otherwise). */
  get empty(): boolean {
    return this.#managed.size === 0;
  }

  /**
   * The header table for an approved request. `requestHeaderNames` are the lower-case names the
   * request arrived with (`kong.request.get_headers` keys), to clear `-`/`_` variants of managed names.
   */
  build(
    claims: Readonly<Record<string, unknown>>,
    certificate: CertificateFacts | null,
    requestHeaderNames: Iterable<string> = [],
  ): UpstreamHeaderResult {
    // A Map, then Object.fromEntries: a name like `__proto__` stays an own key.
    const headers = new Map<string, string | readonly string[]>();
    const withheld: Array<{ header: string; path: string; problem: string }> = [];
    for (const name of this.#clear) headers.set(name, CLEAR);
    for (const rule of this.#rules) {
      const value = rule.path.kind === 'cert'
        ? certificateValue(rule.path.fact, certificate)
        : formatClaimValue(resolveClaim(claims, rule.path.segments));
      const problem = value === null ? null : headerValueProblem(value);
      if (value !== null && problem !== null) {
        withheld.push({ header: rule.header, path: rule.path.kind === 'cert' ? rule.path.fact : rule.path.segments.join('.'), problem });
      }
      headers.set(rule.header, value === null || problem !== null ? CLEAR : value);
    }
    for (const name of requestHeaderNames) {
      const lower = name.toLowerCase();
      const exact = this.#managed.get(headerKey(lower));
      // Same name in another case is replaced by set_headers itself; only `-`/`_` variants need their own entry.
      if (exact !== undefined && exact !== lower) headers.set(lower, CLEAR);
    }
    return { headers: Object.fromEntries(headers), withheld };
  }
}
