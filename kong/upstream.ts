/**
 * What the Kong adapter does besides allowing or rejecting: the upstream header table
 * (`upstream_headers`, `hide_credentials`, `hide_certificate_header`) and the record of each
 * decision for Kong's log plugins (`log_serialize`, `kong.log.set_serialize_value`).
 */
import type { MtlsPopConfig } from '../src/config.js';
import type { CertificateFacts } from '../src/certificate.js';
import type { ReasonCode } from '../src/errors.js';
import { UpstreamHeaderPlan, parseValuePath, type UpstreamHeaderRule } from '../src/upstream-headers.js';

/** The key under which each decision appears in `kong.log.serialize()` (and so in file-log, http-log...). */
export const SERIALIZE_KEY = 'mtls_pop';

/** Longest subject DN recorded. */
const MAX_SUBJECT = 1024;

/**
 * The header plan of a validated config, or null when it changes no header (then the happy path
 * makes no `set_headers` call).
 */
export function upstreamPlanFrom(config: MtlsPopConfig): UpstreamHeaderPlan | null {
  const rules: UpstreamHeaderRule[] = [];
  for (const entry of config.upstream_headers) {
    const path = parseValuePath(entry.path);
    if (path.ok) rules.push({ header: entry.header, path: path.path }); // parseConfig rejected the others
  }
  const clear: string[] = [];
  if (config.hide_credentials) clear.push('Authorization');
  const fromHeader = config.proof_of_possession_mtls_from_header;
  if (config.hide_certificate_header && fromHeader !== null) {
    clear.push(fromHeader.certificate_header_name);
    if (fromHeader.certificate_chain_header_name !== null) clear.push(fromHeader.certificate_chain_header_name);
  }
  const plan = new UpstreamHeaderPlan(rules, clear);
  return plan.empty ? null : plan;
}

/**
 * One decision as Kong's log plugins see it. `reason` is a reason code for a rejection; for an
 * approval it is `bound` (the token's cnf matched the certificate) or `unbound` (no certificate
 * was needed: proof_of_possession_mtls optional without cnf, or off). Never the token.
 */
export interface DecisionRecord {
  readonly result: 'allow' | 'deny';
  readonly reason: ReasonCode | 'bound' | 'unbound';
  /** Absent when no certificate was read (cjson drops nil). */
  readonly cert?: { readonly thumbprint: string; readonly subject: string };
}

function certRecord(cert: CertificateFacts | null): Pick<DecisionRecord, 'cert'> {
  return cert === null ? {} : { cert: { thumbprint: cert.thumbprint, subject: cert.subject.slice(0, MAX_SUBJECT) } };
}

export function allowRecord(certificate: CertificateFacts | null): DecisionRecord {
  return { result: 'allow', reason: certificate === null ? 'unbound' : 'bound', ...certRecord(certificate) };
}

export function denyRecord(reason: ReasonCode, certificate: CertificateFacts | null): DecisionRecord {
  return { result: 'deny', reason, ...certRecord(certificate) };
}
