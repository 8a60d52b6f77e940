/**
 * The plugin schema against Kong's MetaSubSchema rules, and Kong's config validation, through the
 * re-statement in test/helpers/kong-metaschema.ts.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CONFIG_FIELDS } from '../../src/config-schema.js';
import {
  checkPluginSchema, pluginSubSchema, assertValidPluginSchema, validateConfig, toRuntimeConfig,
  KongSchemaError, type SchemaIssue,
} from '../helpers/kong-metaschema.js';
import { seedConfig } from '../helpers/seed.js';

const schema = pluginSubSchema('mtls-pop', CONFIG_FIELDS);

function messages(issues: readonly SchemaIssue[]): string[] {
  return issues.map((i) => `${i.path}: ${i.message}`);
}

function oneField(def: Record<string, unknown>): ReturnType<typeof checkPluginSchema> {
  return checkPluginSchema(pluginSubSchema('t', [{ f: def }]));
}

describe('MetaSubSchema: the mtls-pop schema as kong-pdk dumps it', () => {
  test('passes Kong\'s checks and our stricter lint', () => {
    const report = checkPluginSchema(schema);
    assert.deepEqual(messages(report.errors), []);
    assert.deepEqual(messages(report.warnings), []);
    assert.doesNotThrow(() => assertValidPluginSchema(schema));
  });

  test('the seed config (reference-behaviour.md, name mtls-pop) validates and gets defaults', () => {
    const result = validateConfig(schema, seedConfig());
    assert.equal(result.ok, true, result.ok ? '' : messages(result.errors).join('; '));
    if (!result.ok) return;
    const header = result.config.proof_of_possession_mtls_from_header as Record<string, unknown>;
    assert.equal(header.certificate_header_format, 'base64_encoded');
    assert.equal(header.revocation_check_mode, 'IGNORE_CA_ERROR');
    assert.equal(header.max_header_size, 32768);
    assert.equal(header.certificate_chain_header_name, null);
    assert.deepEqual(result.config.signing_algorithms, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']);
    assert.equal(result.config.realm, null);
    assert.equal(result.config.leeway, 0);
  });

  test('at run time null fields are absent, not null (DAO select with nulls = false)', () => {
    const result = validateConfig(schema, seedConfig());
    assert.ok(result.ok);
    const runtime = toRuntimeConfig(schema, result.config);
    assert.equal('realm' in runtime, false);
    assert.equal('issuers_allowed' in runtime, false);
    assert.equal('certificate_chain_header_name' in (runtime.proof_of_possession_mtls_from_header as object), false);
    assert.equal(runtime.unauthorized_error_message, 'Unauthorized');
  });

  test('an absent optional record stays null (required: false beats make_records_required)', () => {
    const result = validateConfig(schema, { issuer: 'https://idp.example' });
    assert.ok(result.ok);
    assert.equal(result.config.proof_of_possession_mtls_from_header, null);
  });
});

describe('MetaSubSchema: definitions Kong refuses to load', () => {
  test('a default of the wrong type', () => {
    assert.deepEqual(messages(oneField({ type: 'string', default: 5 }).errors), ['config.f.default: expected a string']);
    assert.deepEqual(messages(oneField({ type: 'integer', default: 1.5 }).errors), ['config.f.default: expected an integer']);
  });

  test('a default outside one_of or between', () => {
    assert.deepEqual(messages(oneField({ type: 'string', one_of: ['a', 'b'], default: 'c' }).errors),
      ['config.f.default: expected one of: a, b']);
    assert.deepEqual(messages(oneField({ type: 'number', between: [1, 10], default: 0 }).errors),
      ['config.f.default: value should be between 1 and 10']);
    assert.deepEqual(messages(oneField({ type: 'array', elements: { type: 'string', one_of: ['bearer'] }, default: ['session'] }).errors),
      ['config.f.default[1]: expected one of: bearer']);
  });

  test('an empty string default (strings have len_min 1 unless they say otherwise)', () => {
    assert.deepEqual(messages(oneField({ type: 'string', default: '' }).errors), ['config.f.default: length must be at least 1']);
  });

  test('an unknown attribute', () => {
    assert.deepEqual(messages(oneField({ type: 'string', secret: true }).errors), ['config.f.secret: unknown field']);
    assert.deepEqual(messages(oneField({ type: 'string', nilable: true }).errors), ['config.f.nilable: unknown field']);
  });

  test('an attribute the type does not allow', () => {
    assert.deepEqual(messages(oneField({ type: 'boolean', one_of: [true] }).errors),
      ["config.f: field of type 'boolean' cannot have attribute 'one_of'"]);
    assert.deepEqual(messages(oneField({ type: 'array', elements: { type: 'string' }, one_of: ['a'] }).errors),
      ["config.f: field of type 'array' cannot have attribute 'one_of'"]);
    assert.deepEqual(messages(oneField({ type: 'number', uuid: true }).errors),
      ["config.f: field of type 'number' cannot have attribute 'uuid'"]);
    assert.deepEqual(messages(oneField({ type: 'string', between: [1, 2] }).errors),
      ["config.f: field of type 'string' cannot have attribute 'between'"]);
  });

  test('an array or set without elements, a record without fields', () => {
    assert.deepEqual(messages(oneField({ type: 'array' }).errors), ["config.f: field of type 'array' must declare 'elements'"]);
    assert.deepEqual(messages(oneField({ type: 'set' }).errors), ["config.f: field of type 'set' must declare 'elements'"]);
    assert.deepEqual(messages(oneField({ type: 'record' }).errors), ["config.f: field of type 'record' must declare 'fields'"]);
  });

  test('attribute values of the wrong type, a missing type, an unknown type', () => {
    assert.deepEqual(messages(oneField({ type: 'string', required: 'yes' }).errors), ['config.f.required: expected a boolean']);
    assert.deepEqual(messages(oneField({ type: 'number', between: [1] }).errors), ['config.f.between: length must be 2']);
    assert.deepEqual(messages(oneField({ type: 'string', one_of: 'a' }).errors), ['config.f.one_of: expected an array']);
    assert.ok(messages(oneField({ required: true }).errors).includes('config.f.type: required field missing'));
    assert.ok(messages(oneField({ type: 'text' }).errors).some((m) => m.startsWith('config.f.type: expected one of: ')));
  });

  test('a description shorter than 10 or longer than 500 characters', () => {
    assert.deepEqual(messages(oneField({ type: 'string', description: 'too short' }).errors), ['config.f.description: length must be at least 10']);
    assert.deepEqual(messages(oneField({ type: 'string', description: 'x'.repeat(501) }).errors), ['config.f.description: length must be at most 500']);
  });

  test('problems inside nested records and elements are found', () => {
    const report = checkPluginSchema(pluginSubSchema('t', [{ outer: { type: 'record', fields: [
      { inner: { type: 'array', elements: { type: 'integer', default: 'x' } } },
    ] } }]));
    assert.deepEqual(messages(report.errors), ['config.outer.inner.elements.default: expected an integer']);
  });

  test('a top-level field the plugins entity does not have (new_subschema)', () => {
    const report = checkPluginSchema({ name: 't', fields: [{ config: { type: 'record', fields: [] } }, { extra: { type: 'string' } }] });
    assert.deepEqual(messages(report.errors), ["extra: error in definition of 't': extra: cannot create a new field"]);
  });

  test('assertValidPluginSchema throws a message naming every problem', () => {
    assert.throws(() => assertValidPluginSchema(pluginSubSchema('t', [{ a: { type: 'string', default: 5 } }, { b: { type: 'array' } }])),
      (err: unknown) => err instanceof KongSchemaError
        && err.message.includes('config.a.default: expected a string')
        && err.message.includes("config.b: field of type 'array' must declare 'elements'"));
  });
});

describe('lint: definitions Kong loads but that cannot work', () => {
  test("'referenceable' on a number is accepted by Kong (no type rule) but never resolves", () => {
    const report = oneField({ type: 'number', referenceable: true });
    assert.deepEqual(report.errors, []);
    assert.equal(report.warnings.length, 1);
    assert.match(report.warnings[0]?.message ?? '', /'referenceable' has no effect on a field of type 'number'/);
    assert.throws(() => assertValidPluginSchema(pluginSubSchema('t', [{ f: { type: 'number', referenceable: true } }])), /\(lint\)/);
    assert.doesNotThrow(() => assertValidPluginSchema(pluginSubSchema('t', [{ f: { type: 'number', referenceable: true } }]), { strict: false }));
  });

  test("'referenceable' on string elements of an array is where Kong honours it", () => {
    const report = oneField({ type: 'array', elements: { type: 'string', referenceable: true } });
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.warnings, []);
  });

  test('one_of values of the wrong type are accepted by Kong but can never match', () => {
    const report = oneField({ type: 'string', one_of: [1, 2] });
    assert.deepEqual(report.errors, []);
    assert.deepEqual(messages(report.warnings), ["config.f: 'one_of' lists 1, 2, which a string value can never equal"]);
  });
});

describe('config validation as Kong\'s plugins entity insert', () => {
  const fixture = pluginSubSchema('t', [
    { mode: { type: 'string', required: true, default: 'a', one_of: ['a', 'b'] } },
    { limit: { type: 'integer', required: true, default: 5, between: [1, 10] } },
    { names: { type: 'set', elements: { type: 'string' } } },
    { id: { type: 'string', uuid: true } },
    { secret: { type: 'string', referenceable: true } },
    { nested: { type: 'record', fields: [{ flag: { type: 'boolean', required: true, default: false } }] } },
    { optional: { type: 'record', required: false, fields: [{ name: { type: 'string', required: true } }] } },
  ]);

  test('fills defaults, expands required records, dedupes sets', () => {
    const result = validateConfig(fixture, { names: ['x', 'x', 'y'] });
    assert.ok(result.ok);
    assert.deepEqual(result.config, {
      mode: 'a', limit: 5, names: ['x', 'y'], id: null, secret: null, nested: { flag: false }, optional: null,
    });
  });

  test('rejects unknown fields, type errors, one_of, between, uuid and missing required fields', () => {
    const result = validateConfig(fixture, {
      mode: 'c', limit: 11, id: 'not-a-uuid', extra: 1, nested: { flag: 'yes' }, optional: {},
    });
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.deepEqual(messages(result.errors).sort(), [
      'config.extra: unknown field',
      'config.id: expected a valid UUID',
      'config.limit: value should be between 1 and 10',
      'config.mode: expected one of: a, b',
      'config.nested.flag: expected a boolean',
      'config.optional.name: required field missing',
    ]);
  });

  test('an explicit null on a required field is not replaced by its default', () => {
    const result = validateConfig(fixture, { mode: null });
    assert.equal(result.ok, false);
    if (!result.ok) assert.deepEqual(messages(result.errors), ['config.mode: required field missing']);
  });

  test('a vault reference passes validation and is resolved at run time', () => {
    const result = validateConfig(fixture, { secret: '{vault://env/secret}' });
    assert.ok(result.ok);
    const unresolved: string[] = [];
    assert.equal(toRuntimeConfig(fixture, result.config, { vault: { '{vault://env/secret}': 's3cr3t' } }).secret, 's3cr3t');
    assert.equal(toRuntimeConfig(fixture, result.config, { onUnresolved: (r) => unresolved.push(r) }).secret, '');
    assert.deepEqual(unresolved, ['{vault://env/secret}']);
  });

  test('mtls-pop: a wrong-typed or out-of-range value is what Kong rejects', () => {
    const result = validateConfig(schema, {
      ...seedConfig(), leeway: 'soon', proof_of_possession_mtls: 'always',
      proof_of_possession_mtls_from_header: { certificate_header_name: '', ca_certificates: ['nope'] },
    });
    assert.equal(result.ok, false);
    if (result.ok) return;
    assert.deepEqual(messages(result.errors).sort(), [
      'config.leeway: expected a number',
      'config.proof_of_possession_mtls: expected one of: off, optional, strict',
      'config.proof_of_possession_mtls_from_header.ca_certificates[1]: expected a valid UUID',
      'config.proof_of_possession_mtls_from_header.certificate_header_name: length must be at least 1',
    ]);
  });
});
