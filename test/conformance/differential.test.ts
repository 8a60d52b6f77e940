/**
 * Differential test of path validation: every generated case of differential-cases.ts through
 * `ChainValidator` and through `openssl verify -x509_strict -purpose sslclient` (OpenSSL 3, at
 * the same validation time). They must agree on valid/invalid, except on the cases that name an
 * intended difference, which must differ the way DIFFERENCES says; each difference is listed with
 * its reason in docs/conformance.md (checked here). One openssl run checks all cases (names are
 * unique per case): all roots in -CAfile, all CAs in -untrusted, one leaf file per case.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChainValidator } from '../../src/chain.js';
import type { CertificateFacts } from '../../src/certificate.js';
import type { Result } from '../../src/errors.js';
import { toPem } from './builder.js';
import { buildDifferentialCases, VALIDATION_TIME, type DiffCase, type Outcome } from './differential-cases.js';

const run = promisify(execFile);

/** Intended differences: which side accepts, and why. Each must appear in docs/conformance.md. */
export const DIFFERENCES: Readonly<Record<string, { readonly ours: Outcome; readonly why: string }>> = {
  profile_rules_of_issuers: { ours: 'valid', why: 'RFC 5280 profile rules for what a CA issues (basicConstraints critical and keyUsage present in CA certificates, authority and subject key identifiers, no pathLenConstraint or keyCertSign without cA, a critical SAN with an empty subject) are checked by -x509_strict; path validation (RFC 5280 section 6) does not require them, and client PKIs in the wild break them' },
  leaf_is_ca: { ours: 'invalid', why: 'a client certificate bound to a token must be an end entity (certificate_is_ca); OpenSSL\'s sslclient purpose accepts a CA certificate' },
  any_extended_key_usage: { ours: 'valid', why: 'anyExtendedKeyUsage allows any purpose (RFC 5280 4.2.1.12); OpenSSL\'s sslclient purpose wants clientAuth itself (the RFC lets an application do either)' },
  not_after_inclusive: { ours: 'valid', why: 'the validity period includes notAfter (RFC 5280 4.1.2.5); OpenSSL 3.0 treats the notAfter second as expired' },
  policy_extensions: { ours: 'invalid', why: 'policy processing is not implemented: policyConstraints (any criticality), and critical policyMappings or inhibitAnyPolicy, are refused rather than ignored; OpenSSL processes them' },
  duplicate_extension: { ours: 'invalid', why: 'RFC 5280 4.2: a certificate MUST NOT include more than one instance of an extension (certificate_malformed); OpenSSL 3.0 accepts a duplicate unknown extension' },
  unparseable_name_under_constraint: { ours: 'invalid', why: 'a name of a constrained type that does not parse (DNS name with a trailing dot or empty label, rfc822Name that is not a mailbox) cannot be shown to be outside an excluded subtree, so it is refused; OpenSSL compares the text and lets it through' },
  uri_userinfo: { ours: 'invalid', why: 'the host of a URI is taken after the userinfo (RFC 3986 3.2); OpenSSL 3.0 takes everything between "//" and ":" or "/" as the host, so https://u@bad.example/ escapes an excluded bad.example' },
  ip_mask_not_contiguous: { ours: 'invalid', why: 'an iPAddress constraint must be an address and a CIDR mask (RFC 5280 4.2.1.10); a non-contiguous mask is refused as an unsupported form' },
  unsupported_constraint_form: { ours: 'invalid', why: 'name constraints on otherName, x400Address, ediPartyName and registeredID are not evaluated, so they are refused rather than ignored' },
  rsa_modulus_too_small: { ours: 'invalid', why: 'key bounds (src/key-bounds.ts): RSA moduli below 1024 bits are refused (Go crypto/rsa); OpenSSL verify at its default level accepted 512 bits here' },
  rsa_exponent_too_large: { ours: 'invalid', why: 'key bounds: RSA public exponents above 33 bits are refused (BoringSSL kMaxExponentBits; Go: 2^31-1), so that one signature check cannot cost a private-key operation; OpenSSL accepts any exponent below a modulus of up to 3072 bits' },
  ec_curve_not_accepted: { ours: 'invalid', why: 'key bounds: EC keys on P-256, P-384 and P-521 only (as Go and BoringSSL); OpenSSL accepts secp256k1, brainpool and other named curves' },
  anchor_self_signature: { ours: 'invalid', why: 'a configured certificate counts as a root only when its self-signature verifies; with a broken one it is a configured intermediate, which needs allow_partial_chain; OpenSSL does not check a trust anchor\'s self-signature' },
};

interface Verdict {
  readonly ours: Result<CertificateFacts>;
  readonly openssl: { readonly outcome: Outcome; readonly message: string };
}

let cases: DiffCase[];
const verdicts = new Map<string, Verdict>();
let dir: string;

/** One openssl run over `batch`: the outcome and first error line per case. */
async function opensslBatch(batch: readonly DiffCase[], tag: string): Promise<Map<string, Verdict['openssl']>> {
  const caFile = join(dir, `${tag}-roots.pem`);
  const untrusted = join(dir, `${tag}-cas.pem`);
  writeFileSync(caFile, batch.flatMap((c) => c.anchors.map(toPem)).join(''));
  writeFileSync(untrusted, batch.flatMap((c) => c.chain.slice(1).map(toPem)).join('') || toPem(batch[0]!.anchors[0]!));
  const files = batch.map((c) => {
    const file = join(dir, `${c.id}.pem`);
    writeFileSync(file, toPem(c.chain[0]!));
    return file;
  });
  const args = ['verify', '-x509_strict', '-purpose', 'sslclient', '-attime', String(Math.floor(VALIDATION_TIME.getTime() / 1000)),
    '-CAfile', caFile, '-untrusted', untrusted, ...files];
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await run('openssl', args, { maxBuffer: 16 * 1024 * 1024 }));
  } catch (error) {
    stdout = (error as { stdout?: string }).stdout ?? '';
    stderr = (error as { stderr?: string }).stderr ?? '';
  }
  const out = new Map<string, Verdict['openssl']>();
  const ok = new Set(stdout.split('\n').filter((l) => l.endsWith(': OK')).map((l) => l.slice(0, -4)));
  let reasons: string[] = [];
  for (const line of stderr.split('\n')) {
    const failed = /^error (.+): verification failed$/.exec(line);
    if (failed !== null) {
      out.set(failed[1]!, { outcome: 'invalid', message: reasons[0] ?? 'verification failed' });
      reasons = [];
      continue;
    }
    const reason = /^error \d+ at \d+ depth lookup: (.+)$/.exec(line);
    if (reason !== null) reasons.push(reason[1]!);
  }
  for (const [i, c] of batch.entries()) {
    const file = files[i]!;
    const verdict = ok.has(file) ? { outcome: 'valid' as const, message: 'OK' } : out.get(file);
    assert.ok(verdict !== undefined, `${c.id}: no openssl verdict for ${file}`);
    out.set(c.id, verdict);
  }
  return out;
}

before(async () => {
  cases = buildDifferentialCases();
  dir = mkdtempSync(join(tmpdir(), 'mtls-pop-differential-'));
  for (const c of cases) {
    const validator = ChainValidator.fromPem(c.anchors.map(toPem), {
      allowPartialChain: false, cacheSize: 0, cacheTtlMs: 0, now: () => VALIDATION_TIME.getTime(),
    });
    const ours = validator.ok ? await validator.value.validate(c.chain) : validator;
    verdicts.set(c.id, { ours, openssl: { outcome: 'invalid', message: '' } });
  }
  const half = Math.ceil(cases.length / 2);
  const results = await Promise.all([opensslBatch(cases.slice(0, half), 'a'), opensslBatch(cases.slice(half), 'b')]);
  for (const c of cases) {
    const openssl = results[0].get(c.id) ?? results[1].get(c.id);
    verdicts.set(c.id, { ours: verdicts.get(c.id)!.ours, openssl: openssl! });
  }
});

after(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const outcomeOf = (r: Result<CertificateFacts>): Outcome => (r.ok ? 'valid' : 'invalid');
const describeOurs = (r: Result<CertificateFacts>): string => (r.ok ? 'valid' : `invalid (${r.error.reason}: ${r.error.detail})`);

describe('differential: ChainValidator vs openssl verify -x509_strict -purpose sslclient', () => {
  test('enough cases in every family', (t) => {
    const families = new Map<string, number>();
    for (const c of cases) families.set(c.family, (families.get(c.family) ?? 0) + 1);
    t.diagnostic(`${cases.length} cases: ${[...families].map(([f, n]) => `${f} ${n}`).join(', ')}`);
    assert.ok(cases.length >= 150, `${cases.length} cases`);
    assert.equal(new Set(cases.map((c) => c.id)).size, cases.length);
  });

  test('agreement on every case without an intended difference; the intended ones differ as documented', (t) => {
    const wrong: string[] = [];
    for (const c of cases) {
      const v = verdicts.get(c.id)!;
      const ours = outcomeOf(v.ours);
      const line = `${c.id} [${c.family}] ${c.title}: ours ${describeOurs(v.ours)}; openssl ${v.openssl.outcome} (${v.openssl.message})`;
      if (c.difference === undefined) {
        if (ours !== v.openssl.outcome) wrong.push(`undocumented difference: ${line}`);
      } else {
        const d = DIFFERENCES[c.difference];
        if (d === undefined) wrong.push(`unknown difference ${c.difference}: ${line}`);
        else if (ours !== d.ours || v.openssl.outcome === ours) wrong.push(`expected difference ${c.difference} (ours ${d.ours}) did not occur: ${line}`);
      }
      t.diagnostic(line);
    }
    assert.deepEqual(wrong, []);
  });

  test('our rejections carry chain reason codes, never internal_error', () => {
    for (const c of cases) {
      const { ours } = verdicts.get(c.id)!;
      if (!ours.ok) {
        assert.ok(['certificate_untrusted', 'certificate_chain_invalid', 'certificate_expired', 'certificate_not_yet_valid', 'certificate_is_ca',
          'certificate_not_for_client_auth', 'certificate_malformed', 'trust_anchors_unavailable'].includes(ours.error.reason), `${c.id}: ${ours.error.reason}`);
      }
    }
  });

  test('the differential tables (printed, and in docs/conformance.md)', (t) => {
    const table = tables();
    for (const line of table.split('\n')) t.diagnostic(line);
    for (const key of Object.keys(DIFFERENCES)) assert.ok(cases.some((c) => c.difference === key), `difference ${key} has no case`);
    const doc = join(process.cwd(), 'docs', 'conformance.md');
    const begin = '<!-- differential-tables:begin (generated by test/conformance/differential.test.ts) -->';
    const end = '<!-- differential-tables:end -->';
    let text = readFileSync(doc, 'utf8');
    const from = text.indexOf(begin);
    const to = text.indexOf(end);
    assert.ok(from >= 0 && to > from, 'docs/conformance.md has no differential table markers');
    if (process.env['CONFORMANCE_WRITE'] === '1') {
      text = `${text.slice(0, from + begin.length)}\n${table}\n${text.slice(to)}`;
      writeFileSync(doc, text);
    }
    assert.equal(text.slice(from + begin.length, text.indexOf(end)).trim(), table.trim(),
      'docs/conformance.md is out of date: run `npx tsc -p . && CONFORMANCE_WRITE=1 node --test dist/test/conformance/differential.test.js`');
  });
});

function tables(): string {
  const lines = [
    '| family | cases | ChainValidator valid | openssl valid | agree | intended differences |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const families = [...new Set(cases.map((c) => c.family))];
  const row = (label: string, list: readonly DiffCase[]): string => {
    const ours = list.filter((c) => verdicts.get(c.id)!.ours.ok).length;
    const openssl = list.filter((c) => verdicts.get(c.id)!.openssl.outcome === 'valid').length;
    const agree = list.filter((c) => outcomeOf(verdicts.get(c.id)!.ours) === verdicts.get(c.id)!.openssl.outcome).length;
    const intended = list.filter((c) => c.difference !== undefined).length;
    return `| ${label} | ${list.length} | ${ours} | ${openssl} | ${agree} | ${intended} |`;
  };
  for (const family of families) lines.push(row(family, cases.filter((c) => c.family === family)));
  lines.push(row('**all**', cases));
  lines.push('', '| intended difference | ChainValidator | openssl | cases | why |', '| --- | --- | --- | --- | --- |');
  for (const [key, d] of Object.entries(DIFFERENCES)) {
    const list = cases.filter((c) => c.difference === key);
    const titles = list.map((c) => `${c.id} ${c.title}`).join('; ');
    lines.push(`| \`${key}\` | ${d.ours} | ${d.ours === 'valid' ? 'invalid' : 'valid'} | ${titles} | ${d.why} |`);
  }
  return lines.join('\n');
}
