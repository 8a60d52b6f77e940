/**
 * The one place where a rejection becomes HTTP: status, `WWW-Authenticate` challenge and body.
 *
 * RFC 6750 section 3: the challenge uses the `Bearer` scheme with a `realm`; section 3.1 gives the
 * error codes and their status: `invalid_request` 400, `invalid_token` 401, `insufficient_scope`
 * 403; and when the request lacks any authentication information the challenge SHOULD NOT carry an
 * error code. RFC 8705 section 3 asks for 401 `invalid_token` on a binding mismatch.
 *
 * What a client learns: the RFC 6750 `error` code always, and an `error_description` that is a
 * fixed sentence per reason (`PUBLIC_DESCRIPTIONS`, else one per error class). A failure's
 * `detail` names things an attacker should not learn (the IdP host and port and the network
 * error, configured CA names, OCSP/CRL responder hosts, Admin API addresses) and can quote bytes
 * the client sent; it goes to the client only with `display_errors`, and otherwise stays in the
 * log, the serialized log record and `mtls-pop explain`, while the metrics count the reason code.
 */
import { errorClassOf, type AuthFailure, type ErrorClass, type ReasonCode } from './errors.js';

export interface ResponseOptions {
  /** Realm of the challenge; Kong uses the request host. */
  readonly realm: string;
  /** Body message for 400/401 (Kong `unauthorized_error_message`). */
  readonly unauthorizedMessage: string;
  /** Body message for 403 (Kong `forbidden_error_message`). */
  readonly forbiddenMessage: string;
  /**
   * Kong `display_errors`: append the reason and its detail to the body message, and use the
   * detail as `error_description`. Off (the default): fixed descriptions only.
   */
  readonly displayErrors: boolean;
}

export interface HttpRejection {
  readonly status: 400 | 401 | 403;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: { readonly message: string };
}

const STATUS: Record<ErrorClass, 400 | 401 | 403> = {
  no_credentials: 401,
  invalid_request: 400,
  invalid_token: 401,
  insufficient_scope: 403,
};

/** What every rejection of a class may tell a client (used when a reason has no sentence of its own). */
const CLASS_DESCRIPTIONS: Record<ErrorClass, string> = {
  no_credentials: 'no access token was presented',
  invalid_request: 'the request is malformed',
  invalid_token: 'the access token or the client certificate is not valid for this request',
  insufficient_scope: 'the access token does not grant access to this resource',
};

/**
 * Fixed, public sentences: each names what is wrong in terms the client already knows and nothing
 * about the gateway's configuration or its network. Reasons not listed use their class sentence.
 * The untrusted-peer and the missing-header cases share one sentence on purpose (no oracle for
 * trusted_ips).
 */
const PUBLIC_DESCRIPTIONS: Partial<Record<ReasonCode, string>> = {
  request_headers_too_many: 'the request has too many header lines',
  authorization_multiple: 'the request carries more than one access token',
  authorization_malformed: 'the Authorization header is not a Bearer token',
  token_expired: 'the access token expired',
  token_not_yet_valid: 'the access token is not valid yet',
  jwks_unavailable: 'the access token could not be verified',
  audience_not_allowed: 'the access token is not intended for this resource',
  scope_insufficient: 'the access token lacks the required scope',
  certificate_missing: 'no client certificate was presented',
  certificate_header_multiple: 'the client certificate could not be read',
  certificate_header_malformed: 'the client certificate could not be read',
  certificate_header_too_large: 'the client certificate could not be read',
  certificate_too_many: 'the client certificate could not be read',
  certificate_malformed: 'the client certificate could not be read',
  certificate_untrusted: 'the client certificate is not trusted',
  certificate_expired: 'the client certificate is not valid at this time',
  certificate_not_yet_valid: 'the client certificate is not valid at this time',
  certificate_chain_invalid: 'the client certificate is not trusted',
  certificate_is_ca: 'the client certificate is not an end-entity certificate',
  certificate_not_for_client_auth: 'the client certificate is not for client authentication',
  trust_anchors_unavailable: 'the client certificate could not be verified',
  certificate_revoked: 'the client certificate is revoked',
  revocation_unknown: 'the client certificate could not be verified',
  token_not_bound: 'the access token is not certificate-bound',
  token_cnf_malformed: 'the access token cnf claim is malformed',
  token_cnf_unsupported: 'the access token is bound by a confirmation method this resource does not check',
  certificate_thumbprint_mismatch: 'the client certificate thumbprint does not match the x5t#S256 claim',
  consumer_not_found: 'the access token does not grant access to this resource',
  internal_error: 'the request could not be verified',
};

/** The `error_description` a client gets for a reason when `display_errors` is off. */
export function publicDescription(reason: ReasonCode): string {
  return PUBLIC_DESCRIPTIONS[reason] ?? CLASS_DESCRIPTIONS[errorClassOf(reason)];
}

/**
 * RFC 6750 section 3: `error_description` (and realm, as a quoted-string) may only hold
 * %x20-21 / %x23-5B / %x5D-7E: printable ASCII without `"` and `\`. Anything else is replaced.
 */
export function challengeSafe(text: string, maxLength = 200): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    out += code >= 0x20 && code <= 0x7e && ch !== '"' && ch !== '\\' ? ch : '?';
    if (out.length >= maxLength) break;
  }
  return out;
}

/** Builds the status, challenge and body for a rejection. */
export function toHttpResponse(rejection: AuthFailure, options: ResponseOptions): HttpRejection {
  const errorClass = errorClassOf(rejection.reason);
  const status = STATUS[errorClass];
  let challenge = `Bearer realm="${challengeSafe(options.realm)}"`;
  if (errorClass !== 'no_credentials') {
    const description = options.displayErrors ? rejection.detail : publicDescription(rejection.reason);
    challenge += `, error="${errorClass}", error_description="${challengeSafe(description)}"`;
  }
  const base = status === 403 ? options.forbiddenMessage : options.unauthorizedMessage;
  const message = options.displayErrors ? `${base} (${rejection.reason}: ${rejection.detail})` : base;
  return { status, headers: { 'WWW-Authenticate': challenge }, body: { message } };
}
