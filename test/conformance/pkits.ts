/**
 * Path-validation conformance cases rebuilt after NIST PKITS (Public Key Interoperability Test
 * Suite, certification path validation, 2011 edition), for the sections that apply to a client
 * certificate validated without revocation and without policy processing.
 *
 * The NIST data cannot be downloaded here and no npm or Debian package ships it (nor x509-limbo),
 * so each case is rebuilt with `builder.ts`: the same path shape, names, extensions and encodings
 * the PKITS test describes, with the PKITS id, title and expected result (the "Valid"/"Invalid" of
 * its name). What differs from the NIST files: keys are ECDSA P-256 (the DSA cases use DSA 1024)
 * and every signature is SHA-256 (PKITS 4.1.4-4.1.6 use dsa-with-SHA1, which we refuse as weak);
 * names keep the PKITS wording. Where the exact constraint values of a PKITS certificate are not
 * reproduced, the case keeps its structure and expected result (noted per case).
 *
 * Sections not run: 4.4 (CRLs), 4.8-4.12 (policies, policy mappings, explicit policy), 4.14-4.15
 * (distribution points, delta CRLs), and the CRL-dependent tests of 4.5 and 4.7.
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReasonCode } from '../../src/errors.js';
import {
  authorityKeyId, basicConstraints, certificate, certificatePolicies, dn, ecKey, ext, GN, keyUsage, KU, name,
  nameConstraints, subjectAltName, subjectKeyId, withoutDsaParameters, type Attribute, type Extension, type Key, type Time,
} from './builder.js';

export type Outcome = 'valid' | 'invalid';

export interface ConformanceCase {
  /** PKITS test number, e.g. "4.6.8". */
  readonly id: string;
  /** PKITS section, e.g. "4.6". */
  readonly section: string;
  /** PKITS test name, e.g. "Valid pathLenConstraint Test8". */
  readonly title: string;
  /** The PKITS expected result. */
  readonly expected: Outcome;
  readonly anchors: readonly Buffer[];
  /** The end entity first, then the intermediates (untrusted, as a header would carry them). */
  readonly chain: readonly Buffer[];
  /** The reason ChainValidator must give when it rejects. */
  readonly reason?: ReasonCode;
  /** A documented deviation of ChainValidator from the PKITS result, and why. */
  readonly deviation?: { readonly result: Outcome; readonly why: string };
  /** How the rebuilt case differs from the NIST data, when it matters. */
  readonly note?: string;
}

export interface Section {
  readonly id: string;
  readonly title: string;
  /** Why the section (or part of it) is not run, when it is not. */
  readonly skipped?: string;
}

export const SECTIONS: readonly Section[] = [
  { id: '4.1', title: 'Signature Verification' },
  { id: '4.2', title: 'Validity Periods' },
  { id: '4.3', title: 'Verifying Name Chaining' },
  { id: '4.4', title: 'Basic Certificate Revocation Tests', skipped: 'CRLs: revocation is a separate module (revocation.ts), not ChainValidator' },
  { id: '4.5', title: 'Verifying Paths with Self-Issued Certificates', skipped: '4.5.2, 4.5.4-4.5.7 test CRL signing keys and revocation' },
  { id: '4.6', title: 'Verifying Basic Constraints' },
  { id: '4.7', title: 'Key Usage', skipped: '4.7.4, 4.7.5 test cRLSign (CRLs)' },
  { id: '4.8', title: 'Certificate Policies', skipped: 'policy processing: the validator runs with initial-policy-set anyPolicy and no explicit policy (RFC 5280 6.1.1)' },
  { id: '4.9', title: 'Require Explicit Policy', skipped: 'policy processing (policyConstraints is refused outright)' },
  { id: '4.10', title: 'Policy Mappings', skipped: 'policy processing' },
  { id: '4.11', title: 'Inhibit Policy Mapping', skipped: 'policy processing' },
  { id: '4.12', title: 'Inhibit Any Policy', skipped: 'policy processing' },
  { id: '4.13', title: 'Name Constraints' },
  { id: '4.14', title: 'Distribution Points', skipped: 'CRL distribution points' },
  { id: '4.15', title: 'Delta-CRLs', skipped: 'CRLs' },
  { id: '4.16', title: 'Private Certificate Extensions' },
];

/** The validation time of every case (PKITS certificates are valid 2010-2030). */
export const VALIDATION_TIME = new Date(Date.UTC(2025, 0, 1));

const TEST_POLICY_1 = '2.16.840.1.101.3.2.1.48.1';
const DEFAULT_NOT_BEFORE = new Date(Date.UTC(2010, 0, 1, 8, 30));
const DEFAULT_NOT_AFTER = new Date(Date.UTC(2030, 11, 31, 8, 30));
const C: Attribute = ['C', 'US'];
const O: Attribute = ['O', 'Test Certificates 2011'];

interface Node {
  readonly name: Buffer;
  readonly key: Key;
  readonly der: Buffer;
}

interface CaOptions {
  readonly subject?: Buffer;
  readonly key?: Key;
  readonly spki?: Buffer;
  /** The issuer name written into the certificate (default: the issuer's subject). */
  readonly issuerName?: Buffer;
  readonly pathLen?: number;
  /** Replaces the default basicConstraints + keyUsage extensions. */
  readonly constraints?: readonly Extension[];
  readonly extra?: readonly Extension[];
  readonly notBefore?: Time;
  readonly notAfter?: Time;
  readonly badSignature?: boolean;
  readonly subjectUniqueId?: Buffer;
  readonly issuerUniqueId?: Buffer;
}

class Builder {
  #serial = 1;
  readonly ta: Node;

  constructor() {
    const key = ecKey();
    const taName = dn(C, O, ['CN', 'Trust Anchor']);
    this.ta = {
      name: taName, key,
      der: certificate({
        serial: this.#serial++, issuer: taName, subject: taName, notBefore: DEFAULT_NOT_BEFORE, notAfter: DEFAULT_NOT_AFTER, key, signer: key,
        extensions: [subjectKeyId(key), keyUsage([KU.keyCertSign, KU.cRLSign]), basicConstraints(true)],
      }),
    };
  }

  /** A CA certificate `cn` (or `options.subject`) issued by `issuer`. */
  ca(cn: string, issuer: Node, options: CaOptions = {}): Node {
    const key = options.key ?? ecKey();
    const subject = options.subject ?? dn(C, O, ['CN', cn]);
    const constraints = options.constraints ?? [keyUsage([KU.keyCertSign, KU.cRLSign]), basicConstraints(true, options.pathLen)];
    const der = certificate({
      serial: this.#serial++, issuer: options.issuerName ?? issuer.name, subject, key, signer: issuer.key,
      notBefore: options.notBefore ?? DEFAULT_NOT_BEFORE, notAfter: options.notAfter ?? DEFAULT_NOT_AFTER,
      ...(options.spki !== undefined ? { spki: options.spki } : {}),
      extensions: [authorityKeyId(issuer.key), subjectKeyId(key), ...constraints, certificatePolicies(TEST_POLICY_1), ...(options.extra ?? [])],
      ...(options.badSignature === true ? { badSignature: true } : {}),
      ...(options.subjectUniqueId !== undefined ? { subjectUniqueId: options.subjectUniqueId } : {}),
      ...(options.issuerUniqueId !== undefined ? { issuerUniqueId: options.issuerUniqueId } : {}),
    });
    return { name: subject, key, der };
  }

  /** An end-entity certificate (keyUsage digitalSignature etc., as PKITS end entities, no extendedKeyUsage). */
  ee(title: string, issuer: Node, options: CaOptions = {}): Buffer {
    const key = options.key ?? ecKey();
    return certificate({
      serial: this.#serial++, issuer: options.issuerName ?? issuer.name, subject: options.subject ?? dn(C, O, ['CN', `${title} EE`]),
      key, signer: issuer.key, notBefore: options.notBefore ?? DEFAULT_NOT_BEFORE, notAfter: options.notAfter ?? DEFAULT_NOT_AFTER,
      extensions: [
        authorityKeyId(issuer.key), subjectKeyId(key),
        ...(options.constraints ?? [keyUsage([KU.digitalSignature, KU.nonRepudiation, KU.keyEncipherment, KU.dataEncipherment])]),
        certificatePolicies(TEST_POLICY_1), ...(options.extra ?? []),
      ],
      ...(options.badSignature === true ? { badSignature: true } : {}),
      ...(options.issuerUniqueId !== undefined ? { issuerUniqueId: options.issuerUniqueId } : {}),
    });
  }
}

/** Two DSA keys sharing domain parameters (parameter inheritance needs that), made with the openssl CLI. */
function dsaKeysSharingParameters(): [Key, Key] {
  const dir = mkdtempSync(join(tmpdir(), 'mtls-pop-dsa-'));
  try {
    const params = join(dir, 'params.pem');
    execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DSA', '-pkeyopt', 'dsa_paramgen_bits:1024', '-pkeyopt', 'dsa_paramgen_q_bits:160', '-out', params], { stdio: 'ignore' });
    const keys = [0, 1].map((i): Key => {
      const file = join(dir, `key${i}.pem`);
      execFileSync('openssl', ['genpkey', '-paramfile', params, '-out', file], { stdio: 'ignore' });
      const privateKey = createPrivateKey(readFileSync(file));
      const publicKey = createPublicKey(privateKey);
      const spki = publicKey.export({ type: 'spki', format: 'der' });
      // Any stable identifier works for the SKI/AKI pairing; SHA-1 of the whole SPKI keeps this simple.
      return { kind: 'dsa', privateKey, publicKey, spki, keyId: createHash('sha1').update(spki).digest() };
    });
    return keys as [Key, Key];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Builds every case. Takes a couple of seconds (key generation). */
export function buildCases(): ConformanceCase[] {
  const b = new Builder();
  const ta = b.ta;
  const anchors = [ta.der];
  const cases: ConformanceCase[] = [];
  const add = (id: string, title: string, expected: Outcome, chain: readonly Buffer[], more: Partial<ConformanceCase> = {}): void => {
    cases.push({ id, section: id.split('.').slice(0, 2).join('.'), title, expected, anchors, chain, ...more });
  };
  const untrusted = { reason: 'certificate_untrusted' as const };
  const structural = { reason: 'certificate_chain_invalid' as const };

  // ---- 4.1 Signature Verification
  const goodCa = b.ca('Good CA', ta);
  add('4.1.1', 'Valid Signatures Test1', 'valid', [b.ee('Valid Certificate Path Test1', goodCa), goodCa.der]);
  const badSignedCa = b.ca('Bad Signed CA', ta, { badSignature: true });
  add('4.1.2', 'Invalid CA Signature Test2', 'invalid', [b.ee('Invalid CA Signature Test2', badSignedCa), badSignedCa.der], untrusted);
  add('4.1.3', 'Invalid EE Signature Test3', 'invalid', [b.ee('Invalid EE Signature Test3', goodCa, { badSignature: true }), goodCa.der], untrusted);
  const [dsaCaKey, dsaInheritedKey] = dsaKeysSharingParameters();
  const dsaCa = b.ca('DSA CA', ta, { key: dsaCaKey });
  const dsaNote = 'DSA 1024 with dsa-with-SHA256 (PKITS: dsa-with-SHA1, which is refused as weak)';
  add('4.1.4', 'Valid DSA Signatures Test4', 'valid', [b.ee('Valid DSA Signatures Test4', dsaCa), dsaCa.der], { note: dsaNote });
  const dsaInherited = b.ca('DSA Parameters Inherited CA', dsaCa, { key: dsaInheritedKey, spki: withoutDsaParameters(dsaInheritedKey) });
  add('4.1.5', 'Valid DSA Parameter Inheritance Test5', 'valid',
    [b.ee('Valid DSA Parameter Inheritance Test5', dsaInherited), dsaInherited.der, dsaCa.der], {
      note: dsaNote,
      deviation: {
        result: 'invalid',
        why: 'DSA parameter inheritance (RFC 3279 2.3.2) is not supported: a CA key without domain parameters cannot be imported, so nothing it signed verifies (certificate_untrusted). DSA client PKIs are not a target.',
      },
      reason: 'certificate_untrusted',
    });
  add('4.1.6', 'Invalid DSA Signature Test6', 'invalid', [b.ee('Invalid DSA Signature Test6', dsaCa, { badSignature: true }), dsaCa.der], { ...untrusted, note: dsaNote });

  // ---- 4.2 Validity Periods
  const badNotBeforeCa = b.ca('Bad notBefore Date CA', ta, { notBefore: { utc: '470101120100Z' } });
  add('4.2.1', 'Invalid CA notBefore Date Test1', 'invalid', [b.ee('Invalid CA notBefore Date Test1', badNotBeforeCa), badNotBeforeCa.der], { reason: 'certificate_not_yet_valid' });
  add('4.2.2', 'Invalid EE notBefore Date Test2', 'invalid', [b.ee('Invalid EE notBefore Date Test2', goodCa, { notBefore: { utc: '470101120100Z' } }), goodCa.der], { reason: 'certificate_not_yet_valid' });
  add('4.2.3', 'Valid pre2000 UTC notBefore Date Test3', 'valid', [b.ee('Valid pre2000 UTC notBefore Date Test3', goodCa, { notBefore: { utc: '500101120100Z' } }), goodCa.der]);
  add('4.2.4', 'Valid GeneralizedTime notBefore Date Test4', 'valid', [b.ee('Valid GeneralizedTime notBefore Date Test4', goodCa, { notBefore: { generalized: '20020101120100Z' } }), goodCa.der]);
  const badNotAfterCa = b.ca('Bad notAfter Date CA', ta, { notAfter: { utc: '020101120100Z' } });
  add('4.2.5', 'Invalid CA notAfter Date Test5', 'invalid', [b.ee('Invalid CA notAfter Date Test5', badNotAfterCa), badNotAfterCa.der], { reason: 'certificate_expired' });
  add('4.2.6', 'Invalid EE notAfter Date Test6', 'invalid', [b.ee('Invalid EE notAfter Date Test6', goodCa, { notAfter: { utc: '020101120100Z' } }), goodCa.der], { reason: 'certificate_expired' });
  add('4.2.7', 'Invalid pre2000 UTC EE notAfter Date Test7', 'invalid', [b.ee('Invalid pre2000 UTC EE notAfter Date Test7', goodCa, { notAfter: { utc: '991231120100Z' } }), goodCa.der], { reason: 'certificate_expired' });
  add('4.2.8', 'Valid GeneralizedTime notAfter Date Test8', 'valid', [b.ee('Valid GeneralizedTime notAfter Date Test8', goodCa, { notAfter: { generalized: '20500101120100Z' } }), goodCa.der]);

  // ---- 4.3 Verifying Name Chaining
  add('4.3.1', 'Invalid Name Chaining EE Test1', 'invalid',
    [b.ee('Invalid Name Chaining Test1', goodCa, { issuerName: dn(C, O, ['CN', 'Good CA Root']) }), goodCa.der], untrusted);
  const orderingCa = b.ca('Name Ordering CA', ta, { subject: dn(C, O, ['OU', 'Organizational Unit 1'], ['OU', 'Organizational Unit 2'], ['CN', 'Name Ordering CA']) });
  add('4.3.2', 'Invalid Name Chaining Order Test2', 'invalid', [b.ee('Invalid Name Chaining Order Test2', orderingCa, {
    issuerName: dn(C, O, ['OU', 'Organizational Unit 2'], ['OU', 'Organizational Unit 1'], ['CN', 'Name Ordering CA']),
  }), orderingCa.der], untrusted);
  add('4.3.3', 'Valid Name Chaining Whitespace Test3', 'valid',
    [b.ee('Valid Name Chaining Whitespace Test3', goodCa, { issuerName: dn(C, O, ['CN', 'Good    CA']) }), goodCa.der]);
  add('4.3.4', 'Valid Name Chaining Whitespace Test4', 'valid',
    [b.ee('Valid Name Chaining Whitespace Test4', goodCa, { issuerName: dn(C, ['O', '  Test Certificates 2011 '], ['CN', '   Good CA  ']) }), goodCa.der]);
  add('4.3.5', 'Valid Name Chaining Capitalization Test5', 'valid',
    [b.ee('Valid Name Chaining Capitalization Test5', goodCa, { issuerName: dn(C, ['O', 'TEST CERTIFICATES 2011'], ['CN', 'GOOD CA']) }), goodCa.der]);
  const uidCa = b.ca('UID CA', ta, { subjectUniqueId: Buffer.from('UID CA unique id') });
  add('4.3.6', 'Valid Name Chaining UIDs Test6', 'valid', [b.ee('Valid Name UIDs Test6', uidCa, { issuerUniqueId: Buffer.from('UID CA unique id') }), uidCa.der]);
  const mandatoryCa = b.ca('RFC3280 Mandatory Attribute Types CA', ta, {
    subject: name([C], [O], [['dnQualifier', 'distinguished name qualifier']], [['ST', 'Maryland']], [['CN', 'RFC3280 Mandatory Attribute Types CA']]),
  });
  add('4.3.7', 'Valid RFC3280 Mandatory Attribute Types Test7', 'valid', [b.ee('Valid RFC3280 Mandatory Attribute Types Test7', mandatoryCa), mandatoryCa.der]);
  const optionalCa = b.ca('RFC3280 Optional Attribute Types CA', ta, {
    subject: name([C], [O], [['L', 'Gaithersburg']], [['title', 'M.D.']], [['SN', 'Smith']], [['GN', 'John']], [['initials', 'J.S.']],
      [['pseudonym', 'Dr. Smith']], [['generationQualifier', 'III']], [['CN', 'RFC3280 Optional Attribute Types CA']]),
  });
  add('4.3.8', 'Valid RFC3280 Optional Attribute Types Test8', 'valid', [b.ee('Valid RFC3280 Optional Attribute Types Test8', optionalCa), optionalCa.der]);
  const utf8Ca = b.ca('UTF8String Encoded Names CA', ta, { subject: dn(['C', 'US'], ['O', 'Test Certificates 2011', 'utf8'], ['CN', 'UTF8String Encoded Names CA', 'utf8']) });
  add('4.3.9', 'Valid UTF8String Encoded Names Test9', 'valid', [b.ee('Valid UTF8String Encoded Names Test9', utf8Ca, {
    subject: dn(C, ['O', 'Test Certificates 2011', 'utf8'], ['CN', 'Valid UTF8String Encoded Names EE Certificate Test9', 'utf8']),
  }), utf8Ca.der]);
  const rolloverCa = b.ca('Rollover from PrintableString to UTF8String CA', ta);
  add('4.3.10', 'Valid Rollover from PrintableString to UTF8String Test10', 'valid', [b.ee('Valid Rollover from PrintableString to UTF8String Test10', rolloverCa, {
    issuerName: dn(C, ['O', 'Test Certificates 2011', 'utf8'], ['CN', 'Rollover from PrintableString to UTF8String CA', 'utf8']),
  }), rolloverCa.der]);
  const caseCa = b.ca('UTF8String Case Insensitive Match CA', ta, { subject: dn(C, ['O', 'Test Certificates 2011', 'utf8'], ['CN', 'UTF8String Case Insensitive Match CA', 'utf8']) });
  add('4.3.11', 'Valid UTF8String Case Insensitive Match Test11', 'valid', [b.ee('Valid UTF8String Case Insensitive Match Test11', caseCa, {
    issuerName: dn(C, ['O', 'test certificates 2011', 'utf8'], ['CN', 'utf8string case insensitive match ca', 'utf8']),
  }), caseCa.der]);

  // ---- 4.5 Verifying Paths with Self-Issued Certificates (key rollover)
  const oldKey = ecKey();
  const newKeyCa = b.ca('Basic Self-Issued New Key CA', ta);
  const oldWithNew = b.ca('', newKeyCa, { subject: newKeyCa.name, key: oldKey });
  add('4.5.1', 'Valid Basic Self-Issued Old With New Test1', 'valid',
    [b.ee('Valid Basic Self-Issued Old With New Test1', { ...newKeyCa, key: oldKey }), oldWithNew.der, newKeyCa.der]);
  const oldKeyCa = b.ca('Basic Self-Issued Old Key CA', ta);
  const newKey = ecKey();
  const newWithOld = b.ca('', oldKeyCa, { subject: oldKeyCa.name, key: newKey });
  add('4.5.3', 'Valid Basic Self-Issued New With Old Test3', 'valid',
    [b.ee('Valid Basic Self-Issued New With Old Test3', { ...oldKeyCa, key: newKey }), newWithOld.der, oldKeyCa.der]);
  const crlSigningCa = b.ca('Basic Self-Issued CRL Signing Key CA', ta);
  const crlSigningKey = ecKey();
  const crlSigningCert = b.ca('', crlSigningCa, { subject: crlSigningCa.name, key: crlSigningKey, constraints: [keyUsage([KU.cRLSign]), basicConstraints(true)] });
  add('4.5.8', 'Invalid Basic Self-Issued CRL Signing Key Test8', 'invalid',
    [b.ee('Invalid Basic Self-Issued CRL Signing Key Test8', { ...crlSigningCa, key: crlSigningKey }), crlSigningCert.der, crlSigningCa.der], structural);

  // ---- 4.6 Verifying Basic Constraints
  const missingBc = b.ca('Missing basicConstraints CA', ta, { constraints: [keyUsage([KU.keyCertSign, KU.cRLSign])] });
  add('4.6.1', 'Invalid Missing basicConstraints Test1', 'invalid', [b.ee('Invalid Missing basicConstraints Test1', missingBc), missingBc.der], structural);
  const caFalseCritical = b.ca('basicConstraints Critical cA False CA', ta, { constraints: [keyUsage([KU.keyCertSign, KU.cRLSign]), basicConstraints(false, undefined, true)] });
  add('4.6.2', 'Invalid cA False Test2', 'invalid', [b.ee('Invalid cA False Test2', caFalseCritical), caFalseCritical.der], structural);
  const caFalse = b.ca('basicConstraints Not Critical cA False CA', ta, { constraints: [keyUsage([KU.keyCertSign, KU.cRLSign]), basicConstraints(false, undefined, false)] });
  add('4.6.3', 'Invalid cA False Test3', 'invalid', [b.ee('Invalid cA False Test3', caFalse), caFalse.der], structural);
  const bcNotCritical = b.ca('basicConstraints Not Critical CA', ta, { constraints: [keyUsage([KU.keyCertSign, KU.cRLSign]), basicConstraints(true, undefined, false)] });
  add('4.6.4', 'Valid basicConstraints Not Critical Test4', 'valid', [b.ee('Valid basicConstraints Not Critical Test4', bcNotCritical), bcNotCritical.der]);
  const pl0 = b.ca('pathLenConstraint0 CA', ta, { pathLen: 0 });
  const pl0sub = b.ca('pathLenConstraint0 subCA', pl0);
  add('4.6.5', 'Invalid pathLenConstraint Test5', 'invalid', [b.ee('Invalid pathLenConstraint Test5', pl0sub), pl0sub.der, pl0.der], structural);
  const pl0sub0 = b.ca('pathLenConstraint0 subCA2', pl0, { pathLen: 0 });
  add('4.6.6', 'Invalid pathLenConstraint Test6', 'invalid', [b.ee('Invalid pathLenConstraint Test6', pl0sub0), pl0sub0.der, pl0.der], structural);
  add('4.6.7', 'Valid pathLenConstraint Test7', 'valid', [b.ee('Valid pathLenConstraint Test7', pl0), pl0.der]);
  add('4.6.8', 'Valid pathLenConstraint Test8', 'valid', [b.ee('Valid pathLenConstraint Test8', pl0, {
    constraints: [keyUsage([KU.digitalSignature, KU.keyCertSign, KU.cRLSign]), basicConstraints(true, 0)],
  }), pl0.der], {
    note: 'the end entity is a CA certificate; its keyUsage also has digitalSignature so that only the cA flag is in question',
    deviation: { result: 'invalid', why: 'a client certificate must be an end entity: a CA certificate as the client certificate is refused (certificate_is_ca), by design for RFC 8705 client authentication' },
    reason: 'certificate_is_ca',
  });
  const pl6 = b.ca('pathLenConstraint6 CA', ta, { pathLen: 6 });
  const pl6sub0 = b.ca('pathLenConstraint6 subCA0', pl6, { pathLen: 0 });
  const pl6subsub00 = b.ca('pathLenConstraint6 subsubCA00', pl6sub0);
  add('4.6.9', 'Invalid pathLenConstraint Test9', 'invalid', [b.ee('Invalid pathLenConstraint Test9', pl6subsub00), pl6subsub00.der, pl6sub0.der, pl6.der], structural);
  const pl6subsub00b = b.ca('pathLenConstraint6 subsubCA00 pathLen0', pl6sub0, { pathLen: 0 });
  add('4.6.10', 'Invalid pathLenConstraint Test10', 'invalid', [b.ee('Invalid pathLenConstraint Test10', pl6subsub00b), pl6subsub00b.der, pl6sub0.der, pl6.der], structural);
  const pl6sub1 = b.ca('pathLenConstraint6 subCA1', pl6, { pathLen: 1 });
  const pl6subsub11 = b.ca('pathLenConstraint6 subsubCA11', pl6sub1, { pathLen: 0 });
  const pl6subsubsub11X = b.ca('pathLenConstraint6 subsubsubCA11X', pl6subsub11);
  add('4.6.11', 'Invalid pathLenConstraint Test11', 'invalid',
    [b.ee('Invalid pathLenConstraint Test11', pl6subsubsub11X), pl6subsubsub11X.der, pl6subsub11.der, pl6sub1.der, pl6.der], structural);
  const pl6subsubsub11Y = b.ca('pathLenConstraint6 subsubsubCA11Y', pl6subsub11, { pathLen: 0 });
  add('4.6.12', 'Invalid pathLenConstraint Test12', 'invalid',
    [b.ee('Invalid pathLenConstraint Test12', pl6subsubsub11Y), pl6subsubsub11Y.der, pl6subsub11.der, pl6sub1.der, pl6.der], structural);
  const pl6sub4 = b.ca('pathLenConstraint6 subCA4', pl6, { pathLen: 4 });
  const pl6subsub41 = b.ca('pathLenConstraint6 subsubCA41', pl6sub4, { pathLen: 1 });
  const pl6subsubsub41X = b.ca('pathLenConstraint6 subsubsubCA41X', pl6subsub41, { pathLen: 0 });
  add('4.6.13', 'Valid pathLenConstraint Test13', 'valid',
    [b.ee('Valid pathLenConstraint Test13', pl6subsubsub41X), pl6subsubsub41X.der, pl6subsub41.der, pl6sub4.der, pl6.der]);
  const pl6subsubsub41Y = b.ca('pathLenConstraint6 subsubsubCA41Y', pl6subsub41);
  add('4.6.14', 'Valid pathLenConstraint Test14', 'valid',
    [b.ee('Valid pathLenConstraint Test14', pl6subsubsub41Y), pl6subsubsub41Y.der, pl6subsub41.der, pl6sub4.der, pl6.der]);
  const pl0self = b.ca('', pl0, { subject: pl0.name, pathLen: 0 });
  add('4.6.15', 'Valid Self-Issued pathLenConstraint Test15', 'valid', [b.ee('Valid Self-Issued pathLenConstraint Test15', pl0self), pl0self.der, pl0.der]);
  const pl0selfSub = b.ca('pathLenConstraint0 subCA3', pl0self, { pathLen: 0 });
  add('4.6.16', 'Invalid Self-Issued pathLenConstraint Test16', 'invalid',
    [b.ee('Invalid Self-Issued pathLenConstraint Test16', pl0selfSub), pl0selfSub.der, pl0self.der, pl0.der], structural);
  const pl1 = b.ca('pathLenConstraint1 CA', ta, { pathLen: 1 });
  const pl1self = b.ca('', pl1, { subject: pl1.name, pathLen: 1 });
  const pl1sub = b.ca('pathLenConstraint1 subCA', pl1self, { pathLen: 1 });
  const pl1subSelf = b.ca('', pl1sub, { subject: pl1sub.name, pathLen: 1 });
  add('4.6.17', 'Valid Self-Issued pathLenConstraint Test17', 'valid',
    [b.ee('Valid Self-Issued pathLenConstraint Test17', pl1subSelf), pl1subSelf.der, pl1sub.der, pl1self.der, pl1.der]);

  // ---- 4.7 Key Usage
  const kuCritical = b.ca('keyUsage Critical keyCertSign False CA', ta, { constraints: [keyUsage([KU.cRLSign], true), basicConstraints(true)] });
  add('4.7.1', 'Invalid keyUsage Critical keyCertSign False Test1', 'invalid', [b.ee('Invalid keyUsage Critical keyCertSign False Test1', kuCritical), kuCritical.der], structural);
  const kuNotCritical = b.ca('keyUsage Not Critical keyCertSign False CA', ta, { constraints: [keyUsage([KU.cRLSign], false), basicConstraints(true)] });
  add('4.7.2', 'Invalid keyUsage Not Critical keyCertSign False Test2', 'invalid', [b.ee('Invalid keyUsage Not Critical keyCertSign False Test2', kuNotCritical), kuNotCritical.der], structural);
  const kuOk = b.ca('keyUsage Not Critical CA', ta, { constraints: [keyUsage([KU.keyCertSign, KU.cRLSign], false), basicConstraints(true)] });
  add('4.7.3', 'Valid keyUsage Not Critical Test3', 'valid', [b.ee('Valid keyUsage Not Critical Test3', kuOk), kuOk.der]);

  // ---- 4.13 Name Constraints
  const subtree = (...ous: readonly string[]): Buffer => dn(C, O, ...ous.map((ou): Attribute => ['OU', ou]));
  const ps1 = subtree('permittedSubtree1');
  const ps2 = subtree('permittedSubtree2');
  const es1 = subtree('excludedSubtree1');
  const es2 = subtree('excludedSubtree2');
  const inSubtree = (ous: readonly string[], cn: string, extra: readonly Attribute[] = []): Buffer =>
    dn(C, O, ...ous.map((ou): Attribute => ['OU', ou]), ['CN', cn], ...extra);
  const nc = (permitted: readonly Buffer[], excluded: readonly Buffer[] = []): Extension[] => [nameConstraints(permitted, excluded)];
  const dn1 = b.ca('nameConstraints DN1 CA', ta, { extra: nc([GN.dir(ps1)]) });
  const dn2 = b.ca('nameConstraints DN2 CA', ta, { extra: nc([GN.dir(ps1), GN.dir(ps2)]) });
  const dn3 = b.ca('nameConstraints DN3 CA', ta, { extra: nc([], [GN.dir(es1)]) });
  const dn4 = b.ca('nameConstraints DN4 CA', ta, { extra: nc([], [GN.dir(es1), GN.dir(es2)]) });
  const dn5 = b.ca('nameConstraints DN5 CA', ta, { extra: nc([GN.dir(ps1)], [GN.dir(subtree('permittedSubtree1', 'excludedSubtree1'))]) });
  const dnCase = (n: number, valid: boolean, ca: Node, subject: Buffer, intermediates: readonly Node[] = [], extra: readonly Extension[] = [], note?: string): void => {
    const title = `${valid ? 'Valid' : 'Invalid'} DN nameConstraints Test${n}`;
    add(`4.13.${n}`, title, valid ? 'valid' : 'invalid', [b.ee(title, ca, { subject, extra }), ...[ca, ...intermediates].map((c) => c.der)],
      { ...(valid ? {} : structural), ...(note !== undefined ? { note } : {}) });
  };
  const eeName = (n: number, valid: boolean, ous: readonly string[], extra: readonly Attribute[] = []): Buffer =>
    inSubtree(ous, `${valid ? 'Valid' : 'Invalid'} DN nameConstraints EE Certificate Test${n}`, extra);
  dnCase(1, true, dn1, eeName(1, true, ['permittedSubtree1']));
  dnCase(2, false, dn1, eeName(2, false, []));
  dnCase(3, false, dn1, eeName(3, false, ['permittedSubtree1']), [], [subjectAltName(GN.dir(inSubtree(['permittedSubtree2'], 'Test3 altName')))]);
  dnCase(4, true, dn1, eeName(4, true, ['permittedSubtree1']), [], [subjectAltName(GN.email('Test4EE@testcertificates.gov'))]);
  dnCase(5, true, dn2, eeName(5, true, ['permittedSubtree1']), [], [subjectAltName(GN.dir(inSubtree(['permittedSubtree2'], 'Test5 altName')))]);
  dnCase(6, true, dn3, eeName(6, true, ['permittedSubtree1']));
  dnCase(7, false, dn3, eeName(7, false, ['excludedSubtree1']));
  dnCase(8, false, dn4, eeName(8, false, ['excludedSubtree1']));
  dnCase(9, false, dn4, eeName(9, false, ['excludedSubtree2']));
  dnCase(10, false, dn5, eeName(10, false, ['permittedSubtree1', 'excludedSubtree1']));
  dnCase(11, true, dn5, eeName(11, true, ['permittedSubtree1']));
  const dn1sub1 = b.ca('nameConstraints DN1 subCA1', dn1, {
    subject: inSubtree(['permittedSubtree1'], 'nameConstraints DN1 subCA1'), extra: nc([GN.dir(subtree('permittedSubtree1', 'subCA1Subtree'))]),
  });
  dnCase(12, false, dn1sub1, eeName(12, false, ['permittedSubtree1']), [dn1], [], 'the subCA narrows the subtree to OU=permittedSubtree1,OU=subCA1Subtree (the NIST value differs)');
  const dn1sub2 = b.ca('nameConstraints DN1 subCA2', dn1, { subject: inSubtree(['permittedSubtree1'], 'nameConstraints DN1 subCA2'), extra: nc([GN.dir(ps2)]) });
  dnCase(13, false, dn1sub2, eeName(13, false, ['permittedSubtree2']), [dn1]);
  dnCase(14, true, dn2, eeName(14, true, ['permittedSubtree2']));
  const dn3sub1 = b.ca('nameConstraints DN3 subCA1', dn3, { extra: nc([], [GN.dir(es2)]) });
  dnCase(15, false, dn3sub1, eeName(15, false, ['excludedSubtree1']), [dn3]);
  dnCase(16, false, dn3sub1, eeName(16, false, ['excludedSubtree2']), [dn3]);
  const dn3sub2 = b.ca('nameConstraints DN3 subCA2', dn3, { extra: nc([GN.dir(dn(C, O))]) });
  dnCase(17, false, dn3sub2, eeName(17, false, ['excludedSubtree1']), [dn3]);
  dnCase(18, true, dn3sub2, eeName(18, true, ['permittedSubtree1']), [dn3]);
  // 19: a self-issued intermediate outside the permitted subtree is exempt (RFC 5280 6.1.3 (b): except self-issued ones).
  const dn1self = b.ca('', dn1, { subject: dn1.name });
  add('4.13.19', 'Valid Self-Issued DN nameConstraints Test19', 'valid',
    [b.ee('Valid Self-Issued DN nameConstraints Test19', dn1self, { subject: eeName(19, true, ['permittedSubtree1']) }), dn1self.der, dn1.der]);
  // 20: the end entity is self-issued (its subject is the CA's name, outside the subtree): still checked.
  add('4.13.20', 'Invalid Self-Issued DN nameConstraints Test20', 'invalid',
    [b.ee('Invalid Self-Issued DN nameConstraints Test20', dn1, { subject: dn1.name }), dn1.der], structural);

  const emailCase = (n: number, valid: boolean, ca: Node, email: string, intermediates: readonly Node[] = []): void => {
    const title = `${valid ? 'Valid' : 'Invalid'} RFC822 nameConstraints Test${n}`;
    add(`4.13.${n}`, title, valid ? 'valid' : 'invalid',
      [b.ee(title, ca, { extra: [subjectAltName(GN.email(email))] }), ...[ca, ...intermediates].map((c) => c.der)], valid ? {} : structural);
  };
  const rfc822ca1 = b.ca('nameConstraints RFC822 CA1', ta, { extra: nc([GN.email('testcertificates.gov')]) });
  const rfc822ca2 = b.ca('nameConstraints RFC822 CA2', ta, { extra: nc([GN.email('.testcertificates.gov')]) });
  const rfc822ca3 = b.ca('nameConstraints RFC822 CA3', ta, { extra: nc([], [GN.email('testcertificates.gov')]) });
  emailCase(21, true, rfc822ca1, 'Test21EE@testcertificates.gov');
  emailCase(22, false, rfc822ca1, 'Test22EE@mailserver.testcertificates.gov');
  emailCase(23, true, rfc822ca2, 'Test23EE@mailserver.testcertificates.gov');
  emailCase(24, false, rfc822ca2, 'Test24EE@testcertificates.gov');
  emailCase(25, true, rfc822ca3, 'Test25EE@mailserver.testcertificates.gov');
  emailCase(26, false, rfc822ca3, 'Test26EE@testcertificates.gov');
  const dn1sub3 = b.ca('nameConstraints DN1 subCA3', dn1, {
    subject: inSubtree(['permittedSubtree1'], 'nameConstraints DN1 subCA3'), extra: nc([GN.dir(ps1), GN.email('testcertificates.gov')]),
  });
  const mixed = (n: number, valid: boolean, subjectExtra: readonly Attribute[], altEmail: string | null): void => {
    const title = `${valid ? 'Valid' : 'Invalid'} DN and RFC822 nameConstraints Test${n}`;
    add(`4.13.${n}`, title, valid ? 'valid' : 'invalid', [b.ee(title, dn1sub3, {
      subject: inSubtree(['permittedSubtree1'], `${title} EE`, subjectExtra),
      extra: altEmail === null ? [] : [subjectAltName(GN.email(altEmail))],
    }), dn1sub3.der, dn1.der], valid ? {} : structural);
  };
  mixed(27, true, [], 'Test27EE@testcertificates.gov');
  mixed(28, false, [], 'Test28EE@invalidcertificates.gov');
  mixed(29, false, [['emailAddress', 'Test29EE@invalidcertificates.gov']], null);

  const sanCase = (n: number, valid: boolean, kind: 'DNS' | 'URI', ca: Node, value: string): void => {
    const title = `${valid ? 'Valid' : 'Invalid'} ${kind} nameConstraints Test${n}`;
    add(`4.13.${n}`, title, valid ? 'valid' : 'invalid',
      [b.ee(title, ca, { extra: [subjectAltName(kind === 'DNS' ? GN.dns(value) : GN.uri(value))] }), ca.der], valid ? {} : structural);
  };
  const dns1 = b.ca('nameConstraints DNS1 CA', ta, { extra: nc([GN.dns('testcertificates.gov')]) });
  const dns2 = b.ca('nameConstraints DNS2 CA', ta, { extra: nc([], [GN.dns('invalidcertificates.gov')]) });
  const uri1 = b.ca('nameConstraints URI1 CA', ta, { extra: nc([GN.uri('.testcertificates.gov')]) });
  const uri2 = b.ca('nameConstraints URI2 CA', ta, { extra: nc([], [GN.uri('invalidcertificates.gov')]) });
  sanCase(30, true, 'DNS', dns1, 'testserver.testcertificates.gov');
  sanCase(31, false, 'DNS', dns1, 'testserver.invalidcertificates.gov');
  sanCase(32, true, 'DNS', dns2, 'testserver.testcertificates.gov');
  sanCase(33, false, 'DNS', dns2, 'invalidcertificates.gov');
  sanCase(34, true, 'URI', uri1, 'http://testserver.testcertificates.gov/index.html');
  sanCase(35, false, 'URI', uri1, 'http://testcertificates.gov/invalid.html');
  sanCase(36, true, 'URI', uri2, 'http://testserver.invalidcertificates.gov/index.html');
  sanCase(37, false, 'URI', uri2, 'ftp://invalidcertificates.gov:21/test37/');
  sanCase(38, false, 'DNS', dns1, 'mytestcertificates.gov');

  // ---- 4.16 Private Certificate Extensions
  const privateExtension = '2.16.840.1.101.2.1.12.2';
  add('4.16.1', 'Valid Unknown Not Critical Certificate Extension Test1', 'valid',
    [b.ee('Valid Unknown Not Critical Certificate Extension Test1', goodCa, { extra: [ext(privateExtension, false, Buffer.from([0x05, 0x00]))] }), goodCa.der]);
  add('4.16.2', 'Invalid Unknown Critical Certificate Extension Test2', 'invalid',
    [b.ee('Invalid Unknown Critical Certificate Extension Test2', goodCa, { extra: [ext(privateExtension, true, Buffer.from([0x05, 0x00]))] }), goodCa.der], structural);

  return cases;
}
