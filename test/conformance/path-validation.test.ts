/**
 * Path-validation conformance: the PKITS-derived cases of `pkits.ts` through `ChainValidator`,
 * each cross-checked with `openssl verify -purpose sslclient` (at the same validation time). Every
 * case must give the PKITS result, or the documented deviation; openssl must agree with PKITS too,
 * or its disagreement is listed below. The per-section table is printed (test diagnostics) and
 * kept in docs/conformance.md, which must match: `CONFORMANCE_WRITE=1` rewrites its tables.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChainValidator } from '../../src/chain.js';
import type { CertificateFacts } from '../../src/certificate.js';
import type { Result } from '../../src/errors.js';
import { toPem } from './builder.js';
import { buildCases, SECTIONS, VALIDATION_TIME, type ConformanceCase, type Outcome } from './pkits.js';

const run = promisify(execFile);

/** Where `openssl verify -purpose sslclient` (OpenSSL 3.0) departs from the PKITS result, and why. */
const OPENSSL_DEVIATIONS: Readonly<Record<string, string>> = {
  '4.1.5': 'OpenSSL 3.0 cannot decode a DSA public key without domain parameters, so it finds no usable issuer for the end entity '
    + '(error 20); the rebuilt path is right: the end entity verifies under the inherited key completed with the DSA CA parameters',
};

interface Verdict {
  readonly ours: Result<CertificateFacts>;
  readonly openssl: { readonly outcome: Outcome; readonly message: string };
}

let cases: ConformanceCase[];
const verdicts = new Map<string, Verdict>();
let dir: string;

async function opensslVerify(c: ConformanceCase, index: number): Promise<Verdict['openssl']> {
  const caFile = join(dir, `${index}-ca.pem`);
  const leafFile = join(dir, `${index}-leaf.pem`);
  const untrustedFile = join(dir, `${index}-untrusted.pem`);
  writeFileSync(caFile, c.anchors.map(toPem).join(''));
  writeFileSync(leafFile, toPem(c.chain[0] as Buffer));
  const args = ['verify', '-purpose', 'sslclient', '-attime', String(Math.floor(VALIDATION_TIME.getTime() / 1000)), '-CAfile', caFile];
  if (c.chain.length > 1) {
    writeFileSync(untrustedFile, c.chain.slice(1).map(toPem).join(''));
    args.push('-untrusted', untrustedFile);
  }
  try {
    await run('openssl', [...args, leafFile]);
    return { outcome: 'valid', message: 'OK' };
  } catch (error) {
    const text = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
    const line = /error \d+ at \d+ depth lookup: ([^\n]+)/.exec(text)?.[1] ?? text.trim().split('\n').pop() ?? 'failed';
    return { outcome: 'invalid', message: line };
  }
}

before(async () => {
  cases = buildCases();
  dir = mkdtempSync(join(tmpdir(), 'mtls-pop-pkits-'));
  const pending = cases.map(async (c, index) => {
    const validator = ChainValidator.fromPem(c.anchors.map(toPem), {
      allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => VALIDATION_TIME.getTime(),
    });
    assert.ok(validator.ok, `${c.id}: anchors do not load`);
    const ours = await validator.value.validate(c.chain);
    return [c.id, ours] as const;
  });
  const ours = new Map(await Promise.all(pending));
  // openssl, a few at a time.
  for (let i = 0; i < cases.length; i += 8) {
    const batch = cases.slice(i, i + 8);
    const results = await Promise.all(batch.map((c, k) => opensslVerify(c, i + k)));
    batch.forEach((c, k) => verdicts.set(c.id, { ours: ours.get(c.id) as Result<CertificateFacts>, openssl: results[k] as Verdict['openssl'] }));
  }
});

after(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const outcomeOf = (r: Result<CertificateFacts>): Outcome => (r.ok ? 'valid' : 'invalid');

function tables(): string {
  const lines = [
    '| PKITS section | cases run | ChainValidator = PKITS | documented deviations | openssl = PKITS | not run |',
    '| --- | ---: | ---: | ---: | ---: | --- |',
  ];
  let run = 0;
  let agree = 0;
  let deviations = 0;
  let opensslAgree = 0;
  for (const section of SECTIONS) {
    const inSection = cases.filter((c) => c.section === section.id);
    const matched = inSection.filter((c) => outcomeOf(verdicts.get(c.id)!.ours) === c.expected).length;
    const deviated = inSection.filter((c) => c.deviation !== undefined).length;
    const openssl = inSection.filter((c) => verdicts.get(c.id)!.openssl.outcome === c.expected).length;
    run += inSection.length;
    agree += matched;
    deviations += deviated;
    opensslAgree += openssl;
    const pct = (n: number): string => (inSection.length === 0 ? '-' : `${n}/${inSection.length} (${Math.round((100 * n) / inSection.length)}%)`);
    lines.push(`| ${section.id} ${section.title} | ${inSection.length} | ${pct(matched)} | ${deviated} | ${pct(openssl)} | ${section.skipped ?? ''} |`);
  }
  const pct = (n: number): string => `${n}/${run} (${Math.round((100 * n) / run)}%)`;
  lines.push(`| **all** | ${run} | ${pct(agree)} | ${deviations} | ${pct(opensslAgree)} | |`);
  lines.push('', '| id | PKITS test | PKITS | ChainValidator | openssl | note |', '| --- | --- | --- | --- | --- | --- |');
  for (const c of cases) {
    const v = verdicts.get(c.id)!;
    const ours = v.ours.ok ? 'valid' : `invalid (${v.ours.error.reason})`;
    const openssl = v.openssl.outcome === 'valid' ? 'valid' : `invalid (${v.openssl.message})`;
    const notes = [c.deviation !== undefined ? `**deviation**: ${c.deviation.why}` : '', OPENSSL_DEVIATIONS[c.id] ?? '', c.note ?? '']
      .filter((n) => n !== '').join('; ');
    lines.push(`| ${c.id} | ${c.title} | ${c.expected} | ${ours} | ${openssl} | ${notes} |`);
  }
  return lines.join('\n');
}

describe('PKITS-derived path validation (ChainValidator)', () => {
  test('cases were built for every section that is run, with unique ids', () => {
    assert.ok(cases.length >= 80, `${cases.length} cases`);
    assert.equal(new Set(cases.map((c) => c.id)).size, cases.length);
    for (const section of SECTIONS.filter((s) => s.skipped === undefined)) {
      assert.ok(cases.some((c) => c.section === section.id), `no case in ${section.id}`);
    }
  });

  test('every case: the PKITS result (or the documented deviation) and the exact reason', () => {
    const wrong: string[] = [];
    for (const c of cases) {
      const { ours } = verdicts.get(c.id)!;
      const want = c.deviation?.result ?? c.expected;
      const got = outcomeOf(ours);
      if (got !== want) wrong.push(`${c.id} ${c.title}: expected ${want}, got ${ours.ok ? 'valid' : `${ours.error.reason}: ${ours.error.detail}`}`);
      else if (!ours.ok && c.reason !== undefined && ours.error.reason !== c.reason) {
        wrong.push(`${c.id} ${c.title}: expected reason ${c.reason}, got ${ours.error.reason}: ${ours.error.detail}`);
      } else if (ours.ok) {
        assert.equal(ours.value.notAfter.getTime() > VALIDATION_TIME.getTime(), true);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('every rejection is one of the chain reason codes, never internal_error', () => {
    for (const c of cases) {
      const { ours } = verdicts.get(c.id)!;
      if (!ours.ok) {
        assert.ok(['certificate_untrusted', 'certificate_chain_invalid', 'certificate_expired', 'certificate_not_yet_valid', 'certificate_is_ca',
          'certificate_not_for_client_auth'].includes(ours.error.reason), `${c.id}: ${ours.error.reason}`);
      }
    }
  });

  test('openssl verify -purpose sslclient agrees with PKITS on every case (except the listed deviations)', () => {
    const disagreements = cases
      .filter((c) => verdicts.get(c.id)!.openssl.outcome !== c.expected)
      .map((c) => `${c.id} ${c.title}: PKITS ${c.expected}, openssl ${verdicts.get(c.id)!.openssl.message}`);
    const undocumented = disagreements.filter((d) => OPENSSL_DEVIATIONS[d.split(' ')[0] as string] === undefined);
    assert.deepEqual(undocumented, []);
  });

  test('the conformance table (printed, and in docs/conformance.md)', (t) => {
    const table = tables();
    for (const line of table.split('\n')) t.diagnostic(line);
    const doc = join(process.cwd(), 'docs', 'conformance.md');
    const begin = '<!-- conformance-tables:begin (generated by test/conformance/path-validation.test.ts) -->';
    const end = '<!-- conformance-tables:end -->';
    if (process.env['CONFORMANCE_WRITE'] === '1') {
      const text = readFileSync(doc, 'utf8');
      const from = text.indexOf(begin);
      const to = text.indexOf(end);
      assert.ok(from >= 0 && to > from, 'docs/conformance.md has no table markers');
      writeFileSync(doc, `${text.slice(0, from + begin.length)}\n${table}\n${text.slice(to)}`);
    }
    if (existsSync(doc)) {
      const text = readFileSync(doc, 'utf8');
      const from = text.indexOf(begin);
      const to = text.indexOf(end);
      assert.ok(from >= 0 && to > from, 'docs/conformance.md has no table markers');
      assert.equal(text.slice(from + begin.length, to).trim(), table.trim(),
        'docs/conformance.md is out of date: run `npx tsc -p . && CONFORMANCE_WRITE=1 node --test dist/test/conformance/path-validation.test.js`');
    }
  });
});
