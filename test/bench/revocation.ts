/**
 * Section 5: revocation (issue 6). What a CRL-checked certificate costs the first time (download,
 * signature check, parse) and on a cache hit, through `RevocationChecker` directly, with a real
 * `openssl ca -gencrl` CRL served over HTTP on 127.0.0.1. On the request path a cache hit is
 * rarer still: the verifier's certificate and decision caches answer repeat requests before
 * revocation is consulted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainValidator, type ValidatedPath } from '../../src/chain.js';
import { RevocationChecker } from '../../src/revocation.js';
import { OpensslCa, serveFiles, startTestServer } from '../helpers/openssl-ca.js';
import { check, fmt, type BenchScale, type Figure, type Log } from './common.js';
import type { BenchInputs } from './inputs.js';

const SECTION = 'revocation';

export async function runRevocation(_inputs: BenchInputs, scale: BenchScale, log: Log): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-revocation-'));
  const crls = new Map<string, Buffer>();
  const server = await startTestServer(serveFiles(() => crls));
  try {
    const ca = await OpensslCa.createRoot(join(dir, 'root'), '/CN=Bench Revocation CA/O=mtls-pop bench');
    const crlUrl = `http://127.0.0.1:${server.port}/root.crl`;
    const leaves = [];
    const count = Math.max(2, scale.certBatch);
    for (let i = 0; i < count; i++) leaves.push(await ca.issue(`leaf${i}`, `/CN=bench-${i}`, { crlUrl }));
    crls.set('/root.crl', await ca.generateCrl());
    const validator = ChainValidator.fromPem([ca.files.pem], { allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0 });
    check(validator.ok, 'the bench CA is not a valid trust anchor');
    if (!validator.ok) throw new Error('unreachable');
    const paths: ValidatedPath[] = [];
    for (const leaf of leaves) {
      const path = await validator.value.validatePath([leaf.der]);
      check(path.ok, 'a bench certificate does not validate');
      if (path.ok) paths.push(path.value);
    }
    const checker = new RevocationChecker({ mode: 'STRICT', timeoutMs: 5000, cacheTtlMs: 60_000, cacheSize: 10_000, sslVerify: true });

    // Cold: each leaf's first check (the CRL itself is cached after the first download).
    const coldNs: number[] = [];
    for (const path of paths) {
      const started = process.hrtime.bigint();
      const result = await checker.check(path);
      coldNs.push(Number(process.hrtime.bigint() - started));
      check(result.ok, 'a good certificate was not accepted');
    }
    // Hits: the same leaves again, many times.
    const rounds = Math.max(1, Math.floor(scale.warmBatch / leaves.length));
    const started = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) {
      for (const path of paths) {
        const result = await checker.check(path);
        check(result.ok, 'a cached good certificate was not accepted');
      }
    }
    const hitUs = Number(process.hrtime.bigint() - started) / 1000 / (rounds * leaves.length);
    const firstUs = (coldNs[0] ?? 0) / 1000;
    const laterColdUs = coldNs.slice(1).reduce((a, b) => a + b, 0) / 1000 / Math.max(1, coldNs.length - 1);
    log(`revocation: first check ${fmt(firstUs / 1000)} ms (CRL download), new certificate with the CRL cached ${fmt(laterColdUs)} µs, cache hit ${fmt(hitUs, 2)} µs; stats ${JSON.stringify(checker.stats())}`);
    return [
      { section: SECTION, name: 'first CRL check (download + signature + parse)', value: firstUs / 1000, unit: 'ms' },
      { section: SECTION, name: 'check of a new certificate, CRL already cached', value: laterColdUs, unit: 'µs' },
      { section: SECTION, name: 'revocation cache hit', value: hitUs, unit: 'µs', note: `${rounds * leaves.length} checks` },
    ];
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
