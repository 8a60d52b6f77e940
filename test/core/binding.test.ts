import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { boundThumbprint, checkBinding, requiresCertificate } from '../../src/binding.js';
import type { Result } from '../../src/errors.js';

const THUMB = 'A'.repeat(20) + '_-' + 'b'.repeat(21); // 43 base64url characters
const OTHER = 'B'.repeat(43);

function reason<T>(result: Result<T>): string {
  return result.ok ? 'ok' : result.error.reason;
}

describe('cnf x5t#S256 extraction (RFC 8705 section 3.1, RFC 7800 section 3.1)', () => {
  test('no cnf claim means an unbound token', () => {
    assert.deepEqual(boundThumbprint({ sub: 'x' }), { ok: true, value: null });
  });
  test('cnf with only x5t#S256 yields the thumbprint', () => {
    assert.deepEqual(boundThumbprint({ cnf: { 'x5t#S256': THUMB } }), { ok: true, value: THUMB });
  });
  // A confirmation the plugin cannot check: refused, never accepted as a plain bearer token.
  for (const [name, cnf] of [
    ['jkt (DPoP)', { jkt: 'abc' }], ['jwk', { jwk: { kty: 'EC' } }], ['jwe', { jwe: 'x.y.z' }], ['jku + kid', { jku: 'https://k', kid: '1' }],
    ['x5t#S256 next to jkt', { 'x5t#S256': THUMB, jkt: 'z' }], ['x5t (SHA-1)', { x5t: 'abc' }], ['a lower-case x5t#s256', { 'x5t#s256': THUMB }],
    ['an unknown member', { foo: 1 }],
  ] as const) {
    test(`cnf with ${name} is token_cnf_unsupported`, () => {
      const result = boundThumbprint({ cnf });
      assert.equal(reason(result), 'token_cnf_unsupported');
      assert.ok(!result.ok && result.error.detail.includes('only x5t#S256 is checked'));
    });
  }
  test('an empty cnf object is token_cnf_malformed (it confirms no key)', () => {
    assert.equal(reason(boundThumbprint({ cnf: {} })), 'token_cnf_malformed');
  });
  test('member names in the detail are quoted and cut (issuer-signed, still never echoed whole)', () => {
    const result = boundThumbprint({ cnf: { ['"x'.repeat(100)]: 1, b: 1, c: 1, d: 1 } });
    assert.ok(!result.ok && result.error.detail.length < 200, result.ok ? '' : result.error.detail);
    assert.ok(!result.ok && result.error.detail.includes(', ...'));
  });
  for (const [name, cnf] of [
    ['a string', 'abc'], ['a number', 5], ['an array', [THUMB]], ['null', null],
  ] as const) {
    test(`cnf that is ${name} is token_cnf_malformed`, () => {
      assert.equal(reason(boundThumbprint({ cnf })), 'token_cnf_malformed');
    });
  }
  for (const [name, value] of [
    ['a number', 42], ['an array', [THUMB]], ['an empty string', ''], ['an object', { v: THUMB }],
  ] as const) {
    test(`x5t#S256 that is ${name} is token_cnf_malformed`, () => {
      assert.equal(reason(boundThumbprint({ cnf: { 'x5t#S256': value } })), 'token_cnf_malformed');
    });
  }
  test('hex instead of base64url is token_cnf_malformed with a hint', () => {
    const result = boundThumbprint({ cnf: { 'x5t#S256': 'ab'.repeat(32) } });
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.error.detail.includes('looks like hex'));
  });
  test('padded base64url is token_cnf_malformed with a hint', () => {
    const result = boundThumbprint({ cnf: { 'x5t#S256': `${THUMB}=` } });
    assert.ok(!result.ok && result.error.reason === 'token_cnf_malformed' && result.error.detail.includes('padded'));
  });
  test('standard base64 alphabet (+ /) is token_cnf_malformed', () => {
    assert.equal(reason(boundThumbprint({ cnf: { 'x5t#S256': 'A'.repeat(41) + '+/' } })), 'token_cnf_malformed');
  });
});

describe('binding decision per proof_of_possession_mtls mode', () => {
  test('strict: matching thumbprint passes', () => {
    assert.equal(reason(checkBinding('strict', THUMB, THUMB)), 'ok');
  });
  test('strict: mismatching thumbprint is certificate_thumbprint_mismatch', () => {
    const result = checkBinding('strict', THUMB, OTHER);
    assert.ok(!result.ok);
    assert.equal(result.error.reason, 'certificate_thumbprint_mismatch');
    assert.equal(result.error.detail, 'the client certificate thumbprint does not match the x5t#S256 claim');
  });
  test('strict: upper-cased thumbprint does not match (base64url is case-sensitive)', () => {
    assert.equal(reason(checkBinding('strict', THUMB.toUpperCase(), THUMB)), 'certificate_thumbprint_mismatch');
  });
  test('strict: unbound token is token_not_bound', () => {
    assert.equal(reason(checkBinding('strict', null, THUMB)), 'token_not_bound');
  });
  test('strict and optional: bound token without certificate is certificate_missing', () => {
    assert.equal(reason(checkBinding('strict', THUMB, null)), 'certificate_missing');
    assert.equal(reason(checkBinding('optional', THUMB, null)), 'certificate_missing');
  });
  test('optional: unbound token passes without certificate', () => {
    assert.equal(reason(checkBinding('optional', null, null)), 'ok');
  });
  test('optional: bound token with the wrong certificate is rejected', () => {
    assert.equal(reason(checkBinding('optional', THUMB, OTHER)), 'certificate_thumbprint_mismatch');
  });
  test('off: an unbound token passes; a certificate-bound one is refused, since its binding would go unchecked', () => {
    assert.equal(reason(checkBinding('off', THUMB, OTHER)), 'token_cnf_unsupported');
    assert.equal(reason(checkBinding('off', THUMB, THUMB)), 'token_cnf_unsupported');
    assert.equal(reason(checkBinding('off', null, null)), 'ok');
  });
  test('certificate requirement follows the mode', () => {
    assert.equal(requiresCertificate('strict', null), true);
    assert.equal(requiresCertificate('optional', null), false);
    assert.equal(requiresCertificate('optional', THUMB), true);
    assert.equal(requiresCertificate('off', THUMB), false);
  });
});
