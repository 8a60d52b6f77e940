import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { toHttpResponse, challengeSafe, publicDescription } from '../../src/response.js';
import { failure, REASONS, type ReasonCode } from '../../src/errors.js';

const options = { realm: 'api.example', unauthorizedMessage: 'Unauthorized', forbiddenMessage: 'Forbidden', displayErrors: false };

describe('RFC 6750 section 3 responses', () => {
  test('no credentials: 401 with a challenge that carries no error code (RFC 6750 3.1)', () => {
    const response = toHttpResponse(failure('token_missing', 'no bearer token'), options);
    assert.equal(response.status, 401);
    assert.deepEqual(response.headers, { 'WWW-Authenticate': 'Bearer realm="api.example"' });
    assert.deepEqual(response.body, { message: 'Unauthorized' });
  });
  test('binding mismatch: 401 invalid_token with the description Kong uses', () => {
    const response = toHttpResponse(failure('certificate_thumbprint_mismatch',
      'the client certificate thumbprint does not match the x5t#S256 claim'), options);
    assert.equal(response.status, 401);
    assert.equal(response.headers['WWW-Authenticate'],
      'Bearer realm="api.example", error="invalid_token", error_description="the client certificate thumbprint does not match the x5t#S256 claim"');
  });
  test('scope failure: 403 insufficient_scope with the forbidden message', () => {
    const response = toHttpResponse(failure('scope_insufficient', 'missing scope'), options);
    assert.equal(response.status, 403);
    assert.match(response.headers['WWW-Authenticate'] ?? '', /error="insufficient_scope"/);
    assert.deepEqual(response.body, { message: 'Forbidden' });
  });
  test('two Authorization headers: 400 invalid_request', () => {
    const response = toHttpResponse(failure('authorization_multiple', 'x'), options);
    assert.equal(response.status, 400);
    assert.match(response.headers['WWW-Authenticate'] ?? '', /error="invalid_request"/);
  });
  test('display_errors appends reason and detail to the body and uses the detail as error_description', () => {
    const response = toHttpResponse(failure('token_expired', 'the token expired at 2026-01-01T00:00:00Z'), { ...options, displayErrors: true });
    assert.deepEqual(response.body, { message: 'Unauthorized (token_expired: the token expired at 2026-01-01T00:00:00Z)' });
    assert.match(response.headers['WWW-Authenticate'] ?? '', /error_description="the token expired at 2026-01-01T00:00:00Z"/);
  });
  test('display_errors off (the default): a fixed description per reason, never the detail', () => {
    // Details as the modules write them: IdP address and network error, CA names, responder hosts,
    // Admin API address, bytes the client sent.
    const leaky: Array<[ReasonCode, string]> = [
      ['jwks_unavailable', 'the JWKS at https://idp.internal:8443/realms/x/certs could not be fetched: connect ECONNREFUSED 10.0.0.5:8443'],
      ['certificate_untrusted', 'no path to a configured trust anchor (CN=Corp Internal Root CA 2,O=Corp); its issuer is CN=Other'],
      ['revocation_unknown', 'OCSP responder http://ocsp.corp.internal:2560 timed out after 30000 ms; CRL http://crl.corp.internal/a.crl unreachable'],
      ['trust_anchors_unavailable', 'Admin API http://10.1.2.3:8001 answered 500 for ca_certificates/0b3c7f3e'],
      ['certificate_header_malformed', 'x-forwarded-client-cert has a key Envoy does not write: evil'],
      ['certificate_missing', 'the certificate header was ignored: the request did not come from a trusted proxy'],
      ['token_issuer_not_allowed', 'iss https://attacker.example is not one of https://idp.internal/realms/x'],
      ['internal_error', 'unexpected TypeError while verifying'],
    ];
    for (const [reason, detail] of leaky) {
      const response = toHttpResponse(failure(reason, detail), options);
      const header = response.headers['WWW-Authenticate'] ?? '';
      assert.equal(header, `Bearer realm="api.example", error="${REASONS[reason]}", error_description="${publicDescription(reason)}"`);
      for (const secret of ['idp.internal', '10.0.0.5', 'Corp', 'ocsp', '10.1.2.3', 'evil', 'trusted proxy', 'attacker', 'TypeError']) {
        assert.ok(!header.includes(secret) && !JSON.stringify(response.body).includes(secret), `${reason} leaks ${secret}`);
      }
      assert.deepEqual(response.body, { message: REASONS[reason] === 'insufficient_scope' ? 'Forbidden' : 'Unauthorized' });
    }
  });
  test('every public description is a short fixed sentence inside the RFC 6750 charset', () => {
    for (const reason of Object.keys(REASONS) as ReasonCode[]) {
      const text = publicDescription(reason);
      assert.equal(challengeSafe(text), text, reason);
      assert.ok(text.length > 10 && text.length < 100, reason);
      assert.equal(publicDescription(reason), text);
    }
  });
  test('every reason maps to 400, 401 or 403, never 5xx', () => {
    for (const reason of Object.keys(REASONS) as ReasonCode[]) {
      const { status } = toHttpResponse(failure(reason, 'd'), options);
      assert.ok(status === 400 || status === 401 || status === 403, `${reason} -> ${status}`);
    }
  });
  test('error_description and realm keep to the RFC 6750 charset (no quote, backslash, control, non-ASCII)', () => {
    const response = toHttpResponse(failure('certificate_untrusted', 'bad "CN=\\x"\r\nSet-Cookie: a=b é'),
      { ...options, displayErrors: true, realm: 'ho"st\n' });
    const header = response.headers['WWW-Authenticate'] ?? '';
    assert.equal(header,
      'Bearer realm="ho?st?", error="invalid_token", error_description="bad ?CN=?x???Set-Cookie: a=b ?"');
    assert.equal(challengeSafe('x'.repeat(500)).length, 200);
  });
});
