/**
 * Section 1, the core in process: `Verifier.verify` against the crypto floor and a peer, on the
 * same inputs (RS256 tokens as Keycloak and oidc-provider sign by default; ES256 as a second row;
 * an EC P-256 client certificate with its intermediate in HAProxy's base64 header).
 *
 * Contenders, interleaved round-robin after a warm-up round:
 * - ours: `new Verifier(config).verify(facts)`, strict mode, chain validated to a PEM root;
 * - floor: jose `jwtVerify` with a local JWKS (issuer, audience, algorithm checked) + SHA-256 of
 *   the leaf DER decoded from the header: what a verifier built on jose must do, minus chain
 *   validation;
 * - crypto floor (cold-token rows): `crypto.verify` of the token's signature on a KeyObject
 *   imported once + SHA-256 of the leaf DER decoded from the header: the signature and thumbprint
 *   work alone, with no JOSE parsing and no claims (the issue 14 goal 3 target: ours <= 2x);
 * - peer: auth0 `express-oauth2-jwt-bearer` 1.10 `auth()` middleware with `mtls: {enabled,
 *   required}` and `getCertificate` returning the leaf DER from the same header, called directly
 *   with a request object carrying what it reads (headers, method, protocol, host, url): no
 *   Express routing, as ours is measured without Kong. It validates no chain.
 */
import { constants, createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { auth } from 'express-oauth2-jwt-bearer';
import { Verifier, type RequestFacts } from '../../src/verifier.js';
import {
  check, interleave, fmt, type BenchScale, type Contender, type Figure, type Log, type Samples, type Summary,
} from './common.js';
import {
  AUDIENCE, CERT_HEADER, benchConfig, boundToken, haproxyHeader, issueClients, leafDerFromHaproxy, type BenchInputs,
} from './inputs.js';

const SECTION = 'core';

interface PeerRequest {
  readonly headers: Readonly<Record<string, string>>;
  readonly method: string;
  readonly protocol: string;
  readonly originalUrl: string;
  readonly url: string;
  readonly query: Readonly<Record<string, string>>;
  readonly body: undefined;
  readonly socket: { readonly remoteAddress: string };
  get(name: string): string | undefined;
  is(type: string): false;
}
type PeerMiddleware = (req: PeerRequest, res: unknown, next: (error?: unknown) => void) => Promise<void>;

function peerRequest(token: string, certHeader: string): PeerRequest {
  const headers: Record<string, string> = { host: 'api.example', authorization: `Bearer ${token}`, [CERT_HEADER]: certHeader };
  return {
    headers, method: 'GET', protocol: 'https', originalUrl: '/resource', url: '/resource', query: {}, body: undefined,
    socket: { remoteAddress: '127.0.0.1' },
    get: (name) => headers[name.toLowerCase()],
    is: () => false,
  };
}

function makePeer(inputs: BenchInputs): (token: string, certHeader: string) => Promise<boolean> {
  const middleware = auth({
    issuer: inputs.idp.issuer,
    jwksUri: inputs.idp.jwksUri,
    audience: AUDIENCE,
    mtls: { enabled: true, required: true },
    getCertificate: (req: PeerRequest) => leafDerFromHaproxy(req.headers[CERT_HEADER] ?? ''),
  }) as unknown as PeerMiddleware;
  return async (token, certHeader) => {
    let outcome: unknown = 'next() not called';
    await middleware(peerRequest(token, certHeader), {}, (error) => { outcome = error; });
    return outcome === undefined;
  };
}

function facts(token: string, certHeader: string): RequestFacts {
  return { authorization: [`Bearer ${token}`], certificateHeader: [certHeader], peerTrusted: true, host: 'api.example' };
}

function pick<T>(pool: readonly T[], index: number): T {
  const value = pool[index];
  if (value === undefined) throw new Error(`input pool too small: index ${index} of ${pool.length}`);
  return value;
}

function summaryOf(results: Map<string, Samples>, name: string): Summary {
  const samples = results.get(name);
  if (samples === undefined) throw new Error(`no samples for ${name}`);
  return samples.summary();
}

function latencyFigures(name: string, s: Summary, target?: Figure['target']): Figure[] {
  const note = `${s.count} requests; p99 ${fmt(s.p99Us)} us; ${fmt(s.opsPerS, 0)} ops/s`;
  return [{ section: SECTION, name: `${name}: median us/request`, value: s.medianUs, unit: 'us', ...(target === undefined ? {} : { target }), note }];
}

export async function runCore(inputs: BenchInputs, scale: BenchScale, log: Log): Promise<Figure[]> {
  const figures: Figure[] = [];
  const { pki, rsaKey, ecKey } = inputs;
  const issuer = inputs.idp.issuer;
  const localJwks = createLocalJWKSet({ keys: [rsaKey.publicJwk, ecKey.publicJwk] } as unknown as JSONWebKeySet);
  const floor = async (token: string, certHeader: string, alg: string): Promise<boolean> => {
    const { payload } = await jwtVerify(token, localJwks, { issuer, audience: AUDIENCE, algorithms: [alg] });
    const thumbprint = createHash('sha256').update(leafDerFromHaproxy(certHeader)).digest('base64url');
    return (payload['cnf'] as Record<string, unknown>)['x5t#S256'] === thumbprint;
  };
  const peer = makePeer(inputs);
  const header0 = haproxyHeader(inputs, pki.client);
  const rounds = { rounds: scale.coreRounds };

  // 1a. Warm path: one token, one certificate, repeated.
  {
    const token = boundToken(inputs, pki.client, rsaKey);
    const verifier = new Verifier(benchConfig(inputs));
    const first = await verifier.verify(facts(token, header0));
    check(first.allow, `the warm-path request is rejected: ${first.allow ? '' : first.failure.reason}`);
    check(await peer(token, header0), 'the peer rejects the warm-path request');
    check(await floor(token, header0, 'RS256'), 'the floor rejects the warm-path request');
    log(`core: warm path (RS256, same token and certificate), ${scale.coreRounds} x ${scale.warmBatch} requests per contender`);
    const contenders: Contender[] = [
      { name: 'ours', op: async () => { const d = await verifier.verify(facts(token, header0)); if (!d.allow) throw new Error('rejected'); } },
      { name: 'floor', op: async () => { if (!(await floor(token, header0, 'RS256'))) throw new Error('floor mismatch'); } },
      { name: 'peer', op: async () => { if (!(await peer(token, header0))) throw new Error('peer rejected'); } },
    ];
    const results = await interleave(contenders, { ...rounds, batch: scale.warmBatch });
    const ours = summaryOf(results, 'ours');
    const peerS = summaryOf(results, 'peer');
    const floorS = summaryOf(results, 'floor');
    figures.push(...latencyFigures('warm path, ours (Verifier.verify, RS256)', ours, { op: '<=', limit: 10 }));
    figures.push({ section: SECTION, name: 'warm path, ours: ops/s (sequential)', value: ours.opsPerS, unit: 'ops/s' });
    figures.push(...latencyFigures('warm path, floor (jose jwtVerify + SHA-256, no cache)', floorS));
    figures.push(...latencyFigures('warm path, peer (express-oauth2-jwt-bearer mtls)', peerS));
    figures.push({
      section: SECTION, name: 'warm path: peer/ours (x faster, median)', value: peerS.medianUs / ours.medianUs, unit: 'x',
      target: { op: '>=', limit: 10 }, note: `ops/s ratio ${fmt(ours.opsPerS / peerS.opsPerS)}x`,
    });
    const stats = verifier.stats();
    log(`core: warm verifier caches: decisions ${JSON.stringify(stats.decisions)}, tokens ${JSON.stringify(stats.tokens)}, certificates ${JSON.stringify(stats.certificates)}`);
  }

  // 1b. Cold token: a new token each request, same certificate. RS256 with the peer, ES256 without.
  for (const key of [rsaKey, ecKey]) {
    const alg = key.alg;
    const tokens = Array.from({ length: (scale.coreRounds + 1) * scale.coldBatch }, () => boundToken(inputs, pki.client, key));
    const verifier = new Verifier(benchConfig(inputs));
    const warm = await verifier.verify(facts(boundToken(inputs, pki.client, key), header0));
    check(warm.allow, `cold-token warm-up rejected: ${warm.allow ? '' : warm.failure.reason}`);
    const publicKey = createPublicKey({ key: key.publicJwk as unknown as import('node:crypto').JsonWebKey, format: 'jwk' });
    const verifyKey = alg === 'ES256' ? { key: publicKey, dsaEncoding: 'ieee-p1363' as const } : { key: publicKey, padding: constants.RSA_PKCS1_PADDING };
    // node:crypto verify of the signature + SHA-256 of the leaf: the least work for these inputs.
    const cryptoFloor = (token: string, certHeader: string): boolean => {
      const dot = token.lastIndexOf('.');
      const signature = Buffer.from(token.slice(dot + 1), 'base64url');
      const valid = cryptoVerify('sha256', Buffer.from(token.slice(0, dot), 'latin1'), verifyKey, signature);
      const thumbprint = createHash('sha256').update(leafDerFromHaproxy(certHeader)).digest('base64url');
      return valid && thumbprint.length === 43;
    };
    check(cryptoFloor(pick(tokens, 0), header0), `raw ${alg} verify fails`);
    log(`core: cold token (${alg}, ${tokens.length} distinct tokens, same certificate), ${scale.coreRounds} x ${scale.coldBatch} per contender`);
    const contenders: Contender[] = [
      { name: 'ours', op: async (i) => { const d = await verifier.verify(facts(pick(tokens, i), header0)); if (!d.allow) throw new Error(`rejected ${d.failure.reason}`); } },
      { name: 'floor', op: async (i) => { if (!(await floor(pick(tokens, i), header0, alg))) throw new Error('floor mismatch'); } },
      { name: 'crypto', op: async (i) => { if (!cryptoFloor(pick(tokens, i), header0)) throw new Error('crypto floor failed'); } },
    ];
    if (alg === 'RS256') contenders.push({ name: 'peer', op: async (i) => { if (!(await peer(pick(tokens, i), header0))) throw new Error('peer rejected'); } });
    const results = await interleave(contenders, { ...rounds, batch: scale.coldBatch });
    const ours = summaryOf(results, 'ours');
    const floorS = summaryOf(results, 'floor');
    const cryptoS = summaryOf(results, 'crypto');
    figures.push(...latencyFigures(`cold token, ours (${alg})`, ours));
    figures.push(...latencyFigures(`cold token, crypto floor (node:crypto verify + SHA-256, ${alg})`, cryptoS));
    figures.push({
      section: SECTION, name: `cold token: ours/crypto floor (${alg}, median)`, value: ours.medianUs / cryptoS.medianUs, unit: 'x',
      target: { op: '<=', limit: 2 }, note: `ops/s ratio crypto floor/ours ${fmt(cryptoS.opsPerS / ours.opsPerS, 2)}`,
    });
    figures.push(...latencyFigures(`cold token, floor (jose jwtVerify local JWKS + SHA-256, ${alg})`, floorS));
    figures.push({
      section: SECTION, name: `cold token: ours/floor (${alg}, median)`, value: ours.medianUs / floorS.medianUs, unit: 'x',
      ...(alg === 'RS256' ? { target: { op: '<=' as const, limit: 1.3 } } : {}),
      note: `ops/s ratio floor/ours ${fmt(floorS.opsPerS / ours.opsPerS, 2)}`,
    });
    if (alg === 'RS256') {
      const peerS = summaryOf(results, 'peer');
      figures.push(...latencyFigures(`cold token, peer (${alg})`, peerS));
      figures.push({ section: SECTION, name: `cold token: peer/ours (${alg}, x faster, median)`, value: peerS.medianUs / ours.medianUs, unit: 'x' });
    }
    const stats = verifier.stats().tokens;
    check(stats.hits === 0, `cold tokens hit the token cache (${stats.hits} hits)`);
  }

  // 1c. Cold certificate: a new certificate (with its own bound token) each request.
  {
    const count = (scale.coreRounds + 1) * scale.certBatch;
    log(`core: issuing ${count} client certificates for the cold-certificate rows`);
    const certs = await issueClients(inputs, count, 'cold');
    const headers = certs.map((c) => haproxyHeader(inputs, c));
    const tokens = certs.map((c) => boundToken(inputs, c, rsaKey));
    const withCachedToken = new Verifier(benchConfig(inputs));
    const allCold = new Verifier(benchConfig(inputs));
    check((await allCold.verify(facts(boundToken(inputs, pki.client, rsaKey), header0))).allow, 'cold-cert warm-up rejected');
    // Prime the token verdicts of the first verifier: each token with the warm certificate (the
    // binding fails, but the token's verdict is cached), so its timed request is a cold certificate only.
    for (const token of tokens) {
      const d = await withCachedToken.verify(facts(token, header0));
      check(!d.allow && d.failure.reason === 'certificate_thumbprint_mismatch', 'priming request not rejected for the binding');
    }
    log(`core: cold certificate (EC P-256 leaf + intermediate, RS256 token), ${scale.coreRounds} x ${scale.certBatch} per contender`);
    const contenders: Contender[] = [
      { name: 'ours-token-cached', op: async (i) => { const d = await withCachedToken.verify(facts(pick(tokens, i), pick(headers, i))); if (!d.allow) throw new Error(`rejected ${d.failure.reason}`); } },
      { name: 'ours-all-cold', op: async (i) => { const d = await allCold.verify(facts(pick(tokens, i), pick(headers, i))); if (!d.allow) throw new Error(`rejected ${d.failure.reason}`); } },
      { name: 'floor', op: async (i) => { if (!(await floor(pick(tokens, i), pick(headers, i), 'RS256'))) throw new Error('floor mismatch'); } },
      { name: 'peer', op: async (i) => { if (!(await peer(pick(tokens, i), pick(headers, i)))) throw new Error('peer rejected'); } },
    ];
    const results = await interleave(contenders, { ...rounds, batch: scale.certBatch });
    const cached = summaryOf(results, 'ours-token-cached');
    const cold = summaryOf(results, 'ours-all-cold');
    const floorS = summaryOf(results, 'floor');
    const peerS = summaryOf(results, 'peer');
    figures.push(...latencyFigures('cold certificate, ours (token verdict cached: chain validation)', cached));
    figures.push(...latencyFigures('cold certificate + cold token, ours', cold));
    figures.push(...latencyFigures('cold certificate + cold token, floor (no chain validation)', floorS));
    figures.push(...latencyFigures('cold certificate + cold token, peer (no chain validation)', peerS));
    figures.push({ section: SECTION, name: 'cold certificate + cold token: ours/floor (median)', value: cold.medianUs / floorS.medianUs, unit: 'x', note: 'ours also validates the chain' });
    figures.push({ section: SECTION, name: 'cold certificate + cold token: peer/ours (x faster, median)', value: peerS.medianUs / cold.medianUs, unit: 'x' });
  }
  return figures;
}
