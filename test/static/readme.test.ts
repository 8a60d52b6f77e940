import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GENERATED_DOCS } from '../../scripts/docs.js';
import { CONFIG_FIELDS, FROM_HEADER_FIELDS } from '../../src/config-schema.js';
import { REASONS } from '../../src/errors.js';

const root = join(__dirname, '..', '..', '..');
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

for (const { file, render } of GENERATED_DOCS) {
  test(`${file}: generated tables are current (run \`npm run docs\` after changing the schema or reasons)`, () => {
    const text = read(file);
    assert.equal(render(text), text);
  });
}

test('docs document every config key and every reason code', () => {
  const configuration = read('docs/configuration.md');
  const troubleshooting = read('docs/troubleshooting.md');
  const keys = [...CONFIG_FIELDS, ...FROM_HEADER_FIELDS].flatMap((entry) => Object.keys(entry));
  for (const key of keys) assert.ok(configuration.includes(`| \`${key}\` |`) || configuration.includes(`| \`↳ ${key}\` |`), key);
  for (const reason of Object.keys(REASONS)) assert.ok(troubleshooting.includes(`| \`${reason}\` |`), reason);
});

test('README shows the set-up and test commands at the top and stays a first-time operator guide', () => {
  const readme = read('README.md');
  const top = readme.split('\n').slice(0, 6).join('\n');
  assert.match(top, /npm ci && npm run demo/);
  assert.match(top, /npm test/);
  assert.ok(Buffer.byteLength(readme) < 20_000, `README.md is ${Buffer.byteLength(readme)} bytes: move reference material to docs/`);
});

test('relative links in README.md and docs/ point at files and headings that exist', () => {
  const files = ['README.md', ...GENERATED_DOCS.map((d) => d.file), 'docs/security-model.md', 'docs/metrics.md',
    'docs/differences-from-kong-enterprise.md', 'docs/benchmarks.md', 'docs/conformance.md', 'docs/kubernetes.md'];
  const slug = (heading: string): string => heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
  const anchorsOf = (file: string): Set<string> => {
    const anchors = new Set<string>();
    let fence = false;
    for (const line of read(file).split('\n')) {
      if (line.startsWith('```')) fence = !fence;
      const m = /^#{1,6} (.*)$/.exec(line);
      if (!fence && m !== null) anchors.add(slug(m[1]!));
    }
    return anchors;
  };
  for (const file of files) {
    for (const [, target] of read(file).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const [path, anchor] = target!.split('#') as [string, string | undefined];
      const resolved = path === '' ? file : join(file, '..', path);
      assert.ok(readFileSync(join(root, resolved)) !== undefined, `${file}: ${target}`);
      if (anchor !== undefined && resolved.endsWith('.md')) assert.ok(anchorsOf(resolved).has(anchor), `${file}: ${target}`);
    }
  }
});
