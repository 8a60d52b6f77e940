/**
 * Runs a target over consecutive seeds and reports counts, speed and the first failure, with
 * its input serialized (hex) so that it can be saved and replayed. Shared by the long runner
 * (`run.ts`) and the CI smoke test.
 */
import { Rng } from './rng.js';
import type { FuzzCase, Target } from './targets.js';
import type { World } from './world.js';

export interface FailureReport {
  readonly target: string;
  /** The seed of the failing input: `--seed <seed> --target <target> --runs 1` replays it. */
  readonly seed: number;
  readonly error: string;
  readonly input: string;
}

export interface TargetReport {
  readonly target: string;
  readonly baseSeed: number;
  readonly runs: number;
  readonly accepted: number;
  readonly elapsedMs: number;
  readonly failure: FailureReport | null;
}

/** Hex (and, for text, a JSON string) of every part of an input, one per line, nested parts by path. */
export function serializeInput(value: unknown, path = 'input'): string {
  if (value instanceof Uint8Array) return `${path} (${value.length} bytes, hex): ${Buffer.from(value).toString('hex')}\n`;
  if (typeof value === 'string') {
    return `${path} (${value.length} chars, utf-8 hex): ${Buffer.from(value, 'utf8').toString('hex')}\n${path} (json): ${JSON.stringify(value)}\n`;
  }
  if (Array.isArray(value)) return value.map((item, i) => serializeInput(item, `${path}[${i}]`)).join('') || `${path}: []\n`;
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).map(([key, item]) => serializeInput(item, `${path}.${key}`)).join('');
  }
  return `${path}: ${JSON.stringify(value)}\n`;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}${error.name === 'InvariantViolation' ? '' : `\n${error.stack ?? ''}`}`;
  return `non-Error thrown: ${String(error)}`;
}

export async function runTarget(
  target: Target, world: World, baseSeed: number, runs: number, onProgress?: (done: number, elapsedMs: number) => void,
): Promise<TargetReport> {
  const started = performance.now();
  let accepted = 0;
  let lastProgress = started;
  for (let i = 0; i < runs; i++) {
    const seed = (baseSeed + i) >>> 0;
    let fuzzCase: FuzzCase | null = null;
    try {
      fuzzCase = target.generate(world, new Rng(seed));
      if (await fuzzCase.run()) accepted++;
    } catch (error) {
      return {
        target: target.name, baseSeed, runs: i + 1, accepted, elapsedMs: performance.now() - started,
        failure: {
          target: target.name, seed, error: describeError(error),
          input: fuzzCase === null ? '(the generator itself failed)\n' : serializeInput(fuzzCase.input),
        },
      };
    }
    if (onProgress !== undefined && (i & 1023) === 0) {
      const now = performance.now();
      if (now - lastProgress > 5000) {
        lastProgress = now;
        onProgress(i, now - started);
      }
    }
  }
  return { target: target.name, baseSeed, runs, accepted, elapsedMs: performance.now() - started, failure: null };
}
