import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderReadme } from '../../scripts/docs.js';
import { CONFIG_FIELDS, FROM_HEADER_FIELDS } from '../../src/config-schema.js';
import { REASONS } from '../../src/errors.js';

const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');

test('README generated tables are current (run `npm run docs` after changing the schema or reasons)', () => {
  assert.equal(renderReadme(readme), readme);
});

test('README documents every config key and every reason code', () => {
  const keys = [...CONFIG_FIELDS, ...FROM_HEADER_FIELDS].flatMap((entry) => Object.keys(entry));
  for (const key of keys) assert.ok(readme.includes(`\`${key}\``) || readme.includes(`\`↳ ${key}\``), key);
  for (const reason of Object.keys(REASONS)) assert.ok(readme.includes(`| \`${reason}\` |`), reason);
});

test('README shows the set-up and test commands at the top', () => {
  const top = readme.split('\n').slice(0, 6).join('\n');
  assert.match(top, /npm ci && npm run demo/);
  assert.match(top, /npm test/);
});
