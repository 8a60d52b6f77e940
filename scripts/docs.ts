/**
 * Regenerates the generated sections of the reference docs from the code, so they cannot drift:
 * the configuration table in docs/configuration.md (from `src/config-schema.ts`) and the
 * troubleshooting table in docs/troubleshooting.md (from the reason codes in `src/errors.ts`, their
 * HTTP mapping in `src/response.ts` and the fixes the `mtls-pop explain` CLI prints).
 * `npm run docs` rewrites those files; `npm test` checks they are current.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FIELDS, type SchemaField, type SchemaFields } from '../src/config-schema.js';
import { REASONS, failure, type ReasonCode } from '../src/errors.js';
import { toHttpResponse } from '../src/response.js';
import { fixFor } from '../src/explain.js';

/** Keys that Kong Enterprise's openid-connect (or header-cert-auth) has under the same name. */
const KONG_KEYS = new Set([
  'issuer', 'jwks_endpoint', 'issuers_allowed', 'audience_required', 'scopes_required', 'leeway', 'auth_methods',
  'proof_of_possession_mtls', 'proof_of_possession_auth_methods_validation', 'proof_of_possession_mtls_from_header',
  'cache_tokens_salt', 'cache_ttl', 'display_errors', 'unauthorized_error_message', 'forbidden_error_message', 'timeout',
  'rediscovery_lifetime', 'ssl_verify', 'certificate_header_name', 'certificate_header_format', 'ca_certificates',
  'secure_source', 'allow_partial_chain', 'cert_cache_ttl', 'revocation_check_mode', 'http_timeout', 'http_proxy_host',
  'http_proxy_port', 'hide_credentials', 'consumer_claim', 'consumer_by', 'consumer_optional', 'anonymous',
]);

function typeOf(field: SchemaField): string {
  return field.type === 'array' || field.type === 'set' ? `array of ${field.elements.type}` : field.type;
}

function defaultOf(field: SchemaField): string {
  if (field.default === undefined || field.default === null) return field.required === true ? 'required' : '—';
  const text = JSON.stringify(field.default);
  return text.length > 40 ? 'all asymmetric algorithms' : `\`${text}\``;
}

function rows(fields: SchemaFields, prefix: string): string[] {
  const out: string[] = [];
  for (const entry of fields) {
    for (const [name, field] of Object.entries(entry)) {
      const choices = field.type === 'string' && field.one_of !== undefined
        ? ` One of ${field.one_of.map((v) => `\`${v}\``).join(', ')}.` : '';
      const description = (field.description ?? (name === 'proof_of_possession_mtls_from_header'
        ? 'Where the certificate comes from and what to trust (the ↳ rows).' : '')) + choices;
      out.push(`| \`${prefix}${name}\` | ${typeOf(field)} | ${defaultOf(field)} | ${KONG_KEYS.has(name) ? 'same key' : '—'} | ${description.replace(/\|/g, '\\|')} |`);
      if (field.type === 'record') out.push(...rows(field.fields, '↳ '));
    }
  }
  return out;
}

export function configTable(): string {
  return ['| Key | Type | Default | Kong Enterprise | Meaning |', '|---|---|---|---|---|', ...rows(CONFIG_FIELDS, '')].join('\n');
}

export function reasonTable(): string {
  const options = { realm: 'r', unauthorizedMessage: 'u', forbiddenMessage: 'f', displayErrors: false };
  const lines = ['| Reason | Status | `error` | What to do |', '|---|---|---|---|'];
  for (const reason of Object.keys(REASONS) as ReasonCode[]) {
    const { status } = toHttpResponse(failure(reason, ''), options);
    const errorClass = REASONS[reason] === 'no_credentials' ? '(none)' : REASONS[reason];
    lines.push(`| \`${reason}\` | ${status} | ${errorClass} | ${fixFor(reason).replace(/\|/g, '\\|')} |`);
  }
  return lines.join('\n');
}

/** Replaces the text between `<!-- NAME -->` and `<!-- /NAME -->` (inserting the end marker if missing). */
export function replaceSection(readme: string, name: string, body: string): string {
  const start = `<!-- ${name} -->`;
  const end = `<!-- /${name} -->`;
  const from = readme.indexOf(start);
  if (from < 0) throw new Error(`document has no ${start} marker`);
  const to = readme.indexOf(end, from);
  const tail = to < 0 ? readme.slice(from + start.length) : readme.slice(to + end.length);
  return `${readme.slice(0, from)}${start}\n${body}\n${end}${tail}`;
}

/** The generated documents: path relative to the repository root, and how to render it. */
export const GENERATED_DOCS: ReadonlyArray<{ readonly file: string; readonly render: (text: string) => string }> = [
  { file: 'docs/configuration.md', render: (text) => replaceSection(text, 'CONFIG-TABLE', configTable()) },
  { file: 'docs/troubleshooting.md', render: (text) => replaceSection(text, 'REASON-TABLE', reasonTable()) },
];

if (require.main === module) {
  for (const { file, render } of GENERATED_DOCS) {
    const path = join(__dirname, '..', '..', file);
    const before = readFileSync(path, 'utf8');
    const after = render(before);
    writeFileSync(path, after);
    process.stdout.write(before === after ? `${file} is up to date\n` : `${file} updated\n`);
  }
}
