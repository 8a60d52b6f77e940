import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractBearerToken, MAX_TOKEN_LENGTH } from '../../src/bearer.js';

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

function reasonOf(values: readonly string[]): string {
  const result = extractBearerToken(values);
  return result.ok ? `ok:${result.value}` : result.error.reason;
}

test('Bearer scheme with a JWT gives the token', () => {
  assert.equal(reasonOf([`Bearer ${JWT}`]), `ok:${JWT}`);
});

test('the scheme is case-insensitive and one or more spaces separate it from the token', () => {
  for (const value of [`bearer ${JWT}`, `BEARER ${JWT}`, `BeArEr ${JWT}`, `Bearer    ${JWT}`, `  Bearer ${JWT}\t`]) {
    assert.equal(reasonOf([value]), `ok:${JWT}`, value);
  }
});

test('every b64token character and trailing "=" padding are accepted', () => {
  const token = 'AZaz09-._~+/abc==';
  assert.equal(reasonOf([`Bearer ${token}`]), `ok:${token}`);
});

test('no header, or only empty values: token_missing (no credentials)', () => {
  assert.equal(reasonOf([]), 'token_missing');
  assert.equal(reasonOf(['']), 'token_missing');
  assert.equal(reasonOf(['   ']), 'token_missing');
  assert.equal(reasonOf(['', '']), 'token_missing');
});

test('two Authorization headers: authorization_multiple, even when one is empty', () => {
  assert.equal(reasonOf([`Bearer ${JWT}`, `Bearer ${JWT}`]), 'authorization_multiple');
  assert.equal(reasonOf([`Bearer ${JWT}`, 'Basic dXNlcjpwYXNz']), 'authorization_multiple');
  assert.equal(reasonOf([`Bearer ${JWT}`, '']), 'authorization_multiple');
  const result = extractBearerToken([`Bearer ${JWT}`, `Bearer ${JWT}`]);
  assert.equal(result.ok ? '' : result.error.detail, '2 Authorization headers; exactly one is allowed');
});

test('several credentials in one value (a folded header): authorization_multiple', () => {
  assert.equal(reasonOf([`Bearer ${JWT}, Basic dXNlcjpwYXNz`]), 'authorization_multiple');
  assert.equal(reasonOf([`Basic dXNlcjpwYXNz, Bearer ${JWT}`]), 'authorization_multiple');
  assert.equal(reasonOf([`Bearer ${JWT}, Bearer ${JWT}`]), 'authorization_multiple');
  assert.equal(reasonOf([`Bearer ${JWT},${JWT}`]), 'authorization_multiple');
});

test('another scheme is authorization_malformed (credentials we do not support), naming the scheme', () => {
  for (const scheme of ['Basic', 'DPoP', 'Digest', 'Negotiate', 'MAC']) {
    const result = extractBearerToken([`${scheme} ${JWT}`]);
    assert.equal(result.ok, false);
    if (!result.ok) {
      assert.equal(result.error.reason, 'authorization_malformed');
      assert.equal(result.error.detail, `the ${scheme} authorization scheme is not supported; use Bearer`);
    }
  }
  // Only registered scheme names are echoed: anything else may be a credential sent without scheme.
  for (const value of ['<script>alert(1)</script> x', 'sk_live_123 x', `${JWT} x`]) {
    const odd = extractBearerToken([value]);
    assert.equal(odd.ok ? '' : odd.error.detail, 'an unrecognised authorization scheme is not supported; use Bearer');
  }
});

test('a raw token without scheme, Bearer without token, or a token outside b64token: authorization_malformed', () => {
  for (const value of [
    JWT, 'Bearer', 'Bearer ', 'Bearer\tabc', 'Bearer a b', 'Bearer ==', 'Bearer a=b', 'Bearer "abc"',
    'Bearer abc;def', 'Bearer tok\u00e9n', 'Bearer abc\u0000', 'Bearers abc', 'Bearer: abc',
  ]) {
    assert.equal(reasonOf([value]), 'authorization_malformed', JSON.stringify(value));
  }
});

test('the failure detail never contains the token', () => {
  const secret = 'eyJzZWNyZXQiOiJ0b2tlbiJ9';
  for (const value of [`Bearer ${secret} x`, `Basic ${secret}`, secret, `Bearer ${secret},${secret}`]) {
    const result = extractBearerToken([value]);
    assert.equal(result.ok, false);
    if (!result.ok) assert.equal(result.error.detail.includes(secret), false, result.error.detail);
  }
});

test('token length: 16 KiB is accepted, one more character and a 64 KiB header are token_too_large', () => {
  assert.equal(MAX_TOKEN_LENGTH, 16384);
  const max = 'a'.repeat(MAX_TOKEN_LENGTH);
  assert.equal(reasonOf([`Bearer ${max}`]), `ok:${max}`);
  assert.equal(reasonOf([`Bearer ${max}a`]), 'token_too_large');
  const huge = extractBearerToken([`Bearer ${'A'.repeat(64 * 1024)}`]);
  assert.equal(huge.ok, false);
  if (!huge.ok) {
    assert.equal(huge.error.reason, 'token_too_large');
    assert.equal(huge.error.detail, 'the token has 65536 characters; at most 16384 are accepted');
  }
  // Length is judged before syntax: a huge token with bad characters is still too large.
  assert.equal(reasonOf([`Bearer ${'%'.repeat(64 * 1024)}`]), 'token_too_large');
});
