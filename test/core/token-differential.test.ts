/**
 * Differential test: the token signature on node:crypto (`src/jws.ts`, used by `TokenVerifier`
 * with keys from `JwksSource`) against jose 6 on WebCrypto, which it replaced.
 *
 * Rule: every input jose rejects, we reject. Where we accept and jose rejects, the test fails.
 * Where jose accepts and we reject, the case must be one we declared stricter on purpose, with the
 * reason we give (a non-canonical base64url spelling, a crit header, a PS* signature shorter than
 * the modulus, an RSA key with e = 1, ...); the diagnostics count how many of those jose accepts
 * (all of them with jose 6.2 on Node 20). Everything else must give the same answer.
 *
 * 1. Signature layer, `verifyJwsSignature` vs jose `compactVerify` with the same KeyObject: every
 *    allowed algorithm x a zoo of keys (right and wrong type, curve, size, exponent, private keys)
 *    x signatures (genuine, by another key, under every other algorithm, bit flips, wrong lengths,
 *    DER ECDSA, high-S, PKCS#1 v1.5 and PSS encodings built by hand: missing NULL, other hash,
 *    short padding, trailing bytes, other salt lengths, MGF1 with another hash, ...).
 * 2. The whole token path, `TokenVerifier` + `JwksSource` (JWK Set over HTTP) vs jose `jwtVerify`
 *    with `createLocalJWKSet` on the same set: JWK variants (use, key_ops, ext, alg, kid, private
 *    members, exponent, curve) and token variants (structure, base64url spellings, header, payload).
 * 3. Seeded random mutations of genuine tokens, per algorithm.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  constants, createHash, createHmac, createPublicKey, privateEncrypt, randomBytes, sign,
  type JsonWebKey, type KeyObject,
} from 'node:crypto';
import { compactVerify, createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { verifyJwsSignature } from '../../src/jws.js';
import { TokenVerifier } from '../../src/token.js';
import { JwksSource } from '../../src/jwks.js';
import { ASYMMETRIC_ALGORITHMS } from '../../src/config-schema.js';
import type { ReasonCode } from '../../src/errors.js';
import { startJwksServer, type JwksServer } from '../helpers/jwks-server.js';
import { keyPair } from '../helpers/keys.js';

const ALGS: readonly string[] = ASYMMETRIC_ALGORITHMS;
const NOW_MS = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW = NOW_MS / 1000;
const ISSUER = 'https://idp.example/realms/test';

const b64 = (data: string | Uint8Array): string => Buffer.from(data).toString('base64url');
const json64 = (value: unknown): string => b64(JSON.stringify(value));

// ---------------------------------------------------------------------------------------------
// Keys and signing

interface ZooKey {
  readonly name: string;
  /** What is handed to the verifier (a private KeyObject for the "private key as verifier" cases). */
  readonly verifyKey: KeyObject;
  /** Signs for this key when it can sign at all. */
  readonly privateKey: KeyObject | null;
}

function pair(name: string, make: () => { publicKey: KeyObject; privateKey: KeyObject }): ZooKey {
  const { publicKey, privateKey } = make();
  return { name, verifyKey: publicKey, privateKey };
}

/** The family of an algorithm and its hash. */
function family(alg: string): 'RS' | 'PS' | 'ES' | 'Ed' {
  if (alg.startsWith('RS')) return 'RS';
  if (alg.startsWith('PS')) return 'PS';
  if (alg.startsWith('ES')) return 'ES';
  return 'Ed';
}
function hashOf(alg: string): 'sha256' | 'sha384' | 'sha512' {
  return alg.endsWith('384') ? 'sha384' : alg.endsWith('512') ? 'sha512' : 'sha256';
}
const HASH_BYTES = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 } as const;

/** A signature as `alg` would make it with `key`, or null when the key cannot sign that way. */
function signAs(alg: string, key: KeyObject, input: string): Buffer | null {
  const data = Buffer.from(input, 'latin1');
  try {
    switch (family(alg)) {
      case 'RS': return sign(hashOf(alg), data, { key, padding: constants.RSA_PKCS1_PADDING });
      case 'PS': return sign(hashOf(alg), data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[hashOf(alg)] });
      case 'ES': return sign(hashOf(alg), data, { key, dsaEncoding: 'ieee-p1363' });
      case 'Ed': return sign(null, data, key);
    }
  } catch {
    return null;
  }
}

/** RSA private operation on a k-byte block (RSASP1, RFC 8017 5.2.1), for hand-made encodings. */
function rsaRaw(key: KeyObject, block: Buffer): Buffer | null {
  try {
    return privateEncrypt({ key, padding: constants.RSA_NO_PADDING }, block);
  } catch {
    return null;
  }
}

function modulusBytes(key: KeyObject): number {
  return Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
}

const DIGEST_INFO: Readonly<Record<'sha256' | 'sha384' | 'sha512', string>> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

/** EMSA-PKCS1-v1_5 (RFC 8017 9.2) with knobs for the classic malformations. */
function pkcs1Block(k: number, hash: 'sha256' | 'sha384' | 'sha512', input: string, variant: {
  digestInfo?: Buffer; padByte?: number; ffCount?: number; trailing?: Buffer; blockType?: number; digestHash?: 'sha256' | 'sha384' | 'sha512';
} = {}): Buffer {
  const digest = createHash(variant.digestHash ?? hash).update(input, 'latin1').digest();
  const t = Buffer.concat([variant.digestInfo ?? Buffer.from(DIGEST_INFO[variant.digestHash ?? hash], 'hex'), digest, variant.trailing ?? Buffer.alloc(0)]);
  const ffCount = variant.ffCount ?? k - 3 - t.length;
  const block = Buffer.concat([Buffer.from([0, variant.blockType ?? 1]), Buffer.alloc(ffCount, variant.padByte ?? 0xff), Buffer.from([0]), t]);
  // Keep the block k bytes long: a shorter padding is compensated by leading zeros.
  return block.length < k ? Buffer.concat([Buffer.alloc(k - block.length), block]) : block.subarray(0, k);
}

function mgf1(hash: string, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  for (let counter = 0; Buffer.concat(out).length < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    out.push(createHash(hash).update(seed).update(c).digest());
  }
  return Buffer.concat(out).subarray(0, length);
}

/** EMSA-PSS-ENCODE (RFC 8017 9.1.1) with any salt length, MGF1 hash and trailer. */
function pssBlock(modBits: number, hash: 'sha256' | 'sha384' | 'sha512', input: string, saltLength: number, mgfHash: string, trailer = 0xbc): Buffer | null {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const hLen = HASH_BYTES[hash];
  if (emLen < hLen + saltLength + 2) return null;
  const mHash = createHash(hash).update(input, 'latin1').digest();
  const salt = randomBytes(saltLength);
  const h = createHash(hash).update(Buffer.concat([Buffer.alloc(8), mHash, salt])).digest();
  const db = Buffer.concat([Buffer.alloc(emLen - saltLength - hLen - 2), Buffer.from([1]), salt]);
  const mask = mgf1(mgfHash, h, emLen - hLen - 1);
  for (let i = 0; i < db.length; i++) db[i] = (db[i] as number) ^ (mask[i] as number);
  db[0] = (db[0] as number) & (0xff >> (8 * emLen - emBits));
  const em = Buffer.concat([db, h, Buffer.from([trailer])]);
  const k = Math.ceil(modBits / 8);
  return em.length < k ? Buffer.concat([Buffer.alloc(k - em.length), em]) : em;
}

const CURVE_ORDER: Readonly<Record<string, bigint>> = {
  ES256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551n,
  ES384: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973n,
  ES512: 0x01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409n,
};
const ED25519_L = (1n << 252n) + 27742317777372353535851937790883648493n;

const toBig = (bytes: Uint8Array): bigint => (bytes.length === 0 ? 0n : BigInt(`0x${Buffer.from(bytes).toString('hex')}`));
function fromBig(value: bigint, length: number): Buffer {
  const hex = value.toString(16).padStart(length * 2, '0');
  return Buffer.from(hex.length > length * 2 ? hex.slice(-length * 2) : hex, 'hex');
}

/** An RSA public key with the modulus of `base` and the public exponent `e` (bytes, big-endian). */
function rsaWithExponent(base: KeyObject, e: Buffer): KeyObject {
  const jwk = base.export({ format: 'jwk' });
  return createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: b64(e) } as JsonWebKey, format: 'jwk' });
}

// ---------------------------------------------------------------------------------------------
// Shared state

let zoo: ZooKey[];
/** The key each algorithm is normally verified with (its "IdP key"). */
const canonical = new Map<string, ZooKey>();
let rsaE1: KeyObject;
let idp: JwksServer;

before(async () => {
  const rsa2048 = pair('RSA 2048', () => keyPair('rsa', { modulusLength: 2048 }));
  const p256 = pair('EC P-256', () => keyPair('ec', { namedCurve: 'P-256' }));
  const p384 = pair('EC P-384', () => keyPair('ec', { namedCurve: 'P-384' }));
  const p521 = pair('EC P-521', () => keyPair('ec', { namedCurve: 'P-521' }));
  const ed25519 = pair('Ed25519', () => keyPair('ed25519'));
  rsaE1 = rsaWithExponent(rsa2048.verifyKey, Buffer.from([1]));
  zoo = [
    rsa2048, p256, p384, p521, ed25519,
    pair('RSA 3072', () => keyPair('rsa', { modulusLength: 3072 })),
    pair('RSA 1024 (too short)', () => keyPair('rsa', { modulusLength: 1024 })),
    pair('RSA 2047 (one bit short)', () => keyPair('rsa', { modulusLength: 2047 })),
    pair('RSA 2048, e = 3', () => keyPair('rsa', { modulusLength: 2048, publicExponent: 3 })),
    pair('RSA-PSS key type', () => keyPair('rsa-pss', { modulusLength: 2048 })),
    pair('EC secp256k1', () => keyPair('ec', { namedCurve: 'secp256k1' })),
    pair('Ed448', () => keyPair('ed448')),
    { name: 'X25519 (not a signature key)', verifyKey: keyPair('x25519').publicKey, privateKey: null },
    { name: 'RSA 2048 private key as verifier', verifyKey: rsa2048.privateKey as KeyObject, privateKey: rsa2048.privateKey },
    { name: 'EC P-256 private key as verifier', verifyKey: p256.privateKey as KeyObject, privateKey: p256.privateKey },
    { name: 'Ed25519 private key as verifier', verifyKey: ed25519.privateKey as KeyObject, privateKey: ed25519.privateKey },
    { name: 'RSA 2048, e = 1', verifyKey: rsaE1, privateKey: null },
  ];
  for (const alg of ALGS) {
    const f = family(alg);
    canonical.set(alg, f === 'RS' || f === 'PS' ? rsa2048 : f === 'Ed' ? ed25519 : alg === 'ES256' ? p256 : alg === 'ES384' ? p384 : p521);
  }
  idp = await startJwksServer({ algs: [] });
});
after(() => idp.close());

function canonicalKey(alg: string): ZooKey {
  const key = canonical.get(alg);
  if (key === undefined) throw new Error(`no canonical key for ${alg}`);
  return key;
}

/** Outcome tallies per algorithm, printed as diagnostics. */
interface Tally { cases: number; bothAccept: number; bothReject: number; stricter: number }
function tally(map: Map<string, Tally>, alg: string): Tally {
  let t = map.get(alg);
  if (t === undefined) map.set(alg, t = { cases: 0, bothAccept: 0, bothReject: 0, stricter: 0 });
  return t;
}
function describe(map: Map<string, Tally>): string {
  return [...map].map(([alg, t]) => `${alg}: ${t.cases} cases, ${t.bothAccept} both accept, ${t.bothReject} both reject, ${t.stricter} only we reject (declared)`).join('; ');
}

async function joseAccepts(run: () => Promise<unknown>): Promise<boolean> {
  try {
    await run();
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Signature layer

interface SignatureCase {
  readonly name: string;
  readonly input: string;
  readonly signature: Buffer;
  /** Declared: jose accepts, we refuse (why). */
  readonly stricter?: string;
}

/** Signatures to try for `alg` with verification key `key` over `input`. */
function signatureCases(alg: string, key: ZooKey, input: string): SignatureCase[] {
  const cases: SignatureCase[] = [];
  const add = (name: string, signature: Buffer | null, stricter?: string): void => {
    if (signature !== null) cases.push({ name, input, signature, ...(stricter === undefined ? {} : { stricter }) });
  };
  const idpKey = canonicalKey(alg).privateKey as KeyObject;
  const own = key.privateKey === null ? null : signAs(alg, key.privateKey, input);
  const base = own ?? (signAs(alg, idpKey, input) as Buffer);
  add('signed by this key', own);
  add('signed by the algorithm\'s usual key', signAs(alg, idpKey, input));
  // Generic mutations.
  const flip = (at: number): Buffer => { const s = Buffer.from(base); s[at] = (s[at] as number) ^ 0x01; return s; };
  add('empty', Buffer.alloc(0));
  add('first bit flipped', flip(0));
  add('middle bit flipped', flip(base.length >> 1));
  add('last bit flipped', flip(base.length - 1));
  add('last byte dropped', base.subarray(0, -1));
  add('first byte dropped', base.subarray(1));
  add('zero byte appended', Buffer.concat([base, Buffer.alloc(1)]));
  add('zero byte prepended', Buffer.concat([Buffer.alloc(1), base]));
  add('all zeros', Buffer.alloc(base.length));
  add('all ones', Buffer.alloc(base.length, 0xff));
  add('signature twice', Buffer.concat([base, base]));
  // Algorithm confusion: the same input signed under every other algorithm with this key.
  for (const other of ALGS) {
    if (other !== alg) add(`signed as ${other}`, signAs(other, key.privateKey ?? idpKey, input));
  }
  const signer = key.privateKey ?? idpKey;
  const f = family(alg);
  if ((f === 'RS' || f === 'PS') && signer.asymmetricKeyType === 'rsa') {
    const k = modulusBytes(signer);
    const bits = signer.asymmetricKeyDetails?.modulusLength ?? 0;
    const hash = hashOf(alg);
    const n = Buffer.from(signer.export({ format: 'jwk' }).n as string, 'base64url');
    add('the modulus n itself', n);
    add('n + 1 (out of range)', fromBig(toBig(n) + 1n, k));
    add('n - 1', fromBig(toBig(n) - 1n, k));
    add('s + n (same residue, k bytes when it fits)', fromBig(toBig(base) + toBig(n), k + 1));
    if (f === 'RS') {
      const withoutNull = Buffer.from(DIGEST_INFO[hash].replace('0500', '').replace(/^30(..)300(.)/, (_m, a: string, b: string) => `30${(parseInt(a, 16) - 2).toString(16).padStart(2, '0')}300${(parseInt(b, 16) - 2).toString(16)}`), 'hex');
      add('PKCS#1: DigestInfo without NULL parameters', rsaRaw(signer, pkcs1Block(k, hash, input, { digestInfo: withoutNull })));
      for (const other of ['sha256', 'sha384', 'sha512'] as const) {
        if (other !== hash) add(`PKCS#1: ${other} DigestInfo and digest`, rsaRaw(signer, pkcs1Block(k, hash, input, { digestHash: other })));
      }
      add('PKCS#1: 7 bytes of padding', rsaRaw(signer, pkcs1Block(k, hash, input, { ffCount: 7 })));
      add('PKCS#1: trailing garbage after the digest', rsaRaw(signer, pkcs1Block(k, hash, input, { ffCount: k - 3 - DIGEST_INFO[hash].length / 2 - HASH_BYTES[hash] - 8, trailing: Buffer.alloc(8, 0x41) })));
      add('PKCS#1: padding bytes 0xfe', rsaRaw(signer, pkcs1Block(k, hash, input, { padByte: 0xfe })));
      add('PKCS#1: block type 2', rsaRaw(signer, pkcs1Block(k, hash, input, { blockType: 2 })));
      add('PKCS#1: well-formed (control)', rsaRaw(signer, pkcs1Block(k, hash, input)));
    } else {
      const hLen = HASH_BYTES[hash];
      const pss = (salt: number, mgf: string, trailer?: number): Buffer | null => {
        const block = pssBlock(bits, hash, input, salt, mgf, trailer);
        return block === null ? null : rsaRaw(signer, block);
      };
      add('PSS: well-formed (control)', pss(hLen, hash));
      add('PSS: salt length 0', pss(0, hash));
      add('PSS: salt length 20', pss(20, hash));
      add('PSS: salt length hash + 1', pss(hLen + 1, hash));
      add('PSS: maximal salt', pss(Math.ceil((bits - 1) / 8) - hLen - 2, hash));
      add('PSS: MGF1 with SHA-1', pss(hLen, 'sha1'));
      for (const other of ['sha256', 'sha384', 'sha512'] as const) if (other !== hash) add(`PSS: MGF1 with ${other}`, pss(hLen, other));
      add('PSS: trailer 0xcc', pss(hLen, hash, 0xcc));
    }
  }
  if (f === 'ES') {
    const half = base.length >> 1;
    const r = base.subarray(0, half);
    const s = base.subarray(half);
    const order = CURVE_ORDER[alg] as bigint;
    add('ECDSA: high S (n - s)', Buffer.concat([r, fromBig(order - toBig(s), half)]));
    add('ECDSA: r and s swapped', Buffer.concat([s, r]));
    add('ECDSA: s + n (same residue)', Buffer.concat([r, fromBig(toBig(s) + order, half)]));
    add('ECDSA: r = 0', Buffer.concat([Buffer.alloc(half), s]));
    add('ECDSA: s = n', Buffer.concat([r, fromBig(order, half)]));
    add('ECDSA: each half zero-extended', Buffer.concat([Buffer.alloc(1), r, Buffer.alloc(1), s]));
    try {
      add('ECDSA: DER encoding', sign(hashOf(alg), Buffer.from(input, 'latin1'), { key: signer, dsaEncoding: 'der' }));
    } catch {
      // A key that cannot make ECDSA signatures.
    }
  }
  if (f === 'Ed' && base.length === 64) {
    const sLe = Buffer.from(base.subarray(32)).reverse();
    const sPlusL = toBig(sLe) + ED25519_L;
    if (sPlusL < 1n << 256n) add('Ed25519: S + L (non-canonical S)', Buffer.concat([base.subarray(0, 32), fromBig(sPlusL, 32).reverse()]));
    add('Ed25519: R zero', Buffer.concat([Buffer.alloc(32), base.subarray(32)]));
  }
  return cases;
}

test('signature layer: verifyJwsSignature accepts exactly what jose compactVerify accepts, for every algorithm and key', async (t) => {
  const tallies = new Map<string, Tally>();
  const mismatches: string[] = [];
  let nonce = 0;
  const check = async (alg: string, key: KeyObject, keyName: string, c: SignatureCase): Promise<void> => {
    const token = `${c.input}.${b64(c.signature)}`;
    const jose = await joseAccepts(() => compactVerify(token, key, { algorithms: [alg] }));
    const verdict = verifyJwsSignature(alg, key, Buffer.from(c.input, 'latin1'), c.signature);
    const ours = verdict === 'valid';
    const entry = tally(tallies, alg);
    entry.cases++;
    const label = `${alg} / ${keyName} / ${c.name}`;
    // RFC 8017 8.1.2 / 8.2.2 step 1: an RSA signature has exactly k octets. OpenSSL's PSS path takes
    // a shorter one (a genuine signature whose leading zero bytes were dropped, about 1 in 256 of
    // them), so every such case, whatever mutation made it, belongs to one declared class.
    const stricter = c.stricter
      ?? (key.asymmetricKeyType?.startsWith('rsa') === true && c.signature.length < modulusBytes(key) ? 'signature shorter than the modulus' : undefined);
    if (stricter !== undefined) {
      // Ours must refuse; jose accepts today (counted), but may become as strict (not our defect).
      if (ours) mismatches.push(`${label}: declared stricter (${stricter}) but ours accepts`);
      if (jose) entry.stricter++;
      else entry.bothReject++;
    } else if (jose !== ours) {
      mismatches.push(`${label}: jose ${jose ? 'accepts' : 'rejects'}, ours ${verdict}`);
    } else if (ours) {
      entry.bothAccept++;
    } else {
      entry.bothReject++;
    }
  };
  const header = (alg: string): string => json64({ alg, typ: 'JWT' });
  for (const alg of ALGS) {
    for (const key of zoo) {
      const input = `${header(alg)}.${json64({ iss: ISSUER, exp: NOW + 300, n: nonce++ })}`;
      for (const c of signatureCases(alg, key, input)) await check(alg, key.verifyKey, key.name, c);
    }
    // e = 1: the "signature" is the encoded message itself, so anyone can write one. OpenSSL (and
    // so jose) accepts it; we refuse the key.
    if (family(alg) === 'RS' || family(alg) === 'PS') {
      const input = `${header(alg)}.${json64({ iss: ISSUER, exp: NOW + 300, n: nonce++ })}`;
      const block = family(alg) === 'RS' ? pkcs1Block(256, hashOf(alg), input) : pssBlock(2048, hashOf(alg), input, HASH_BYTES[hashOf(alg)], hashOf(alg));
      await check(alg, rsaE1, 'RSA 2048, e = 1', { name: 'forged: signature = encoded message', input, signature: block as Buffer, stricter: 'RSA public exponent below 3' });
    }
    // A genuine RSA signature whose first byte is zero, with that byte dropped: RFC 8017 says
    // invalid (length must be k); OpenSSL's PSS path accepts it, so jose takes two spellings of one
    // PS* signature. We refuse it for every RSA algorithm.
    if (family(alg) === 'RS' || family(alg) === 'PS') {
      const signer = canonicalKey(alg);
      for (let tries = 0; tries < 5000; tries++) {
        const input = `${header(alg)}.${json64({ iss: ISSUER, exp: NOW + 300, n: nonce++ })}`;
        const signature = signAs(alg, signer.privateKey as KeyObject, input) as Buffer;
        if (signature[0] !== 0) continue;
        await check(alg, signer.verifyKey, signer.name, { name: 'genuine, leading zero byte (control)', input, signature });
        await check(alg, signer.verifyKey, signer.name, { name: 'genuine with its leading zero byte dropped', input, signature: signature.subarray(1) });
        break;
      }
    }
  }
  t.diagnostic(describe(tallies));
  assert.deepEqual(mismatches, []);
  for (const alg of ALGS) {
    const entry = tallies.get(alg);
    assert.ok(entry !== undefined && entry.bothAccept >= 2 && entry.bothReject >= 100, `${alg}: ${JSON.stringify(entry)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// 2. The whole token path

interface TokenCase {
  readonly name: string;
  readonly token: string;
  /** Declared: jose accepts, we refuse with this reason. */
  readonly stricter?: ReasonCode;
}

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: ISSUER, sub: 'alice', iat: NOW - 5, exp: NOW + 300, ...extra };
}

/** A compact JWS over the given encoded parts, signed as `alg` says with `key`. */
function signParts(alg: string, key: KeyObject, headerPart: string, payloadPart: string): string {
  const input = `${headerPart}.${payloadPart}`;
  const signature = signAs(alg, key, input);
  if (signature === null) throw new Error(`cannot sign ${alg} with this key`);
  return `${input}.${b64(signature)}`;
}

/** Other spellings of a base64url part with its unused trailing bits set (same bytes). */
function nonCanonical(part: string): string | null {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const unused = part.length % 4 === 2 ? 4 : part.length % 4 === 3 ? 2 : 0;
  if (unused === 0) return null;
  return part.slice(0, -1) + alphabet[alphabet.indexOf(part.at(-1) as string) | 1];
}

function tokenCases(alg: string, kid: string, key: KeyObject): TokenCase[] {
  const cases: TokenCase[] = [];
  const hdr = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ alg, kid, typ: 'JWT', ...extra });
  const make = (header: unknown, payload: unknown): string =>
    signParts(alg, key, typeof header === 'string' ? header : json64(header), typeof payload === 'string' ? payload : json64(payload));
  const add = (name: string, token: string, stricter?: ReasonCode): void => {
    cases.push({ name, token, ...(stricter === undefined ? {} : { stricter }) });
  };
  const genuine = make(hdr(), claims());
  const [h, p, s] = genuine.split('.') as [string, string, string];
  add('genuine', genuine);
  add('genuine, typ at+jwt', make(hdr({ typ: 'at+jwt' }), claims()));
  add('genuine, no kid', make({ alg, typ: 'JWT' }, claims()));
  add('genuine, no typ', make({ alg, kid }, claims()));
  // Structure.
  add('two parts', `${h}.${p}`);
  add('four parts', `${genuine}.${s}`);
  add('five parts (JWE shape)', `${genuine}.${s}.${s}`);
  add('trailing dot', `${genuine}.`);
  add('leading dot', `.${genuine}`);
  add('empty signature', `${h}.${p}.`);
  add('empty payload, signed', make(hdr(), ''));
  add('empty header, signed', signParts(alg, key, '', p));
  // jose's base64url decoding (atob) skips white space.
  add('space inside the signature', `${h}.${p}.${s.slice(0, 10)} ${s.slice(10)}`, 'token_malformed');
  add('line feed inside the signature', `${h}.${p}.${s.slice(0, 10)}\n${s.slice(10)}`, 'token_malformed');
  add('standard base64 alphabet', genuine.replace(/-/g, '+').replace(/_/g, '/'));
  // Spellings: padding and unused trailing bits (same decoded bytes).
  const pad = (part: string): string => part + '='.repeat((4 - (part.length % 4)) % 4);
  if (s.length % 4 !== 0) add('signature padded with =', `${h}.${p}.${pad(s)}`, 'token_malformed');
  if (h.length % 4 !== 0) add('header padded with = (and signed so)', signParts(alg, key, pad(h), p), 'token_malformed');
  if (p.length % 4 !== 0) add('payload padded with = (and signed so)', signParts(alg, key, h, pad(p)), 'token_malformed');
  const sNc = nonCanonical(s);
  if (sNc !== null) add('signature with unused bits set', `${h}.${p}.${sNc}`, 'token_malformed');
  for (let extra = 0; extra < 3; extra++) {
    // Vary the header length so that both remainders (2 and 3) occur.
    const hx = json64(hdr({ x: 'y'.repeat(extra) }));
    const hNc = nonCanonical(hx);
    if (hNc !== null) add(`header with unused bits set (${hx.length % 4})`, signParts(alg, key, hNc, p), 'token_malformed');
    const px = json64(claims({ x: 'y'.repeat(extra) }));
    const pNc = nonCanonical(px);
    if (pNc !== null) add(`payload with unused bits set (${px.length % 4})`, signParts(alg, key, h, pNc), 'token_malformed');
  }
  // Header.
  add('alg missing', make({ kid, typ: 'JWT' }, claims()));
  add('alg empty', make(hdr({ alg: '' }), claims()));
  add('alg lower case', make(hdr({ alg: alg.toLowerCase() }), claims()));
  add('alg as an array', make(hdr({ alg: [alg] }), claims()));
  add('alg none, no signature', `${json64(hdr({ alg: 'none' }))}.${p}.`);
  add('alg none, signed', make(hdr({ alg: 'none' }), claims()));
  const publicPem = createPublicKey(key).export({ format: 'pem', type: 'spki' }) as string;
  const hsInput = `${json64(hdr({ alg: 'HS256' }))}.${p}`;
  add('HS256 with the public key PEM as secret', `${hsInput}.${b64(createHmac('sha256', publicPem).update(hsInput).digest())}`);
  for (const other of ALGS) {
    if (other === alg) continue;
    // Another allowed alg in the header, signed that way with the same key where possible.
    const signature = signAs(other, key, `${json64(hdr({ alg: other }))}.${p}`);
    if (signature !== null) add(`header alg ${other}, signed as ${other}`, `${json64(hdr({ alg: other }))}.${p}.${b64(signature)}`);
  }
  add('kid a number', make(hdr({ kid: 7 }), claims()));
  add('kid of no key', make(hdr({ kid: 'other' }), claims()));
  add('crit [b64], b64 true', make(hdr({ crit: ['b64'], b64: true }), claims()), 'token_crit_unsupported');
  add('crit [b64], b64 false, raw payload', signParts(alg, key, json64(hdr({ crit: ['b64'], b64: false })), JSON.stringify(claims())));
  add('crit [b64], b64 false, encoded payload', make(hdr({ crit: ['b64'], b64: false }), claims()));
  add('b64 false without crit (ignored by both)', make(hdr({ b64: false }), claims()));
  add('crit []', make(hdr({ crit: [] }), claims()));
  add('crit [exp] (not understood)', make(hdr({ crit: ['exp'], exp: 1 }), claims()));
  add('crit not an array', make(hdr({ crit: 'b64', b64: true }), claims()));
  add('typ "foo"', make(hdr({ typ: 'foo' }), claims()), 'token_type_not_allowed');
  add('typ 123', make(hdr({ typ: 123 }), claims()), 'token_type_not_allowed');
  add('cty JWT (nested token)', make(hdr({ cty: 'JWT' }), claims()), 'token_malformed');
  const attacker = keyPair('ec', { namedCurve: 'P-256' });
  add('embedded jwk of an attacker, signed by it', signParts('ES256', attacker.privateKey, json64({ alg: 'ES256', kid, typ: 'JWT', jwk: attacker.publicKey.export({ format: 'jwk' }) }), p));
  add('jku to an attacker', make(hdr({ jku: 'https://attacker.example/jwks' }), claims()));
  add('header a JSON array', make(b64(JSON.stringify([hdr()])), claims()));
  add('header a JSON string', make(b64(JSON.stringify(JSON.stringify(hdr()))), claims()));
  add('header not JSON', make(b64('{"alg":'), claims()));
  add('header not UTF-8', make(b64(Buffer.concat([Buffer.from(JSON.stringify(hdr()).slice(0, -1)), Buffer.from([0x2c, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])])), claims()));
  add('header with a byte-order mark', make(b64(`\ufeff${JSON.stringify(hdr())}`), claims()));
  add('header with duplicate alg, last none', make(b64(`{"alg":"${alg}","kid":"${kid}","alg":"none"}`), claims()));
  add('header with duplicate alg, last ours', make(b64(`{"alg":"none","kid":"${kid}","alg":"${alg}"}`), claims()));
  add('header with __proto__ member', make(b64(`{"alg":"${alg}","kid":"${kid}","__proto__":{"crit":["x"]}}`), claims()));
  // Payload.
  add('payload a JSON array', make(hdr(), b64(JSON.stringify([claims()]))));
  add('payload a number', make(hdr(), b64('12345')));
  add('payload null', make(hdr(), b64('null')));
  add('payload not JSON', make(hdr(), b64('{"exp":')));
  add('payload not UTF-8', make(hdr(), b64(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))));
  add('payload with a byte-order mark', make(hdr(), b64(`\ufeff${JSON.stringify(claims())}`)));
  add('exp missing', make(hdr(), claims({ exp: undefined })));
  add('exp a string', make(hdr(), claims({ exp: String(NOW + 300) })));
  add('exp past', make(hdr(), claims({ exp: NOW - 10 })));
  add('exp 1e400 (Infinity)', make(hdr(), b64(JSON.stringify(claims()).replace(`"exp":${NOW + 300}`, '"exp":1e400'))), 'token_claims_invalid');
  add('nbf in the future', make(hdr(), claims({ nbf: NOW + 100 })));
  add('iss another issuer', make(hdr(), claims({ iss: 'https://evil.example' })));
  add('payload tampered after signing', `${h}.${json64(claims({ sub: 'mallory' }))}.${s}`);
  add('signature of another token', `${h}.${p}.${make(hdr(), claims({ sub: 'bob' })).split('.')[2] as string}`);
  return cases;
}

/** JWK variants around a genuine public JWK; each is published alone. */
function jwkCases(alg: string, kid: string, key: KeyObject): { name: string; jwk: Record<string, unknown>; stricter?: ReasonCode }[] {
  const base: Record<string, unknown> = { ...key.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  const f = family(alg);
  const otherSameFamily = ALGS.find((a) => a !== alg && family(a) === f && (f !== 'ES')) ?? (f === 'ES' ? (alg === 'ES256' ? 'ES384' : 'ES256') : 'RS256');
  const otherFamily = f === 'ES' ? 'RS256' : 'ES256';
  const cases: { name: string; jwk: Record<string, unknown>; stricter?: ReasonCode }[] = [
    { name: 'genuine JWK', jwk: base },
    { name: 'no alg, no use', jwk: { ...base, alg: undefined, use: undefined } },
    { name: 'no kid (token names one)', jwk: { ...base, kid: undefined } },
    { name: 'use enc', jwk: { ...base, use: 'enc' } },
    { name: 'use SIG (case)', jwk: { ...base, use: 'SIG' } },
    { name: 'key_ops [verify]', jwk: { ...base, key_ops: ['verify'] } },
    { name: 'key_ops [sign]', jwk: { ...base, key_ops: ['sign'] } },
    { name: 'key_ops [verify, verify]', jwk: { ...base, key_ops: ['verify', 'verify'] } },
    { name: 'key_ops [verify, 1]', jwk: { ...base, key_ops: ['verify', 1] } },
    { name: 'key_ops "verify" (not an array)', jwk: { ...base, key_ops: 'verify' } },
    { name: 'key_ops []', jwk: { ...base, key_ops: [] } },
    { name: 'ext true', jwk: { ...base, ext: true } },
    { name: 'ext "true" (not a boolean)', jwk: { ...base, ext: 'true' } },
    { name: `alg ${otherSameFamily}`, jwk: { ...base, alg: otherSameFamily } },
    { name: `alg ${otherFamily}`, jwk: { ...base, alg: otherFamily } },
    { name: 'alg "none"', jwk: { ...base, alg: 'none' } },
    { name: 'kid of another key', jwk: { ...base, kid: `${kid}-other` } },
    { name: 'kty oct with the same kid', jwk: { kty: 'oct', k: b64('secret'), kid, alg: 'HS256' } },
  ];
  const privateJwk = { ...(canonicalKey(alg).privateKey as KeyObject).export({ format: 'jwk' }), kid, alg, use: 'sig' };
  cases.push({ name: 'private JWK published (d and co.)', jwk: privateJwk });
  if (f === 'RS' || f === 'PS') {
    const n = Buffer.from(base['n'] as string, 'base64url');
    cases.push({ name: 'n with a leading zero octet', jwk: { ...base, n: b64(Buffer.concat([Buffer.alloc(1), n])) } });
    cases.push({ name: 'e with a leading zero octet', jwk: { ...base, e: b64(Buffer.from([0, 1, 0, 1])) } });
    cases.push({ name: 'e = 3 (the signature then fails)', jwk: { ...base, e: b64(Buffer.from([3])) } });
    cases.push({ name: 'e = 65538 (even)', jwk: { ...base, e: b64(Buffer.from([1, 0, 2])) } });
    cases.push({ name: 'n truncated to 1024 bits', jwk: { ...base, n: b64(n.subarray(0, 128)) } });
    cases.push({ name: 'kty EC', jwk: { ...base, kty: 'EC' } });
  } else if (f === 'ES') {
    const y = Buffer.from(base['y'] as string, 'base64url');
    const y2 = Buffer.from(y);
    y2[y2.length - 1] = (y2[y2.length - 1] as number) ^ 1;
    cases.push({ name: 'point not on the curve', jwk: { ...base, y: b64(y2) } });
    cases.push({ name: 'x one byte short', jwk: { ...base, x: b64(Buffer.from(base['x'] as string, 'base64url').subarray(1)) } });
    cases.push({ name: 'crv of another curve', jwk: { ...base, crv: alg === 'ES256' ? 'P-384' : 'P-256' } });
    cases.push({ name: 'no y', jwk: { ...base, y: undefined } });
    cases.push({ name: 'kty RSA', jwk: { ...base, kty: 'RSA' } });
  } else {
    cases.push({ name: 'crv Ed448', jwk: { ...base, crv: 'Ed448' } });
    cases.push({ name: 'crv X25519', jwk: { ...base, crv: 'X25519' } });
    cases.push({ name: 'x one byte short', jwk: { ...base, x: b64(Buffer.from(base['x'] as string, 'base64url').subarray(1)) } });
    cases.push({ name: 'kty EC', jwk: { ...base, kty: 'EC' } });
  }
  return cases.map((c) => ({ ...c, jwk: JSON.parse(JSON.stringify(c.jwk)) as Record<string, unknown> }));
}

interface PathResult { ok: boolean; reason: string }

function ourVerifier(): TokenVerifier {
  const jwks = new JwksSource({
    issuer: null, jwksUri: idp.jwksUri, timeoutMs: 5000, rediscoveryLifetimeS: 3600, sslVerify: true, caPem: [], now: () => NOW_MS,
  });
  return new TokenVerifier({
    issuersAllowed: [ISSUER], algorithms: [...ASYMMETRIC_ALGORITHMS], leewayS: 0, audienceRequired: null, scopesRequired: null,
    cacheSize: 0, cacheTtlS: 0, cacheSalt: 'differential', now: () => NOW_MS,
  }, jwks);
}

async function ours(verifier: TokenVerifier, token: string): Promise<PathResult> {
  const result = await verifier.verify(token);
  return result.ok ? { ok: true, reason: '' } : { ok: false, reason: result.error.reason };
}

function joseVerifier(jwks: Record<string, unknown>[]): (token: string) => Promise<boolean> {
  let set: ReturnType<typeof createLocalJWKSet> | null;
  try {
    set = createLocalJWKSet({ keys: jwks } as unknown as JSONWebKeySet);
  } catch {
    set = null;
  }
  return (token) => joseAccepts(async () => {
    if (set === null) throw new Error('jose refuses the JWK Set');
    return jwtVerify(token, set, {
      algorithms: [...ASYMMETRIC_ALGORITHMS], issuer: ISSUER, requiredClaims: ['exp'], currentDate: new Date(NOW_MS),
    });
  });
}

test('token path: TokenVerifier + JwksSource reject every token and JWK Set that jose jwtVerify rejects, for every algorithm', async (t) => {
  const tallies = new Map<string, Tally>();
  const mismatches: string[] = [];
  const compare = (alg: string, label: string, jose: boolean, result: PathResult, stricter: ReasonCode | undefined): void => {
    const entry = tally(tallies, alg);
    entry.cases++;
    if (stricter !== undefined) {
      // Ours must refuse with the declared reason; jose accepts today (counted), but may become as strict.
      if (result.ok || result.reason !== stricter) {
        mismatches.push(`${alg} / ${label}: declared stricter (${stricter}) but ours ${result.ok ? 'accepts' : result.reason}`);
      }
      if (jose) entry.stricter++;
      else entry.bothReject++;
    } else if (jose !== result.ok) {
      mismatches.push(`${alg} / ${label}: jose ${jose ? 'accepts' : 'rejects'}, ours ${result.ok ? 'accepts' : result.reason}`);
    } else if (jose) {
      entry.bothAccept++;
    } else {
      entry.bothReject++;
    }
  };
  for (const alg of ALGS) {
    const signer = canonicalKey(alg);
    const kid = `kid-${alg}`;
    const publicJwk = { ...signer.verifyKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
    // Token variants against the genuine JWK.
    idp.keys = [];
    idp.extraJwks = [publicJwk];
    const verifier = ourVerifier();
    const jose = joseVerifier([publicJwk]);
    for (const c of tokenCases(alg, kid, signer.privateKey as KeyObject)) {
      compare(alg, c.name, await jose(c.token), await ours(verifier, c.token), c.stricter);
    }
    // JWK variants against the genuine token.
    const token = signParts(alg, signer.privateKey as KeyObject, json64({ alg, kid, typ: 'JWT' }), json64(claims()));
    for (const c of jwkCases(alg, kid, signer.verifyKey)) {
      idp.extraJwks = [c.jwk];
      compare(alg, `JWK: ${c.name}`, await joseVerifier([c.jwk])(token), await ours(ourVerifier(), token), c.stricter);
    }
    // A published RSA key with e = 1 and a token whose "signature" is its encoded message.
    if (family(alg) === 'RS' || family(alg) === 'PS') {
      const weak = { kty: 'RSA', n: publicJwk.n, e: 'AQ', kid, alg, use: 'sig' };
      const input = `${json64({ alg, kid, typ: 'JWT' })}.${json64(claims({ sub: 'mallory' }))}`;
      const block = family(alg) === 'RS' ? pkcs1Block(256, hashOf(alg), input) : pssBlock(2048, hashOf(alg), input, HASH_BYTES[hashOf(alg)], hashOf(alg));
      idp.extraJwks = [weak];
      compare(alg, 'JWK with e = 1, forged token', await joseVerifier([weak])(`${input}.${b64(block as Buffer)}`),
        await ours(ourVerifier(), `${input}.${b64(block as Buffer)}`), 'jwks_unavailable');
    }
  }
  t.diagnostic(describe(tallies));
  assert.deepEqual(mismatches, []);
  for (const alg of ALGS) {
    const entry = tallies.get(alg);
    assert.ok(entry !== undefined && entry.bothAccept >= 5 && entry.bothReject >= 40, `${alg}: ${JSON.stringify(entry)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// 3. Random mutations

/** Deterministic PRNG (mulberry32), so a failure names a reproducible case. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

test('random mutations of genuine tokens: whatever jose rejects we reject; we reject more only for other spellings of the same bytes', async (t) => {
  const random = prng(0x5eed);
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
  const perAlg = 120;
  const tallies = new Map<string, Tally>();
  const mismatches: string[] = [];
  for (const alg of ALGS) {
    const signer = canonicalKey(alg);
    const kid = `kid-${alg}`;
    const publicJwk = { ...signer.verifyKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
    idp.keys = [];
    idp.extraJwks = [publicJwk];
    const verifier = ourVerifier();
    const jose = joseVerifier([publicJwk]);
    const genuine = signParts(alg, signer.privateKey as KeyObject, json64({ alg, kid, typ: 'JWT' }), json64(claims()));
    for (let i = 0; i < perAlg; i++) {
      let token = genuine;
      const edits = 1 + Math.floor(random() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * token.length);
        const c = chars[Math.floor(random() * chars.length)] as string;
        const op = random();
        token = op < 0.5 ? token.slice(0, at) + c + token.slice(at + 1) : op < 0.75 ? token.slice(0, at) + token.slice(at + 1) : token.slice(0, at) + c + token.slice(at);
      }
      const joseOk = await jose(token);
      const result = await ours(verifier, token);
      const entry = tally(tallies, alg);
      entry.cases++;
      if (joseOk && !result.ok) {
        // Allowed only when the mutated token is another spelling of the genuine one.
        const sameBytes = token.split('.').length === 3 && token.split('.').every((part, k) =>
          Buffer.from(part, 'base64url').equals(Buffer.from(genuine.split('.')[k] as string, 'base64url')));
        if (!sameBytes || result.reason !== 'token_malformed') mismatches.push(`${alg}: ${token}: jose accepts, ours ${result.reason}`);
        entry.stricter++;
      } else if (!joseOk && result.ok) {
        mismatches.push(`${alg}: ${token}: jose rejects, ours accepts`);
      } else if (joseOk) {
        entry.bothAccept++;
      } else {
        entry.bothReject++;
      }
    }
  }
  t.diagnostic(describe(tallies));
  assert.deepEqual(mismatches, []);
});
