/**
 * CI smoke test of `npm run bench`: every section runs with tiny iteration counts (seconds) and
 * must produce each of its figures as a finite number. No thresholds: figures from a handful of
 * iterations on a shared CI machine mean nothing; `npm run bench` judges them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SMOKE_SCALE } from './common.js';
import { SECTION_NAMES, formatFigures, runBench } from './run.js';

test('every benchmark section runs at smoke scale and yields finite figures', async (t) => {
  const lines: string[] = [];
  const figures = await runBench(SMOKE_SCALE, SECTION_NAMES, (line) => lines.push(line));
  t.diagnostic(formatFigures(figures).replace(/\n+/g, ' | '));
  assert.deepEqual([...new Set(figures.map((f) => f.section))], ['core', 'plugin server', 'memory', 'jwks rotation', 'revocation', 'worst case', 'plugin-server codec']);
  for (const f of figures) assert.ok(Number.isFinite(f.value), `${f.section}: ${f.name} = ${f.value}`);
  // Every figure with a target is present (the runner judges them): names fixed by the brief.
  const targeted = figures.filter((f) => f.target !== undefined).map((f) => f.name);
  assert.equal(targeted.length, 18, targeted.join('; '));
});
