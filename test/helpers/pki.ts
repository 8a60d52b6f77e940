/**
 * Test PKI generated at test time with @peculiar/x509 (WebCrypto keys, full control over dates and
 * extensions). Every test that needs certificates builds them here, so the shapes stay consistent:
 * a root CA, an intermediate, client leaves, and deliberately broken variants.
 *
 * Also writes PEM/key files for real processes (HAProxy, nginx, oidc-provider).
 */
import 'reflect-metadata';
import { webcrypto, createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { toPem } from '../../src/pem.js';
import * as asn1js from 'asn1js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGN_EC: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const RSA: RsaHashedKeyGenParams = {
  name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048,
};

export interface Issued {
  readonly cert: x509.X509Certificate;
  readonly keys: CryptoKeyPair;
  /** DER bytes of the certificate. */
  readonly der: Buffer;
  /** PEM text of the certificate (with trailing newline). */
  readonly pem: string;
  /** PKCS#8 PEM of the private key. */
  keyPem(): Promise<string>;
}

export interface IssueOptions {
  /** Distinguished name, e.g. "CN=client-1, O=Example". */
  readonly subject: string;
  /** Issuer; omitted for a self-signed certificate. */
  readonly issuer?: Issued;
  /** Adds basicConstraints cA=TRUE (with optional pathLen) and keyCertSign|cRLSign. */
  readonly ca?: boolean;
  readonly pathLen?: number;
  /** Overrides the key usage bits (x509.KeyUsageFlags); null omits the extension. */
  readonly keyUsage?: number | null;
  /** Extended key usages as OIDs or names (x509.ExtendedKeyUsage); null omits the extension. */
  readonly eku?: readonly string[] | null;
  /** Omit basicConstraints entirely (an "intermediate" with no CA flag). */
  readonly noBasicConstraints?: boolean;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly uris?: readonly string[];
  /** RSA 2048 instead of ECDSA P-256. */
  readonly rsa?: boolean;
  /** Extra extensions, e.g. name constraints built by a test. */
  readonly extensions?: readonly x509.Extension[];
  /** Reuse this key pair instead of generating one (cross-certificates, re-issued CAs). */
  readonly keys?: CryptoKeyPair;
  /** Hash the issuer signs with (default SHA-256), e.g. 'SHA-1' for a weak signature. */
  readonly signingHash?: 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512';
}

const DAY = 24 * 3600 * 1000;

export async function issue(options: IssueOptions): Promise<Issued> {
  const alg = options.rsa === true ? RSA : EC;
  const keys = options.keys ?? (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const extensions: x509.Extension[] = [];
  const isCa = options.ca === true;
  if (options.noBasicConstraints !== true) {
    extensions.push(new x509.BasicConstraintsExtension(isCa, isCa ? options.pathLen : undefined, true));
  }
  const keyUsage = options.keyUsage !== undefined
    ? options.keyUsage
    : isCa
      ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
      : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;
  if (keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(keyUsage, true));
  const eku = options.eku !== undefined ? options.eku : isCa ? null : [x509.ExtendedKeyUsage.clientAuth];
  if (eku !== null) extensions.push(new x509.ExtendedKeyUsageExtension([...eku], false));
  const names: x509.JsonGeneralNames = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(options.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  if (options.issuer !== undefined) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(options.issuer.keys.publicKey));
  }
  extensions.push(...(options.extensions ?? []));

  const notBefore = options.notBefore ?? new Date(Date.now() - DAY);
  const notAfter = options.notAfter ?? new Date(Date.now() + 365 * DAY);
  const serialNumber = '01' + createHash('sha256').update(`${options.subject}${Math.random()}`).digest('hex').slice(0, 30);
  const cert = options.issuer === undefined
    ? await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber, name: options.subject, notBefore, notAfter, keys, extensions,
      signingAlgorithm: withHash(keys.privateKey.algorithm.name === 'ECDSA' ? SIGN_EC : RSA, options.signingHash),
    })
    : await x509.X509CertificateGenerator.create({
      serialNumber, subject: options.subject, issuer: options.issuer.cert.subjectName, notBefore, notAfter,
      publicKey: keys.publicKey, signingKey: options.issuer.keys.privateKey, extensions,
      signingAlgorithm: withHash(options.issuer.keys.privateKey.algorithm.name === 'ECDSA' ? SIGN_EC : RSA, options.signingHash),
    });
  const der = Buffer.from(cert.rawData);
  return {
    cert, keys, der, pem: toPem(der),
    async keyPem() {
      const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
      return toPem(pkcs8, 'PRIVATE KEY');
    },
  };
}

function withHash<T extends Algorithm>(algorithm: T, hash: string | undefined): T {
  return hash === undefined ? algorithm : { ...algorithm, hash };
}

export { toPem };

/** The standard test hierarchy: root -> intermediate -> client leaves. */
export interface TestPki {
  readonly root: Issued;
  readonly intermediate: Issued;
  /** Leaf issued by the intermediate, EKU clientAuth. */
  readonly client: Issued;
  /** A second, unrelated client of the same intermediate. */
  readonly otherClient: Issued;
  /** Leaf issued directly by the root. */
  readonly directClient: Issued;
  /** A server certificate for 127.0.0.1 / localhost issued by the root (for TLS listeners). */
  readonly server: Issued;
  /** A CA that is not trusted by anyone, and a client under it. */
  readonly rogueRoot: Issued;
  readonly rogueClient: Issued;
}

export async function makeTestPki(): Promise<TestPki> {
  const root = await issue({ subject: 'CN=mtls-pop Test Root CA, O=mtls-pop tests', ca: true });
  const intermediate = await issue({ subject: 'CN=mtls-pop Test Intermediate CA, O=mtls-pop tests', issuer: root, ca: true, pathLen: 0 });
  const client = await issue({ subject: 'CN=client-1, O=mtls-pop tests', issuer: intermediate, dnsNames: ['client-1.example'] });
  const otherClient = await issue({ subject: 'CN=client-2, O=mtls-pop tests', issuer: intermediate });
  const directClient = await issue({ subject: 'CN=client-direct, O=mtls-pop tests', issuer: root });
  const server = await issue({
    subject: 'CN=localhost', issuer: root, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'],
    eku: [x509.ExtendedKeyUsage.serverAuth],
  });
  const rogueRoot = await issue({ subject: 'CN=Rogue Root CA', ca: true });
  const rogueClient = await issue({ subject: 'CN=client-1, O=mtls-pop tests', issuer: rogueRoot });
  return { root, intermediate, client, otherClient, directClient, server, rogueRoot, rogueClient };
}

/** Writes `<name>.pem` and `<name>.key` for each given certificate into `dir`. */
export async function writePemFiles(dir: string, entries: Record<string, Issued>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  for (const [name, issued] of Object.entries(entries)) {
    writeFileSync(join(dir, `${name}.pem`), issued.pem);
    writeFileSync(join(dir, `${name}.key`), await issued.keyPem(), { mode: 0o600 });
  }
}

/**
 * x5t#S256 computed by an independent oracle: the openssl CLI
 * (`openssl x509 -outform DER | openssl dgst -sha256 -binary`), then base64url without padding.
 */
export function opensslThumbprint(pem: string): string {
  const der = execFileSync('openssl', ['x509', '-outform', 'DER'], { input: pem });
  const digest = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der });
  return digest.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Subtrees of a NameConstraints extension (RFC 5280 section 4.2.1.10); IPs as "10.0.0.0/8". */
export interface NameSubtrees {
  readonly dns?: readonly string[];
  readonly email?: readonly string[];
  readonly uri?: readonly string[];
  readonly ip?: readonly string[];
  /** Directory names as DER (e.g. `new x509.Name('O=Example').toArrayBuffer()`). */
  readonly dirNames?: readonly ArrayBuffer[];
}

/** A NameConstraints extension (critical by default) built with asn1js. */
export function nameConstraintsExtension(
  constraints: { readonly permitted?: NameSubtrees; readonly excluded?: NameSubtrees },
  critical = true,
): x509.Extension {
  const ia5 = (tagNumber: number, value: string) =>
    new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber }, valueHex: Buffer.from(value, 'ascii') });
  const ipWithMask = (cidr: string): Uint8Array => {
    const [address = '', bitsText] = cidr.split('/');
    const bytes = address.includes(':') ? ipv6Bytes(address) : Uint8Array.from(address.split('.').map(Number));
    const bits = Number(bitsText ?? bytes.length * 8);
    const mask = new Uint8Array(bytes.length).map((_, i) => {
      const remaining = Math.max(0, Math.min(8, bits - i * 8));
      return (0xff << (8 - remaining)) & 0xff;
    });
    return Uint8Array.from([...bytes, ...mask]);
  };
  const subtrees = (tree: NameSubtrees) => [
    ...(tree.email ?? []).map((v) => ia5(1, v)),
    ...(tree.dns ?? []).map((v) => ia5(2, v)),
    ...(tree.dirNames ?? []).map((der) => new asn1js.Constructed({
      idBlock: { tagClass: 3, tagNumber: 4 }, value: [asn1js.fromBER(der).result],
    })),
    ...(tree.uri ?? []).map((v) => ia5(6, v)),
    ...(tree.ip ?? []).map((v) => new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 7 }, valueHex: ipWithMask(v) })),
  ].map((base) => new asn1js.Sequence({ value: [base] }));
  const parts: asn1js.Constructed[] = [];
  if (constraints.permitted !== undefined) {
    parts.push(new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: subtrees(constraints.permitted) }));
  }
  if (constraints.excluded !== undefined) {
    parts.push(new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value: subtrees(constraints.excluded) }));
  }
  return new x509.Extension('2.5.29.30', critical, new asn1js.Sequence({ value: parts }).toBER());
}

function ipv6Bytes(address: string): Uint8Array {
  const [head = '', tail] = address.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  return Uint8Array.from(all.flatMap((g) => [g >> 8, g & 0xff]));
}
