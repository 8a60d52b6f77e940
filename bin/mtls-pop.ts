#!/usr/bin/env node
/**
 * mtls-pop: the operator's diagnostics command line.
 *
 *   mtls-pop thumbprint <cert>            x5t#S256 of a certificate (RFC 8705 section 3.1)
 *   mtls-pop explain --cert ... --token   why the plugin passes or rejects a certificate + token pair
 *
 * `explain` builds the plugin configuration with the plugin's own `parseConfig` (from flags or a
 * decK / kong.yml plugin `config:` block) and runs the verifier core; `src/explain.ts` does the
 * work and this file only reads inputs and formats the report. Exit codes: 0 the pair passes (or
 * the command succeeded), 1 the plugin would reject it, 2 bad usage or unreadable input. Bad input
 * never produces a stack trace.
 */
import { readFileSync } from 'node:fs';
import { parseConfig, type MtlsPopConfig } from '../src/config.js';
import { HEADER_FORMATS, POP_MODES } from '../src/config-schema.js';
import {
  explain, readCertificates, thumbprintInfo, type CertificateInput, type ExplainReport, type ExplainStep,
} from '../src/explain.js';
import { KongCaCertificates } from '../kong/ca-certificates.js';
import { packageVersion } from '../src/package-info.js';

const MAIN_USAGE = `Usage: mtls-pop <command> [options]

Diagnostics for the mtls-pop Kong plugin (OAuth 2.0 mTLS certificate-bound tokens, RFC 8705).

Commands:
  thumbprint <cert|->   print the x5t#S256 thumbprint of a certificate
  explain               explain why the plugin would pass or reject a certificate + token pair

Options:
  -h, --help            this help ("mtls-pop <command> --help" for a command)
  --version             print the version

Exit codes: 0 passes / success, 1 the plugin would reject the request, 2 usage or input error.
`;

const THUMBPRINT_USAGE = `Usage: mtls-pop thumbprint [--hex] [--json] <cert.pem|cert.der|->

Prints the x5t#S256 of the first certificate: base64url (no padding) of the SHA-256 of its DER,
the value a certificate-bound token carries in cnf["x5t#S256"] (RFC 8705 section 3.1).
The input may be PEM, DER, a percent-encoded PEM (nginx $ssl_client_escaped_cert) or one line of
base64 DER (HAProxy ssl_c_der,base64); "-" reads standard input.

Options:
  --hex        also print the SHA-256 in hex (labelled)
  --json       print {"x5t#S256", "sha256_hex", "subject", "notAfter"}
  -h, --help   this help
`;

const EXPLAIN_USAGE = `Usage: mtls-pop explain --cert client.pem --token TOKEN|@file|- --ca ca.pem [options]

Runs the plugin's checks on one client certificate and access token and prints each step with
PASS / FAIL / SKIP, the fix for a failure, the verdict and the HTTP response the plugin would send.
The verdict comes from the plugin's own verifier, run on the same request.

Inputs:
  --cert FILE              client certificate (PEM/DER; further PEM blocks are intermediates)
  --chain FILE             intermediates (PEM), sent after the client certificate
  --header-value V|@F|-    the certificate header exactly as the load balancer sends it
                           (then --cert is optional and only compared with the header)
  --chain-header-value V|@F  rfc9440 only: the Client-Cert-Chain value
  --token TOKEN|@FILE|-    the access token (or "Bearer <token>")
Configuration (flags override a --config file):
  --config FILE            the plugin config: a decK / kong.yml file with one mtls-pop plugin, a
                           plugin entry, or its config: block (JSON or YAML)
  --ca FILE                trusted CA certificate(s) (PEM; repeatable) = ca_certificates_pem
  --issuer URL             issuer (discovery, and the allowed iss)
  --jwks URL               jwks_endpoint (without --issuer: any iss is accepted, with a note)
  --format FORMAT          certificate_header_format: ${HEADER_FORMATS.join(', ')}
  --mode MODE              proof_of_possession_mtls: ${POP_MODES.join(', ')} (default strict)
  --audience A             audience_required entry (repeatable)
  --scope "a b"            scopes_required entry: all of these scopes (repeatable: alternatives)
  --idp-ca FILE            extra CA for the IdP TLS connection (repeatable)
  --insecure               do not verify the IdP TLS certificate (ssl_verify false)
  --admin-api URL          read ca_certificates entity UUIDs from this Kong Admin API
Output:
  --json                   the report as JSON (never includes the token or its signature)
  -h, --help               this help

Exit codes: 0 the plugin would pass the request, 1 it would reject it, 2 usage or input error.
`;

class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string, readonly usage: string) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Flags.

type FlagKind = 'value' | 'list' | 'bool';

interface ParsedFlags {
  readonly values: Map<string, string[]>;
  readonly bools: Set<string>;
  readonly positionals: string[];
  readonly help: boolean;
}

function parseFlags(argv: readonly string[], spec: Readonly<Record<string, FlagKind>>, usage: string): ParsedFlags {
  const values = new Map<string, string[]>();
  const bools = new Set<string>();
  const positionals: string[] = [];
  let help = false;
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (onlyPositionals || arg === '-' || !arg.startsWith('-')) {
      positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyPositionals = true;
      continue;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const kind = spec[flag];
    if (kind === undefined) throw new UsageError(`unknown option '${flag}'`, usage);
    if (kind === 'bool') {
      if (eq > 0) throw new UsageError(`option '${flag}' takes no value`, usage);
      bools.add(flag);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError(`option '${flag}' needs a value`, usage);
    const list = values.get(flag) ?? [];
    if (kind === 'value' && list.length > 0) throw new UsageError(`option '${flag}' given twice`, usage);
    list.push(value);
    values.set(flag, list);
  }
  return { values, bools, positionals, help };
}

function one(flags: ParsedFlags, flag: string): string | undefined {
  return flags.values.get(flag)?.[0];
}

function all(flags: ParsedFlags, flag: string): string[] {
  return flags.values.get(flag) ?? [];
}

// ---------------------------------------------------------------------------------------------
// Inputs.

let stdinUsedBy: string | null = null;

function readStdin(what: string, usage: string): Buffer {
  if (stdinUsedBy !== null) throw new UsageError(`standard input is already used for ${stdinUsedBy}; cannot read ${what} from it too`, usage);
  stdinUsedBy = what;
  try {
    return readFileSync(0);
  } catch (error) {
    throw new UsageError(`cannot read ${what} from standard input (${errorCode(error)})`, usage);
  }
}

function errorCode(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error);
}

function readFileInput(path: string, what: string, usage: string): Buffer {
  if (path === '-') return readStdin(what, usage);
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${JSON.stringify(path)}: ${errorCode(error)}`, usage);
  }
}

/** VALUE, @FILE or - (standard input), trimmed. */
function readTextArgument(value: string, what: string, usage: string): string {
  const text = value === '-' ? readStdin(what, usage).toString('utf8')
    : value.startsWith('@') ? readFileInput(value.slice(1), what, usage).toString('utf8')
    : value;
  const trimmed = text.trim();
  if (trimmed === '') throw new UsageError(`${what} is empty`, usage);
  return trimmed;
}

function readCertificateFile(path: string, what: string, usage: string): Buffer[] {
  const result = readCertificates(readFileInput(path, what, usage));
  if (!result.ok) throw new UsageError(`${what} ${path === '-' ? '(standard input)' : JSON.stringify(path)} ${result.message}`, usage);
  return result.certificates;
}

function readPemFile(path: string, what: string, usage: string): string {
  const text = readFileInput(path, what, usage).toString('utf8');
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new UsageError(`${what} ${JSON.stringify(path)} has no PEM "-----BEGIN CERTIFICATE-----" block`, usage);
  }
  return text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every object named mtls-pop with a config record, anywhere in a decK / kong.yml document. */
function findPlugins(node: unknown, out: Record<string, unknown>[], depth = 0): void {
  if (depth > 20) return;
  if (Array.isArray(node)) {
    for (const item of node) findPlugins(item, out, depth + 1);
    return;
  }
  if (!isObject(node)) return;
  if (node['name'] === 'mtls-pop' && isObject(node['config'])) {
    out.push(node['config']);
    return;
  }
  for (const value of Object.values(node)) findPlugins(value, out, depth + 1);
}

async function readConfigFile(path: string, usage: string): Promise<Record<string, unknown>> {
  const text = readFileInput(path, 'config file', usage).toString('utf8');
  let doc: unknown;
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      doc = JSON.parse(text);
    } catch (error) {
      throw new UsageError(`config file ${JSON.stringify(path)} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`, usage);
    }
  } else {
    let yaml: typeof import('yaml');
    try {
      yaml = await import('yaml');
    } catch {
      throw new UsageError(`reading a YAML config needs the npm package "yaml"; convert ${JSON.stringify(path)} to JSON or install yaml`, usage);
    }
    try {
      doc = yaml.parse(text);
    } catch (error) {
      const message = error instanceof Error ? (error.message.split('\n')[0] ?? '').replace(/:\s*$/, '') : String(error);
      throw new UsageError(`config file ${JSON.stringify(path)} is not valid YAML: ${message}`, usage);
    }
  }
  if (!isObject(doc)) throw new UsageError(`config file ${JSON.stringify(path)} does not hold an object`, usage);
  // A decK / kong.yml file, or a list of plugin entries: find the mtls-pop plugin.
  const looksDeclarative = ['_format_version', 'plugins', 'services', 'routes', 'consumers'].some((k) => k in doc);
  if (looksDeclarative) {
    const found: Record<string, unknown>[] = [];
    findPlugins(doc, found);
    if (found.length === 0) throw new UsageError(`config file ${JSON.stringify(path)} has no plugin named mtls-pop with a config`, usage);
    if (found.length > 1) {
      throw new UsageError(`config file ${JSON.stringify(path)} has ${found.length} mtls-pop plugins; put the one to explain in its own file (its config: block)`, usage);
    }
    return { ...found[0] };
  }
  // A plugin entry ({name, config}) or the config block itself.
  if (typeof doc['name'] === 'string' && isObject(doc['config'])) return { ...doc['config'] };
  return { ...doc };
}

// ---------------------------------------------------------------------------------------------
// thumbprint

function thumbprintCommand(argv: readonly string[]): { output: string; code: number } {
  const flags = parseFlags(argv, { '--hex': 'bool', '--json': 'bool' }, THUMBPRINT_USAGE);
  if (flags.help) return { output: THUMBPRINT_USAGE, code: 0 };
  if (flags.positionals.length !== 1) {
    throw new UsageError(flags.positionals.length === 0 ? 'missing certificate file (or - for standard input)' : 'give exactly one certificate file', THUMBPRINT_USAGE);
  }
  const path = flags.positionals[0]!;
  const certificates = readCertificateFile(path, 'certificate', THUMBPRINT_USAGE);
  const info = thumbprintInfo(certificates[0]!);
  if (info === null) throw new UsageError(`certificate ${JSON.stringify(path)} is not an X.509 certificate`, THUMBPRINT_USAGE);
  if (flags.bools.has('--json')) return { output: `${JSON.stringify(info, null, 2)}\n`, code: 0 };
  if (flags.bools.has('--hex')) return { output: `x5t#S256:   ${info['x5t#S256']}\nsha256 hex: ${info.sha256_hex}\n`, code: 0 };
  return { output: `${info['x5t#S256']}\n`, code: 0 };
}

// ---------------------------------------------------------------------------------------------
// explain: configuration

const EXPLAIN_FLAGS: Readonly<Record<string, FlagKind>> = {
  '--cert': 'value', '--chain': 'list', '--header-value': 'value', '--chain-header-value': 'value', '--token': 'value',
  '--config': 'value', '--ca': 'list', '--issuer': 'value', '--jwks': 'value', '--format': 'value', '--mode': 'value',
  '--audience': 'list', '--scope': 'list', '--idp-ca': 'list', '--insecure': 'bool', '--admin-api': 'value', '--json': 'bool',
};

/** The token's iss, read without verification (only to fill issuers_allowed when just --jwks is given). */
function unverifiedIssuer(token: string): string | null {
  const payload = token.replace(/^bearer\s+/i, '').split('.')[1];
  if (payload === undefined) return null;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const iss = isObject(claims) ? claims['iss'] : undefined;
    return typeof iss === 'string' && iss !== '' ? iss : null;
  } catch {
    return null;
  }
}

async function buildConfig(flags: ParsedFlags, token: string, notes: string[]): Promise<MtlsPopConfig> {
  const usage = EXPLAIN_USAGE;
  const configPath = one(flags, '--config');
  const raw: Record<string, unknown> = configPath === undefined ? {} : await readConfigFile(configPath, usage);
  const header: Record<string, unknown> = isObject(raw['proof_of_possession_mtls_from_header'])
    ? { ...raw['proof_of_possession_mtls_from_header'] }
    : { certificate_header_name: 'x-client-cert' };
  raw['proof_of_possession_mtls_from_header'] = header;

  const issuer = one(flags, '--issuer');
  const jwks = one(flags, '--jwks');
  if (issuer !== undefined) raw['issuer'] = issuer;
  if (jwks !== undefined) raw['jwks_endpoint'] = jwks;
  if (configPath === undefined && issuer === undefined && jwks === undefined) {
    throw new UsageError('give --issuer URL or --jwks URL (or a --config)', usage);
  }
  if (raw['issuer'] === undefined || raw['issuer'] === null) {
    if (raw['issuers_allowed'] === undefined || raw['issuers_allowed'] === null) {
      const iss = unverifiedIssuer(token);
      // checkIssuer rejects a missing or empty iss whatever is allowed, so the placeholder never passes.
      raw['issuers_allowed'] = [iss ?? 'urn:mtls-pop:no-issuer-in-token'];
      notes.push(iss === null
        ? 'no --issuer: the token carries no iss, which the plugin rejects'
        : `no --issuer: the token iss ${JSON.stringify(iss)} is accepted as is (the plugin checks it against issuer / issuers_allowed)`);
    }
  }
  const audiences = all(flags, '--audience');
  if (audiences.length > 0) raw['audience_required'] = audiences;
  const scopes = all(flags, '--scope');
  if (scopes.length > 0) raw['scopes_required'] = scopes;
  if (flags.bools.has('--insecure')) raw['ssl_verify'] = false;
  const idpCas = all(flags, '--idp-ca').map((path) => readPemFile(path, 'IdP CA file', usage));
  if (idpCas.length > 0) {
    raw['idp_ca_certificates_pem'] = [...(Array.isArray(raw['idp_ca_certificates_pem']) ? raw['idp_ca_certificates_pem'] : []), ...idpCas];
  }
  const mode = one(flags, '--mode');
  if (mode !== undefined) {
    if (!(POP_MODES as readonly string[]).includes(mode)) throw new UsageError(`--mode must be one of ${POP_MODES.join(', ')}`, usage);
    raw['proof_of_possession_mtls'] = mode;
  }
  const format = one(flags, '--format');
  if (format !== undefined) {
    if (!(HEADER_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${HEADER_FORMATS.join(', ')}`, usage);
    header['certificate_header_format'] = format;
  } else if (configPath === undefined && one(flags, '--header-value') !== undefined) {
    throw new UsageError(`--header-value needs --format (${HEADER_FORMATS.join(', ')}) or a --config`, usage);
  }

  // Trust anchors: --ca PEM files, the config's PEMs, and Kong CA entities through the Admin API.
  const cas = all(flags, '--ca').map((path) => readPemFile(path, 'CA file', usage));
  let pems = Array.isArray(header['ca_certificates_pem']) ? [...header['ca_certificates_pem'] as unknown[]] : [];
  const vault = pems.filter((p) => typeof p === 'string' && p.trim().startsWith('{vault://'));
  if (vault.length > 0) {
    if (cas.length === 0) throw new UsageError('ca_certificates_pem holds vault references, which mtls-pop cannot resolve; pass the CA PEM files with --ca', usage);
    pems = pems.filter((p) => !vault.includes(p));
    notes.push(`${vault.length} vault reference(s) in ca_certificates_pem ignored; --ca used instead`);
  }
  const ids = Array.isArray(header['ca_certificates']) ? header['ca_certificates'].filter((id): id is string => typeof id === 'string') : [];
  const adminApi = one(flags, '--admin-api');
  if (ids.length > 0) {
    if (adminApi !== undefined) {
      const resolved = await new KongCaCertificates(ids, { adminApiUrl: adminApi, timeoutMs: 10_000 }).resolve();
      if (!resolved.ok) throw new UsageError(resolved.error.detail, usage);
      pems.push(...resolved.value);
      notes.push(`${ids.length} ca_certificates entit${ids.length === 1 ? 'y' : 'ies'} read from ${adminApi}`);
    } else if (cas.length > 0) {
      notes.push(`ca_certificates (${ids.length} Kong CA entit${ids.length === 1 ? 'y' : 'ies'}) not read; --ca used instead`);
    } else {
      throw new UsageError('the config lists ca_certificates (Kong CA entities), which need the Admin API: pass --admin-api URL, or the CA PEM files with --ca', usage);
    }
    header['ca_certificates'] = [];
  }
  pems.push(...cas);
  header['ca_certificates_pem'] = pems;
  if (configPath === undefined && cas.length === 0) throw new UsageError('give at least one --ca FILE (the CA that issues client certificates)', usage);

  const parsed = parseConfig(raw);
  if (!parsed.ok) {
    throw new UsageError(`the configuration is not valid:\n  ${parsed.errors.join('\n  ')}`, usage);
  }
  return parsed.config;
}

// ---------------------------------------------------------------------------------------------
// explain: output

const STATUS_TEXT: Readonly<Record<number, string>> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden' };
const STEP_WIDTH = 28;
const CHECK_WIDTH = 20;

/** A check line: label, status, text, in aligned columns. */
function line(label: string, status: string, text: string): string {
  return `     ${label.padEnd(CHECK_WIDTH)} ${status.padEnd(4)}  ${text}`.trimEnd();
}

const TEXT_INDENT = ' '.repeat(5 + CHECK_WIDTH + 1 + 4 + 2);

function formatStep(index: number, step: ExplainStep, lines: string[], extra: readonly string[]): void {
  lines.push(`${`${index}. ${step.title}`.padEnd(STEP_WIDTH)} ${step.status}  ${step.summary}`);
  for (const c of step.checks) {
    lines.push(line(c.label, c.status, c.text));
    for (const note of c.notes) lines.push(`${TEXT_INDENT}${note}`);
  }
  lines.push(...extra);
  if (step.status === 'FAIL' && step.fix !== null) lines.push(line('fix', '', step.fix));
}

function formatReport(report: ExplainReport, notes: readonly string[]): string {
  const lines: string[] = [];
  lines.push(`mtls-pop explain (proof_of_possession_mtls ${report.mode})`);
  for (const note of notes) lines.push(`note: ${note}`);
  lines.push('');
  report.steps.forEach((step, i) => {
    const extra: string[] = [];
    if (step.id === 'token' && report.token.claims !== null) {
      extra.push(line('claims', '', ''));
      for (const json of JSON.stringify(report.token.claims, null, 2).split('\n')) extra.push(`${TEXT_INDENT}${json}`);
    }
    formatStep(i + 1, step, lines, extra);
  });
  const v = report.verdict;
  const title = `${report.steps.length + 1}. Verdict`.padEnd(STEP_WIDTH);
  if (v.allow) {
    lines.push(`${title} PASS  allowed: the plugin would pass the request upstream`);
  } else {
    lines.push(`${title} FAIL  rejected: ${v.reason}: ${v.detail}`);
    if (v.response !== null) {
      lines.push(line('response', '', `HTTP ${v.response.status} ${STATUS_TEXT[v.response.status] ?? ''}`));
      for (const [name, value] of Object.entries(v.response.headers)) lines.push(`${TEXT_INDENT}${name}: ${value}`);
      lines.push(`${TEXT_INDENT}${JSON.stringify(v.response.body)}`);
    }
    if (v.fix !== null) lines.push(line('fix', '', v.fix));
  }
  for (const note of v.notes) lines.push(`     note: ${note}`);
  for (const problem of report.inconsistencies) {
    lines.push(`WARNING: the explanation disagrees with the verifier (${problem}); the verdict above is the plugin's. Please report this.`);
  }
  return `${lines.join('\n')}\n`;
}

async function explainCommand(argv: readonly string[]): Promise<{ output: string; code: number }> {
  const usage = EXPLAIN_USAGE;
  const flags = parseFlags(argv, EXPLAIN_FLAGS, usage);
  if (flags.help) return { output: usage, code: 0 };
  if (flags.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(flags.positionals[0])}`, usage);
  const tokenFlag = one(flags, '--token');
  if (tokenFlag === undefined) throw new UsageError('missing --token TOKEN|@file|-', usage);
  const headerFlag = one(flags, '--header-value');
  const certFlag = one(flags, '--cert');
  if (headerFlag === undefined && certFlag === undefined) throw new UsageError('missing --cert FILE (or --header-value)', usage);
  if (headerFlag === undefined && one(flags, '--chain-header-value') !== undefined) {
    throw new UsageError('--chain-header-value goes with --header-value', usage);
  }
  if (headerFlag !== undefined && all(flags, '--chain').length > 0) {
    throw new UsageError('--chain goes with --cert; with --header-value the header carries the chain', usage);
  }

  const token = readTextArgument(tokenFlag, 'token', usage);
  const certFiles = certFlag === undefined ? null : readCertificateFile(certFlag, 'certificate file', usage);
  let certificate: CertificateInput;
  if (headerFlag !== undefined) {
    const chainFlag = one(flags, '--chain-header-value');
    certificate = {
      kind: 'header',
      value: readTextArgument(headerFlag, 'header value', usage),
      chainValue: chainFlag === undefined ? null : readTextArgument(chainFlag, 'chain header value', usage),
    };
  } else {
    const chain = all(flags, '--chain').flatMap((path) => readCertificateFile(path, 'chain file', usage));
    certificate = { kind: 'certificates', certificates: [...(certFiles ?? []), ...chain] };
  }

  const notes: string[] = [];
  const config = await buildConfig(flags, token, notes);
  const report = await explain({
    config, token, certificate,
    expectedLeaf: headerFlag !== undefined && certFiles !== null ? certFiles[0] ?? null : null,
  });
  const code = report.verdict.allow ? 0 : 1;
  if (flags.bools.has('--json')) {
    return { output: `${JSON.stringify({ command: 'explain', notes, ...report }, null, 2)}\n`, code };
  }
  return { output: formatReport(report, notes), code };
}

// ---------------------------------------------------------------------------------------------


async function run(argv: readonly string[]): Promise<{ output: string; code: number; stderr?: boolean }> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined: return { output: MAIN_USAGE, code: 2, stderr: true };
    case '-h': case '--help': return { output: MAIN_USAGE, code: 0 };
    case 'help': {
      const topic = rest[0];
      return { output: topic === 'explain' ? EXPLAIN_USAGE : topic === 'thumbprint' ? THUMBPRINT_USAGE : MAIN_USAGE, code: 0 };
    }
    case '--version': return { output: `${packageVersion()}\n`, code: 0 };
    case 'thumbprint': return thumbprintCommand(rest);
    case 'explain': return explainCommand(rest);
    default: throw new UsageError(`unknown command ${JSON.stringify(command)}`, MAIN_USAGE);
  }
}

function finish(text: string, code: number, toStderr: boolean): void {
  const stream = toStderr ? process.stderr : process.stdout;
  stream.write(text, () => process.exit(code));
}

run(process.argv.slice(2)).then(
  ({ output, code, stderr }) => finish(output, code, stderr === true),
  (error: unknown) => {
    if (error instanceof UsageError) {
      finish(`mtls-pop: ${error.message}\n\n${error.usage}`, 2, true);
    } else {
      const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      finish(`mtls-pop: unexpected error (${what})\n`, 2, true);
    }
  },
);
