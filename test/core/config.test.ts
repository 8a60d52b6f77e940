import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config.js';
import { seedConfig } from '../helpers/seed.js';

function errorsOf(raw: unknown): readonly string[] {
  const result = parseConfig(raw);
  return result.ok ? [] : result.errors;
}

describe('configuration', () => {
  test('the seed config from Kong Enterprise is valid as is, with defaults filled', () => {
    const result = parseConfig(seedConfig());
    assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
    const config = result.config;
    assert.equal(config.proof_of_possession_mtls, 'strict');
    assert.equal(config.proof_of_possession_mtls_from_header?.certificate_header_format, 'base64_encoded');
    assert.equal(config.proof_of_possession_mtls_from_header?.secure_source, false);
    assert.equal(config.proof_of_possession_mtls_from_header?.allow_partial_chain, false);
    assert.equal(config.proof_of_possession_mtls_from_header?.max_header_size, 32768);
    assert.equal(config.proof_of_possession_mtls_from_header?.max_chain_length, 10);
    assert.equal(config.leeway, 0);
    assert.equal(config.rediscovery_lifetime, 30);
    assert.equal(config.display_errors, false);
    assert.equal(config.unauthorized_error_message, 'Unauthorized');
    assert.equal(config.admin_api_url, 'http://127.0.0.1:8001');
    assert.equal(config.ssl_verify, true);
  });
  test('keys Kong adds to a plugin config are ignored', () => {
    const result = parseConfig({ ...seedConfig(), route_id: 'r', service_id: null, __plugin_id: 'p', __seq__: 3, __key__: 'k' });
    assert.equal(result.ok, true);
  });
  test('Kong encodes an empty Lua table as {}: accepted as an empty array', () => {
    const raw = seedConfig();
    raw['audience_required'] = {};
    const result = parseConfig(raw);
    assert.ok(result.ok);
    assert.deepEqual(result.config.audience_required, []);
  });
  test('nulls mean "unset" and take the default', () => {
    const raw = { ...seedConfig(), leeway: null, display_errors: null };
    const result = parseConfig(raw);
    assert.ok(result.ok);
    assert.equal(result.config.leeway, 0);
    assert.equal(result.config.display_errors, false);
  });
  test('each bad value gets an error naming the key and why', () => {
    const raw = seedConfig();
    raw['proof_of_possession_mtls'] = 'always';
    raw['leeway'] = -1;
    raw['display_errors'] = 'yes';
    (raw['proof_of_possession_mtls_from_header'] as Record<string, unknown>)['certificate_header_format'] = 'der';
    (raw['proof_of_possession_mtls_from_header'] as Record<string, unknown>)['ca_certificates'] = ['not-a-uuid'];
    assert.deepEqual(errorsOf(raw), [
      'leeway: value should be between 0 and 3600',
      'proof_of_possession_mtls: expected one of: off, optional, strict',
      'proof_of_possession_mtls_from_header.certificate_header_format: expected one of: base64_encoded, url_encoded, pem, xfcc, rfc9440',
      'proof_of_possession_mtls_from_header.ca_certificates[1]: expected a UUID',
      'display_errors: expected a boolean, got a string',
    ]);
  });
  test('unknown fields inside the header record are rejected (typos must not silently weaken checks)', () => {
    const raw = seedConfig();
    (raw['proof_of_possession_mtls_from_header'] as Record<string, unknown>)['secure_sauce'] = true;
    assert.deepEqual(errorsOf(raw), ['proof_of_possession_mtls_from_header.secure_sauce: unknown field']);
  });
  test('auth methods that cannot carry proof of possession are rejected while validation is on', () => {
    assert.deepEqual(errorsOf({ ...seedConfig(), auth_methods: ['bearer', 'session'] }),
      ['auth_methods: session cannot be used with proof of possession (only bearer is supported)']);
    assert.deepEqual(errorsOf({ ...seedConfig(), auth_methods: ['bearer', 'session'],
      proof_of_possession_auth_methods_validation: false }), []);
  });
  test('strict mode without a header config or without any CA is rejected', () => {
    const raw = seedConfig();
    delete raw['proof_of_possession_mtls_from_header'];
    assert.deepEqual(errorsOf(raw), ['proof_of_possession_mtls_from_header: required when proof_of_possession_mtls is not off']);
    const noCa = seedConfig();
    (noCa['proof_of_possession_mtls_from_header'] as Record<string, unknown>)['ca_certificates'] = [];
    assert.deepEqual(errorsOf(noCa),
      ['proof_of_possession_mtls_from_header.ca_certificates: list at least one CA (or use ca_certificates_pem)']);
  });
  test('neither issuer nor jwks_endpoint is rejected; URLs must be http(s)', () => {
    const raw = seedConfig();
    delete raw['issuer'];
    delete raw['jwks_endpoint'];
    assert.deepEqual(errorsOf(raw), [
      'issuer: set issuer (for discovery) or jwks_endpoint',
      'issuers_allowed: without issuer, list the accepted iss values here',
    ]);
    assert.deepEqual(errorsOf({ ...seedConfig(), jwks_endpoint: 'file:///etc/passwd' }), ['jwks_endpoint: expected an http(s) URL']);
  });
  test('non-object configs are rejected, not thrown', () => {
    assert.deepEqual(errorsOf(null), ['config: expected an object, got null']);
    assert.deepEqual(errorsOf('x'), ['config: expected an object, got a string']);
  });
  test('HS256 cannot be configured as a signing algorithm', () => {
    assert.deepEqual(errorsOf({ ...seedConfig(), signing_algorithms: ['HS256'] }),
      ['signing_algorithms[1]: expected one of: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519']);
  });
});
