/**
 * Typed failures with stable reason codes.
 *
 * Every way a request can fail has one reason code here. Codes are part of the public interface:
 * they appear in logs, in `kong.log.set_serialize_value`, in metrics and (with `display_errors`)
 * in responses. Never rename one; add new ones instead. The mapping to HTTP lives in one place:
 * `response.ts`.
 *
 * A failure's `detail` is a short, human-readable sentence for operators. It must never contain a
 * token, a whole certificate or any other secret: at most a claim name, a thumbprint or a subject.
 */

/** RFC 6750 section 3.1 error classes a reason falls into. */
export type ErrorClass =
  /** No credentials at all: RFC 6750 3.1 says the challenge then carries no error code. */
  | 'no_credentials'
  /** RFC 6750 3.1 `invalid_request` (400): malformed request, several tokens or methods. */
  | 'invalid_request'
  /** RFC 6750 3.1 `invalid_token` (401): expired, revoked, malformed, or not bound (RFC 8705 3). */
  | 'invalid_token'
  /** RFC 6750 3.1 `insufficient_scope` (403): the token lacks the required scope or audience. */
  | 'insufficient_scope';

export const REASONS = {
  // --- the request as a whole
  request_headers_too_many: 'invalid_request',
  // --- the bearer token as presented (RFC 6750 section 2.1)
  token_missing: 'no_credentials',
  authorization_multiple: 'invalid_request',
  authorization_malformed: 'invalid_request',
  // --- the JWT itself
  token_malformed: 'invalid_token',
  token_too_large: 'invalid_token',
  token_algorithm_not_allowed: 'invalid_token',
  token_type_not_allowed: 'invalid_token',
  token_crit_unsupported: 'invalid_token',
  token_signature_invalid: 'invalid_token',
  token_key_not_found: 'invalid_token',
  token_expired: 'invalid_token',
  token_not_yet_valid: 'invalid_token',
  token_issuer_not_allowed: 'invalid_token',
  token_claims_invalid: 'invalid_token',
  jwks_unavailable: 'invalid_token',
  // --- audience and scopes (Kong openid-connect audience_required / scopes_required)
  audience_not_allowed: 'insufficient_scope',
  scope_insufficient: 'insufficient_scope',
  // --- the certificate header
  certificate_missing: 'invalid_token',
  certificate_header_multiple: 'invalid_token',
  certificate_header_malformed: 'invalid_token',
  certificate_header_too_large: 'invalid_token',
  certificate_too_many: 'invalid_token',
  certificate_malformed: 'invalid_token',
  // --- chain validation (RFC 5280 section 6)
  certificate_untrusted: 'invalid_token',
  certificate_expired: 'invalid_token',
  certificate_not_yet_valid: 'invalid_token',
  certificate_chain_invalid: 'invalid_token',
  certificate_is_ca: 'invalid_token',
  certificate_not_for_client_auth: 'invalid_token',
  trust_anchors_unavailable: 'invalid_token',
  // --- revocation
  certificate_revoked: 'invalid_token',
  revocation_unknown: 'invalid_token',
  // --- the binding (RFC 8705 section 3)
  token_not_bound: 'invalid_token',
  token_cnf_malformed: 'invalid_token',
  /** The token carries a confirmation (cnf) the plugin does not check: jkt (DPoP), jwk, ..., or x5t#S256 with the mode off. */
  token_cnf_unsupported: 'invalid_token',
  certificate_thumbprint_mismatch: 'invalid_token',
  // --- consumer mapping (Kong openid-connect consumer_claim): a valid token for no known consumer
  consumer_not_found: 'insufficient_scope',
  // --- anything unexpected: still a rejection, never a pass
  internal_error: 'invalid_token',
} as const satisfies Record<string, ErrorClass>;

export type ReasonCode = keyof typeof REASONS;

/** A rejection: what went wrong (stable code) and a safe one-line explanation. */
export interface AuthFailure {
  readonly reason: ReasonCode;
  readonly detail: string;
}

export function failure(reason: ReasonCode, detail: string): AuthFailure {
  return { reason, detail };
}

export function errorClassOf(reason: ReasonCode): ErrorClass {
  return REASONS[reason];
}

/** The outcome of a step: a value or a typed failure. Core steps return these instead of throwing. */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: AuthFailure };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(reason: ReasonCode, detail: string): Result<T> {
  return { ok: false, error: { reason, detail } };
}

export function isReasonCode(value: unknown): value is ReasonCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(REASONS, value);
}
