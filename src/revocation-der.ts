/**
 * The DER structures revocation checking reads and writes, on the strict reader of `der.ts`: CRLs
 * (RFC 5280 section 5.1) and OCSP requests and responses (RFC 6960 section 4). Certificates
 * themselves are parsed by `certificate.ts`, signatures checked by `signature.ts`.
 *
 * Why not pkijs: pkijs (through asn1js) refuses inputs of more than 10,000 ASN.1 nodes, so a CRL
 * with more than about 1,500 entries cannot be parsed at all; and its schema matching is slow
 * (measured here: about 2 ms per certificate, 20 to 45 ms of event-loop time per OCSP response).
 * This reader walks the bytes in place: an OCSP response takes microseconds and a CRL of 20,000
 * entries is one linear pass.
 *
 * Anything malformed throws `DerError`, which callers turn into "no answer".
 */
import {
  DerError, TAG, algorithmOf, bitStringBytes, children, content, ctx, ctxPrim, decodeBoolean, decodeSmallInteger,
  decodeTime, encode, encodeOid, expectTag, integerHex, oidOf, readExtensions, readTlv, readWhole, whole,
  type Extension, type Tlv,
} from './der.js';
import type { Signed } from './signature.js';

/** The fields of a CRL (RFC 5280 5.1); entries are visited, not collected, so huge CRLs stay cheap. */
export interface CrlFields extends Signed {
  /** DER of the issuer Name, as encoded. */
  readonly issuer: Uint8Array;
  readonly thisUpdate: number;
  readonly nextUpdate?: number;
  readonly extensions: readonly Extension[];
  /**
   * Visits up to `max` further revoked entries, calling `visit` with each serial (hex, see
   * `integerHex`) and the OID of its first critical entry extension, if any; returns true once all
   * entries have been visited. Callers yield to the event loop between slices: CRLs can hold
   * hundreds of thousands of entries.
   */
  visitEntries(max: number, visit: (serialHex: string, criticalExtension: string | null) => void): boolean;
}

/** SEQUENCE { tbs, signatureAlgorithm, signature, ... } filling `der`: the parts and what they sign. */
function readSigned(der: Uint8Array, what: string): { readonly parts: readonly Tlv[]; readonly tbs: Tlv; readonly signed: Signed } {
  const parts = children(der, readWhole(der, TAG.sequence, what));
  const [tbsTlv, algTlv, sigTlv] = parts;
  const tbs = expectTag(tbsTlv, TAG.sequence, `${what} tbs`);
  return {
    parts,
    tbs,
    signed: {
      tbs: whole(der, tbs),
      signatureAlgorithm: algorithmOf(der, algTlv, 'signatureAlgorithm'),
      signature: bitStringBytes(der, expectTag(sigTlv, TAG.bitString, 'signature'), 'signature'),
    },
  };
}

/** The time of a CRL or OCSP field: GeneralizedTime fractions are accepted there. */
const timeOf = (buf: Uint8Array, tlv: Tlv): number => decodeTime(buf, tlv, true);

export function parseCrl(der: Uint8Array): CrlFields {
  const { tbs, signed } = readSigned(der, 'CertificateList');
  const fields = children(der, tbs);
  let i = fields[0]?.tag === TAG.integer ? 1 : 0; // version (v2) is optional
  i++; // signature AlgorithmIdentifier
  const issuer = expectTag(fields[i++], TAG.sequence, 'issuer');
  const thisUpdateTlv = fields[i++];
  if (thisUpdateTlv === undefined) throw new DerError('thisUpdate missing');
  const thisUpdate = timeOf(der, thisUpdateTlv);
  let nextUpdate: number | undefined;
  const maybeNext = fields[i];
  if (maybeNext !== undefined && (maybeNext.tag === TAG.utcTime || maybeNext.tag === TAG.generalizedTime)) {
    nextUpdate = timeOf(der, maybeNext);
    i++;
  }
  let revoked: Tlv | undefined;
  if (fields[i]?.tag === TAG.sequence) revoked = fields[i++];
  let extensions: Extension[] = [];
  if (fields[i]?.tag === ctx(0)) extensions = readExtensions(der, children(der, fields[i]!)[0], 'crlExtensions');
  let offset = revoked?.body ?? 0;
  return {
    ...signed,
    issuer: whole(der, issuer),
    thisUpdate,
    ...(nextUpdate !== undefined ? { nextUpdate } : {}),
    extensions,
    visitEntries(max, visit) {
      if (revoked === undefined) return true;
      for (let n = 0; n < max && offset < revoked.end; n++) {
        const entry = expectTag(readTlv(der, offset, revoked.end), TAG.sequence, 'revoked entry');
        const serial = expectTag(readTlv(der, entry.body, entry.end), TAG.integer, 'userCertificate');
        const date = readTlv(der, serial.end, entry.end);
        let critical: string | null = null;
        if (date.end < entry.end) {
          const list = expectTag(readTlv(der, date.end, entry.end), TAG.sequence, 'crlEntryExtensions');
          for (let at = list.body; at < list.end && critical === null;) {
            const ext = readTlv(der, at, list.end);
            const oid = readTlv(der, ext.body, ext.end);
            const flag = readTlv(der, oid.end, ext.end);
            if (flag.tag === TAG.boolean && decodeBoolean(der, flag)) critical = oidOf(der, oid);
            at = ext.end;
          }
        }
        visit(integerHex(der, serial.body, serial.end), critical);
        offset = entry.end;
      }
      return offset >= revoked.end;
    },
  };
}

/** IssuingDistributionPoint (RFC 5280 5.2.5): the scope of a CRL. */
export interface IdpFields {
  /** The `[0] distributionPoint` element, when present (read with `distributionPointNames` of certificate.ts). */
  readonly distributionPoint: Tlv | null;
  readonly onlyUserCerts: boolean;
  readonly onlyCaCerts: boolean;
  readonly onlySomeReasons: boolean;
  readonly indirectCrl: boolean;
  readonly onlyAttributeCerts: boolean;
}

/** Reads the extension value `value`; anything but the fields of RFC 5280 5.2.5 in order throws DerError. */
export function issuingDistributionPoint(value: Uint8Array): IdpFields {
  const fields = {
    distributionPoint: null as Tlv | null, onlyUserCerts: false, onlyCaCerts: false, onlySomeReasons: false, indirectCrl: false,
    onlyAttributeCerts: false,
  };
  let last = -1;
  for (const field of children(value, readWhole(value, TAG.sequence, 'IssuingDistributionPoint'))) {
    const number = field.tag & 0x1f;
    if ((field.tag & 0xc0) !== 0x80 || number <= last || number > 5) throw new DerError('bad IssuingDistributionPoint');
    last = number;
    if (field.tag === ctx(0)) fields.distributionPoint = field;
    else if (field.tag === ctxPrim(1)) fields.onlyUserCerts = decodeBoolean(value, field);
    else if (field.tag === ctxPrim(2)) fields.onlyCaCerts = decodeBoolean(value, field);
    else if (field.tag === ctxPrim(3) || field.tag === ctx(3)) fields.onlySomeReasons = true;
    else if (field.tag === ctxPrim(4)) fields.indirectCrl = decodeBoolean(value, field);
    else if (field.tag === ctxPrim(5)) fields.onlyAttributeCerts = decodeBoolean(value, field);
    else throw new DerError('bad IssuingDistributionPoint');
  }
  return fields;
}

// ---------------------------------------------------------------- OCSP requests

/**
 * OCSPRequest (RFC 6960 4.1.1) for one certificate, unsigned, with a nonce extension
 * (RFC 8954: extnValue is an OCTET STRING holding the nonce OCTET STRING).
 */
export function encodeOcspRequest(certId: {
  readonly hashOid: string; readonly issuerNameHash: Uint8Array; readonly issuerKeyHash: Uint8Array;
  /** serialNumber INTEGER contents exactly as in the certificate. */
  readonly serial: Uint8Array;
}, nonce: Uint8Array | null): Uint8Array {
  const id = encode(TAG.sequence,
    encode(TAG.sequence, encodeOid(certId.hashOid), encode(TAG.null)),
    encode(TAG.octetString, certId.issuerNameHash),
    encode(TAG.octetString, certId.issuerKeyHash),
    encode(TAG.integer, certId.serial));
  const requestList = encode(TAG.sequence, encode(TAG.sequence, id));
  const extensions = nonce === null ? [] : [encode(ctx(2), encode(TAG.sequence, encode(TAG.sequence,
    encodeOid('1.3.6.1.5.5.7.48.1.2'), encode(TAG.octetString, encodeNonce(nonce)))))];
  return encode(TAG.sequence, encode(TAG.sequence, requestList, ...extensions));
}

/** The nonce extension's value (RFC 8954 section 2.1): the nonce as an OCTET STRING. */
export function encodeNonce(nonce: Uint8Array): Uint8Array {
  return encode(TAG.octetString, nonce);
}

// ---------------------------------------------------------------- OCSP responses

export interface SingleResponseFields {
  readonly hashOid: string;
  readonly issuerNameHash: Uint8Array;
  readonly issuerKeyHash: Uint8Array;
  readonly serialHex: string;
  /** CertStatus CHOICE (RFC 6960 4.2.1): good [0], revoked [1], unknown [2]. */
  readonly status: 'good' | 'revoked' | 'unknown' | 'invalid';
  readonly thisUpdate: number;
  readonly nextUpdate?: number;
}

export interface BasicOcspResponseFields extends Signed {
  /** DER of each certificate in `certs`. */
  readonly certs: readonly Uint8Array[];
  /** ResponderID: byName (DER of the Name) or byKey (SHA-1 of the responder's key bits). */
  readonly responderName: Uint8Array | null;
  readonly responderKeyHash: Uint8Array | null;
  readonly responses: readonly SingleResponseFields[];
  readonly extensions: readonly Extension[];
}

export interface OcspResponseFields {
  /** OCSPResponseStatus (RFC 6960 4.2.1); 0 is successful. */
  readonly status: number;
  readonly responseType: string | null;
  /** The BasicOCSPResponse, when responseType is id-pkix-ocsp-basic. */
  readonly basic: BasicOcspResponseFields | null;
}

export function parseOcspResponse(der: Uint8Array): OcspResponseFields {
  const [statusTlv, bytesTlv] = children(der, readWhole(der, TAG.sequence, 'OCSPResponse'));
  const status = decodeSmallInteger(der, expectTag(statusTlv, TAG.enumerated, 'responseStatus'), 'responseStatus');
  if (bytesTlv === undefined) return { status, responseType: null, basic: null };
  const [responseBytes] = children(der, expectTag(bytesTlv, ctx(0), 'responseBytes'));
  const [typeTlv, responseTlv] = children(der, expectTag(responseBytes, TAG.sequence, 'ResponseBytes'));
  const responseType = oidOf(der, typeTlv, 'responseType');
  if (responseType !== '1.3.6.1.5.5.7.48.1.1') return { status, responseType, basic: null };
  return { status, responseType, basic: parseBasicOcspResponse(content(der, expectTag(responseTlv, TAG.octetString, 'response'))) };
}

function parseBasicOcspResponse(der: Uint8Array): BasicOcspResponseFields {
  const { parts, tbs, signed } = readSigned(der, 'BasicOCSPResponse');
  const certs: Uint8Array[] = [];
  const certsTlv = parts[3];
  if (certsTlv !== undefined) {
    const [list] = children(der, expectTag(certsTlv, ctx(0), 'certs'));
    for (const cert of children(der, expectTag(list, TAG.sequence, 'certs'))) certs.push(whole(der, cert));
  }
  const fields = children(der, tbs);
  let i = fields[0]?.tag === ctx(0) ? 1 : 0; // [0] EXPLICIT version
  const responder = fields[i++];
  let responderName: Uint8Array | null = null;
  let responderKeyHash: Uint8Array | null = null;
  if (responder?.tag === ctx(1)) {
    const [name] = children(der, responder);
    responderName = whole(der, expectTag(name, TAG.sequence, 'responderID byName'));
  } else if (responder?.tag === ctx(2)) {
    const [hash] = children(der, responder);
    responderKeyHash = content(der, expectTag(hash, TAG.octetString, 'responderID byKey'));
  } else {
    throw new DerError('responderID missing');
  }
  i++; // producedAt
  const responses = children(der, expectTag(fields[i++], TAG.sequence, 'responses')).map((r) => parseSingleResponse(der, r));
  let extensions: Extension[] = [];
  if (fields[i]?.tag === ctx(1)) extensions = readExtensions(der, children(der, fields[i]!)[0], 'responseExtensions');
  return { ...signed, certs, responderName, responderKeyHash, responses, extensions };
}

function parseSingleResponse(der: Uint8Array, tlv: Tlv): SingleResponseFields {
  const [idTlv, statusTlv, thisUpdateTlv, ...rest] = children(der, expectTag(tlv, TAG.sequence, 'SingleResponse'));
  const [algTlv, nameHash, keyHash, serial] = children(der, expectTag(idTlv, TAG.sequence, 'CertID'));
  const statusTag = statusTlv?.tag;
  const status = statusTag === ctxPrim(0) ? 'good' : statusTag === ctx(1) ? 'revoked' : statusTag === ctxPrim(2) ? 'unknown' : 'invalid';
  const thisUpdate = timeOf(der, expectTag(thisUpdateTlv, TAG.generalizedTime, 'thisUpdate'));
  let nextUpdate: number | undefined;
  const next = rest.find((r) => r.tag === ctx(0));
  if (next !== undefined) {
    const [time] = children(der, next);
    nextUpdate = timeOf(der, expectTag(time, TAG.generalizedTime, 'nextUpdate'));
  }
  return {
    hashOid: algorithmOf(der, algTlv, 'hashAlgorithm').oid,
    issuerNameHash: content(der, expectTag(nameHash, TAG.octetString, 'issuerNameHash')),
    issuerKeyHash: content(der, expectTag(keyHash, TAG.octetString, 'issuerKeyHash')),
    serialHex: integerHex(content(der, expectTag(serial, TAG.integer, 'serialNumber'))),
    status, thisUpdate, ...(nextUpdate !== undefined ? { nextUpdate } : {}),
  };
}
