/**
 * Issuer, audience and scope checks on a verified token's claims, with the semantics of Kong's
 * openid-connect plugin (`issuers_allowed`, `audience_required`, `scopes_required`).
 */
import { fail, ok, type Result } from './errors.js';

/** A claim value made safe for a failure detail: printable ASCII without quotes, at most 100 characters. */
export function safeClaimText(value: unknown): string {
  if (typeof value !== 'string') return value === undefined ? 'absent' : `a ${value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value}`;
  const printable = value.replace(/[^\x20-\x7e]|["\\]/g, '?');
  return `"${printable.length > 100 ? `${printable.slice(0, 100)}...` : printable}"`;
}

/** Issuer identifiers compare equal with and without trailing slashes (Kong normalises them the same way). */
export function normaliseIssuer(issuer: string): string {
  return issuer.replace(/\/+$/, '');
}

/**
 * RFC 7519 4.1.1 / RFC 9068 4: the `iss` claim must be one of the allowed issuers.
 * An empty allow-list allows nothing.
 */
export function checkIssuer(iss: unknown, allowed: readonly string[]): Result<void> {
  if (typeof iss !== 'string' || iss === '') {
    return fail('token_issuer_not_allowed', `the iss claim is ${iss === '' ? 'empty' : safeClaimText(iss)}`);
  }
  const issuer = normaliseIssuer(iss);
  for (const candidate of allowed) {
    if (normaliseIssuer(candidate) === issuer) return ok(undefined);
  }
  return fail('token_issuer_not_allowed', `issuer ${safeClaimText(iss)} is not allowed`);
}

/**
 * RFC 7519 4.1.3: `aud` is a string or an array of strings; it must contain at least one of the
 * required audiences (exact, case-sensitive match). `null` or an empty list requires nothing.
 */
export function checkAudience(aud: unknown, required: readonly string[] | null): Result<void> {
  if (required === null || required.length === 0) return ok(undefined);
  const audiences = stringsOf(aud);
  if (audiences === null) return fail('audience_not_allowed', `the aud claim is ${safeClaimText(aud)}`);
  for (const audience of audiences) {
    if (required.includes(audience)) return ok(undefined);
  }
  return fail('audience_not_allowed', 'the token audience does not include a required audience');
}

/**
 * RFC 8693 4.2 / RFC 9068 2.2.3: `scope` is a space-separated string; some servers send an array
 * (in `scope` or `scp`), which is accepted too.
 *
 * `required` follows Kong's `scopes_required`: each entry is a space-separated set of scopes that
 * must ALL be present; the entries are alternatives, and one satisfied entry is enough.
 * `null` or an empty list requires nothing.
 */
export function checkScopes(scope: unknown, required: readonly string[] | null): Result<void> {
  if (required === null || required.length === 0) return ok(undefined);
  const granted = new Set(typeof scope === 'string' ? splitScopes(scope) : (stringsOf(scope) ?? []).flatMap(splitScopes));
  for (const entry of required) {
    if (splitScopes(entry).every((needed) => granted.has(needed))) return ok(undefined);
  }
  return fail('scope_insufficient', `the token scopes satisfy none of the ${required.length} required scope sets`);
}

function splitScopes(value: string): string[] {
  return value.split(/[ \t]+/).filter((part) => part !== '');
}

/** A string as a one-element list, an array's string elements, or null for anything else. */
function stringsOf(value: unknown): string[] | null {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return null;
}
