/**
 * Name constraints (RFC 5280 section 4.2.1.10), applied by `chain.ts` to every certificate below
 * a constraining CA on a path (section 6.1.3 (b), (c)).
 *
 * A name that cannot be parsed cannot be shown to be inside a permitted subtree or outside an
 * excluded one, so when constraints of its type apply it is refused rather than skipped (as Go's
 * crypto/x509 does: "cannot parse"):
 *   - dNSName: ASCII letters, digits, '-', '_', labels of 1-63 characters, at most 253 in all, a
 *     leftmost '*' label allowed; no empty label, so no leading, trailing or doubled dot. Case is
 *     folded (ASCII only, section 7.2).
 *   - rfc822Name, and emailAddress attributes of the subject (section 4.2.1.10 applies rfc822Name
 *     constraints to them): a Mailbox (RFC 5321 section 4.1.2) with a non-empty local part, one
 *     '@' outside a quoted local part, and a domain that is a valid dNSName (no wildcard).
 *   - URI: an authority with a host that is a valid dNSName (section 4.2.1.10: the constraint
 *     applies to the host part); no IP literal, no percent-encoding, no '@' left in the host.
 *   - iPAddress: 4 or 16 octets; constraints 8 or 32 octets with a contiguous mask.
 *
 * Cost: the work is names x subtrees. Both come from certificates on a path whose signatures
 * already verified up to a trust anchor, but a CA could still issue thousands of each, so the
 * comparisons per path are bounded (as Go's `MaxConstraintComparisions`, 250,000 there).
 */
import { OID, type DistinguishedName, type GeneralName, type NameConstraints, type ParsedCertificate } from './certificate.js';

/** Name-versus-subtree comparisons allowed for one path (leaf and intermediates against every constraining CA). */
export const MAX_NAME_CONSTRAINT_COMPARISONS = 16_384;

/** Counts comparisons against MAX_NAME_CONSTRAINT_COMPARISONS; one per path checked. */
export class ComparisonBudget {
  used = 0;
  /** Spends `n`; false when the budget is exceeded. */
  spend(n: number): boolean {
    this.used += n;
    return this.used <= MAX_NAME_CONSTRAINT_COMPARISONS;
  }
}

const HOSTNAME = /^(?:[a-z0-9_*](?:[a-z0-9_-]*[a-z0-9_])?\.)+[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.?$/i;
const LABEL = /^[a-z0-9_-]{1,63}$/i;

/** A name from a certificate as shown in a detail: printable ASCII only, bounded. */
function shown(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 100 ? `${printable.slice(0, 97)}...` : printable;
}

/** ASCII-only case folding (RFC 5280 section 7.2 compares DNS labels ASCII case-insensitively). */
function lower(s: string): string {
  return s.replace(/[A-Z]+/g, (run) => run.toLowerCase());
}

/** A DNS name as constraints can judge it: see the module comment. */
function validDnsName(name: string, wildcard: boolean): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((label, i) => LABEL.test(label) || (wildcard && i === 0 && label === '*' && labels.length > 1));
}

/** The local part and (lower-cased) domain of a mailbox, or null when it is not one. */
function mailbox(name: string): { local: string; domain: string } | null {
  const at = name.lastIndexOf('@');
  if (at <= 0) return null;
  const local = name.slice(0, at);
  const domain = name.slice(at + 1);
  // A second '@' only inside a quoted local part.
  if (local.includes('@') && !(local.startsWith('"') && local.endsWith('"') && local.length > 2)) return null;
  if (!validDnsName(domain, false)) return null;
  return { local, domain: lower(domain) };
}

function dnsWithin(name: string, constraint: string): boolean {
  const n = lower(name).replace(/\.$/, '');
  const c = lower(constraint).replace(/\.$/, '');
  if (c === '') return true;
  if (c.startsWith('.')) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

/** `name` must be a mailbox (`mailbox` is not null). Constraint forms: a mailbox, a host, or `.domain`. */
function emailWithin(name: { local: string; domain: string }, constraint: string): boolean {
  const cAt = constraint.lastIndexOf('@');
  if (cAt >= 0) return name.local === constraint.slice(0, cAt) && name.domain === lower(constraint.slice(cAt + 1));
  const c = lower(constraint);
  if (c.startsWith('.')) return name.domain.endsWith(c);
  return name.domain === c;
}

/** The host of a URI with an authority and a DNS host name, lower-cased; null otherwise (IP literal, no authority, junk). */
function uriHost(uri: string): string | null {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^:/?#]*)(?::\d*)?(?:[/?#]|$)/i.exec(uri);
  const host = m?.[1];
  if (host === undefined || /^\d+(?:\.\d+){3}$/.test(host) || !validDnsName(host, false)) return null;
  return lower(host);
}

function uriWithin(host: string, constraint: string): boolean {
  const c = lower(constraint);
  if (c.startsWith('.')) return host.endsWith(c);
  return host === c;
}

function ipWithin(ip: Uint8Array, constraint: Uint8Array): boolean {
  const size = ip.length;
  if (constraint.length !== size * 2) return false;
  for (let i = 0; i < size; i++) {
    const mask = constraint[size + i]!;
    if ((ip[i]! & mask) !== (constraint[i]! & mask)) return false;
  }
  return true;
}

/** A mask of leading one bits only (an address and a CIDR prefix, RFC 4632 section 3.1). */
function contiguousMask(mask: Uint8Array): boolean {
  let zero = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = ((byte >> bit) & 1) === 1;
      if (one && zero) return false;
      if (!one) zero = true;
    }
  }
  return true;
}

function dirWithin(name: DistinguishedName, constraint: DistinguishedName): boolean {
  if (constraint.rdnKeys.length > name.rdnKeys.length) return false;
  return constraint.rdnKeys.every((key, i) => name.rdnKeys[i] === key);
}

interface NamesOfType {
  readonly dns: string[];
  readonly email: string[];
  readonly uri: string[];
  readonly ip: Uint8Array[];
  readonly dir: DistinguishedName[];
}

function namesOf(cert: ParsedCertificate, isLeaf: boolean): NamesOfType {
  const names: NamesOfType = { dns: [], email: [], uri: [], ip: [], dir: [] };
  for (const san of cert.subjectAltNames) {
    if (san.type === 'dns' || san.type === 'email' || san.type === 'uri') names[san.type].push(san.value);
    else if (san.type === 'ip') names.ip.push(san.bytes);
    else if (san.type === 'dir') names.dir.push(san.name);
  }
  if (cert.subject.rdns.length > 0) names.dir.push(cert.subject);
  for (const attribute of cert.subject.rdns.flat()) {
    // Section 4.2.1.10: rfc822Name constraints apply to emailAddress in the subject too.
    if (attribute.oid === OID.emailAddress) names.email.push(attribute.text ?? '');
    // As OpenSSL does: a leaf without dNSName SANs has a host-like CN checked as a DNS name.
    if (isLeaf && attribute.oid === OID.commonName && attribute.text !== null && HOSTNAME.test(attribute.text)
      && !cert.subjectAltNames.some((n) => n.type === 'dns')) {
      names.dns.push(attribute.text.replace(/\.$/, ''));
    }
  }
  return names;
}

/** A constraint of a form this module does not evaluate (refused by the caller), or null. */
export function unsupportedConstraint(constraints: NameConstraints): string | null {
  for (const n of [...constraints.permitted, ...constraints.excluded]) {
    if (n.type === 'other' || n.type === 'x400' || n.type === 'edi' || n.type === 'rid') return n.type;
    if (n.type === 'ip' && n.bytes.length !== 8 && n.bytes.length !== 32) return 'ip (not 8 or 32 octets)';
    if (n.type === 'ip' && !contiguousMask(n.bytes.subarray(n.bytes.length / 2))) return 'ip (mask not contiguous)';
  }
  return null;
}

type Subtrees<T extends GeneralName['type']> = Extract<GeneralName, { type: T }>[];
const ofType = <T extends GeneralName['type']>(list: readonly GeneralName[], type: T): Subtrees<T> =>
  list.filter((n): n is Extract<GeneralName, { type: T }> => n.type === type);

/**
 * Why `cert` (the leaf when `isLeaf`) violates `constraints`, or null when it does not. Spends
 * `budget`; an exhausted budget is a violation too.
 */
export function nameConstraintViolation(cert: ParsedCertificate, isLeaf: boolean, constraints: NameConstraints,
  budget: ComparisonBudget): string | null {
  const names = namesOf(cert, isLeaf);

  const check = <N>(kind: string, values: readonly N[], render: (v: N) => string,
    permitted: readonly ((v: N) => boolean)[], excluded: readonly ((v: N) => boolean)[]): string | null => {
    if (permitted.length + excluded.length === 0) return null;
    for (const value of values) {
      if (!budget.spend(permitted.length + excluded.length)) {
        return `more than ${MAX_NAME_CONSTRAINT_COMPARISONS} name constraint comparisons would be needed`;
      }
      if (permitted.length > 0 && !permitted.some((p) => p(value))) return `${kind} ${render(value)} is outside the permitted subtrees`;
      if (excluded.some((e) => e(value))) return `${kind} ${render(value)} is in an excluded subtree`;
    }
    return null;
  };
  const applies = (type: GeneralName['type']): boolean =>
    constraints.permitted.some((n) => n.type === type) || constraints.excluded.some((n) => n.type === type);

  // Unparseable names of a constrained type: refused (see the module comment).
  if (applies('dns')) {
    const bad = names.dns.find((n) => !validDnsName(n, true));
    if (bad !== undefined) return `dNSName ${shown(bad)} is not a valid DNS name to check against DNS constraints`;
  }
  const mailboxes: { local: string; domain: string; text: string }[] = [];
  if (applies('email')) {
    for (const text of names.email) {
      const parsed = mailbox(text);
      if (parsed === null) return `rfc822Name ${shown(text)} is not a mailbox to check against email constraints`;
      mailboxes.push({ ...parsed, text });
    }
  }
  if (applies('uri')) {
    const bad = names.uri.find((n) => uriHost(n) === null);
    if (bad !== undefined) return `URI ${shown(bad)} has no DNS host to check against URI constraints`;
  }
  if (applies('ip')) {
    const bad = names.ip.find((n) => n.length !== 4 && n.length !== 16);
    if (bad !== undefined) return `iPAddress of ${bad.length} octets cannot be checked against IP constraints`;
  }

  return check('dNSName', names.dns, shown,
    ofType(constraints.permitted, 'dns').map((c) => (v: string) => dnsWithin(v, c.value)),
    ofType(constraints.excluded, 'dns').map((c) => (v: string) => dnsWithin(v, c.value)))
    ?? check('rfc822Name', mailboxes, (v) => shown(v.text),
      ofType(constraints.permitted, 'email').map((c) => (v: { local: string; domain: string }) => emailWithin(v, c.value)),
      ofType(constraints.excluded, 'email').map((c) => (v: { local: string; domain: string }) => emailWithin(v, c.value)))
    ?? check('URI', names.uri, shown,
      ofType(constraints.permitted, 'uri').map((c) => (v: string) => uriWithin(uriHost(v) ?? '', c.value)),
      ofType(constraints.excluded, 'uri').map((c) => (v: string) => uriWithin(uriHost(v) ?? '', c.value)))
    ?? check('iPAddress', names.ip, (v) => Buffer.from(v).toString('hex'),
      ofType(constraints.permitted, 'ip').map((c) => (v: Uint8Array) => ipWithin(v, c.bytes)),
      ofType(constraints.excluded, 'ip').map((c) => (v: Uint8Array) => ipWithin(v, c.bytes)))
    ?? check('directoryName', names.dir, (v) => v.text,
      ofType(constraints.permitted, 'dir').map((c) => (v: DistinguishedName) => dirWithin(v, c.name)),
      ofType(constraints.excluded, 'dir').map((c) => (v: DistinguishedName) => dirWithin(v, c.name)));
}
