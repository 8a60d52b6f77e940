/**
 * Compares certificate path validation engines: correctness on the rules `src/chain.ts` must
 * enforce, then cold cost per validation (leaf + intermediate + root, no verdict cache).
 *
 *   npx tsc -p . && node dist/test/bench/chain-engines.js [rounds]
 *
 * Engines:
 *   ours            ChainValidator (src/chain.ts): own DER parser + node:crypto verify, cacheSize 0
 *   ours+keycache   same, with the issuer public key cached (distinct leaves, so no verdict hits)
 *   pkijs           pkijs CertificateChainValidationEngine, anchors parsed once, bare (no extra checks)
 *   node-x509 (lb)  lower bound of a builder on node's X509Certificate: parse leaf and intermediate,
 *                   checkIssued, two verify() calls; no extension processing at all
 *   peculiar (lb)   lower bound of @peculiar/x509: parse both, X509ChainBuilder.build (signatures only)
 *
 * Not a test file: it prints a table and figures, and exits 0.
 */
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import * as x509 from '@peculiar/x509';
import * as pkijs from 'pkijs';
import { ChainValidator } from '../../src/chain.js';
import { issue, makeTestPki, nameConstraintsExtension, type Issued } from '../helpers/pki.js';

const DAY = 24 * 3600 * 1000;

interface Scenario {
  readonly name: string;
  readonly anchors: readonly Issued[];
  readonly chain: readonly Issued[];
  readonly partial?: boolean;
  /** What src/chain.ts must answer. */
  readonly expected: 'ok' | string;
}

// ---------------------------------------------------------------------------------------------
// pkijs engine, bare.

function toPkijs(der: Uint8Array): pkijs.Certificate {
  return pkijs.Certificate.fromBER(new Uint8Array(der));
}

async function pkijsValidate(trusted: pkijs.Certificate[], chainDer: readonly Uint8Array[]): Promise<string> {
  const certs = chainDer.map(toPkijs);
  // pkijs takes the LAST certificate of `certs` as the end entity.
  const engine = new pkijs.CertificateChainValidationEngine({
    trustedCerts: trusted, certs: [...certs.slice(1), certs[0]!], checkDate: new Date(),
  });
  const result = await engine.verify();
  return result.result ? 'ok' : `fail ${result.resultCode}: ${result.resultMessage}`;
}

if (!isMainThread) {
  // Worker: one pkijs validation that may never finish (chain loop); the parent terminates us.
  const data = workerData as { anchors: Uint8Array[]; chain: Uint8Array[] };
  void pkijsValidate(data.anchors.map(toPkijs), data.chain)
    .then((outcome) => parentPort?.postMessage(outcome), (error: unknown) => parentPort?.postMessage(`threw ${String(error)}`));
} else {
  void main();
}

async function pkijsWithTimeout(anchors: readonly Issued[], chain: readonly Issued[], ms: number): Promise<string> {
  const worker = new Worker(__filename, { workerData: { anchors: anchors.map((a) => a.der), chain: chain.map((c) => c.der) } });
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      resolve(`no answer after ${ms} ms (terminated)`);
    }, ms);
    worker.once('message', (message: string) => {
      clearTimeout(timer);
      void worker.terminate();
      resolve(`${message} (${Math.round(performance.now() - started)} ms)`);
    });
    worker.once('error', (error) => {
      clearTimeout(timer);
      resolve(`worker error ${error.message}`);
    });
  });
}

// ---------------------------------------------------------------------------------------------

async function scenarios(): Promise<{ list: Scenario[]; pki: Awaited<ReturnType<typeof makeTestPki>> }> {
  const pki = await makeTestPki();
  const { root, intermediate, client } = pki;
  const past = { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) };
  const future = { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) };
  const expiredInter = await issue({ subject: 'CN=Expired Intermediate', issuer: root, ca: true, ...past });
  const noCa = await issue({ subject: 'CN=No BC', issuer: root, noBasicConstraints: true, eku: null, keyUsage: x509.KeyUsageFlags.keyCertSign });
  const noCertSign = await issue({ subject: 'CN=No CertSign', issuer: root, ca: true, keyUsage: x509.KeyUsageFlags.cRLSign });
  const sub = await issue({ subject: 'CN=Sub Intermediate', issuer: intermediate, ca: true });
  const nc = await issue({
    subject: 'CN=Constrained CA', issuer: root, ca: true,
    extensions: [nameConstraintsExtension({ permitted: { dns: ['allowed.example'] } })],
  });
  const a0 = await issue({ subject: 'CN=Loop A', ca: true });
  const b = await issue({ subject: 'CN=Loop B', ca: true, issuer: a0 });
  const a1 = await issue({ subject: 'CN=Loop A', ca: true, issuer: b, keys: a0.keys });
  const critical = new x509.Extension('1.3.6.1.4.1.55555.1', true, new Uint8Array([5, 0]));
  const list: Scenario[] = [
    { name: 'leaf via intermediate', anchors: [root], chain: [client, intermediate], expected: 'ok' },
    { name: 'out of order + junk', anchors: [root], chain: [client, pki.rogueRoot, pki.server, intermediate], expected: 'ok' },
    { name: 'leaf of the root', anchors: [root], chain: [pki.directClient], expected: 'ok' },
    { name: 'self-signed leaf', anchors: [root], chain: [await issue({ subject: 'CN=self' })], expected: 'certificate_untrusted' },
    { name: 'rogue CA', anchors: [root], chain: [pki.rogueClient, pki.rogueRoot], expected: 'certificate_untrusted' },
    { name: 'missing intermediate', anchors: [root], chain: [client], expected: 'certificate_untrusted' },
    { name: 'expired leaf', anchors: [root], chain: [await issue({ subject: 'CN=e', issuer: intermediate, ...past }), intermediate], expected: 'certificate_expired' },
    { name: 'not-yet-valid leaf', anchors: [root], chain: [await issue({ subject: 'CN=f', issuer: intermediate, ...future }), intermediate], expected: 'certificate_not_yet_valid' },
    { name: 'expired intermediate', anchors: [root], chain: [await issue({ subject: 'CN=x', issuer: expiredInter }), expiredInter], expected: 'certificate_expired' },
    { name: 'intermediate without CA flag', anchors: [root], chain: [await issue({ subject: 'CN=y', issuer: noCa }), noCa], expected: 'certificate_chain_invalid' },
    { name: 'intermediate without keyCertSign', anchors: [root], chain: [await issue({ subject: 'CN=z', issuer: noCertSign }), noCertSign], expected: 'certificate_chain_invalid' },
    { name: 'pathLen 0 exceeded', anchors: [root], chain: [await issue({ subject: 'CN=s', issuer: sub }), sub, intermediate], expected: 'certificate_chain_invalid' },
    { name: 'leaf with cA TRUE', anchors: [root], chain: [await issue({ subject: 'CN=c', issuer: intermediate, ca: true, eku: ['1.3.6.1.5.5.7.3.2'] }), intermediate], expected: 'certificate_is_ca' },
    { name: 'EKU serverAuth only', anchors: [root], chain: [pki.server], expected: 'certificate_not_for_client_auth' },
    { name: 'no EKU', anchors: [root], chain: [await issue({ subject: 'CN=n', issuer: intermediate, eku: null }), intermediate], expected: 'ok' },
    { name: 'unknown critical ext (leaf)', anchors: [root], chain: [await issue({ subject: 'CN=k', issuer: intermediate, extensions: [critical] }), intermediate], expected: 'certificate_chain_invalid' },
    { name: 'name constraints violated', anchors: [root], chain: [await issue({ subject: 'CN=v', issuer: nc, dnsNames: ['evil.example'] }), nc], expected: 'certificate_chain_invalid' },
    { name: 'partial=false, intermediate anchor', anchors: [intermediate], chain: [client], expected: 'certificate_untrusted' },
    { name: 'partial=true, intermediate anchor', anchors: [intermediate], chain: [client], partial: true, expected: 'ok' },
    { name: 'cross-signed loop', anchors: [root], chain: [await issue({ subject: 'CN=l', issuer: a1 }), a1, b], expected: 'certificate_untrusted' },
  ];
  return { list, pki };
}

function pad(s: string, n: number): string {
  return s.length >= n ? `${s.slice(0, n - 1)}…` : s + ' '.repeat(n - s.length);
}

type Engine = readonly [name: string, run: (i: number) => Promise<void>];

/**
 * Cost per call of each engine. The engines run round-robin (one call each per round), so load
 * from other processes on the machine hits them alike; mean and median over the rounds.
 */
async function timeEngines(rounds: number, engines: readonly Engine[]): Promise<void> {
  for (let i = 0; i < 30; i++) for (const [, run] of engines) await run(i);
  const samples = engines.map(() => [] as number[]);
  for (let i = 0; i < rounds; i++) {
    for (const [e, [, run]] of engines.entries()) {
      const started = process.hrtime.bigint();
      await run(i);
      samples[e]!.push(Number(process.hrtime.bigint() - started) / 1000);
    }
  }
  for (const [e, [name]] of engines.entries()) {
    const list = samples[e]!.sort((x, y) => x - y);
    const mean = list.reduce((a, b) => a + b, 0) / list.length;
    const median = list[Math.floor(list.length / 2)]!;
    console.log(`  ${pad(name, 46)} mean ${mean.toFixed(0).padStart(6)} us   median ${median.toFixed(0).padStart(6)} us`);
  }
}

async function main(): Promise<void> {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const rounds = Number(process.argv[2] ?? 300);
  const { list, pki } = await scenarios();

  // --- correctness
  console.log('Correctness (expected = what src/chain.ts must answer; pkijs engine bare, no extra checks)\n');
  console.log(`${pad('scenario', 36)} ${pad('expected', 32)} ${pad('ours', 32)} pkijs`);
  let oursWrong = 0;
  let pkijsWrong = 0;
  for (const s of list) {
    const v = ChainValidator.fromPem(s.anchors.map((a) => a.pem), { allowPartialChain: s.partial === true, cacheSize: 0, cacheTtlMs: 0 });
    if (!v.ok) throw new Error(v.error.detail);
    const result = await v.value.validate(s.chain.map((c) => c.der));
    const ours = result.ok ? 'ok' : result.error.reason;
    if (ours !== s.expected) oursWrong++;
    // pkijs has no partial-chain switch: any trusted certificate ends its path.
    const theirs = s.name === 'cross-signed loop'
      ? await pkijsWithTimeout(s.anchors, s.chain, 3000)
      : await pkijsValidate(s.anchors.map((a) => toPkijs(a.der)), s.chain.map((c) => c.der)).catch((e: unknown) => `threw ${String(e)}`);
    const answered = theirs.startsWith('ok') || theirs.startsWith('fail');
    const pkijsRight = answered && (s.expected === 'ok') === theirs.startsWith('ok');
    if (!pkijsRight) pkijsWrong++;
    console.log(`${pad(s.name, 36)} ${pad(s.expected, 32)} ${pad(ours === s.expected ? ours : `WRONG ${ours}`, 32)} ${pkijsRight ? '' : 'WRONG '}${theirs}`);
  }
  console.log(`\nwrong verdicts: ours ${oursWrong}/${list.length}, pkijs (accept/reject only) ${pkijsWrong}/${list.length}\n`);

  // --- cost, cold: leaf + intermediate + root, no verdict cache
  const { root, intermediate, client } = pki;
  const rsaRoot = await issue({ subject: 'CN=RSA Root', ca: true, rsa: true });
  const rsaInter = await issue({ subject: 'CN=RSA Intermediate', issuer: rsaRoot, ca: true, rsa: true });
  const rsaLeaf = await issue({ subject: 'CN=rsa-client', issuer: rsaInter, rsa: true });
  const extraLeaves = await Promise.all([1, 2, 3, 4].map((i) => issue({ subject: `CN=client-${i}`, issuer: intermediate })));

  for (const [label, r, inter, leaf] of [
    ['ECDSA P-256 chain', root, intermediate, client],
    ['RSA-2048 chain', rsaRoot, rsaInter, rsaLeaf],
  ] as const) {
    const chain = [leaf.der, inter.der];
    const ours = ChainValidator.fromPem([r.pem], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0 });
    // cacheSize 1 with alternating leaves: the verdict cache never hits, the issuer key stays cached.
    const warm = ChainValidator.fromPem([r.pem], { allowPartialChain: false, cacheSize: 1, cacheTtlMs: 3600_000 });
    if (!ours.ok || !warm.ok) throw new Error('anchors');
    const leaves = r === root ? [client, ...extraLeaves] : [leaf];
    const trusted = [toPkijs(r.der)];
    const rootX509 = new X509Certificate(r.der);
    const peculiarRoot = new x509.X509Certificate(new Uint8Array(r.der));
    const engines: Engine[] = [
      ['ours (src/chain.ts), cold', async () => {
        const result = await ours.value.validate(chain);
        if (!result.ok) throw new Error(result.error.detail);
      }],
      ['pkijs CertificateChainValidationEngine', async () => {
        const outcome = await pkijsValidate(trusted, chain);
        if (outcome !== 'ok') throw new Error(outcome);
      }],
      ['node X509Certificate (lower bound)', async () => {
        const l = new X509Certificate(chain[0]!);
        const i = new X509Certificate(chain[1]!);
        if (!l.checkIssued(i) || !l.verify(i.publicKey) || !i.verify(rootX509.publicKey)) throw new Error('node verify failed');
      }],
      ['@peculiar/x509 X509ChainBuilder (lower bound)', async () => {
        const l = new x509.X509Certificate(new Uint8Array(chain[0]!));
        const i = new x509.X509Certificate(new Uint8Array(chain[1]!));
        const built = await new x509.X509ChainBuilder({ certificates: [i, peculiarRoot] }).build(l);
        if (built.length !== 3) throw new Error('peculiar chain not built');
      }],
    ];
    if (leaves.length > 1) {
      engines.splice(1, 0, ['ours, issuer key cached (new leaf each time)', async (i) => {
        const result = await warm.value.validate([leaves[i % leaves.length]!.der, inter.der]);
        if (!result.ok) throw new Error(result.error.detail);
      }]);
    }
    console.log(`Cost per validation, ${label} (leaf + intermediate sent, root configured), no verdict cache, ${rounds} rounds:`);
    await timeEngines(rounds, engines);
    if (warm.value.stats().hits !== 0) throw new Error('unexpected verdict cache hits');
    console.log('');
  }
  console.log(`load average while running: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (${cpus().length} CPUs)`);
}
