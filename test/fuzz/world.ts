/**
 * The fuzzer's fixed world: a test PKI, valid and invalid chains, certificate headers in every
 * format, genuine and forged tokens from a local JWKS server on 127.0.0.1, the validators and
 * verifiers under test, and the one valid token + certificate pair the whole verifier may accept.
 * Everything time-dependent uses one frozen clock (`now`), so an input's verdict never depends on
 * when it runs.
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { ChainValidator } from '../../src/chain.js';
import { parseConfig, type HeaderFormat } from '../../src/config.js';
import { JwksSource } from '../../src/jwks.js';
import { TokenVerifier } from '../../src/token.js';
import { Verifier, type RequestFacts } from '../../src/verifier.js';
import type { HeaderLimits } from '../../src/header.js';
import { issue, makeTestPki, nameConstraintsExtension, type Issued, type TestPki } from '../helpers/pki.js';
import { base64url, makeTestKey, signCompact, signHmac, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwks-server.js';
import { Rng } from './rng.js';

export const FORMATS: readonly HeaderFormat[] = ['base64_encoded', 'url_encoded', 'pem', 'xfcc', 'rfc9440'];
export const LIMITS: HeaderLimits = { maxHeaderSize: 32768, maxChainLength: 10 };

export interface HeaderSeed {
  readonly value: string;
  /** rfc9440 `Client-Cert-Chain` value. */
  readonly chainValue?: string;
}

export interface World {
  readonly now: number;
  readonly pki: TestPki;
  /** Every certificate of the world, as DER. */
  readonly certificates: readonly Buffer[];
  /** Chains (leaf first) the strict validator (anchor: root) accepts, and the partial one (anchors: root, intermediate). */
  readonly validChains: readonly (readonly Buffer[])[];
  readonly validPartialChains: readonly (readonly Buffer[])[];
  /** Chains it must reject. */
  readonly invalidChains: readonly (readonly Buffer[])[];
  readonly validator: ChainValidator;
  readonly partialValidator: ChainValidator;
  /** Issuer private keys by issued DER (hex), for re-signing mutated certificates. */
  readonly signers: ReadonlyMap<string, CryptoKey>;
  readonly headerSeeds: Readonly<Record<HeaderFormat, readonly HeaderSeed[]>>;
  readonly idp: JwksServer;
  readonly jwks: JwksSource;
  readonly tokens: TokenVerifier;
  /** Tokens that verify, and the signing inputs (header.payload) that may verify. */
  readonly genuineTokens: readonly string[];
  readonly validSigningInputs: ReadonlySet<string>;
  /** Tokens that must not verify: genuinely signed but invalid, or forged. */
  readonly badTokens: readonly string[];
  /** Unpublished keys under published kids (RS256, ES256), for forging tokens. */
  readonly attackerKeys: readonly TestKey[];
  /** The one pair the verifiers may accept. */
  readonly pair: { readonly token: string; readonly leaf: Buffer; readonly chain: readonly Buffer[] };
  readonly verifiers: Readonly<Record<HeaderFormat, Verifier>>;
  readonly factSeeds: Readonly<Record<HeaderFormat, readonly RequestFacts[]>>;
  close(): Promise<void>;
}

const DAY = 86_400_000;

export function signingInput(token: string): string {
  const last = token.lastIndexOf('.');
  return last < 0 ? token : token.slice(0, last);
}

export function thumbprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64url');
}

function pem(der: Uint8Array, width = 64, eol = '\n'): string {
  const body = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < body.length; i += width) lines.push(body.slice(i, i + width));
  return `-----BEGIN CERTIFICATE-----${eol}${lines.join(eol)}${eol}-----END CERTIFICATE-----${eol}`;
}

/** A header value carrying `chain` (leaf first) the way real senders do, in one of their variations. */
export function encodeHeader(rng: Rng, format: HeaderFormat, chain: readonly Uint8Array[]): HeaderSeed {
  const b64 = (der: Uint8Array): string => Buffer.from(der).toString('base64');
  const pemAll = (): string => {
    const width = rng.pick([64, 76, 1_000_000]);
    const eol = rng.pick(['\n', '\r\n', ' ', '\n\t']);
    return chain.map((der) => pem(der, width, eol)).join('');
  };
  const escape = (text: string): string => {
    const all = encodeURIComponent(text);
    switch (rng.int(3)) {
      case 0: return all;
      case 1: return all.replace(/%2B/g, '+').replace(/%3D/g, '=').replace(/%2F/g, '/'); // AWS ALB
      default: return all.replace(/%([0-9A-F]{2})/g, (_m, hex: string) => `%${hex.toLowerCase()}`);
    }
  };
  switch (format) {
    case 'base64_encoded': {
      const separator = rng.pick([',', ', ', ' , ', ',\t']);
      const items = rng.bool() && chain.length > 1
        ? [b64(chain[0] as Uint8Array), b64(Buffer.concat(chain.slice(1)))]
        : chain.map(b64);
      return { value: items.join(separator) + (rng.bool(0.2) ? ',' : '') };
    }
    case 'url_encoded':
      return { value: escape(pemAll()) };
    case 'pem':
      return { value: pemAll() };
    case 'xfcc': {
      const leaf = chain[0] as Uint8Array;
      const quote = (text: string): string => (rng.bool() ? `"${text}"` : text);
      const pairs = ['By=spiffe://cluster.local/ns/default/sa/api'];
      if (rng.bool()) pairs.push(`Hash=${createHash('sha256').update(leaf).digest('hex')}`);
      const useCert = rng.bool() || chain.length === 1;
      if (useCert) pairs.push(`Cert=${quote(escape(pem(leaf)))}`);
      if (!useCert || chain.length > 1) pairs.push(`Chain=${quote(escape(chain.map((d) => pem(d)).join('')))}`);
      pairs.push('Subject="CN=client,O=\\"a;b\\""', 'URI=spiffe://cluster.local/ns/a/sa/c');
      return { value: pairs.join(';') };
    }
    case 'rfc9440': {
      const item = (der: Uint8Array): string => `:${b64(der)}:${rng.bool(0.2) ? ';a=1;b="x";*c' : ''}`;
      return { value: item(chain[0] as Uint8Array), chainValue: chain.slice(1).map(item).join(rng.pick([',', ', '])) };
    }
  }
}

export async function buildWorld(): Promise<World> {
  const now = Date.now();
  const pki = await makeTestPki();
  const { root, intermediate } = pki;
  const rsaClient = await issue({ subject: 'CN=rsa-client, O=mtls-pop fuzz', issuer: intermediate, rsa: true });
  const ncCa = await issue({
    subject: 'CN=Constrained CA, O=mtls-pop fuzz', issuer: root, ca: true,
    extensions: [nameConstraintsExtension({
      permitted: { dns: ['example.com'], ip: ['10.0.0.0/8'], uri: ['.example.com'], email: ['example.com'] },
      excluded: { dns: ['bad.example.com'] },
    })],
  });
  const ncClient = await issue({
    subject: 'CN=nc-client, O=mtls-pop fuzz', issuer: ncCa, dnsNames: ['a.example.com'], ipAddresses: ['10.1.2.3'],
    uris: ['https://svc.example.com/x'],
  });
  const ncViolator = await issue({ subject: 'CN=nc-violator', issuer: ncCa, dnsNames: ['x.bad.example.com'] });
  const expired = await issue({
    subject: 'CN=expired-client', issuer: intermediate, notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY),
  });
  const caLeaf = await issue({ subject: 'CN=ca-as-leaf', issuer: root, ca: true });
  const sha1Client = await issue({ subject: 'CN=sha1-client', issuer: root, signingHash: 'SHA-1' });
  const noClientAuth = pki.server;
  const noCaIntermediate = await issue({ subject: 'CN=Not A CA', issuer: root, noBasicConstraints: true, keyUsage: null, eku: null });
  const underNoCa = await issue({ subject: 'CN=under-not-a-ca', issuer: noCaIntermediate });
  const otherEku = await issue({ subject: 'CN=email-only', issuer: root, eku: [x509.ExtendedKeyUsage.emailProtection] });

  const all: Issued[] = [
    root, intermediate, pki.client, pki.otherClient, pki.directClient, pki.server, pki.rogueRoot, pki.rogueClient, rsaClient,
    ncCa, ncClient, ncViolator, expired, caLeaf, sha1Client, noCaIntermediate, underNoCa, otherEku,
  ];
  const signers = new Map<string, CryptoKey>();
  const issuerOf = new Map<Issued, Issued>([
    [intermediate, root], [pki.client, intermediate], [pki.otherClient, intermediate], [pki.directClient, root], [pki.server, root],
    [pki.rogueRoot, pki.rogueRoot], [pki.rogueClient, pki.rogueRoot], [rsaClient, intermediate], [ncCa, root], [ncClient, ncCa],
    [ncViolator, ncCa], [expired, intermediate], [caLeaf, root], [sha1Client, root], [noCaIntermediate, root],
    [underNoCa, noCaIntermediate], [otherEku, root], [root, root],
  ]);
  for (const [cert, issuer] of issuerOf) signers.set(cert.der.toString('hex'), issuer.keys.privateKey);

  const validChains = [
    [pki.client, intermediate], [pki.otherClient, intermediate], [pki.directClient], [rsaClient, intermediate], [ncClient, ncCa],
    // An end entity without any extension is a valid client certificate too.
    [noCaIntermediate],
  ].map((chain) => chain.map((c) => c.der));
  const validPartialChains = [...validChains, ...[[pki.client], [pki.otherClient], [rsaClient]].map((chain) => chain.map((c) => c.der))];
  const invalidChains = [
    [pki.client], [pki.rogueClient, pki.rogueRoot], [ncViolator, ncCa], [expired, intermediate], [caLeaf], [sha1Client],
    [noClientAuth], [underNoCa, noCaIntermediate], [otherEku], [intermediate], [root], [pki.client, pki.rogueRoot, pki.otherClient],
  ].map((chain) => chain.map((c) => c.der));

  const validatorOptions = { cacheSize: 512, cacheTtlMs: 3_600_000, now: () => now };
  const strict = ChainValidator.fromPem([root.pem], { ...validatorOptions, allowPartialChain: false });
  const partial = ChainValidator.fromPem([root.pem, intermediate.pem], { ...validatorOptions, allowPartialChain: true });
  if (!strict.ok || !partial.ok) throw new Error('the fuzz trust anchors do not load');
  for (const chain of validChains) {
    const result = await strict.value.validate(chain);
    if (!result.ok) throw new Error(`a valid seed chain is rejected: ${result.error.reason} ${result.error.detail}`);
  }
  for (const chain of invalidChains) {
    if ((await strict.value.validate(chain)).ok) throw new Error('an invalid seed chain is accepted');
  }
  // The hand-written lists of valid paths are the fuzzer's acceptance oracle: check that they are complete for
  // every chain of one or two world certificates, so that a legitimate acceptance is never reported as a bug.
  const covered = (chain: readonly Buffer[], valid: readonly (readonly Buffer[])[]): boolean =>
    valid.some((path) => (path[0] as Buffer).equals(chain[0] as Buffer) && path.every((c) => chain.some((p) => p.equals(c))));
  for (const [validator, valid] of [[strict.value, validChains], [partial.value, validPartialChains]] as const) {
    for (const first of all) {
      for (const second of [null, ...all]) {
        const chain = second === null ? [first.der] : [first.der, second.der];
        if ((await validator.validate(chain)).ok !== covered(chain, valid)) {
          throw new Error(`the fuzz oracle's valid paths disagree with the validator on [${chain.map((c) => thumbprint(c).slice(0, 8)).join(', ')}]`);
        }
      }
    }
  }

  // Header seeds: valid and invalid chains in every format, a few variations each.
  const seedRng = new Rng(0x5eed);
  const headerSeeds = {} as Record<HeaderFormat, HeaderSeed[]>;
  for (const format of FORMATS) {
    headerSeeds[format] = [...validChains, ...invalidChains].flatMap((chain) => [0, 1].map(() => encodeHeader(seedRng, format, chain)));
  }

  // Tokens from a local IdP (127.0.0.1); one frozen clock.
  const idp = await startJwksServer({ algs: ['RS256', 'ES256', 'PS256', 'EdDSA'] });
  const nowS = Math.floor(now / 1000);
  const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    iss: idp.issuer, sub: 'svc-1', azp: 'fuzz-client', iat: nowS, exp: nowS + 3600, scope: 'openid api',
    cnf: { 'x5t#S256': thumbprint(pki.client.der) }, ...extra,
  });
  const [rsKey, esKey, psKey, edKey] = idp.keys as [typeof idp.keys[0], typeof idp.keys[0], typeof idp.keys[0], typeof idp.keys[0]];
  const pairToken = await idp.sign(claims(), { kid: rsKey.kid });
  const genuineTokens = [
    pairToken,
    // Other valid tokens, bound to no certificate of the world (so the verifiers accept only the pair).
    await idp.sign(claims({ jti: 'es', cnf: { 'x5t#S256': thumbprint(Buffer.from('es')) } }), { kid: esKey.kid }),
    await idp.sign(claims({ jti: 'ps', cnf: { 'x5t#S256': thumbprint(Buffer.from('ps')) } }), { kid: psKey.kid }),
    await idp.sign(claims({ jti: 'ed', cnf: { 'x5t#S256': thumbprint(Buffer.from('ed')) } }), { kid: edKey.kid }),
    await idp.sign(claims({ jti: 'at', cnf: { 'x5t#S256': thumbprint(Buffer.from('at')) } }), { kid: esKey.kid, header: { typ: 'at+jwt' } }),
    await idp.sign(claims({ jti: 'nokid', cnf: { 'x5t#S256': thumbprint(Buffer.from('nokid')) } }), { kid: psKey.kid, header: { kid: undefined } }),
  ];
  const attacker = makeTestKey('RS256', rsKey.kid);
  const attackerEs = makeTestKey('ES256', esKey.kid);
  const badTokens = [
    await idp.sign(claims({ exp: nowS - 10 }), { kid: esKey.kid }),
    await idp.sign(claims({ nbf: nowS + 600 }), { kid: rsKey.kid }),
    await idp.sign(claims({ iss: 'https://evil.example' }), { kid: rsKey.kid }),
    await idp.sign(claims({ typ: 'Refresh' }), { kid: rsKey.kid }),
    await idp.sign(claims({ iat: nowS + 3000 }), { kid: edKey.kid }),
    await idp.sign(claims({ exp: undefined }), { kid: rsKey.kid }),
    idp.signRaw({ alg: 'RS256', kid: rsKey.kid, crit: ['exp'], exp: 1 }, claims(), rsKey),
    idp.signRaw({ alg: 'RS256', kid: rsKey.kid, typ: 'JWT', cty: 'JWT' }, claims(), rsKey),
    idp.signRaw({ alg: 'ES256', kid: esKey.kid, typ: 'id+jwt' }, claims(), esKey),
    idp.signRaw({ alg: 'RS256', kid: rsKey.kid }, '[1,2,3]', rsKey),
    signCompact({ alg: 'RS256', kid: rsKey.kid, typ: 'JWT' }, claims(), attacker),
    signCompact({ alg: 'ES256', kid: esKey.kid, typ: 'JWT' }, claims(), attackerEs),
    signHmac({ alg: 'HS256', kid: rsKey.kid, typ: 'JWT' }, claims(), rsKey.publicKey.export({ type: 'spki', format: 'pem' }) as string),
    `${base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url(JSON.stringify(claims()))}.`,
  ];
  // Genuine and valid tokens the verifiers must still refuse: bound to no certificate of the world, not bound at all, bound to another client.
  genuineTokens.push(
    await idp.sign(claims({ jti: 'nobody', cnf: { 'x5t#S256': thumbprint(Buffer.from('nobody')) } }), { kid: rsKey.kid }),
    await idp.sign(claims({ jti: 'unbound', cnf: undefined }), { kid: esKey.kid }),
    await idp.sign(claims({ jti: 'rogue', cnf: { 'x5t#S256': thumbprint(pki.rogueClient.der) } }), { kid: rsKey.kid }),
  );
  const jwks = new JwksSource({
    issuer: idp.issuer, jwksUri: null, timeoutMs: 5000, rediscoveryLifetimeS: 1_000_000, sslVerify: true, caPem: [], now: () => now,
  });
  const tokens = new TokenVerifier({
    issuersAllowed: [idp.issuer], algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'], leewayS: 0, audienceRequired: null,
    scopesRequired: null, cacheSize: 0, cacheTtlS: 0, cacheSalt: null, now: () => now,
  }, jwks);
  for (const token of genuineTokens) {
    const result = await tokens.verify(token);
    if (!result.ok) throw new Error(`a genuine token does not verify: ${result.error.reason} ${result.error.detail}`);
  }
  for (const token of badTokens) {
    if ((await tokens.verify(token)).ok) throw new Error('a bad seed token verifies');
  }

  // The verifiers: strict mode, one per header format, the same trust anchor, the same IdP.
  const pairChain = [pki.client.der, intermediate.der];
  const verifiers = {} as Record<HeaderFormat, Verifier>;
  const factSeeds = {} as Record<HeaderFormat, RequestFacts[]>;
  for (const format of FORMATS) {
    const parsed = parseConfig({
      issuer: idp.issuer,
      proof_of_possession_mtls: 'strict',
      cache_size: 256,
      proof_of_possession_mtls_from_header: {
        certificate_header_name: format === 'rfc9440' ? 'client-cert' : 'x-client-cert',
        ...(format === 'rfc9440' ? { certificate_chain_header_name: 'client-cert-chain' } : {}),
        certificate_header_format: format,
        ca_certificates_pem: [root.pem],
        revocation_check_mode: 'SKIP',
        secure_source: true,
      },
    });
    if (!parsed.ok) throw new Error(`fuzz verifier config: ${parsed.errors.join('; ')}`);
    const verifier = new Verifier(parsed.config, { jwks, now: () => now });
    verifiers[format] = verifier;
    const header = (chain: readonly Uint8Array[]): Pick<RequestFacts, 'certificateHeader' | 'certificateChainHeader'> => {
      const encoded = encodeHeader(seedRng, format, chain);
      return {
        certificateHeader: [encoded.value],
        ...(encoded.chainValue !== undefined ? { certificateChainHeader: [encoded.chainValue] } : {}),
      };
    };
    const seeds: RequestFacts[] = [];
    for (const token of [pairToken, ...badTokens.slice(-5), ...genuineTokens.slice(-3), genuineTokens[1] as string]) {
      for (const chain of [pairChain, pairChain, [pki.client.der], [pki.otherClient.der, intermediate.der], [pki.rogueClient.der, pki.rogueRoot.der]]) {
        seeds.push({ authorization: [`Bearer ${token}`], ...header(chain), peerTrusted: true, host: 'api.example' });
      }
    }
    seeds.push({ authorization: [], ...header(pairChain), peerTrusted: true });
    seeds.push({ authorization: [`Bearer ${pairToken}`], certificateHeader: [], peerTrusted: true });
    seeds.push({ authorization: [`Bearer ${pairToken}`], ...header(pairChain), peerTrusted: false });
    seeds.push({ authorization: [`Bearer ${pairToken}`, `Bearer ${pairToken}`], ...header(pairChain), peerTrusted: true });
    factSeeds[format] = seeds;
    const decision = await verifier.verify(seeds[0] as RequestFacts);
    if (!decision.allow) throw new Error(`the valid pair is rejected (${format}): ${decision.failure.reason} ${decision.failure.detail}`);
  }

  return {
    now, pki, certificates: all.map((c) => c.der), validChains, validPartialChains, invalidChains,
    validator: strict.value, partialValidator: partial.value, signers, headerSeeds, idp, jwks, tokens,
    genuineTokens, validSigningInputs: new Set(genuineTokens.map(signingInput)), badTokens, attackerKeys: [attacker, attackerEs],
    pair: { token: pairToken, leaf: pki.client.der, chain: pairChain }, verifiers, factSeeds,
    close: () => idp.close(),
  };
}
