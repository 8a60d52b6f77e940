/**
 * Section 6: the worst request an attacker can build, in CPU time of the verifier's thread,
 * against a normal request (issue 11 item 4). `Verifier.verify` in process, strict mode, default
 * limits (max_chain_length 10, max_header_size 32 KB), sequential requests, CPU time from
 * `process.cpuUsage()` around each batch.
 *
 * The hostile header: a leaf and 9 "intermediates", all named "CN=Hostile CA", ordered so that
 * depth-first path building meets the wrong candidates first: the leaf is signed by I1, I1 by I2,
 * I2 by I3, and the header lists I9 ... I1, so the search verifies 8 + 8 + 7 = 23 failing or
 * succeeding signatures before the per-chain budget of 24 stops it, each under a key of the
 * attacker's choice. A new leaf serial per request defeats the verdict cache (a flipped byte
 * would do). Two key shapes:
 *   - RSA 3072 with a public exponent of about 3000 bits (OpenSSL accepts any exponent below
 *     the modulus for moduli up to 3072 bits): refused by key-bounds.ts;
 *   - ECDSA P-521, the dearest key the bounds still accept (about 1.5 ms per check on OpenSSL 3.0,
 *     more than RSA 8192 with a 33-bit exponent).
 *
 * Rows: a normal request (fresh client certificate and token: path validation and token check,
 * nothing cached; and the same request repeated, answered by the decision cache); each hostile
 * header with a forged token (unauthenticated: the token signature fails under the cached JWKS)
 * and with a valid token bound to the hostile leaf (a token holder, the most an authenticated
 * client can make the verifier do).
 */
import { randomBytes } from 'node:crypto';
import { Verifier, type RequestFacts } from '../../src/verifier.js';
import { MAX_TOKEN_LENGTH } from '../../src/bearer.js';
import { basicConstraints, certificate, dn, ecKey, KU, keyUsage, rsaKeyWithExponent, type Key } from '../conformance/builder.js';
import { fmt, type BenchScale, type Figure, type Log } from './common.js';
import { benchConfig, boundToken, haproxyHeader, issueClients, type BenchInputs } from './inputs.js';
import type { Issued } from '../helpers/pki.js';

const SECTION = 'worst case';
const HOSTILE = dn(['CN', 'Hostile CA']);
const FROM = new Date(Date.now() - 86_400_000);
const TO = new Date(Date.now() + 365 * 86_400_000);
/** Certificates in the hostile header: the default max_chain_length. */
const CHAIN = 10;

function facts(token: string, certHeader: string): RequestFacts {
  return { authorization: [`Bearer ${token}`], certificateHeader: [certHeader], peerTrusted: true, host: 'api.example' };
}

/** I1..I9 (index 0..8): I(k) signed by I(k+1); the top one by itself (never verifies as a child in time). */
function hostileIntermediates(keys: readonly Key[]): Buffer[] {
  return keys.map((key, k) => certificate({
    serial: 100 + k, issuer: HOSTILE, subject: HOSTILE, notBefore: FROM, notAfter: TO, key, signer: keys[Math.min(k + 1, keys.length - 1)] as Key,
    extensions: [basicConstraints(true), keyUsage([KU.keyCertSign])],
  }));
}

interface Hostile {
  readonly name: string;
  /** A fresh leaf each call (new serial), signed by I1, and the header: leaf, I9 ... I1. */
  next(): { leafDer: Buffer; header: string };
}

function hostile(name: string, keys: readonly Key[]): Hostile {
  const intermediates = hostileIntermediates(keys);
  const order = [...intermediates].reverse().map((d) => d.toString('base64'));
  let serial = 1000;
  return {
    name,
    next() {
      const leafDer = certificate({
        serial: serial++, issuer: HOSTILE, subject: dn(['CN', `victim-${randomBytes(4).toString('hex')}`]), notBefore: FROM, notAfter: TO,
        key: leafKey, signer: keys[0] as Key, extensions: [keyUsage([KU.digitalSignature])],
      });
      return { leafDer, header: [leafDer.toString('base64'), ...order].join(',') };
    },
  };
}

let leafKey: Key;

/** CPU milliseconds of this process for `count` sequential calls of `op`, per call. */
async function cpuPerCall(count: number, op: (i: number) => Promise<void>): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < count; i++) await op(i);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / count;
}

export async function runWorstCase(inputs: BenchInputs, scale: BenchScale, log: Log): Promise<Figure[]> {
  const figures: Figure[] = [];
  const count = scale.worstCaseRequests;
  leafKey = ecKey();
  const modulusBits = count >= 10 ? 3072 : 1024; // smoke: small primes, same shape
  const started = Date.now();
  const exponent = (1n << BigInt(modulusBits - 73)) + 2n * BigInt(`0x${randomBytes(32).toString('hex')}`) + 1n;
  const rsaKeys = Array.from({ length: CHAIN - 1 }, () => rsaKeyWithExponent(modulusBits, exponent));
  const ecKeys = Array.from({ length: CHAIN - 1 }, () => ecKey('P-521'));
  log(`worst case: hostile keys generated in ${((Date.now() - started) / 1000).toFixed(1)} s (RSA ${modulusBits} with a ${exponent.toString(2).length}-bit exponent; P-521)`);
  const chains = [hostile(`RSA ${modulusBits}, ${exponent.toString(2).length}-bit e`, rsaKeys), hostile('P-521', ecKeys)];

  const verifier = new Verifier(benchConfig(inputs, { cache_size: 10_000 }));
  // Warm the JWKS (the unauthenticated rows use the cached keys, as in production).
  const clients = await issueClients(inputs, count + 1, 'worst-normal');
  const warm = await verifier.verify(facts(boundToken(inputs, clients[count]!, inputs.rsaKey), haproxyHeader(inputs, clients[count]!)));
  if (!warm.allow) throw new Error(`bench self-check failed: normal request rejected: ${warm.failure.reason}`);

  const tokens = clients.map((c) => boundToken(inputs, c, inputs.rsaKey));
  const normal = await cpuPerCall(count, async (i) => {
    const d = await verifier.verify(facts(tokens[i]!, haproxyHeader(inputs, clients[i]!)));
    if (!d.allow) throw new Error(`bench self-check failed: normal request rejected: ${d.failure.reason}`);
  });
  const repeated = await cpuPerCall(count * 10, async () => {
    const d = await verifier.verify(facts(tokens[0]!, haproxyHeader(inputs, clients[0]!)));
    if (!d.allow) throw new Error('bench self-check failed: repeated request rejected');
  });
  figures.push({ section: SECTION, name: 'normal request, new certificate and token: CPU ms', value: normal, unit: 'ms', note: `${count} requests; path + token checked` });
  figures.push({ section: SECTION, name: 'normal request, repeated: CPU ms', value: repeated, unit: 'ms', note: 'decision cache' });

  const forgedSignature = boundToken(inputs, clients[0]!, inputs.rsaKey).split('.')[2]!;

  // Token-side costs of an unauthenticated request, with a good certificate header: a forged token
  // at the size cap, and a token naming an unknown kid (a JWKS refetch at most once per
  // rediscovery_lifetime, then token_key_not_found from the cache).
  {
    const header = haproxyHeader(inputs, clients[0]!);
    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const [h0] = tokens[0]!.split('.');
    const base = `${h0}.${b64({ pad: '' })}.${forgedSignature}`;
    const padding = 'x'.repeat(Math.floor(((MAX_TOKEN_LENGTH - base.length - 16) * 3) / 4));
    const large = Array.from({ length: count }, (_, i) => `${h0}.${b64({ pad: `${i}${padding}` })}.${forgedSignature}`);
    const unknownKid = Array.from({ length: count }, (_, i) => {
      const [, p] = boundToken(inputs, clients[0]!, inputs.rsaKey).split('.');
      return `${b64({ alg: 'RS256', typ: 'JWT', kid: `unknown-${i}` })}.${p}.${forgedSignature}`;
    });
    const reasons: string[] = [];
    const largeMs = await cpuPerCall(count, async (i) => {
      const d = await verifier.verify(facts(large[i]!, header));
      if (d.allow) throw new Error('bench self-check failed: a forged token was allowed');
      reasons.push(d.failure.reason);
    });
    const kidMs = await cpuPerCall(count, async (i) => {
      const d = await verifier.verify(facts(unknownKid[i]!, header));
      if (d.allow) throw new Error('bench self-check failed: a forged token was allowed');
      reasons.push(d.failure.reason);
    });
    const tally = (list: readonly string[]): string => [...new Set(list)].map((r) => `${r} x${list.filter((x) => x === r).length}`).join(', ');
    figures.push({ section: SECTION, name: `forged token of ${large[0]!.length} chars (the cap): CPU ms`, value: largeMs, unit: 'ms', note: tally(reasons.slice(0, count)) });
    figures.push({ section: SECTION, name: 'forged token with an unknown kid: CPU ms', value: kidMs, unit: 'ms', note: tally(reasons.slice(count)) });
    figures.push({
      section: SECTION, name: 'token-side worst / normal', value: Math.max(largeMs, kidMs) / normal, unit: 'x', target: { op: '<=', limit: 3 },
      note: 'unauthenticated, good certificate header',
    });
  }
  for (const chain of chains) {
    const inputsFor = Array.from({ length: count }, () => chain.next());
    const reasons = new Map<string, number>();
    const tally = (d: Awaited<ReturnType<Verifier['verify']>>): void => {
      if (d.allow) throw new Error('bench self-check failed: a hostile request was allowed');
      reasons.set(d.failure.reason, (reasons.get(d.failure.reason) ?? 0) + 1);
    };
    // Tokens are signed before the measured loop: only the verifier's work is counted.
    const forged = inputsFor.map(({ leafDer }) => {
      const [h, p] = boundToken(inputs, { der: leafDer } as Issued, inputs.rsaKey).split('.');
      return `${h}.${p}.${forgedSignature}`;
    });
    const unauth = await cpuPerCall(count, async (i) => {
      tally(await verifier.verify(facts(forged[i]!, inputsFor[i]!.header)));
    });
    const unauthReasons = [...reasons].map(([r, n]) => `${r} x${n}`).join(', ');
    reasons.clear();
    const fresh = Array.from({ length: count }, () => chain.next());
    const holderTokens = fresh.map(({ leafDer }) => boundToken(inputs, { der: leafDer } as Issued, inputs.rsaKey));
    const holder = await cpuPerCall(count, async (i) => {
      tally(await verifier.verify(facts(holderTokens[i]!, fresh[i]!.header)));
    });
    const holderReasons = [...reasons].map(([r, n]) => `${r} x${n}`).join(', ');
    figures.push({ section: SECTION, name: `hostile ${chain.name}, forged token: CPU ms`, value: unauth, unit: 'ms', note: unauthReasons });
    figures.push({
      section: SECTION, name: `hostile ${chain.name}, forged token / normal`, value: unauth / normal, unit: 'x', target: { op: '<=', limit: 3 },
      note: 'unauthenticated worst case vs a normal request',
    });
    figures.push({ section: SECTION, name: `hostile ${chain.name}, token bound to it: CPU ms`, value: holder, unit: 'ms', note: holderReasons });
    figures.push({ section: SECTION, name: `hostile ${chain.name}, token bound to it / normal`, value: holder / normal, unit: 'x', note: 'a token holder' });
    log(`worst case: ${chain.name}: forged token ${fmt(unauth, 2)} ms (${unauthReasons}); bound token ${fmt(holder, 2)} ms (${holderReasons})`);
  }
  return figures;
}
