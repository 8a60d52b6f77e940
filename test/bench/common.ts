import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * Shared pieces of `npm run bench`: figures and targets, sample statistics, and the round-robin
 * driver that interleaves contenders so a noisy machine (2 cores, other processes) slows all of
 * them alike. Not a test file.
 */

/** A target a figure is compared with: `value <op> limit`. */
export interface Target {
  readonly op: '<=' | '>=' | '<' | '==';
  readonly limit: number;
}

/** One printed number. Figures with a target are what `npm run bench` judges. */
export interface Figure {
  readonly section: string;
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly target?: Target;
  /** Short context printed after the figure (what was measured, sample count). */
  readonly note?: string;
}

export function meets(figure: Figure): boolean | null {
  const t = figure.target;
  if (t === undefined) return null;
  switch (t.op) {
    case '<=': return figure.value <= t.limit;
    case '>=': return figure.value >= t.limit;
    case '<': return figure.value < t.limit;
    case '==': return figure.value === t.limit;
  }
}

/** Iteration counts of every section; `full` for `npm run bench`, `smoke` for CI. */
export interface BenchScale {
  /** Core: measured rounds (after one warm-up round) and operations per contender per round. */
  readonly coreRounds: number;
  readonly warmBatch: number;
  readonly coldBatch: number;
  /** Core: certificates per cold-certificate round. */
  readonly certBatch: number;
  /** Plugin server: measured rounds and events per contender per round (16 in flight). */
  readonly pluginRounds: number;
  readonly pluginBatch: number;
  /** Memory: warm-up and measured requests. */
  readonly memoryWarmup: number;
  readonly memoryRequests: number;
  /** JWKS rotation: concurrent requests with the new kid. */
  readonly rotationRequests: number;
  /** Worst case: requests per row (below 10: small RSA keys of the same shape, for speed). */
  readonly worstCaseRequests: number;
}

export const FULL_SCALE: BenchScale = {
  coreRounds: 8, warmBatch: 4000, coldBatch: 250, certBatch: 60,
  pluginRounds: 8, pluginBatch: 2000,
  // 50,000: the plugin server's heap reaches its steady size after ~30,000 mixed requests (a 300,000
  // request run: 70.7 MB after 20,000, then 89.6-90.4 MB from 50,000 to 320,000); a shorter warm-up
  // measures that one-time growth instead of a leak.
  memoryWarmup: 50_000, memoryRequests: 100_000,
  rotationRequests: 1000,
  worstCaseRequests: 20,
};

export const SMOKE_SCALE: BenchScale = {
  coreRounds: 1, warmBatch: 20, coldBatch: 4, certBatch: 2,
  pluginRounds: 1, pluginBatch: 40,
  memoryWarmup: 40, memoryRequests: 200,
  rotationRequests: 20,
  worstCaseRequests: 2,
};

/** Prints progress lines (the runner passes console.log; the smoke test a diagnostic sink). */
export type Log = (line: string) => void;

// ---------------------------------------------------------------------------------------------
// Statistics

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] as number;
}

export interface Summary {
  readonly count: number;
  /** Per-operation latency, microseconds. */
  readonly medianUs: number;
  readonly p99Us: number;
  /** Operations per second over the measured batches (sum of ops / sum of batch wall time). */
  readonly opsPerS: number;
  /** Median over rounds of each round's ops/s: less sensitive to one disturbed round. */
  readonly medianRoundOpsPerS: number;
  /** CPU microseconds per operation in the measured process (0 when not measured). */
  readonly cpuUsPerOp: number;
}

export class Samples {
  readonly latenciesNs: number[] = [];
  readonly roundOpsPerS: number[] = [];
  ops = 0;
  elapsedNs = 0;
  /** CPU time of the contender's process (Contender.cpuMs), summed over the measured batches. */
  cpuMs = 0;

  addBatch(latenciesNs: readonly number[], elapsedNs: number, cpuMs = 0): void {
    for (const l of latenciesNs) this.latenciesNs.push(l);
    this.ops += latenciesNs.length;
    this.elapsedNs += elapsedNs;
    this.cpuMs += cpuMs;
    this.roundOpsPerS.push(latenciesNs.length / (elapsedNs / 1e9));
  }

  summary(): Summary {
    const sorted = [...this.latenciesNs].sort((a, b) => a - b);
    const rounds = [...this.roundOpsPerS].sort((a, b) => a - b);
    return {
      count: this.ops,
      medianUs: quantile(sorted, 0.5) / 1000,
      p99Us: quantile(sorted, 0.99) / 1000,
      opsPerS: this.ops / (this.elapsedNs / 1e9),
      medianRoundOpsPerS: quantile(rounds, 0.5),
      cpuUsPerOp: this.ops === 0 ? Number.NaN : (this.cpuMs * 1000) / this.ops,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Round-robin driver

/** One contender: `op(i)` does request number i (a global index, so pools are never reused). */
export interface Contender {
  readonly name: string;
  readonly op: (index: number) => Promise<unknown>;
  /** Requests in flight at once (default 1: sequential awaits, latency = one request's cost). */
  readonly concurrency?: number;
  /** CPU time (ms) used so far by the process doing the work, read before and after each batch. */
  readonly cpuMs?: () => number;
}

export interface InterleaveOptions {
  /** Measured rounds; one extra warm-up round runs first and is discarded. */
  readonly rounds: number;
  readonly batch: number;
  /** Warm-up rounds (default 1). */
  readonly warmupRounds?: number;
}

/**
 * Runs every contender for `batch` operations per round, round-robin, rotating the start order
 * each round so no contender always runs right after the same neighbour (GC debt, CPU boost).
 * Index `i` handed to `op` is `round * batch + k`, unique per contender across rounds, warm-up
 * included: a pool of `(warmupRounds + rounds) * batch` inputs is used exactly once each.
 */
export async function interleave(contenders: readonly Contender[], options: InterleaveOptions): Promise<Map<string, Samples>> {
  const warmupRounds = options.warmupRounds ?? 1;
  const results = new Map<string, Samples>(contenders.map((c) => [c.name, new Samples()]));
  const total = warmupRounds + options.rounds;
  for (let round = 0; round < total; round++) {
    for (let k = 0; k < contenders.length; k++) {
      const contender = contenders[(round + k) % contenders.length] as Contender;
      const cpuBefore = contender.cpuMs?.() ?? 0;
      const { latencies, elapsedNs } = await runBatch(contender, round * options.batch, options.batch);
      const cpu = (contender.cpuMs?.() ?? 0) - cpuBefore;
      if (round >= warmupRounds) results.get(contender.name)?.addBatch(latencies, elapsedNs, cpu);
    }
  }
  return results;
}

async function runBatch(contender: Contender, first: number, count: number): Promise<{ latencies: number[]; elapsedNs: number }> {
  const latencies: number[] = new Array<number>(count);
  const concurrency = Math.max(1, contender.concurrency ?? 1);
  const started = process.hrtime.bigint();
  if (concurrency === 1) {
    for (let k = 0; k < count; k++) {
      const t0 = process.hrtime.bigint();
      await contender.op(first + k);
      latencies[k] = Number(process.hrtime.bigint() - t0);
    }
  } else {
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (;;) {
        const k = next++;
        if (k >= count) return;
        const t0 = process.hrtime.bigint();
        await contender.op(first + k);
        latencies[k] = Number(process.hrtime.bigint() - t0);
      }
    }));
  }
  return { latencies, elapsedNs: Number(process.hrtime.bigint() - started) };
}

/** Throws when a benchmark's contender does not do what it claims (a wrong answer is no figure). */
export function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`bench self-check failed: ${message}`);
}

export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return String(value);
  if (Math.abs(value) >= 10_000) return Math.round(value).toLocaleString('en-US');
  return value.toFixed(digits);
}

let clockTicks: number | undefined;

/** User + system CPU time of a process in milliseconds, from /proc/<pid>/stat (clock-tick resolution). */
export function processCpuMs(pid: number): number {
  if (clockTicks === undefined) {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    clockTicks = Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15 (1-based, proc(5)).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}
