/**
 * The one place where a rejection becomes HTTP: status, `WWW-Authenticate` challenge and body.
 *
 * RFC 6750 section 3: the challenge uses the `Bearer` scheme with a `realm`; section 3.1 gives the
 * error codes and their status: `invalid_request` 400, `invalid_token` 401, `insufficient_scope`
 * 403; and when the request lacks any authentication information the challenge SHOULD NOT carry an
 * error code. RFC 8705 section 3 asks for 401 `invalid_token` on a binding mismatch.
 */
import { errorClassOf, type AuthFailure, type ErrorClass } from './errors.js';

export interface ResponseOptions {
  /** Realm of the challenge; Kong uses the request host. */
  readonly realm: string;
  /** Body message for 400/401 (Kong `unauthorized_error_message`). */
  readonly unauthorizedMessage: string;
  /** Body message for 403 (Kong `forbidden_error_message`). */
  readonly forbiddenMessage: string;
  /** Append the reason to the body message (Kong `display_errors`). */
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
    challenge += `, error="${errorClass}", error_description="${challengeSafe(rejection.detail)}"`;
  }
  const base = status === 403 ? options.forbiddenMessage : options.unauthorizedMessage;
  const message = options.displayErrors ? `${base} (${rejection.reason}: ${rejection.detail})` : base;
  return { status, headers: { 'WWW-Authenticate': challenge }, body: { message } };
}
