/**
 * The long fuzz run: `npm run fuzz` (builds, then runs this file).
 *
 *   npm run fuzz                                   every target, default counts (over 1,000,000 inputs), random seed
 *   npm run fuzz -- --seed 1234                    the same run again
 *   npm run fuzz -- --seed N --target X --runs K   replay K inputs of target X from seed N (a failure prints this line)
 *   npm run fuzz -- --scale 0.1                    a tenth of the default counts
 *   npm run fuzz -- --list                         the targets and their default counts
 *
 * Input i of a target uses seed base+i, so every input replays on its own. On the first failure
 * of a target its input is written (hex) to `<out>/<target>-seed<N>.txt` (default out:
 * ./fuzz-failures), the other targets still run, and the process exits 1.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runTarget, type TargetReport } from './engine.js';
import { TARGETS, type Target } from './targets.js';
import { buildWorld } from './world.js';

interface Options {
  seed: number;
  targets: readonly Target[];
  runs: number | null;
  scale: number;
  out: string;
  list: boolean;
}

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: run.js [--seed N] [--target NAME[,NAME]] [--runs K] [--scale F] [--out DIR] [--list]\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = { seed: randomBytes(4).readUInt32BE(0), targets: TARGETS, runs: null, scale: 1, out: 'fuzz-failures', list: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) usage(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--seed': {
        const seed = Number(value());
        if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) usage('--seed must be an integer in [0, 2^32)');
        options.seed = seed;
        break;
      }
      case '--target': {
        const names = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
        options.targets = names.map((name) => {
          const found = TARGETS.find((t) => t.name === name) ?? TARGETS.find((t) => t.name === `header-${name}`);
          if (found === undefined) usage(`unknown target ${name}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
          return found;
        });
        break;
      }
      case '--runs': {
        const runs = Number(value());
        if (!Number.isInteger(runs) || runs < 1) usage('--runs must be a positive integer');
        options.runs = runs;
        break;
      }
      case '--scale': {
        const scale = Number(value());
        if (!(scale > 0)) usage('--scale must be positive');
        options.scale = scale;
        break;
      }
      case '--out': options.out = value(); break;
      case '--list': options.list = true; break;
      default: usage(`unknown argument ${flag}`);
    }
  }
  return options;
}

function pad(text: string | number, width: number, right = false): string {
  const s = String(text);
  return right ? s.padEnd(width) : s.padStart(width);
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  if (options.list) {
    for (const t of TARGETS) process.stdout.write(`${pad(t.name, 22, true)} ${pad(t.defaultRuns, 9)}  ${t.description}\n`);
    return 0;
  }
  const plan = options.targets.map((target) => ({ target, runs: options.runs ?? Math.max(1, Math.round(target.defaultRuns * options.scale)) }));
  const total = plan.reduce((sum, p) => sum + p.runs, 0);
  process.stdout.write(`mtls-pop fuzz: seed ${options.seed}, ${plan.length} target(s), ${total} inputs, node ${process.version}\n`);
  const setupStarted = performance.now();
  const world = await buildWorld();
  process.stdout.write(`world ready in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s (PKI, JWKS server on 127.0.0.1, validators, verifiers)\n\n`);

  const reports: TargetReport[] = [];
  const started = performance.now();
  try {
    for (const { target, runs } of plan) {
      process.stdout.write(`${target.name}: ${runs} inputs from seed ${options.seed} (${target.description})\n`);
      const report = await runTarget(target, world, options.seed, runs, (done, ms) => {
        process.stdout.write(`  ... ${done} inputs, ${Math.round(done / (ms / 1000))}/s\n`);
      });
      reports.push(report);
      const rate = Math.round(report.runs / (report.elapsedMs / 1000));
      process.stdout.write(`  ${report.failure === null ? 'ok' : 'FAILED'}: ${report.runs} inputs, ${report.accepted} accepted, ${(report.elapsedMs / 1000).toFixed(1)} s, ${rate} inputs/s\n`);
      if (report.failure !== null) {
        const { failure } = report;
        mkdirSync(options.out, { recursive: true });
        const file = resolve(join(options.out, `${failure.target}-seed${failure.seed}.txt`));
        const replay = `npm run fuzz -- --seed ${failure.seed} --target ${failure.target} --runs 1`;
        writeFileSync(file, `target: ${failure.target}\nseed: ${failure.seed}\nreplay: ${replay}\nerror: ${failure.error}\n\n${failure.input}`);
        process.stdout.write(`  error: ${failure.error.split('\n')[0]}\n  input saved to ${file}\n  replay: ${replay}\n`);
      }
    }
  } finally {
    await world.close();
  }
  const elapsed = (performance.now() - started) / 1000;
  const inputs = reports.reduce((sum, r) => sum + r.runs, 0);
  const failed = reports.filter((r) => r.failure !== null).length;
  process.stdout.write(`\n| target | inputs | accepted | seconds | inputs/s | result |\n| --- | ---: | ---: | ---: | ---: | --- |\n`);
  for (const r of reports) {
    process.stdout.write(`| ${r.target} | ${r.runs} | ${r.accepted} | ${(r.elapsedMs / 1000).toFixed(1)} | ${Math.round(r.runs / (r.elapsedMs / 1000))} | ${r.failure === null ? 'ok' : `FAILED (seed ${r.failure.seed})`} |\n`);
  }
  process.stdout.write(`| **total** | ${inputs} | ${reports.reduce((s, r) => s + r.accepted, 0)} | ${elapsed.toFixed(1)} | ${Math.round(inputs / elapsed)} | ${failed === 0 ? 'ok' : `${failed} failed`} |\n`);
  process.stdout.write(`\nseed ${options.seed}: ${reports.length - failed} targets passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (error: unknown) => {
  process.stderr.write(`fuzz runner failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
