/**
 * `npm run bench`: every benchmark section, each figure printed next to its target.
 *
 *   npm run bench                                   full run (a few minutes)
 *   node dist/test/bench/run.js --smoke             tiny iteration counts (seconds), as CI's smoke test
 *   node dist/test/bench/run.js --only core,jwks    some sections (core, plugin, memory, jwks, revocation, worst, codec)
 *   node dist/test/bench/run.js --strict            exit 1 when a target is missed
 *
 * Sections: 1 core in process (ours vs the jose floor vs the auth0 peer), 2 through the real
 * plugin server (ours vs the same-calls baseline vs the server's floor), 3 plugin-server memory,
 * 4 JWKS rotation, 5 revocation (cold CRL check vs cache hit), 6 worst case (the dearest hostile
 * request vs a normal one, CPU time), 7 the plugin server's MessagePack codec. Ratios are measured side by side in one run, contenders interleaved.
 */
import { cpus, loadavg } from 'node:os';
import { FULL_SCALE, SMOKE_SCALE, fmt, meets, type BenchScale, type Figure, type Log } from './common.js';
import { makeInputs, type BenchInputs } from './inputs.js';
import { runCore } from './core.js';
import { runPluginServer } from './plugin-server.js';
import { runMemory } from './memory.js';
import { runJwksRotation } from './jwks-rotation.js';
import { runRevocation } from './revocation.js';
import { runWorstCase } from './worst-case.js';
import { runCodec } from './codec.js';

export const SECTIONS = {
  core: runCore,
  plugin: runPluginServer,
  memory: runMemory,
  jwks: runJwksRotation,
  revocation: runRevocation,
  worst: runWorstCase,
  codec: runCodec,
} as const satisfies Record<string, (inputs: BenchInputs, scale: BenchScale, log: Log) => Promise<Figure[]>>;

export type SectionName = keyof typeof SECTIONS;
export const SECTION_NAMES = Object.keys(SECTIONS) as SectionName[];

/** Runs the given sections in order on one set of inputs; returns every figure. */
export async function runBench(scale: BenchScale, sections: readonly SectionName[], log: Log): Promise<Figure[]> {
  const inputs = await makeInputs();
  const figures: Figure[] = [];
  try {
    for (const name of sections) {
      const started = Date.now();
      figures.push(...await SECTIONS[name](inputs, scale, log));
      log(`-- section ${name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  } finally {
    await inputs.close();
  }
  return figures;
}

function targetText(figure: Figure): string {
  const t = figure.target;
  if (t === undefined) return '';
  return `${t.op} ${fmt(t.limit, t.limit % 1 === 0 ? 0 : 1)}`;
}

/** The report table: section, figure, value, target, verdict, note. */
export function formatFigures(figures: readonly Figure[]): string {
  const lines: string[] = [];
  let section = '';
  const width = Math.max(...figures.map((f) => f.name.length), 20);
  for (const f of figures) {
    if (f.section !== section) {
      section = f.section;
      lines.push('', `== ${section}`);
    }
    const verdict = meets(f);
    const mark = verdict === null ? '    ' : verdict ? 'MET ' : 'MISS';
    const value = `${fmt(f.value, f.unit === 'x' ? 2 : 1)} ${f.unit}`;
    lines.push(`${mark} ${f.name.padEnd(width)}  ${value.padStart(16)}  ${targetText(f).padEnd(8)}${f.note === undefined ? '' : `  (${f.note})`}`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const scale = args.includes('--smoke') ? SMOKE_SCALE : FULL_SCALE;
  const onlyIndex = args.indexOf('--only');
  const only = onlyIndex >= 0 ? (args[onlyIndex + 1] ?? '').split(',').filter((s) => s !== '') : SECTION_NAMES;
  const unknown = only.filter((s) => !(SECTION_NAMES as string[]).includes(s));
  if (unknown.length > 0) {
    process.stderr.write(`unknown section(s): ${unknown.join(', ')}; sections: ${SECTION_NAMES.join(', ')}\n`);
    process.exit(2);
  }
  const cpu = cpus();
  console.log(`mtls-pop bench: node ${process.version}, ${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}` +
    `, ${scale === SMOKE_SCALE ? 'SMOKE scale (figures not meaningful)' : 'full scale'}`);
  const started = Date.now();
  const figures = await runBench(scale, only as SectionName[], (line) => console.log(line));
  console.log(formatFigures(figures));
  const missed = figures.filter((f) => meets(f) === false);
  const judged = figures.filter((f) => meets(f) !== null);
  console.log(`\n${judged.length - missed.length}/${judged.length} targets met; ${((Date.now() - started) / 1000).toFixed(0)} s; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (missed.length > 0 && args.includes('--strict')) process.exit(1);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : error);
    process.exit(1);
  });
}
