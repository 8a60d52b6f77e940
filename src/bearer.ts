/**
 * The bearer token as presented in the Authorization request header (RFC 6750 section 2.1).
 *
 * Only the Authorization header is read: RFC 6750 2.2 (form body) and 2.3 (URI query) are not
 * supported, on purpose (tokens in URLs end up in logs).
 */
import { fail, ok, type Result } from './errors.js';

/** Longest token accepted, in characters. Real access tokens are a few KiB; a 64 KiB header is an attack. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** RFC 6750 2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Registered HTTP authentication schemes (IANA registry, plus common vendor ones): only these are
 * named in a failure detail. Anything else might be a raw credential sent without a scheme.
 */
const KNOWN_SCHEMES = new Map([
  'Basic', 'Digest', 'DPoP', 'HOBA', 'Mutual', 'Negotiate', 'NTLM', 'OAuth', 'SCRAM-SHA-1', 'SCRAM-SHA-256',
  'vapid', 'PrivateToken', 'Concealed', 'GNAP', 'MAC', 'AWS4-HMAC-SHA256', 'Token', 'ApiKey',
].map((name) => [name.toLowerCase(), name]));

/**
 * The token from every Authorization header value of a request (`[]` when the header is absent).
 *
 * - No value, or only empty ones: `token_missing` (RFC 6750 3.1: no credentials, so no error code).
 * - Two or more header fields, or several credentials in one value (`Bearer a, Basic b`, which is
 *   also what a proxy produces when it folds two fields into one): `authorization_multiple`
 *   (RFC 6750 3.1 `invalid_request`: "uses more than one method").
 * - Another scheme (Basic, DPoP, ...), `Bearer` without a token, or a token outside the b64token
 *   grammar: `authorization_malformed` (`invalid_request`). A request with credentials we do not
 *   support is not a request without credentials.
 * - A token longer than {@link MAX_TOKEN_LENGTH}: `token_too_large`.
 *
 * The scheme is case-insensitive (RFC 9110 11.1); scheme and token are separated by one or more
 * spaces (RFC 6750 2.1 `1*SP`). Leading and trailing whitespace of the field value is ignored
 * (RFC 9110 5.5 OWS).
 */
export function extractBearerToken(authorization: readonly string[]): Result<string> {
  const present = authorization.filter((value) => typeof value === 'string' && value.trim() !== '');
  if (present.length === 0) return fail('token_missing', 'no Authorization header');
  if (authorization.length > 1) {
    return fail('authorization_multiple', `${authorization.length} Authorization headers; exactly one is allowed`);
  }
  const value = (present[0] as string).trim();

  const space = value.indexOf(' ');
  const scheme = space === -1 ? value : value.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') {
    if (value.includes(',')) return fail('authorization_multiple', 'the Authorization header carries several credentials');
    const known = KNOWN_SCHEMES.get(scheme.toLowerCase());
    const name = known === undefined ? 'an unrecognised' : `the ${known}`;
    return fail('authorization_malformed', `${name} authorization scheme is not supported; use Bearer`);
  }
  if (space === -1) return fail('authorization_malformed', 'the Bearer scheme carries no token');

  let start = space;
  while (value.charCodeAt(start) === 0x20) start++;
  const token = value.slice(start);
  if (token.length > MAX_TOKEN_LENGTH) {
    return fail('token_too_large', `the token has ${token.length} characters; at most ${MAX_TOKEN_LENGTH} are accepted`);
  }
  if (token.includes(',')) return fail('authorization_multiple', 'the Authorization header carries several credentials');
  if (!B64TOKEN.test(token)) return fail('authorization_malformed', 'the bearer token has characters outside the RFC 6750 b64token syntax');
  return ok(token);
}
