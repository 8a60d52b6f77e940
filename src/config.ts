/**
 * One typed, validated configuration, from whatever object Kong (or a test, or the CLI) hands over.
 *
 * `parseConfig` applies `config-schema.ts` the way Kong's entity validation would (types, one_of,
 * between, defaults for absent or null fields), ignores keys Kong adds on its own (`route_id`,
 * `__plugin_id`, ...), then checks the rules that span fields. Every error names the key and why.
 */
import {
  CONFIG_FIELDS, type SchemaField, type SchemaFields, type POP_MODES, type HEADER_FORMATS,
  type REVOCATION_MODES, type ASYMMETRIC_ALGORITHMS,
} from './config-schema.js';
import { headerKey, headerNameProblem, parseValuePath } from './upstream-headers.js';

export type PopMode = (typeof POP_MODES)[number];
export type HeaderFormat = (typeof HEADER_FORMATS)[number];
export type RevocationMode = (typeof REVOCATION_MODES)[number];
export type SigningAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export interface FromHeaderConfig {
  readonly certificate_header_name: string;
  readonly certificate_header_format: HeaderFormat;
  readonly certificate_chain_header_name: string | null;
  readonly xfcc_element_count: number;
  readonly ca_certificates: readonly string[];
  readonly ca_certificates_pem: readonly string[];
  readonly secure_source: boolean;
  readonly ssl_verify: boolean;
  readonly allow_partial_chain: boolean;
  readonly max_header_size: number;
  readonly max_chain_length: number;
  readonly cert_cache_ttl: number;
  readonly revocation_check_mode: RevocationMode;
  readonly http_timeout: number;
  readonly ocsp_responder_url: string | null;
  readonly revocation_check_whole_chain: boolean;
  /** Seconds an OCSP response or CRL without nextUpdate stays usable after its thisUpdate. */
  readonly revocation_max_age: number;
  readonly http_proxy_host: string | null;
  readonly http_proxy_port: number | null;
}

export interface MtlsPopConfig {
  readonly issuer: string | null;
  readonly jwks_endpoint: string | null;
  readonly issuers_allowed: readonly string[] | null;
  readonly audience_required: readonly string[] | null;
  readonly scopes_required: readonly string[] | null;
  readonly leeway: number;
  readonly auth_methods: readonly string[];
  readonly signing_algorithms: readonly SigningAlgorithm[];
  readonly proof_of_possession_mtls: PopMode;
  readonly proof_of_possession_auth_methods_validation: boolean;
  readonly proof_of_possession_mtls_from_header: FromHeaderConfig | null;
  readonly cache_tokens_salt: string | null;
  readonly cache_ttl: number;
  readonly cache_size: number;
  readonly display_errors: boolean;
  readonly unauthorized_error_message: string;
  readonly forbidden_error_message: string;
  readonly realm: string | null;
  readonly timeout: number;
  readonly rediscovery_lifetime: number;
  readonly ssl_verify: boolean;
  readonly idp_ca_certificates_pem: readonly string[];
  readonly admin_api_url: string;
  readonly upstream_headers: readonly UpstreamHeaderConfig[];
  readonly hide_credentials: boolean;
  readonly hide_certificate_header: boolean;
  readonly log_serialize: boolean;
  /** Claim path naming the consumer; null or empty: no consumer mapping. */
  readonly consumer_claim: readonly string[] | null;
  readonly consumer_by: ReadonlyArray<'id' | 'username' | 'custom_id'>;
  readonly consumer_optional: boolean;
  readonly anonymous: string | null;
}

/** One `upstream_headers` entry. */
export interface UpstreamHeaderConfig {
  readonly header: string;
  readonly path: string;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: MtlsPopConfig }
  | { readonly ok: false; readonly errors: readonly string[] };

/** auth_methods that can carry proof of possession (Kong: bearer, introspection, session); we implement bearer. */
const POP_CAPABLE_METHODS = new Set(['bearer']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? 'a string' : `a ${typeof value}`;
}

/** Validates one value against a field; returns the value with defaults applied. */
function checkField(path: string, field: SchemaField, raw: unknown, errors: string[]): unknown {
  let value = raw;
  if (value === undefined || value === null) {
    value = field.default === undefined ? null : structuredClone(field.default);
    if (value === null) {
      if (field.required === true) errors.push(`${path}: required field missing`);
      return null;
    }
  }
  switch (field.type) {
    case 'string': {
      if (typeof value !== 'string') { errors.push(`${path}: expected a string, got ${describe(value)}`); return null; }
      if (field.len_min !== undefined && value.length < field.len_min) errors.push(`${path}: must not be empty`);
      if (field.one_of !== undefined && !field.one_of.includes(value)) {
        errors.push(`${path}: expected one of: ${field.one_of.join(', ')}`);
      }
      if (field.uuid === true && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) {
        errors.push(`${path}: expected a UUID`);
      }
      return value;
    }
    case 'number':
    case 'integer': {
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        errors.push(`${path}: expected a ${field.type}, got ${describe(value)}`); return null;
      }
      if (field.type === 'integer' && !Number.isInteger(value)) errors.push(`${path}: expected an integer`);
      if (field.between !== undefined && (value < field.between[0] || value > field.between[1])) {
        errors.push(`${path}: value should be between ${field.between[0]} and ${field.between[1]}`);
      }
      if (field.gt !== undefined && !(value > field.gt)) errors.push(`${path}: value must be greater than ${field.gt}`);
      return value;
    }
    case 'boolean':
      if (typeof value !== 'boolean') { errors.push(`${path}: expected a boolean, got ${describe(value)}`); return null; }
      return value;
    case 'array':
    case 'set': {
      // Kong's JSON encoding turns an empty Lua table into {}: accept it as an empty array.
      if (isPlainObject(value) && Object.keys(value).length === 0) value = [];
      if (!Array.isArray(value)) { errors.push(`${path}: expected an array, got ${describe(value)}`); return null; }
      if (field.len_min !== undefined && value.length < field.len_min) {
        errors.push(`${path}: length must be at least ${field.len_min}`);
      }
      const items = value.map((item, i) => checkField(`${path}[${i + 1}]`, field.elements, item, errors));
      return field.type === 'set' ? [...new Set(items)] : items;
    }
    case 'record': {
      if (!isPlainObject(value)) { errors.push(`${path}: expected a record, got ${describe(value)}`); return null; }
      return checkRecord(path, field.fields, value, errors);
    }
  }
}

function checkRecord(prefix: string, fields: SchemaFields, raw: Record<string, unknown>, errors: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const entry of fields) {
    for (const [name, field] of Object.entries(entry)) {
      known.add(name);
      out[name] = checkField(prefix === '' ? name : `${prefix}.${name}`, field, raw[name], errors);
    }
  }
  // Kong rejects unknown fields inside a record; it also adds its own keys at the top level of a
  // plugin's config when it hands it to the plugin server (`route_id`, `__plugin_id`, `__seq__`).
  if (prefix !== '') {
    for (const name of Object.keys(raw)) {
      if (!known.has(name)) errors.push(`${prefix}.${name}: unknown field`);
    }
  }
  return out;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/** Rules that span several fields. */
function checkCrossField(config: MtlsPopConfig, errors: string[]): void {
  if (config.issuer === null && config.jwks_endpoint === null) {
    errors.push('issuer: set issuer (for discovery) or jwks_endpoint');
  }
  for (const key of ['issuer', 'jwks_endpoint', 'admin_api_url'] as const) {
    const value = config[key];
    if (value !== null && !isHttpUrl(value)) errors.push(`${key}: expected an http(s) URL`);
  }
  if (config.issuer === null && (config.issuers_allowed === null || config.issuers_allowed.length === 0)) {
    errors.push('issuers_allowed: without issuer, list the accepted iss values here');
  }
  if (config.proof_of_possession_auth_methods_validation) {
    const unsupported = config.auth_methods.filter((m) => !POP_CAPABLE_METHODS.has(m));
    if (unsupported.length > 0) {
      errors.push(`auth_methods: ${unsupported.join(', ')} cannot be used with proof of possession (only bearer is supported)`);
    }
  }
  if (!config.auth_methods.includes('bearer')) errors.push('auth_methods: must include bearer');
  const fromHeader = config.proof_of_possession_mtls_from_header;
  if (config.proof_of_possession_mtls !== 'off') {
    if (fromHeader === null) {
      errors.push('proof_of_possession_mtls_from_header: required when proof_of_possession_mtls is not off');
    } else if (fromHeader.ca_certificates.length + fromHeader.ca_certificates_pem.length === 0) {
      errors.push('proof_of_possession_mtls_from_header.ca_certificates: list at least one CA (or use ca_certificates_pem)');
    }
  }
  checkUpstreamHeaders(config, errors);
  if (fromHeader !== null) {
    const prefix = 'proof_of_possession_mtls_from_header';
    if (fromHeader.ocsp_responder_url !== null && !isHttpUrl(fromHeader.ocsp_responder_url)) {
      errors.push(`${prefix}.ocsp_responder_url: expected an http(s) URL`);
    }
    if ((fromHeader.http_proxy_host === null) !== (fromHeader.http_proxy_port === null)) {
      errors.push(`${prefix}.http_proxy_host: set http_proxy_host and http_proxy_port together`);
    }
  }
}

/** `upstream_headers`: valid, unreserved, distinct names (`-`/`_` and case folded) and valid paths. */
function checkUpstreamHeaders(config: MtlsPopConfig, errors: string[]): void {
  const fromHeader = config.proof_of_possession_mtls_from_header;
  const certificateHeaders = fromHeader === null ? [] : [
    fromHeader.certificate_header_name,
    ...(fromHeader.certificate_chain_header_name === null ? [] : [fromHeader.certificate_chain_header_name]),
  ];
  const seen = new Set<string>();
  config.upstream_headers.forEach((entry, i) => {
    const at = `upstream_headers[${i + 1}]`;
    const problem = headerNameProblem(entry.header, certificateHeaders);
    if (problem !== null) errors.push(`${at}.header: ${entry.header} ${problem}`);
    const key = headerKey(entry.header);
    if (seen.has(key)) errors.push(`${at}.header: ${entry.header} is listed twice`);
    seen.add(key);
    const path = parseValuePath(entry.path);
    if (!path.ok) errors.push(`${at}.path: ${path.error}`);
  });
}

/** Validates and defaults a raw config object. Never throws. */
export function parseConfig(raw: unknown): ConfigResult {
  if (!isPlainObject(raw)) return { ok: false, errors: [`config: expected an object, got ${describe(raw)}`] };
  const errors: string[] = [];
  const record = checkRecord('', CONFIG_FIELDS, raw, errors);
  if (errors.length > 0) return { ok: false, errors };
  const config = record as unknown as MtlsPopConfig;
  checkCrossField(config, errors);
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config };
}
