import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { toHttpResponse, challengeSafe } from '../../src/response.js';
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
  test('display_errors appends reason and detail to the body only', () => {
    const response = toHttpResponse(failure('token_expired', 'the token expired'), { ...options, displayErrors: true });
    assert.deepEqual(response.body, { message: 'Unauthorized (token_expired: the token expired)' });
  });
  test('every reason maps to 400, 401 or 403, never 5xx', () => {
    for (const reason of Object.keys(REASONS) as ReasonCode[]) {
      const { status } = toHttpResponse(failure(reason, 'd'), options);
      assert.ok(status === 400 || status === 401 || status === 403, `${reason} -> ${status}`);
    }
  });
  test('error_description and realm keep to the RFC 6750 charset (no quote, backslash, control, non-ASCII)', () => {
    const response = toHttpResponse(failure('certificate_untrusted', 'bad "CN=\\x"\r\nSet-Cookie: a=b é'),
      { ...options, realm: 'ho"st\n' });
    const header = response.headers['WWW-Authenticate'] ?? '';
    assert.equal(header,
      'Bearer realm="ho?st?", error="invalid_token", error_description="bad ?CN=?x???Set-Cookie: a=b ?"');
    assert.equal(challengeSafe('x'.repeat(500)).length, 200);
  });
});
