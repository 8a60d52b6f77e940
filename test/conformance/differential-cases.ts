/**
 * Generated path-validation edge cases for the differential test against
 * `openssl verify -x509_strict -purpose sslclient` (differential.test.ts).
 *
 * Each case is root -> 0..3 CAs -> leaf, built with `builder.ts` from defaults that both
 * validators accept (RFC 5280 profile as OpenSSL's -x509_strict wants it: basicConstraints
 * critical and keyUsage on CAs, subject and authority key identifiers, an end entity with
 * digitalSignature and clientAuth), then one or two things changed per case. Families: path
 * length, basic constraints, key usage, extended key usage, validity and time encodings,
 * critical and policy extensions, name constraints (DNS, email incl. unparseable mailboxes and
 * subject emailAddress, URI, IP, directory names), key types and sizes, and encodings (serials,
 * versions, signature algorithms, names, key identifiers). Names are unique per case, so all
 * cases can share one openssl run.
 *
 * A case may name an intended difference (`difference`, a key of DIFFERENCES in the test): then
 * the two validators must disagree on it, the way that entry says.
 */
import { createHash } from 'node:crypto';
import {
  BOOLEAN_TRUE, GN, KU, authorityKeyId, basicConstraints, certificate, certificatePolicies, dn, dsaKey, dsaKeyOfSize, ecKey, ed25519Key, ext,
  extKeyUsage, integer, keyUsage, nameConstraints, oid, rsaKeyOfSize, rsaKeyWithExponent, seq, subjectAltName, subjectKeyId, tlv,
  type Attribute, type Extension, type Key, type Time,
} from './builder.js';

export type Outcome = 'valid' | 'invalid';

export interface DiffCase {
  readonly id: string;
  readonly family: string;
  readonly title: string;
  readonly anchors: readonly Buffer[];
  /** Leaf first, then the CAs below the root (nearest the leaf first). */
  readonly chain: readonly Buffer[];
  /** Intended difference from openssl (a key of DIFFERENCES), when there is one. */
  readonly difference?: string;
}

export const VALIDATION_TIME = new Date(Date.UTC(2025, 0, 1));
const FROM = new Date(Date.UTC(2020, 0, 1));
const TO = new Date(Date.UTC(2030, 0, 1));

const OIDS = {
  basicConstraints: '2.5.29.19', keyUsage: '2.5.29.15', extKeyUsage: '2.5.29.37', subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30', ski: '2.5.29.14', aki: '2.5.29.35', policyConstraints: '2.5.29.36', inhibitAnyPolicy: '2.5.29.54',
  policyMappings: '2.5.29.33', certificatePolicies: '2.5.29.32',
  clientAuth: '1.3.6.1.5.5.7.3.2', serverAuth: '1.3.6.1.5.5.7.3.1', codeSigning: '1.3.6.1.5.5.7.3.3', anyEku: '2.5.29.37.0',
} as const;

/** One certificate's departures from the defaults. `set` replaces or (null) drops a default extension by OID. */
interface CertOpts {
  readonly key?: Key;
  readonly set?: Readonly<Record<string, Extension | null>>;
  readonly extra?: readonly Extension[];
  readonly notBefore?: Time;
  readonly notAfter?: Time;
  readonly subject?: readonly Attribute[];
  readonly serial?: number;
  readonly badSignature?: boolean;
  /** Self-issued: same name as its issuer (key rollover). */
  readonly selfIssued?: boolean;
}

interface Shape {
  readonly title: string;
  readonly root?: CertOpts;
  readonly cas?: readonly CertOpts[];
  readonly leaf?: CertOpts;
  readonly difference?: string;
}

interface Keys {
  readonly root: Key;
  readonly ca: readonly Key[];
  readonly leaf: Key;
}

function withDefaults(defaults: readonly Extension[], opts: CertOpts | undefined): Extension[] {
  const set = opts?.set ?? {};
  const out: Extension[] = [];
  for (const d of defaults) {
    if (!(d.oid in set)) out.push(d);
  }
  for (const [o, e] of Object.entries(set)) if (e !== null && e !== undefined && o === e.oid) out.push(e);
  return [...out, ...(opts?.extra ?? [])];
}

function build(id: string, family: string, shape: Shape, keys: Keys): DiffCase {
  const rootName = dn(['CN', `${id} Root`], ['O', 'mtls-pop differential']);
  const rootKey = shape.root?.key ?? keys.root;
  const root = certificate({
    serial: 1, issuer: rootName, subject: rootName, notBefore: shape.root?.notBefore ?? FROM, notAfter: shape.root?.notAfter ?? TO,
    key: rootKey, signer: rootKey, badSignature: shape.root?.badSignature ?? false,
    extensions: withDefaults([basicConstraints(true), keyUsage([KU.keyCertSign, KU.cRLSign]), subjectKeyId(rootKey)], shape.root),
  });
  let issuerName = rootName;
  let issuerKey = rootKey;
  const cas: Buffer[] = [];
  for (const [i, opts] of (shape.cas ?? []).entries()) {
    const key = opts.key ?? keys.ca[i] ?? ecKey();
    const subject = opts.selfIssued === true ? issuerName : dn(['CN', `${id} CA ${i + 1}`], ['O', 'mtls-pop differential']);
    cas.push(certificate({
      serial: 10 + i, issuer: issuerName, subject, notBefore: opts.notBefore ?? FROM, notAfter: opts.notAfter ?? TO,
      key, signer: issuerKey, badSignature: opts.badSignature ?? false,
      extensions: withDefaults([basicConstraints(true), keyUsage([KU.keyCertSign, KU.cRLSign]), subjectKeyId(key), authorityKeyId(issuerKey)], opts),
    }));
    issuerName = subject;
    issuerKey = key;
  }
  const leafOpts = shape.leaf;
  const leafKey = leafOpts?.key ?? keys.leaf;
  const leafSubject = leafOpts?.subject ?? [['CN', `${id} leaf`], ['O', 'mtls-pop differential']];
  const leaf = certificate({
    serial: leafOpts?.serial ?? 100, issuer: issuerName, subject: dn(...leafSubject),
    notBefore: leafOpts?.notBefore ?? FROM, notAfter: leafOpts?.notAfter ?? TO, key: leafKey, signer: issuerKey,
    badSignature: leafOpts?.badSignature ?? false,
    extensions: withDefaults([
      keyUsage([KU.digitalSignature]), extKeyUsage([OIDS.clientAuth]), subjectAltName(GN.dns(`${id}.client.example`)), authorityKeyId(issuerKey),
    ], leafOpts),
  });
  return {
    id, family, title: shape.title, anchors: [root], chain: [leaf, ...[...cas].reverse()],
    ...(shape.difference === undefined ? {} : { difference: shape.difference }),
  };
}

/** A small deterministic generator (mulberry32), so the random family is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ku = (...bits: number[]): Extension => keyUsage(bits);
const eku = (...oids: string[]): Extension => extKeyUsage(oids);
const bc = (ca: boolean, pathLen?: number, critical = true): Extension => basicConstraints(ca, pathLen, critical);
const nc = (permitted: readonly Buffer[], excluded: readonly Buffer[] = []): Extension => nameConstraints(permitted, excluded);
const san = (...names: readonly Buffer[]): Extension => subjectAltName(...names);
const years = (y: number, m = 0, d = 1): Date => new Date(Date.UTC(y, m, d));

function families(leafKeyForSki: Key): { family: string; shapes: Shape[] }[] {
  const out: { family: string; shapes: Shape[] }[] = [];

  // --- pathLenConstraint (RFC 5280 4.2.1.9, 6.1.4 (l), (m)).
  const pathLen: Shape[] = [];
  for (const rootLen of [undefined, 0, 1, 2]) {
    for (const depth of [0, 1, 2, 3]) {
      pathLen.push({ title: `root pathLen ${rootLen ?? 'none'}, ${depth} CA(s)`, root: { set: { [OIDS.basicConstraints]: bc(true, rootLen) } }, cas: Array.from({ length: depth }, () => ({})) });
    }
  }
  for (const caLen of [0, 1]) {
    for (const depth of [2, 3]) {
      pathLen.push({ title: `first CA pathLen ${caLen}, ${depth} CAs`, cas: Array.from({ length: depth }, (_, i) => (i === 0 ? { set: { [OIDS.basicConstraints]: bc(true, caLen) } } : {})) });
    }
  }
  pathLen.push({ title: 'root pathLen 0, self-issued CA then a CA', root: { set: { [OIDS.basicConstraints]: bc(true, 0) } }, cas: [{ selfIssued: true }, {}] });
  pathLen.push({ title: 'root pathLen 0, a self-issued CA only', root: { set: { [OIDS.basicConstraints]: bc(true, 0) } }, cas: [{ selfIssued: true }] });
  pathLen.push({ title: 'last CA pathLen 0 above the leaf', cas: [{}, { set: { [OIDS.basicConstraints]: bc(true, 0) } }] });
  out.push({ family: 'pathLen', shapes: pathLen });

  // --- basicConstraints.
  out.push({
    family: 'basicConstraints', shapes: [
      { title: 'CA without basicConstraints', cas: [{ set: { [OIDS.basicConstraints]: null } }] },
      { title: 'CA with cA FALSE', cas: [{ set: { [OIDS.basicConstraints]: bc(false) } }] },
      { title: 'CA basicConstraints not critical', cas: [{ set: { [OIDS.basicConstraints]: bc(true, undefined, false) } }], difference: 'profile_rules_of_issuers' },
      { title: 'root basicConstraints not critical', root: { set: { [OIDS.basicConstraints]: bc(true, undefined, false) } }, difference: 'profile_rules_of_issuers' },
      { title: 'root without basicConstraints (v3)', root: { set: { [OIDS.basicConstraints]: null } } },
      { title: 'leaf is a CA (cA TRUE, with a subject key identifier)', leaf: { set: { [OIDS.basicConstraints]: bc(true) }, extra: [subjectKeyId(leafKeyForSki)] }, difference: 'leaf_is_ca' },
      { title: 'leaf cA FALSE with pathLen', leaf: { set: { [OIDS.basicConstraints]: ext(OIDS.basicConstraints, true, seq(integer(0))) } }, difference: 'profile_rules_of_issuers' },
      { title: 'leaf with basicConstraints cA FALSE (empty SEQUENCE), critical', leaf: { set: { [OIDS.basicConstraints]: bc(false) } } },
      { title: 'leaf basicConstraints explicit FALSE (BER default)', leaf: { set: { [OIDS.basicConstraints]: ext(OIDS.basicConstraints, false, seq(Buffer.of(1, 1, 0))) } } },
      { title: 'CA pathLen negative', cas: [{ set: { [OIDS.basicConstraints]: ext(OIDS.basicConstraints, true, seq(BOOLEAN_TRUE, tlv(0x02, Buffer.of(0xff)))) } }] },
    ],
  });

  // --- keyUsage (4.2.1.3, 6.1.4 (n)) and the leaf's client-auth purpose.
  const kuShapes: Shape[] = [];
  const leafKus: [string, Extension | null][] = [
    ['none', null], ['digitalSignature', ku(KU.digitalSignature)], ['keyEncipherment', ku(KU.keyEncipherment)],
    ['keyAgreement', ku(KU.keyAgreement)], ['nonRepudiation', ku(KU.nonRepudiation)], ['keyCertSign', ku(KU.keyCertSign)],
    ['digitalSignature+keyEncipherment', ku(KU.digitalSignature, KU.keyEncipherment)], ['dataEncipherment', ku(KU.dataEncipherment)],
  ];
  for (const [label, value] of leafKus) kuShapes.push({ title: `leaf keyUsage ${label}`, leaf: { set: { [OIDS.keyUsage]: value } } });
  const caKus: [string, Extension | null][] = [
    ['none', null], ['keyCertSign', ku(KU.keyCertSign)], ['cRLSign', ku(KU.cRLSign)], ['digitalSignature', ku(KU.digitalSignature)],
    ['keyCertSign not critical', keyUsage([KU.keyCertSign], false)],
  ];
  for (const [label, value] of caKus) {
    kuShapes.push({ title: `CA keyUsage ${label}`, cas: [{ set: { [OIDS.keyUsage]: value } }], ...(label === 'none' ? { difference: 'profile_rules_of_issuers' } : {}) });
    kuShapes.push({ title: `root keyUsage ${label}`, root: { set: { [OIDS.keyUsage]: value } }, ...(label === 'none' ? { difference: 'profile_rules_of_issuers' } : {}) });
  }
  kuShapes.push({ title: 'leaf keyCertSign without cA', leaf: { set: { [OIDS.keyUsage]: ku(KU.digitalSignature, KU.keyCertSign) } }, difference: 'profile_rules_of_issuers' });
  out.push({ family: 'keyUsage', shapes: kuShapes });

  // --- extKeyUsage (4.2.1.12), on the leaf and on CAs (OpenSSL checks a CA's EKU for the purpose too).
  const ekuShapes: Shape[] = [];
  const ekus: [string, Extension | null][] = [
    ['none', null], ['clientAuth', eku(OIDS.clientAuth)], ['serverAuth', eku(OIDS.serverAuth)], ['anyExtendedKeyUsage', eku(OIDS.anyEku)],
    ['serverAuth+clientAuth', eku(OIDS.serverAuth, OIDS.clientAuth)], ['codeSigning', eku(OIDS.codeSigning)],
    ['clientAuth critical', extKeyUsage([OIDS.clientAuth], true)],
  ];
  for (const [label, value] of ekus) {
    const any = label === 'anyExtendedKeyUsage' ? { difference: 'any_extended_key_usage' } : {};
    ekuShapes.push({ title: `leaf extKeyUsage ${label}`, leaf: { set: { [OIDS.extKeyUsage]: value } }, ...any });
    if (label !== 'none') ekuShapes.push({ title: `CA extKeyUsage ${label}`, cas: [{ extra: value === null ? [] : [value] }], ...any });
  }
  ekuShapes.push({ title: 'root extKeyUsage serverAuth', root: { extra: [eku(OIDS.serverAuth)] } });
  out.push({ family: 'extKeyUsage', shapes: ekuShapes });

  // --- validity (6.1.3 (a)(2)) and time encodings (4.1.2.5).
  const T = VALIDATION_TIME.getTime();
  out.push({
    family: 'validity', shapes: [
      { title: 'leaf expired', leaf: { notAfter: years(2024) } },
      { title: 'leaf not yet valid', leaf: { notBefore: years(2026) } },
      { title: 'CA expired', cas: [{ notAfter: years(2024) }] },
      { title: 'CA not yet valid', cas: [{ notBefore: years(2026) }] },
      { title: 'root expired', root: { notAfter: years(2024) } },
      { title: 'root not yet valid', root: { notBefore: years(2026) } },
      { title: 'leaf notAfter one second before the validation time', leaf: { notAfter: new Date(T - 1000) } },
      { title: 'leaf notAfter at the validation time', leaf: { notAfter: new Date(T) }, difference: 'not_after_inclusive' },
      { title: 'leaf notBefore at the validation time', leaf: { notBefore: new Date(T) } },
      { title: 'leaf notBefore one second after the validation time', leaf: { notBefore: new Date(T + 1000) } },
      { title: 'leaf notAfter 2050 as GeneralizedTime', leaf: { notAfter: { generalized: '20500101000000Z' } } },
      { title: 'leaf notAfter 2049 as GeneralizedTime (RFC 5280: UTCTime before 2050)', leaf: { notAfter: { generalized: '20490101000000Z' } } },
      { title: 'leaf notBefore UTCTime without seconds', leaf: { notBefore: { utc: '2001010000Z' } } },
      { title: 'leaf notBefore UTCTime with an offset', leaf: { notBefore: { utc: '200101000000+0100' } } },
      { title: 'leaf notAfter GeneralizedTime with fractional seconds', leaf: { notAfter: { generalized: '20290101000000.5Z' } } },
      { title: 'leaf notBefore after notAfter', leaf: { notBefore: years(2026), notAfter: years(2024) } },
    ],
  });

  // --- critical and policy extensions (4.2).
  out.push({
    family: 'extensions', shapes: [
      { title: 'unknown critical extension on the leaf', leaf: { extra: [ext('1.3.6.1.4.1.99999.1', true, Buffer.of(5, 0))] } },
      { title: 'unknown critical extension on a CA', cas: [{ extra: [ext('1.3.6.1.4.1.99999.1', true, Buffer.of(5, 0))] }] },
      { title: 'unknown critical extension on the root', root: { extra: [ext('1.3.6.1.4.1.99999.1', true, Buffer.of(5, 0))] } },
      { title: 'unknown non-critical extension on the leaf', leaf: { extra: [ext('1.3.6.1.4.1.99999.1', false, Buffer.of(5, 0))] } },
      { title: 'critical certificatePolicies on the leaf', leaf: { extra: [{ ...certificatePolicies('2.5.29.32.0'), critical: true }] } },
      { title: 'critical SAN on the leaf', leaf: { set: { [OIDS.subjectAltName]: { ...san(GN.dns('x.client.example')), critical: true } } } },
      { title: 'policyConstraints requireExplicitPolicy 0 on a CA', cas: [{ extra: [ext(OIDS.policyConstraints, true, seq(tlv(0x80, Buffer.of(0))))] }], difference: 'policy_extensions' },
      { title: 'policyConstraints inhibitPolicyMapping on a CA (non-critical)', cas: [{ extra: [ext(OIDS.policyConstraints, false, seq(tlv(0x81, Buffer.of(0))))] }], difference: 'policy_extensions' },
      { title: 'inhibitAnyPolicy critical on a CA', cas: [{ extra: [ext(OIDS.inhibitAnyPolicy, true, integer(0))] }], difference: 'policy_extensions' },
      { title: 'policyMappings critical on a CA', cas: [{ extra: [ext(OIDS.policyMappings, true, seq(seq(oid('2.5.29.32.1'), oid('2.5.29.32.2'))))] }], difference: 'policy_extensions' },
      { title: 'duplicate extension on the leaf', leaf: { extra: [ext('1.3.6.1.4.1.99999.2', false, Buffer.of(5, 0)), ext('1.3.6.1.4.1.99999.2', false, Buffer.of(5, 0))] }, difference: 'duplicate_extension' },
      { title: 'keyUsage not critical on the leaf', leaf: { set: { [OIDS.keyUsage]: keyUsage([KU.digitalSignature], false) } } },
      { title: 'empty SAN sequence on the leaf', leaf: { set: { [OIDS.subjectAltName]: ext(OIDS.subjectAltName, false, seq()) } } },
    ],
  });

  // --- name constraints (4.2.1.10), on the CA above the leaf.
  const ncShapes: Shape[] = [];
  const withNc = (title: string, constraint: Extension, leafNames: readonly Buffer[] | null, subject?: readonly Attribute[], difference?: string): void => {
    ncShapes.push({
      title, cas: [{ extra: [constraint] }],
      leaf: { ...(leafNames === null ? { set: { [OIDS.subjectAltName]: null } } : { set: { [OIDS.subjectAltName]: san(...leafNames) } }), ...(subject === undefined ? {} : { subject }) },
      ...(difference === undefined ? {} : { difference }),
    });
  };
  const dnsP = nc([GN.dns('good.example')]);
  const dnsX = nc([], [GN.dns('bad.example')]);
  withNc('DNS permitted: inside', dnsP, [GN.dns('a.good.example')]);
  withNc('DNS permitted: the base itself', dnsP, [GN.dns('good.example')]);
  withNc('DNS permitted: outside', dnsP, [GN.dns('a.other.example')]);
  withNc('DNS permitted: suffix without a dot boundary', dnsP, [GN.dns('notgood.example')]);
  withNc('DNS permitted: upper case inside', dnsP, [GN.dns('A.GOOD.Example')]);
  withNc('DNS permitted: wildcard inside', dnsP, [GN.dns('*.good.example')]);
  withNc('DNS excluded: inside', dnsX, [GN.dns('a.bad.example')]);
  withNc('DNS excluded: upper case inside', dnsX, [GN.dns('A.BAD.EXAMPLE')]);
  withNc('DNS excluded: outside', dnsX, [GN.dns('a.good.example')]);
  withNc('DNS excluded: trailing dot', dnsX, [GN.dns('a.bad.example.')], undefined, 'unparseable_name_under_constraint');
  withNc('DNS excluded: two trailing dots', dnsX, [GN.dns('a.bad.example..')], undefined, 'unparseable_name_under_constraint');
  withNc('DNS excluded: empty label', dnsX, [GN.dns('a..bad.example')]);
  withNc('DNS permitted with leading dot: subdomain', nc([GN.dns('.good.example')]), [GN.dns('a.good.example')]);
  withNc('DNS permitted with leading dot: the base itself', nc([GN.dns('.good.example')]), [GN.dns('good.example')]);
  withNc('DNS permitted: no SAN, host-like CN inside', dnsP, null, [['CN', 'host.good.example']]);
  withNc('DNS permitted: no SAN, host-like CN outside', dnsP, null, [['CN', 'host.other.example']]);
  withNc('DNS permitted: no SAN, CN not host-like', dnsP, null, [['CN', 'Some Client']]);
  withNc('DNS permitted: only an email SAN', dnsP, [GN.email('a@other.example')]);
  const emP = nc([GN.email('good.example')]);
  const emX = nc([], [GN.email('bad.example')]);
  withNc('email permitted host: inside', emP, [GN.email('user@good.example')]);
  withNc('email permitted host: subdomain (not inside)', emP, [GN.email('user@a.good.example')]);
  withNc('email permitted host: upper-case domain', emP, [GN.email('user@GOOD.EXAMPLE')]);
  withNc('email permitted .domain: subdomain', nc([GN.email('.good.example')]), [GN.email('user@a.good.example')]);
  withNc('email permitted mailbox: same', nc([GN.email('alice@good.example')]), [GN.email('alice@good.example')]);
  withNc('email permitted mailbox: other local part', nc([GN.email('alice@good.example')]), [GN.email('bob@good.example')]);
  withNc('email permitted mailbox: local part case differs', nc([GN.email('alice@good.example')]), [GN.email('Alice@good.example')]);
  withNc('email excluded: inside', emX, [GN.email('user@bad.example')]);
  withNc('email excluded: outside', emX, [GN.email('user@good.example')]);
  withNc('email excluded: SAN without @', emX, [GN.email('bad.example')]);
  withNc('email excluded: SAN with an empty local part', emX, [GN.email('@bad.example')]);
  withNc('email excluded: SAN with an empty domain', emX, [GN.email('user@')], undefined, 'unparseable_name_under_constraint');
  withNc('email excluded: SAN with two @', emX, [GN.email('a@b@bad.example')]);
  withNc('email permitted: SAN without @', emP, [GN.email('good.example')]);
  withNc('email excluded: subject emailAddress inside', emX, [GN.dns('x.client.example')], [['CN', 'leaf'], ['emailAddress', 'user@bad.example']]);
  withNc('email excluded: subject emailAddress outside', emX, [GN.dns('x.client.example')], [['CN', 'leaf'], ['emailAddress', 'user@good.example']]);
  withNc('email excluded: subject emailAddress without @', emX, [GN.dns('x.client.example')], [['CN', 'leaf'], ['emailAddress', 'bad.example']]);
  withNc('email permitted: subject emailAddress outside', emP, [GN.dns('x.client.example')], [['CN', 'leaf'], ['emailAddress', 'user@other.example']]);
  const uriX = nc([], [GN.uri('bad.example')]);
  const uriP = nc([GN.uri('.good.example')]);
  withNc('URI excluded host: inside', uriX, [GN.uri('https://bad.example/x')]);
  withNc('URI excluded host: with userinfo and port', uriX, [GN.uri('https://u@BAD.example:8443/x')], undefined, 'uri_userinfo');
  withNc('URI excluded host: outside', uriX, [GN.uri('https://good.example/x')]);
  withNc('URI excluded host: two @', uriX, [GN.uri('https://a@b@bad.example/x')], undefined, 'uri_userinfo');
  withNc('URI permitted .domain: subdomain', uriP, [GN.uri('spiffe://a.good.example/ns/x')]);
  withNc('URI permitted .domain: IP literal host', uriP, [GN.uri('https://10.0.0.1/x')]);
  withNc('URI permitted .domain: no authority', uriP, [GN.uri('urn:uuid:1234')]);
  const ipX = nc([], [GN.ip([10, 0, 0, 0, 255, 0, 0, 0])]);
  const ipP = nc([GN.ip([192, 168, 0, 0, 255, 255, 0, 0])]);
  withNc('IP excluded: inside', ipX, [GN.ip([10, 1, 2, 3])]);
  withNc('IP excluded: outside', ipX, [GN.ip([11, 1, 2, 3])]);
  withNc('IP excluded: 5-octet SAN', ipX, [GN.ip([10, 1, 2, 3, 4])]);
  withNc('IP permitted: inside', ipP, [GN.ip([192, 168, 1, 1])]);
  withNc('IP permitted: outside', ipP, [GN.ip([192, 169, 1, 1])]);
  withNc('IP permitted v4: IPv6 SAN', ipP, [GN.ip([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 1])]);
  withNc('IP constraint of 5 octets', nc([GN.ip([10, 0, 0, 0, 255])]), [GN.ip([10, 1, 2, 3])]);
  withNc('IP constraint with a non-contiguous mask', nc([GN.ip([10, 0, 0, 0, 255, 0, 255, 0])]), [GN.ip([10, 1, 0, 3])], undefined, 'ip_mask_not_contiguous');
  const dirP = nc([GN.dir(dn(['O', 'mtls-pop differential']))]);
  withNc('directoryName permitted: subject inside', dirP, [GN.dns('x.client.example')], [['O', 'mtls-pop differential'], ['CN', 'leaf']]);
  withNc('directoryName permitted: subject outside', dirP, [GN.dns('x.client.example')], [['O', 'other'], ['CN', 'leaf']]);
  withNc('directoryName excluded: subject inside', nc([], [GN.dir(dn(['O', 'evil']))]), [GN.dns('x.client.example')], [['O', 'evil'], ['CN', 'leaf']]);
  withNc('directoryName permitted: case differs', dirP, [GN.dns('x.client.example')], [['O', 'MTLS-POP Differential'], ['CN', 'leaf']]);
  withNc('otherName constraint', nc([tlv(0xa0, oid('1.3.6.1.4.1.311.20.2.3'), tlv(0xa0, tlv(0x0c, Buffer.from('x@y'))))]), [GN.dns('x.client.example')], undefined, 'unsupported_constraint_form');
  ncShapes.push({
    title: 'DNS constraints on the root', root: { extra: [dnsP] }, leaf: { set: { [OIDS.subjectAltName]: san(GN.dns('a.other.example')) } },
  });
  ncShapes.push({
    title: 'DNS excluded on the root, CA name in subtree, leaf outside', root: { extra: [dnsX] }, cas: [{}],
    leaf: { set: { [OIDS.subjectAltName]: san(GN.dns('a.good.example')) } },
  });
  out.push({ family: 'nameConstraints', shapes: ncShapes });

  // --- random name constraints: small alphabets so that names often fall in or near a subtree.
  const random = seeded(20251204);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const label = (): string => pick(['a', 'b', 'B', 'c']);
  const domain = (): string => Array.from({ length: 1 + Math.floor(random() * 3) }, label).join('.') + pick(['.ex', '.EX', '.ey']);
  const rnd: Shape[] = [];
  for (let i = 0; i < 90; i++) {
    const kind = pick(['dns', 'email', 'ip'] as const);
    const excluded = random() < 0.5;
    let constraint: Buffer;
    let names: Buffer[];
    let text: string;
    if (kind === 'dns') {
      const base = pick(['', '.']) + domain();
      constraint = GN.dns(base);
      names = Array.from({ length: 1 + Math.floor(random() * 2) }, () => GN.dns(domain()));
      text = `DNS ${base}`;
    } else if (kind === 'email') {
      const base = pick(['', '.', 'x@']) + domain();
      constraint = GN.email(base);
      names = Array.from({ length: 1 + Math.floor(random() * 2) }, () => GN.email(`${pick(['x', 'y', 'X'])}@${domain()}`));
      text = `email ${base}`;
    } else {
      const prefix = pick([8, 16, 24]);
      const address = [10, pick([0, 1]), pick([0, 1]), 0];
      const mask = [0, 1, 2, 3].map((k) => (k * 8 < prefix ? 255 : 0));
      constraint = GN.ip([...address, ...mask]);
      names = Array.from({ length: 1 + Math.floor(random() * 2) }, () => GN.ip([pick([10, 11]), pick([0, 1]), pick([0, 1]), 7]));
      text = `IP 10.x/${prefix}`;
    }
    rnd.push({
      title: `random ${excluded ? 'excluded' : 'permitted'} ${text}`,
      cas: [{ extra: [excluded ? nc([], [constraint]) : nc([constraint])] }],
      leaf: { set: { [OIDS.subjectAltName]: san(...names) } },
    });
  }
  out.push({ family: 'nameConstraints (random)', shapes: rnd });

  // --- key types and sizes (key-bounds.ts).
  const big = (bits: number): bigint => (1n << BigInt(bits - 1)) + 2n * BigInt(`0x${createHash('sha256').update(String(bits)).digest('hex')}`) + 1n;
  const keyShapes: [string, () => Key, string?][] = [
    ['RSA 2048', () => rsaKeyOfSize(2048)],
    ['RSA 1024, e = 3', () => rsaKeyOfSize(1024, 3)],
    ['RSA 512', () => rsaKeyOfSize(512), 'rsa_modulus_too_small'],
    ['RSA 1024, 33-bit e', () => rsaKeyWithExponent(1024, (1n << 33n) - 1n)],
    ['RSA 1024, 34-bit e', () => rsaKeyWithExponent(1024, (1n << 33n) + 1n), 'rsa_exponent_too_large'],
    ['RSA 1024, 600-bit e', () => rsaKeyWithExponent(1024, big(600)), 'rsa_exponent_too_large'],
    ['P-384', () => ecKey('P-384')],
    ['P-521', () => ecKey('P-521')],
    ['secp256k1', () => ecKey('secp256k1'), 'ec_curve_not_accepted'],
    ['brainpoolP256r1', () => ecKey('brainpoolP256r1'), 'ec_curve_not_accepted'],
    ['Ed25519', () => ed25519Key()],
    ['DSA 1024/160', () => dsaKey()],
    ['DSA 2048/256', () => dsaKeyOfSize(2048, 256)],
  ];
  const ks: Shape[] = [];
  for (const [label, make, difference] of keyShapes) {
    const key = make();
    ks.push({ title: `CA key ${label}`, cas: [{ key }], ...(difference === undefined ? {} : { difference }) });
    ks.push({ title: `leaf key ${label} (nothing signed with it)`, leaf: { key } });
  }
  out.push({ family: 'keys', shapes: ks });

  // --- encodings.
  out.push({
    family: 'encodings', shapes: [
      { title: 'leaf signature broken', leaf: { badSignature: true } },
      { title: 'CA signature broken', cas: [{ badSignature: true }] },
      { title: 'root self-signature broken', root: { badSignature: true }, difference: 'anchor_self_signature' },
      { title: 'leaf serial 0', leaf: { serial: 0 } },
      { title: 'leaf without AKI', leaf: { set: { [OIDS.aki]: null } }, difference: 'profile_rules_of_issuers' },
      { title: 'CA without SKI', cas: [{ set: { [OIDS.ski]: null } }], difference: 'profile_rules_of_issuers' },
      { title: 'CA without AKI', cas: [{ set: { [OIDS.aki]: null } }], difference: 'profile_rules_of_issuers' },
      { title: 'leaf AKI names another key', leaf: { set: { [OIDS.aki]: authorityKeyId(ecKey()) } } },
      { title: 'leaf with an empty subject and a SAN', leaf: { subject: [], set: { [OIDS.subjectAltName]: { ...san(GN.dns('x.client.example')), critical: true } } } },
      { title: 'leaf with an empty subject, SAN not critical', leaf: { subject: [] }, difference: 'profile_rules_of_issuers' },
      { title: 'leaf subject in UTF8String and BMPString', leaf: { subject: [['CN', 'l\u00e9af', 'utf8'], ['O', 'bmp org', 'bmp']] } },
      { title: 'CA subject key identifier not matching the leaf AKI', cas: [{ set: { [OIDS.ski]: ext(OIDS.ski, false, tlv(0x04, Buffer.alloc(64, 7))) } }] },
    ],
  });
  return out;
}

/** Every generated case; ids `d001`... in family order. */
export function buildDifferentialCases(): DiffCase[] {
  const keys: Keys = { root: ecKey(), ca: [ecKey(), ecKey(), ecKey()], leaf: ecKey() };
  const cases: DiffCase[] = [];
  for (const { family, shapes } of families(keys.leaf)) {
    for (const shape of shapes) {
      const id = `d${String(cases.length + 1).padStart(3, '0')}`;
      cases.push(build(id, family, shape, keys));
    }
  }
  return cases;
}
