/**
 * Identity headers: claim paths, value formatting, sanitising, and the one set_headers table
 * (values, clears, `-`/`_` variants). The plugin-server tests in test/plugin/operator.test.ts show
 * the same table reaching a real upstream.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  UpstreamHeaderPlan, formatClaimValue, headerNameProblem, headerValueProblem, parseValuePath,
  MAX_UPSTREAM_VALUE_BYTES, type UpstreamHeaderRule,
} from '../../src/upstream-headers.js';
import type { CertificateFacts } from '../../src/certificate.js';
import { parseConfig } from '../../src/config.js';

const CERT: CertificateFacts = {
  thumbprint: 'tp-abc', subject: 'CN=client-1,O=mtls-pop tests', issuer: 'CN=Issuing CA', serialNumber: '0A1B',
  subjectAltNames: ['DNS:client-1.example', 'URI:spiffe://example/client-1'], notBefore: new Date(0), notAfter: new Date(1e13),
};

function rules(entries: Record<string, string>): UpstreamHeaderRule[] {
  return Object.entries(entries).map(([header, path]) => {
    const parsed = parseValuePath(path);
    assert.ok(parsed.ok, path);
    return { header, path: parsed.path };
  });
}

describe('claim paths and values', () => {
  test('nested claims, arrays and objects JSON, scalars printed, dotted claim names matched whole', () => {
    const claims = {
      sub: 'user-1', n: 42, admin: false, realm_access: { roles: ['a', 'b', 'c'] }, org: { id: 7, name: 'x' },
      'https://example.com/roles': ['r1', { deep: 1 }], empty: '', none: null, list: [],
    };
    const plan = new UpstreamHeaderPlan(rules({
      'X-Sub': 'sub', 'X-N': 'n', 'X-Admin': 'admin', 'X-Roles': 'realm_access.roles', 'X-Org': 'org',
      'X-Ns': 'https://example.com/roles', 'X-Empty': 'empty', 'X-None': 'none', 'X-List': 'list', 'X-Absent': 'realm_access.groups',
      'X-Too-Deep': 'sub.x',
    }), []);
    assert.deepEqual(plan.build(claims, null).headers, {
      'X-Sub': 'user-1', 'X-N': '42', 'X-Admin': 'false', 'X-Roles': '["a","b","c"]', 'X-Org': '{"id":7,"name":"x"}',
      'X-Ns': '["r1",{"deep":1}]', 'X-Empty': [], 'X-None': [], 'X-List': [], 'X-Absent': [], 'X-Too-Deep': [],
    });
  });

  test('certificate facts; absent certificate clears them', () => {
    const plan = new UpstreamHeaderPlan(rules({
      'X-S': 'cert.subject', 'X-I': 'cert.issuer', 'X-N': 'cert.serial', 'X-T': 'cert.thumbprint', 'X-San': 'cert.san',
    }), []);
    assert.deepEqual(plan.build({}, CERT).headers, {
      'X-S': 'CN=client-1,O=mtls-pop tests', 'X-I': 'CN=Issuing CA', 'X-N': '0A1B', 'X-T': 'tp-abc',
      'X-San': '["DNS:client-1.example","URI:spiffe://example/client-1"]',
    });
    assert.deepEqual(plan.build({}, null).headers, { 'X-S': [], 'X-I': [], 'X-N': [], 'X-T': [], 'X-San': [] });
  });

  test('one crafted SAN or array element never reads upstream like two (JSON keeps the boundaries)', () => {
    const crafted = { ...CERT, subjectAltNames: ['DNS:a.example, URI:spiffe://admin', 'URI:x"],["y'] };
    const genuine = { ...CERT, subjectAltNames: ['DNS:a.example', 'URI:spiffe://admin'] };
    const plan = new UpstreamHeaderPlan(rules({ 'X-San': 'cert.san', 'X-Roles': 'roles' }), []);
    const one = plan.build({ roles: ['reader, admin'] }, crafted).headers;
    const two = plan.build({ roles: ['reader', 'admin'] }, genuine).headers;
    assert.notEqual(one['X-San'], two['X-San']);
    assert.notEqual(one['X-Roles'], two['X-Roles']);
    assert.deepEqual(JSON.parse(one['X-San'] as string), crafted.subjectAltNames);
    assert.deepEqual(JSON.parse(two['X-San'] as string), genuine.subjectAltNames);
    assert.deepEqual(JSON.parse(one['X-Roles'] as string), ['reader, admin']);
    assert.deepEqual(JSON.parse(two['X-Roles'] as string), ['reader', 'admin']);
    // A one-element array is still an array; a plain string claim stays plain text.
    assert.equal(formatClaimValue(['only']), '["only"]');
    assert.equal(formatClaimValue('a, b'), 'a, b');
    assert.equal(formatClaimValue(['a\r\nX-Admin: 1']), '["a\\r\\nX-Admin: 1"]', 'controls are escaped inside JSON');
  });

  test('inherited properties are never read as claims; a header named __proto__ stays a header', () => {
    const plan = new UpstreamHeaderPlan(rules({ 'X-P': 'constructor', 'X-Q': '__proto__' }), []);
    assert.deepEqual(plan.build({}, null).headers, { 'X-P': [], 'X-Q': [] });
    const proto = new UpstreamHeaderPlan([{ header: '__proto__', path: { kind: 'claim', segments: ['sub'] } }], []).build({ sub: 'u' }, null).headers;
    assert.deepEqual(Object.keys(proto), ['__proto__']);
    assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  });

  test('a value with CR/LF or other controls, or too long, is withheld (cleared), never truncated or cleaned', () => {
    const plan = new UpstreamHeaderPlan(rules({ 'X-A': 'a', 'X-B': 'b', 'X-C': 'c', 'X-D': 'd' }), []);
    const result = plan.build({ a: 'evil\r\nX-Admin: 1', b: 'x'.repeat(MAX_UPSTREAM_VALUE_BYTES + 1), c: 'x'.repeat(MAX_UPSTREAM_VALUE_BYTES), d: 'tab\there' }, null);
    assert.deepEqual(result.headers, { 'X-A': [], 'X-B': [], 'X-C': 'x'.repeat(MAX_UPSTREAM_VALUE_BYTES), 'X-D': [] });
    assert.deepEqual(result.withheld.map((w) => [w.header, w.path, w.problem]), [
      ['X-A', 'a', 'contains a control character'],
      ['X-B', 'b', `is longer than ${MAX_UPSTREAM_VALUE_BYTES} bytes`],
      ['X-D', 'd', 'contains a control character'],
    ]);
    // JSON encoding escapes controls inside arrays and objects, so those are safe to send.
    assert.equal(formatClaimValue({ k: 'a\nb' }), '{"k":"a\\nb"}');
    assert.equal(headerValueProblem('caf\u00e9 \u2603'), null, 'UTF-8 passes');
    assert.equal(headerValueProblem('\u0085'), 'contains a control character', 'C1 NEL');
    assert.equal(headerValueProblem('\u00e9'.repeat(2049)), `is longer than ${MAX_UPSTREAM_VALUE_BYTES} bytes`, 'bytes, not characters');
  });
});

describe('the set_headers table', () => {
  test('hidden headers are cleared, identity headers set, client -/_ variants cleared, same-name copies left to set_headers', () => {
    const plan = new UpstreamHeaderPlan(rules({ 'X-User-Id': 'sub' }), ['Authorization', 'x-client-cert']);
    const { headers } = plan.build({ sub: 'u1' }, null, ['x-user-id', 'x_user_id', 'x-user_id', 'authorization', 'x_client_cert', 'host', 'x-other']);
    assert.deepEqual(headers, {
      Authorization: [], 'x-client-cert': [], 'X-User-Id': 'u1', x_user_id: [], 'x-user_id': [], x_client_cert: [],
    });
  });

  test('nothing configured: empty plan', () => {
    assert.equal(new UpstreamHeaderPlan([], []).empty, true);
    assert.equal(new UpstreamHeaderPlan([], ['Authorization']).empty, false);
  });
});

describe('config validation', () => {
  const base = {
    issuer: 'https://idp.example/realms/x',
    proof_of_possession_mtls_from_header: { certificate_header_name: 'X-Client-Cert', ca_certificates_pem: ['pem'] },
  };

  test('defaults: no headers, nothing hidden, no serialize record', () => {
    const parsed = parseConfig(base);
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.config.upstream_headers, []);
    assert.equal(parsed.config.hide_credentials, false);
    assert.equal(parsed.config.hide_certificate_header, false);
    assert.equal(parsed.config.log_serialize, false);
  });

  test('bad names, reserved names, the certificate header, duplicates and bad paths are refused with the entry named', () => {
    const parsed = parseConfig({
      ...base,
      upstream_headers: [
        { header: 'X-Ok', path: 'sub' },
        { header: 'Bad Name', path: 'sub' },
        { header: 'Host', path: 'sub' },
        { header: 'authorization', path: 'sub' },
        { header: 'x_client_cert', path: 'cert.subject' },
        { header: 'x_ok', path: 'sub' },
        { header: 'X-P', path: 'cert.key' },
        { header: 'X-Q', path: 'a..b' },
        { header: 'X-R', path: 'sub', extra: 1 },
      ],
    });
    assert.equal(parsed.ok, false);
    assert.deepEqual(parsed.ok ? [] : parsed.errors, ['upstream_headers[9].extra: unknown field']);
    const second = parseConfig({ ...base, upstream_headers: [
      { header: 'X-Ok', path: 'sub' }, { header: 'Bad Name', path: 'sub' }, { header: 'Host', path: 'sub' },
      { header: 'authorization', path: 'sub' }, { header: 'x_client_cert', path: 'cert.subject' }, { header: 'x_ok', path: 'sub' },
      { header: 'X-P', path: 'cert.key' }, { header: 'X-Q', path: 'a..b' },
    ] });
    assert.equal(second.ok, false);
    assert.deepEqual(second.ok ? [] : second.errors, [
      'upstream_headers[2].header: Bad Name is not a valid header name (RFC 9110 token, at most 256 characters)',
      'upstream_headers[3].header: Host is reserved (framing, routing or credentials)',
      'upstream_headers[4].header: authorization is reserved (framing, routing or credentials)',
      'upstream_headers[5].header: x_client_cert is the certificate header',
      'upstream_headers[6].header: x_ok is listed twice',
      'upstream_headers[7].path: unknown certificate fact (expected one of cert.subject, cert.san, cert.thumbprint, cert.issuer, cert.serial)',
      'upstream_headers[8].path: a claim path has no empty segments',
    ]);
  });

  test('header name checks', () => {
    assert.equal(headerNameProblem('X-User'), null);
    assert.equal(headerNameProblem('X-Forwarded-For'), 'is reserved (framing, routing or credentials)');
    assert.equal(headerNameProblem('x-user\r\n'), 'is not a valid header name (RFC 9110 token, at most 256 characters)');
    assert.equal(headerNameProblem('Client_Cert_Chain', ['client-cert-chain']), 'is the certificate header');
  });
});
