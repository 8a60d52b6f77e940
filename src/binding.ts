/**
 * Certificate binding of access tokens: RFC 8705 section 3.
 *
 * The token carries the confirmation method `cnf` (RFC 7800 section 3.1) with member `x5t#S256`: the
 * base64url-encoded SHA-256 thumbprint of the DER certificate the token was issued to
 * (RFC 8705 section 3.1). The resource server compares it with the thumbprint of the certificate it
 * received and MUST reject a mismatch with 401 `invalid_token` (RFC 8705 section 3).
 *
 * A confirmation is a promise that the presenter proves possession of a key; accepting the token
 * without that proof turns a stolen token back into a bearer token. So a token whose `cnf` the
 * plugin cannot check is refused in every mode (`token_cnf_unsupported`): a member other than
 * `x5t#S256` (`jkt` of DPoP, RFC 9449 section 6; `jwk`, `jwe`, `jku`, `kid` of RFC 7800 section
 * 3), alone or next to `x5t#S256`, and `x5t#S256` itself when `proof_of_possession_mtls` is off.
 * A `cnf` that is not a JSON object, or an empty one (RFC 7800 section 3.1: its members identify
 * the key; none identifies nothing), is `token_cnf_malformed`.
 */
import type { PopMode } from './config.js';
import { ok, fail, type Result } from './errors.js';

const X5T_MEMBER = 'x5t#S256';

/** A base64url SHA-256 digest without padding: 32 bytes are exactly 43 characters. */
const X5T_S256 = /^[A-Za-z0-9_-]{43}$/;

/**
 * Extracts `cnf["x5t#S256"]` from verified claims: no cnf -> null; a cnf that is malformed, or
 * that holds any other confirmation member -> failure.
 */
export function boundThumbprint(claims: Readonly<Record<string, unknown>>): Result<string | null> {
  if (!Object.prototype.hasOwnProperty.call(claims, 'cnf')) return ok(null);
  const cnf = claims['cnf'];
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) {
    return fail('token_cnf_malformed', 'the cnf claim is not a JSON object');
  }
  const members = Object.keys(cnf);
  if (members.length === 0) return fail('token_cnf_malformed', 'the cnf claim is an empty object: it confirms no key');
  const others = members.filter((member) => member !== X5T_MEMBER);
  if (others.length > 0) {
    const named = others.slice(0, 3).map((member) => JSON.stringify(member.slice(0, 24))).join(', ');
    return fail('token_cnf_unsupported',
      `the token is bound by a confirmation method this plugin does not check (cnf ${named}${others.length > 3 ? ', ...' : ''}); only x5t#S256 is checked`);
  }
  const value: unknown = (cnf as Record<string, unknown>)[X5T_MEMBER];
  if (typeof value !== 'string' || value.length === 0) {
    return fail('token_cnf_malformed', 'cnf x5t#S256 is not a non-empty string');
  }
  if (!X5T_S256.test(value)) {
    const hint = /^[0-9a-fA-F]{64}$/.test(value)
      ? ' (it looks like hex; RFC 8705 requires base64url)'
      : value.endsWith('=') ? ' (base64url must not be padded)' : '';
    return fail('token_cnf_malformed', `cnf x5t#S256 is not a base64url SHA-256 thumbprint${hint}`);
  }
  return ok(value);
}

/**
 * Comparison of two thumbprints of equal (fixed) length whose time does not depend on where they
 * differ (no early exit); without the two Buffer copies timingSafeEqual would need.
 */
function sameThumbprint(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/**
 * Decides whether the certificate requirement applies to a verified token.
 * strict: always; optional: only when the token carries `cnf.x5t#S256`; off: never.
 */
export function requiresCertificate(mode: PopMode, bound: string | null): boolean {
  return mode === 'strict' || (mode === 'optional' && bound !== null);
}

/**
 * Checks the binding of a verified token to the presented certificate's thumbprint.
 * `certificateThumbprint` is null when no (trusted) certificate was presented.
 */
export function checkBinding(mode: PopMode, bound: string | null, certificateThumbprint: string | null): Result<void> {
  if (mode === 'off') {
    return bound === null ? ok(undefined)
      : fail('token_cnf_unsupported', 'the access token is certificate-bound, but proof_of_possession_mtls is off on this route, so the binding cannot be checked');
  }
  if (bound === null) {
    return mode === 'strict'
      ? fail('token_not_bound', 'the access token is not certificate-bound (no cnf x5t#S256 claim)')
      : ok(undefined);
  }
  if (certificateThumbprint === null) {
    return fail('certificate_missing', 'the access token is certificate-bound but no client certificate was presented');
  }
  if (!sameThumbprint(bound, certificateThumbprint)) {
    return fail('certificate_thumbprint_mismatch',
      'the client certificate thumbprint does not match the x5t#S256 claim');
  }
  return ok(undefined);
}
