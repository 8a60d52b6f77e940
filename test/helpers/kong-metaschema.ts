/**
 * Kong's schema rules, re-stated in TypeScript for tests: the MetaSubSchema check Kong runs on a
 * plugin's schema when it loads the plugin, and the entity validation it runs on a plugin's config.
 *
 * Sources (Kong/kong, tags 3.4.0 to 3.9.x; the rules below did not change in that range):
 * - `kong/db/schema/metaschema.lua`: `MetaSubSchema` (top-level keys), `field_schema` (the
 *   attributes a field may carry and their types), `validators`, `required_attributes`,
 *   `attribute_types`, `check_field`/`check_fields`.
 * - `kong/db/schema/plugin_loader.lua`: `load_subschema` validates the schema with MetaSubSchema,
 *   then `Entity.new_subschema` (`kong/db/schema/entity.lua`: records become required unless they
 *   say otherwise) and `Schema.new_subschema` (only fields the `plugins` entity has, same types).
 * - `kong/db/schema/init.lua`: `validate_field`, `validators`, `validators_order`,
 *   `process_auto_fields`, `adjust_field_for_context`, `handle_missing_field`, error strings.
 * - `kong/db/dao/init.lua` `row_to_entity` + `kong/runloop/plugins_iterator.lua`: the config a
 *   plugin receives at run time is the stored entity read back with `nulls = false` (null fields
 *   are absent) and vault references resolved.
 *
 * A value here is decoded JSON: `undefined` stands for Lua `nil` (absent) and `null` for
 * `ngx.null` / `cjson.null` (explicit null). Lua cannot tell an empty array from an empty object,
 * so neither does this code.
 */

/** A field definition in Kong's schema syntax, as decoded from JSON. */
export interface FieldDef {
  readonly type?: unknown;
  readonly [attribute: string]: unknown;
}

/** One problem, located by a dotted path (array positions 1-based, as Lua counts). */
export interface SchemaIssue {
  readonly path: string;
  readonly message: string;
}

export interface MetaSchemaReport {
  /** What Kong's MetaSubSchema (or new_subschema) rejects: Kong refuses to load the plugin. */
  readonly errors: readonly SchemaIssue[];
  /** Stricter checks Kong does not make (it loads the schema), for definitions that cannot work. */
  readonly warnings: readonly SchemaIssue[];
}

// ---------------------------------------------------------------------------------------------
// Lua value helpers

type Table = Record<string, unknown> | unknown[];

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return isTable(value) && !Array.isArray(value);
}

/** Kong `is_sequence`: an array, or an empty table (Lua cannot tell `{}` from `[]`). */
function isSequence(value: unknown): boolean {
  return Array.isArray(value) || (isPlainObject(value) && Object.keys(value).length === 0);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Entries of a Lua table: array positions are 1-based keys. */
function entries(value: Table): Array<[string, unknown]> {
  return Array.isArray(value) ? value.map((v, i) => [String(i + 1), v]) : Object.entries(value);
}

/** Lua `#` on a string counts bytes. */
function luaLength(value: unknown, fieldType: unknown): number | string {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (Array.isArray(value)) return value.length;
  if (isPlainObject(value)) return fieldType === 'map' ? Object.keys(value).length : 0;
  return `attempt to get length of a ${value === null ? 'userdata' : typeof value} value`;
}

function luaToString(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value) ?? String(value);
}

function deepCopy<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** kong/pdk/vault.lua `is_reference`: `{vault://...}`. */
export function isVaultReference(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('{vault://') && value.endsWith('}');
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Raised when a schema uses something this re-statement does not implement (never silently passes). */
export class UnsupportedSchemaFeature extends Error {}

// ---------------------------------------------------------------------------------------------
// Field validation (kong/db/schema/init.lua Schema:validate_field, validators, validators_order)

const TYPE_ERRORS: Readonly<Record<string, string>> = {
  array: 'expected an array', set: 'expected a set', map: 'expected a map', record: 'expected a record',
  string: 'expected a string', number: 'expected a number', boolean: 'expected a boolean',
  integer: 'expected an integer', function: 'expected a function',
};

/** Schema.validators_order. */
const VALIDATORS_ORDER = [
  'eq', 'ne', 'not_one_of', 'one_of', 'gt', 'timestamp', 'uuid', 'is_regex', 'between',
  'len_eq', 'len_min', 'len_max', 'starts_with', 'not_match', 'match_none', 'match', 'match_all', 'match_any',
  'contains', 'custom_validator', 'mutually_exclusive_subsets',
] as const;

type Validator = (value: unknown, arg: unknown, field: FieldDef) => string | null;

function lengthValidator(message: string, ok: (len: number, n: number) => boolean): Validator {
  return (value, arg, field) => {
    const len = luaLength(value, field.type);
    if (typeof len === 'string') return `Lua error: ${len}`;
    return ok(len, Number(arg)) ? null : message.replace('%d', String(Math.trunc(Number(arg))));
  };
}

function compare(value: unknown, limit: unknown): boolean | string {
  if (typeof value !== 'number' || typeof limit !== 'number') {
    return `Lua error: attempt to compare ${typeof limit} with ${typeof value}`;
  }
  return value > limit;
}

const VALIDATORS: Readonly<Record<(typeof VALIDATORS_ORDER)[number], Validator>> = {
  eq: (value, wanted) => (deepEqual(value, wanted) ? null : `value must be ${luaToString(wanted)}`),
  ne: (value, wanted) => (deepEqual(value, wanted) ? `value must not be ${luaToString(value)}` : null),
  gt: (value, limit) => {
    const r = compare(value, limit);
    if (typeof r === 'string') return r;
    return r ? null : `value must be greater than ${luaToString(limit)}`;
  },
  timestamp: (value) => (typeof value === 'number' && value > 0 ? null : 'expected a valid timestamp'),
  uuid: (value) => (typeof value === 'string' && value.length === 36 && UUID_RE.test(value) ? null : 'expected a valid UUID'),
  is_regex: (value) => {
    try {
      new RegExp(String(value));
      return null;
    } catch {
      return `not a valid regex: ${luaToString(value)}`;
    }
  },
  between: (value, limits) => {
    const [lo, hi] = asArray(limits);
    const a = compare(lo, value);
    const b = compare(value, hi);
    if (typeof a === 'string') return a;
    if (typeof b === 'string') return b;
    return a || b ? `value should be between ${Math.trunc(Number(lo))} and ${Math.trunc(Number(hi))}` : null;
  },
  len_eq: lengthValidator('length must be %d', (len, n) => len === n),
  len_min: lengthValidator('length must be at least %d', (len, n) => len >= n),
  len_max: lengthValidator('length must be at most %d', (len, n) => len <= n),
  starts_with: (value, prefix) => (typeof value === 'string' && value.startsWith(String(prefix)) ? null : `should start with: ${luaToString(prefix)}`),
  not_match: unsupportedValidator('not_match'),
  match_none: unsupportedValidator('match_none'),
  match: unsupportedValidator('match'),
  match_all: unsupportedValidator('match_all'),
  match_any: unsupportedValidator('match_any'),
  contains: (value, wanted) => (asArray(value).some((v) => deepEqual(v, wanted)) ? null : `expected to contain: ${luaToString(wanted)}`),
  one_of: (value, options) => (asArray(options).some((o) => deepEqual(o, value)) ? null : `expected one of: ${asArray(options).map(luaToString).join(', ')}`),
  not_one_of: (value, options) => (asArray(options).some((o) => deepEqual(o, value)) ? `must not be one of: ${asArray(options).map(luaToString).join(', ')}` : null),
  custom_validator: () => 'expected a function',
  mutually_exclusive_subsets: (value, subsets) => {
    const hit = asArray(subsets).filter((subset) => asArray(subset).some((s) => asArray(value).includes(s)));
    return hit.length <= 1 ? null : `these sets are mutually exclusive: ${hit.map((s) => `(${asArray(s).map((x) => `'${luaToString(x)}'`).join(', ')})`).join(', ')}`;
  },
};

function unsupportedValidator(name: string): Validator {
  return () => {
    throw new UnsupportedSchemaFeature(`the '${name}' validator uses Lua patterns, which this re-statement does not implement`);
  };
}

/** Validates one value against a field (Schema:validate_field). Returns the problems found. */
export function validateField(field: FieldDef, value: unknown, path: string): SchemaIssue[] {
  const err = (message: string): SchemaIssue[] => [{ path, message: typeof field.err === 'string' ? field.err : message }];
  if (value === undefined) return [];
  if (value === null) {
    if (field.ne === null) return err('value must not be null');
    if (field.eq !== undefined && field.eq !== null) return [{ path, message: `value must be ${luaToString(field.eq)}` }];
    if (field.required === true) return [{ path, message: 'required field missing' }];
    return [];
  }
  if (field.eq === null) return err('value must be null');
  if (field.abstract === true) return [{ path, message: 'error in schema definition: abstract field was not specialized' }];

  switch (field.type) {
    case 'array':
    case 'set': {
      if (!isSequence(value)) return [{ path, message: TYPE_ERRORS[field.type] ?? 'expected an array' }];
      const elements = { ...(field.elements as FieldDef), required: true };
      const problems = asArray(value).flatMap((item, i) => validateField(elements, item, `${path}[${i + 1}]`));
      if (problems.length > 0) return problems;
      break;
    }
    case 'map': {
      if (!isTable(value)) return [{ path, message: TYPE_ERRORS.map ?? 'expected a map' }];
      const keys = { ...(field.keys as FieldDef), required: true };
      const values = { ...(field.values as FieldDef), required: true };
      for (const [k, v] of entries(value)) {
        const problems = [...validateField(keys, Array.isArray(value) ? Number(k) : k, join(path, k)), ...validateField(values, v, join(path, k))];
        if (problems.length > 0) return problems; // Kong stops at the first bad entry
      }
      break;
    }
    case 'record': {
      if (!isTable(value) || (Array.isArray(value) && value.length > 0)) return [{ path, message: TYPE_ERRORS.record ?? 'expected a record' }];
      const copy = processAutoFields(field, isPlainObject(value) ? value : {}, 'insert');
      const problems = validateRecord(field, copy, path);
      if (problems.length > 0) return problems;
      break;
    }
    case 'integer':
      if (!(typeof value === 'number' && Number.isInteger(value))) return [{ path, message: TYPE_ERRORS.integer ?? '' }];
      break;
    case 'string':
      if (typeof value !== 'string') return [{ path, message: TYPE_ERRORS.string ?? '' }];
      // "empty strings are not accepted by default"
      if (field.len_min === undefined) field = { ...field, len_min: 1 };
      if (field.referenceable === true && isVaultReference(value)) return [];
      break;
    case 'function':
      return [{ path, message: TYPE_ERRORS.function ?? '' }];
    case 'number':
    case 'boolean':
      if (typeof value !== field.type) return [{ path, message: TYPE_ERRORS[field.type] ?? '' }];
      break;
    case 'any':
    case 'foreign':
    case 'json':
      break;
    default:
      return [{ path, message: `invalid type: ${luaToString(field.type)}` }];
  }

  for (const name of VALIDATORS_ORDER) {
    const arg = field[name];
    if (arg === undefined) continue;
    const message = VALIDATORS[name](value, arg, field);
    if (message !== null) return err(message);
  }
  return [];
}

/** Record fields in order, as `[name, definition]` pairs. */
export function recordFields(record: FieldDef): Array<[string, FieldDef]> {
  const out: Array<[string, FieldDef]> = [];
  for (const item of asArray(record.fields)) {
    if (!isPlainObject(item)) continue;
    const name = Object.keys(item)[0];
    const def = name === undefined ? undefined : item[name];
    if (name !== undefined && isPlainObject(def)) out.push([name, def]);
  }
  return out;
}

/** Validates a processed record (Schema:validate: fields, then required fields). */
function validateRecord(record: FieldDef, input: Record<string, unknown>, path: string): SchemaIssue[] {
  if (record.entity_checks !== undefined && record.entity_checks !== null) {
    throw new UnsupportedSchemaFeature(`${path || 'record'}: entity_checks are not implemented by this re-statement`);
  }
  const fields = new Map(recordFields(record));
  const byKey = new Map<string, SchemaIssue[]>();
  for (const [key, value] of Object.entries(input)) {
    if (value === undefined) continue;
    const field = fields.get(key);
    const at = join(path, key);
    if (field === undefined) {
      byKey.set(key, [{ path: at, message: 'unknown field' }]);
    } else if (field.type === 'self') {
      // metaschema `default = { type = "self" }`: the default is checked against the field itself.
      byKey.set(key, validateField(input as FieldDef, value, at));
    } else {
      byKey.set(key, validateField(field, value, at));
    }
  }
  for (const [key, field] of fields) {
    if (field.required === true && (input[key] === null || input[key] === undefined)) {
      byKey.set(key, [{ path: join(path, key), message: 'required field missing' }]);
    }
  }
  // Schema order first, then unknown keys (Kong's error table has no order; this one is stable).
  const ordered = [...fields.keys()].filter((k) => byKey.has(k));
  for (const k of byKey.keys()) if (!fields.has(k)) ordered.push(k);
  return ordered.flatMap((k) => byKey.get(k) ?? []);
}

// ---------------------------------------------------------------------------------------------
// Defaults (Schema:process_auto_fields, adjust_field_for_context, handle_missing_field)

export type AutoFieldsContext = 'insert' | 'select';

function handleMissingField(field: FieldDef, value: unknown): unknown {
  if (field.default !== undefined) return deepCopy(field.default);
  if (field.nilable === true) return value;
  if (field.required !== true) return null;
  if (field.abstract === true) return undefined;
  if (field.type === 'record') return processAutoFields(field, {}, 'insert');
  return undefined;
}

function adjustFieldForContext(field: FieldDef, value: unknown, context: AutoFieldsContext): unknown {
  if (context === 'select' && value === null && field.required === true) return handleMissingField(field, value);
  if (field.abstract === true) return value;
  if (field.type === 'record') {
    if (value !== null && (value !== undefined || field.required === true)) {
      const filled = value === undefined || value === false ? handleMissingField(field, value) : value;
      if (isPlainObject(filled) || (Array.isArray(filled) && filled.length === 0)) {
        return processAutoFields(field, isPlainObject(filled) ? filled : {}, context);
      }
      value = filled;
    }
  } else if (isTable(value)) {
    if (field.type === 'array' && Array.isArray(value)) {
      const elements = field.elements as FieldDef;
      value = value.map((v) => adjustFieldForContext(elements, v, context));
    } else if (field.type === 'set' && Array.isArray(value)) {
      const elements = field.elements as FieldDef;
      const seen: unknown[] = [];
      for (const v of value) if (!seen.some((s) => deepEqual(s, v))) seen.push(v);
      value = seen.map((v) => adjustFieldForContext(elements, v, context));
    } else if (field.type === 'map' && isPlainObject(value)) {
      const values = field.values as FieldDef;
      value = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, adjustFieldForContext(values, v, context)]));
    }
  }
  if (value === undefined) return handleMissingField(field, value);
  return value;
}

/**
 * Fills defaults (insert) or shapes a stored entity for readers (select, `nulls = false`: null
 * fields disappear, empty strings of non-empty string fields too). Returns a new object.
 */
export function processAutoFields(record: FieldDef, data: Record<string, unknown>, context: AutoFieldsContext): Record<string, unknown> {
  const out: Record<string, unknown> = { ...data };
  for (const [key, field] of recordFields(record)) {
    let value = adjustFieldForContext(field, out[key], context);
    if (context === 'select') {
      if (value === null) value = undefined;
      else if (field.type === 'integer' && typeof value === 'number') value = Math.floor(value);
    }
    if (value === undefined) delete out[key];
    else out[key] = value;
  }
  if (context === 'select') {
    for (const [key, field] of recordFields(record)) {
      const minLen = typeof field.len_min === 'number' ? field.len_min : 1;
      if (field.type === 'string' && minLen > 0 && out[key] === '') delete out[key];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The metaschema (kong/db/schema/metaschema.lua), written with the same field syntax

const VALID_TYPES = ['array', 'set', 'string', 'number', 'boolean', 'integer', 'foreign', 'map', 'record', 'function', 'json'];

const MATCH_LIST: FieldDef = {
  type: 'array',
  elements: { type: 'record', fields: [{ pattern: { type: 'string', required: true } }, { err: { type: 'string' } }] },
};

/** metaschema.lua `validators`. */
const VALIDATOR_ATTRIBUTES: Array<Record<string, FieldDef>> = [
  { between: { type: 'array', elements: { type: 'number' }, len_eq: 2 } },
  { eq: { type: 'any' } },
  { ne: { type: 'any' } },
  { gt: { type: 'number' } },
  { len_eq: { type: 'integer' } },
  { len_min: { type: 'integer' } },
  { len_max: { type: 'integer' } },
  { match: { type: 'string' } },
  { not_match: { type: 'string' } },
  { match_all: MATCH_LIST },
  { match_none: MATCH_LIST },
  { match_any: { type: 'record', fields: [
    { patterns: { type: 'array', elements: { type: 'string' }, required: true } }, { err: { type: 'string' } }] } },
  { starts_with: { type: 'string' } },
  { one_of: { type: 'array', elements: { type: 'any' } } },
  { not_one_of: { type: 'array', elements: { type: 'any' } } },
  { contains: { type: 'any' } },
  { is_regex: { type: 'boolean' } },
  { timestamp: { type: 'boolean' } },
  { uuid: { type: 'boolean' } },
  { custom_validator: { type: 'function' } },
  { mutually_exclusive_subsets: { type: 'array', elements: { type: 'array', elements: { type: 'string' } } } },
];

/** metaschema.lua `field_schema`: every attribute a field may carry (all optional but `type`). */
const FIELD_SCHEMA: Array<Record<string, FieldDef>> = [
  { type: { type: 'string', one_of: VALID_TYPES, required: true } },
  { required: { type: 'boolean' } },
  { reference: { type: 'string' } },
  { description: { type: 'string', len_min: 10, len_max: 500 } },
  { examples: { type: 'array', elements: { type: 'any' } } },
  { auto: { type: 'boolean' } },
  { unique: { type: 'boolean' } },
  { unique_across_ws: { type: 'boolean' } },
  { on_delete: { type: 'string', one_of: ['restrict', 'cascade', 'null'] } },
  { default: { type: 'self' } },
  { abstract: { type: 'boolean' } },
  { generate_admin_api: { type: 'boolean' } },
  { immutable: { type: 'boolean' } },
  { err: { type: 'string' } },
  { encrypted: { type: 'boolean' } },
  { referenceable: { type: 'boolean' } },
  { json_schema: { type: 'any' } },
  { transient: { type: 'boolean' } },
  { deprecation: { type: 'record', fields: [
    { message: { type: 'string', required: true } },
    { removal_in_version: { type: 'string', required: true } },
    { old_default: { type: 'any' } },
    { replaced_with: { type: 'array', elements: { type: 'any' } } },
  ] } },
  ...VALIDATOR_ATTRIBUTES,
];
for (const item of FIELD_SCHEMA) {
  for (const def of Object.values(item)) (def as { nilable?: boolean }).nilable = def.required !== true;
}
const FIELD_RECORD: FieldDef = { type: 'record', fields: FIELD_SCHEMA };
const FIELDS_ARRAY: FieldDef = {
  type: 'array',
  elements: { type: 'map', keys: { type: 'string' }, values: FIELD_RECORD, required: true, len_eq: 1 },
};
FIELD_SCHEMA.push(
  { elements: FIELD_RECORD },
  { keys: FIELD_RECORD },
  { values: FIELD_RECORD },
  { fields: FIELDS_ARRAY },
  { entity_checks: { type: 'array', elements: { type: 'any' }, nilable: true } },
  { shorthand_fields: { type: 'array', elements: { type: 'any' }, nilable: true } },
);

/** MetaSubSchema's own fields. */
const META_SUBSCHEMA: FieldDef = {
  type: 'record',
  fields: [
    { name: { type: 'string', required: true } },
    { fields: FIELDS_ARRAY },
    { entity_checks: { type: 'array', elements: { type: 'any' }, nilable: true } },
    { shorthand_fields: { type: 'array', elements: { type: 'any' }, nilable: true } },
    { transformations: { type: 'array', elements: { type: 'any' }, nilable: true } },
    { check: { type: 'function', nilable: true } },
  ],
};

/** metaschema.lua `required_attributes`. */
const REQUIRED_ATTRIBUTES: Readonly<Record<string, readonly string[]>> = {
  array: ['elements'], set: ['elements'], map: ['keys', 'values'], record: ['fields'], json: ['json_schema'],
};

/** metaschema.lua `attribute_types`: attributes allowed only on some field types. */
const ATTRIBUTE_TYPES: Readonly<Record<string, readonly string[]>> = {
  between: ['integer', 'number'],
  len_eq: ['array', 'set', 'string', 'map'],
  match: ['string'],
  one_of: ['string', 'number', 'integer'],
  contains: ['array', 'set'],
  is_regex: ['string'],
  timestamp: ['number', 'integer'],
  uuid: ['string'],
  unique: ['string', 'number', 'integer', 'foreign'],
  unique_across_ws: ['string', 'number', 'integer', 'foreign'],
  abstract: ['string', 'number', 'integer', 'record', 'array', 'set', 'map'],
  json_schema: ['json'],
  transient: ['string', 'number', 'integer', 'array', 'set', 'boolean'],
};

const NESTED_ATTRIBUTES = ['elements', 'keys', 'values'] as const;

/** metaschema.lua `check_field` (the MetaSubSchema `check` function, per field). */
function checkField(name: string, field: FieldDef, path: string, errors: SchemaIssue[], warnings: SchemaIssue[]): void {
  if (field.type === undefined || field.type === null) {
    errors.push({ path, message: 'missing type declaration' });
    return;
  }
  const type = String(field.type);
  const abstractRecord = field.abstract === true && type === 'record';
  for (const attr of abstractRecord ? [] : REQUIRED_ATTRIBUTES[type] ?? []) {
    if (field[attr] === undefined) errors.push({ path, message: `field of type '${type}' must declare '${attr}'` });
  }
  for (const attr of Object.keys(field)) {
    const allowed = ATTRIBUTE_TYPES[attr];
    if (allowed !== undefined && !allowed.includes(type)) {
      errors.push({ path, message: `field of type '${type}' cannot have attribute '${attr}'` });
    }
  }
  lintField(field, type, path, warnings);
  for (const attr of NESTED_ATTRIBUTES) {
    const nested = field[attr];
    if (nested === undefined) continue;
    if (isPlainObject(nested)) checkField(name, nested, `${path}.${attr}`, errors, warnings);
    else errors.push({ path, message: `'${attr}' must be a table` });
  }
  if (field.fields !== undefined) checkFields(asArray(field.fields), path, errors, warnings);
}

function checkFields(items: readonly unknown[], path: string, errors: SchemaIssue[], warnings: SchemaIssue[]): void {
  for (const item of items) {
    if (!isPlainObject(item)) {
      errors.push({ path: join(path, 'fields'), message: 'each entry in fields must be a sub-table' });
      return;
    }
    const name = Object.keys(item)[0];
    if (name === undefined) {
      errors.push({ path: join(path, 'fields'), message: 'field entry table is empty' });
      return;
    }
    const def = item[name];
    if (isPlainObject(def)) checkField(name, def, join(path, name), errors, warnings);
    else errors.push({ path: join(path, name), message: `'${name}' must be a table` });
  }
}

function luaTypeOf(value: unknown): string {
  if (typeof value === 'number') return 'number';
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  return value === null ? 'null' : 'table';
}

/** Definitions Kong accepts but that cannot work as written. */
function lintField(field: FieldDef, type: string, path: string, warnings: SchemaIssue[]): void {
  if (field.referenceable === true && type !== 'string') {
    warnings.push({ path, message: `'referenceable' has no effect on a field of type '${type}' (Kong resolves references in string fields and in string elements of arrays, sets and maps)` });
  }
  if (Array.isArray(field.one_of) || Array.isArray(field.not_one_of)) {
    const want = type === 'integer' ? 'number' : type;
    for (const attr of ['one_of', 'not_one_of'] as const) {
      const bad = asArray(field[attr]).filter((v) => luaTypeOf(v) !== want);
      if (bad.length > 0) warnings.push({ path, message: `'${attr}' lists ${bad.map(luaToString).join(', ')}, which a ${type} value can never equal` });
    }
  }
  for (const attr of ['len_min', 'len_max'] as const) {
    if (field[attr] !== undefined && !['string', 'array', 'set', 'map'].includes(type)) {
      warnings.push({ path, message: `'${attr}' on a field of type '${type}' raises a Lua error when a value is validated` });
    }
  }
  if ((field.gt !== undefined || field.between !== undefined) && !['number', 'integer'].includes(type)) {
    if (field.gt !== undefined) warnings.push({ path, message: `'gt' on a field of type '${type}' raises a Lua error when a value is validated` });
  }
  if (field.required === true && field.default === null) {
    warnings.push({ path, message: "a required field with default null always fails validation" });
  }
}

/** kong/db/schema/entities/plugins.lua: the fields a plugin subschema may specialize. */
const PLUGINS_ENTITY_FIELDS: Readonly<Record<string, FieldDef>> = {
  id: { type: 'string', uuid: true }, name: { type: 'string' }, instance_name: { type: 'string' },
  created_at: { type: 'integer' }, updated_at: { type: 'integer' },
  route: { type: 'foreign' }, service: { type: 'foreign' }, consumer: { type: 'foreign' },
  config: { type: 'record', abstract: true }, protocols: { type: 'set', elements: { type: 'string' } },
  enabled: { type: 'boolean' }, tags: { type: 'set', elements: { type: 'string' } },
};

/** Schema.lua `compatible_fields`. */
function compatibleFields(parent: FieldDef, child: FieldDef): boolean {
  if (parent.type === 'record' && child.type === 'json') return true;
  if (parent.type !== child.type) return false;
  if (parent.type === 'array' || parent.type === 'set') {
    return (parent.elements as FieldDef).type === (isPlainObject(child.elements) ? child.elements.type : undefined);
  }
  return true;
}

/**
 * Checks a plugin schema as Kong does when it loads the plugin (plugin_loader.load_subschema):
 * MetaSubSchema validation, then new_subschema's field checks. `warnings` are extra lint.
 */
export function checkPluginSchema(schema: unknown): MetaSchemaReport {
  const errors: SchemaIssue[] = [];
  const warnings: SchemaIssue[] = [];
  if (!isPlainObject(schema)) return { errors: [{ path: '', message: 'expected an input table' }], warnings };
  // 1. MetaSubSchema field validation (types of attributes, unknown attributes, defaults).
  // (Schema:validate works on the input as given; nested records are validated on processed copies.)
  errors.push(...validateRecord(META_SUBSCHEMA, schema, ''));
  // 2. MetaSubSchema `check`: type-specific rules.
  if (!isTable(schema.fields)) {
    errors.push({ path: 'fields', message: "'fields' must be a table" });
    return { errors, warnings };
  }
  checkFields(asArray(schema.fields), '', errors, warnings);
  // 3. Entity.new_subschema / Schema.new_subschema: only fields of the `plugins` entity.
  const name = typeof schema.name === 'string' ? schema.name : '?';
  for (const [field, def] of recordFields({ type: 'record', fields: schema.fields })) {
    const parent = PLUGINS_ENTITY_FIELDS[field];
    if (parent === undefined) errors.push({ path: field, message: `error in definition of '${name}': ${field}: cannot create a new field` });
    else if (!compatibleFields(parent, def)) errors.push({ path: field, message: `error in definition of '${name}': ${field}: cannot change type in a specialized field` });
  }
  if (!recordFields({ type: 'record', fields: schema.fields }).some(([field]) => field === 'config')) {
    warnings.push({ path: 'config', message: 'the schema defines no config record' });
  }
  return { errors: dedupe(errors.map(fieldPath)), warnings: dedupe(warnings) };
}

/** `fields[1].config.fields[2].issuer.default` -> `config.issuer.default`. */
function fieldPath(issue: SchemaIssue): SchemaIssue {
  return { ...issue, path: issue.path.replace(/(^|\.)fields\[\d+\]\./g, '$1') };
}

function dedupe(issues: readonly SchemaIssue[]): SchemaIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.path}\u0000${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function formatIssues(issues: readonly SchemaIssue[]): string {
  return issues.map((i) => (i.path === '' ? i.message : `${i.path}: ${i.message}`)).join('; ');
}

export class KongSchemaError extends Error {
  constructor(readonly report: MetaSchemaReport, strict: boolean) {
    const parts = [...report.errors.map((i) => `${i.path}: ${i.message}`)];
    if (strict) parts.push(...report.warnings.map((i) => `${i.path}: (lint) ${i.message}`));
    super(`Kong would not load this plugin schema: ${parts.join('; ')}`);
    this.name = 'KongSchemaError';
  }
}

/** Throws unless Kong would load the schema; `strict` (default) also fails on lint warnings. */
export function assertValidPluginSchema(schema: unknown, options: { readonly strict?: boolean } = {}): void {
  const strict = options.strict ?? true;
  const report = checkPluginSchema(schema);
  if (report.errors.length > 0 || (strict && report.warnings.length > 0)) throw new KongSchemaError(report, strict);
}

/** Wraps a plugin's exported `Schema` as kong-pdk's GetPluginInfo does (`server.js`). */
export function pluginSubSchema(name: string, fields: readonly unknown[]): { name: string; fields: unknown[] } {
  return { name, fields: [{ config: { type: 'record', fields } }] };
}

// ---------------------------------------------------------------------------------------------
// Config validation (plugins entity insert) and the run-time view

/** entity.lua `make_records_required`: records are required unless they say otherwise. */
function makeRecordsRequired(field: FieldDef): FieldDef {
  if (field.type !== 'record') return field;
  return {
    ...field,
    required: field.required === undefined ? true : field.required,
    fields: asArray(field.fields).map((item) => {
      if (!isPlainObject(item)) return item;
      return Object.fromEntries(Object.entries(item).map(([k, v]) => [k, isPlainObject(v) ? makeRecordsRequired(v) : v]));
    }),
  };
}

function configField(schema: unknown): FieldDef {
  if (!isPlainObject(schema)) throw new Error('plugin schema must be an object');
  const config = recordFields({ type: 'record', fields: schema.fields }).find(([name]) => name === 'config')?.[1];
  if (config === undefined) throw new Error(`plugin schema '${String(schema.name)}' has no config record`);
  return makeRecordsRequired(config);
}

export type ConfigValidation =
  | { readonly ok: true; readonly config: Record<string, unknown> }
  | { readonly ok: false; readonly errors: readonly SchemaIssue[] };

/**
 * Validates a plugin's config as Kong's plugins entity insert would (Admin API or declarative
 * config): fills defaults, rejects unknown fields, type errors, one_of/between violations and
 * missing required fields. On success returns the stored config (absent optional fields are
 * explicit nulls, as the Admin API shows them).
 */
export function validateConfig(schema: unknown, config: unknown): ConfigValidation {
  const field = configField(schema);
  const entity = processAutoFields({ type: 'record', fields: [{ config: field }] }, { config }, 'insert');
  const errors = validateRecord({ type: 'record', fields: [{ config: field }] }, entity, '');
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: entity.config as Record<string, unknown> };
}

export class KongConfigError extends Error {
  constructor(readonly pluginName: string, readonly errors: readonly SchemaIssue[]) {
    super(`Kong would reject this ${pluginName} config: schema violation (${formatIssues(errors)})`);
    this.name = 'KongConfigError';
  }
}

export interface RuntimeConfigOptions {
  /** Vault references and their values (`{vault://env/x}` -> value). */
  readonly vault?: Readonly<Record<string, string>>;
  /** Notified of references that do not resolve (Kong logs a warning and uses ""). */
  readonly onUnresolved?: (reference: string) => void;
}

function resolveReferences(record: FieldDef, data: Record<string, unknown>, options: RuntimeConfigOptions): Record<string, unknown> {
  const resolve = (value: unknown): unknown => {
    if (!isVaultReference(value)) return value;
    const found = options.vault?.[value];
    if (found === undefined) options.onUnresolved?.(value);
    return found ?? '';
  };
  const out = { ...data };
  for (const [key, field] of recordFields(record)) {
    const value = out[key];
    if (value === undefined) continue;
    if (field.type === 'string' && field.referenceable === true) {
      out[key] = resolve(value);
    } else if ((field.type === 'array' || field.type === 'set') && Array.isArray(value)) {
      const el = field.elements as FieldDef;
      if (el.type === 'string' && el.referenceable === true) out[key] = value.map(resolve);
    } else if (field.type === 'map' && isPlainObject(value)) {
      const vals = field.values as FieldDef;
      if (vals.type === 'string' && vals.referenceable === true) {
        out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
      }
    } else if (field.type === 'record' && isPlainObject(value)) {
      out[key] = resolveReferences(field, value, options);
    }
  }
  return out;
}

/**
 * The config as the plugin receives it at run time: the stored entity read back with
 * `nulls = false` (null fields are absent, not null) and vault references resolved.
 */
export function toRuntimeConfig(schema: unknown, stored: Record<string, unknown>, options: RuntimeConfigOptions = {}): Record<string, unknown> {
  const field = configField(schema);
  const selected = processAutoFields(field, stored, 'select');
  return resolveReferences(field, selected, options);
}
