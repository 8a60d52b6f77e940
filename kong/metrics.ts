/**
 * Process-wide Prometheus counters of the plugin server: the plugin increments them (no PDK round
 * trip, a few integer additions per request) and the launcher serves them on `GET /metrics` when
 * started with `--metrics-port` (see bin/pluginserver/metrics-server.ts). Exposition is the
 * Prometheus text format 0.0.4, written by hand (no dependency).
 *
 * Label values are bounded: `outcome` is allow|deny, `reason` is a reason code (src/errors.ts
 * `REASONS`) or bound|unbound, `cache` is token|certificate|decision. Never a subject, a
 * thumbprint, a peer address or anything else a client chooses.
 */
import { REASONS, type ReasonCode } from '../src/errors.js';

export type AllowReason = 'bound' | 'unbound';
export type RequestOutcome =
  | { readonly outcome: 'allow'; readonly reason: AllowReason }
  | { readonly outcome: 'deny'; readonly reason: ReasonCode };
export type CacheName = 'token' | 'certificate' | 'decision';

export const CACHE_NAMES: readonly CacheName[] = ['token', 'certificate', 'decision'];

/** Cumulative figures of one cache or one JWKS source, as their `stats()` return them. */
export interface CacheFigures { readonly hits: number; readonly misses: number }
export interface FetchFigures { readonly fetches: number; readonly failures: number }

const ALLOW_REASONS: ReadonlySet<string> = new Set<AllowReason>(['bound', 'unbound']);

export class MetricsRegistry {
  /** Key `${outcome}\u0000${reason}`. */
  readonly #requests = new Map<string, number>();
  readonly #hits: Record<CacheName, number> = { token: 0, certificate: 0, decision: 0 };
  readonly #misses: Record<CacheName, number> = { token: 0, certificate: 0, decision: 0 };
  #jwksFetches = 0;
  #jwksFailures = 0;

  countRequest(result: RequestOutcome): void {
    // Defence in depth: a label value outside the fixed sets is never exposed.
    const known = result.outcome === 'allow' ? ALLOW_REASONS.has(result.reason) : Object.hasOwn(REASONS, result.reason);
    const key = `${result.outcome}\u0000${known ? result.reason : 'other'}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  addCache(cache: CacheName, hits: number, misses: number): void {
    if (hits > 0) this.#hits[cache] += hits;
    if (misses > 0) this.#misses[cache] += misses;
  }

  addJwks(fetches: number, failures: number): void {
    if (fetches > 0) this.#jwksFetches += fetches;
    if (failures > 0) this.#jwksFailures += failures;
  }

  /** Counter values, for tests and diagnostics. */
  snapshot(): {
    requests: Record<string, number>; hits: Record<CacheName, number>; misses: Record<CacheName, number>; jwksFetches: number; jwksFailures: number;
  } {
    const requests: Record<string, number> = {};
    for (const [key, value] of this.#requests) requests[key.replace('\u0000', ':')] = value;
    return { requests, hits: { ...this.#hits }, misses: { ...this.#misses }, jwksFetches: this.#jwksFetches, jwksFailures: this.#jwksFailures };
  }

  /** Prometheus text exposition format 0.0.4. */
  render(processMetrics = true): string {
    const out: string[] = [];
    const family = (name: string, type: 'counter' | 'gauge', help: string): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };
    family('mtls_pop_requests_total', 'counter', 'Requests decided by the mtls-pop access phase, by outcome and reason code.');
    for (const [key, value] of [...this.#requests].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const [outcome, reason] = key.split('\u0000');
      out.push(`mtls_pop_requests_total{outcome="${outcome ?? ''}",reason="${reason ?? ''}"} ${value}`);
    }
    family('mtls_pop_cache_hits_total', 'counter', 'Lookups answered by a verifier cache.');
    for (const cache of CACHE_NAMES) out.push(`mtls_pop_cache_hits_total{cache="${cache}"} ${this.#hits[cache]}`);
    family('mtls_pop_cache_misses_total', 'counter', 'Lookups a verifier cache could not answer.');
    for (const cache of CACHE_NAMES) out.push(`mtls_pop_cache_misses_total{cache="${cache}"} ${this.#misses[cache]}`);
    family('mtls_pop_jwks_fetches_total', 'counter', 'JWKS fetch cycles started (discovery and JWKS count as one).');
    out.push(`mtls_pop_jwks_fetches_total ${this.#jwksFetches}`);
    family('mtls_pop_jwks_fetch_failures_total', 'counter', 'JWKS fetch cycles that failed.');
    out.push(`mtls_pop_jwks_fetch_failures_total ${this.#jwksFailures}`);
    if (processMetrics) {
      const cpu = process.cpuUsage();
      const memory = process.memoryUsage();
      family('process_cpu_user_seconds_total', 'counter', 'User CPU time spent in seconds.');
      out.push(`process_cpu_user_seconds_total ${cpu.user / 1e6}`);
      family('process_cpu_system_seconds_total', 'counter', 'System CPU time spent in seconds.');
      out.push(`process_cpu_system_seconds_total ${cpu.system / 1e6}`);
      family('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.');
      out.push(`process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`);
      family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.');
      out.push(`process_resident_memory_bytes ${memory.rss}`);
      family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.');
      out.push(`process_start_time_seconds ${Math.round(Date.now() / 1000 - process.uptime())}`);
      family('nodejs_heap_size_used_bytes', 'gauge', 'V8 heap used in bytes.');
      out.push(`nodejs_heap_size_used_bytes ${memory.heapUsed}`);
    }
    return `${out.join('\n')}\n`;
  }
}

/**
 * The one registry of the process. Kept on `globalThis` under a registered symbol so that the
 * launcher and a plugin module loaded from another copy of this file still share it.
 */
const KEY = Symbol.for('mtls-pop.metrics.registry');
const holder = globalThis as unknown as Record<symbol, MetricsRegistry | undefined>;
export const metrics: MetricsRegistry = holder[KEY] ?? (holder[KEY] = new MetricsRegistry());

/**
 * Turns cumulative figures of objects that come and go (verifier instances, shared JWKS sources)
 * into increments of the process counters: each call adds what changed since the last call for
 * the same object. Objects are held weakly.
 */
export class DeltaTracker<T extends object, F> {
  readonly #seen = new WeakMap<T, F>();
  readonly #apply: (previous: F | undefined, current: F) => void;

  constructor(apply: (previous: F | undefined, current: F) => void) {
    this.#apply = apply;
  }

  observe(source: T, current: F): void {
    this.#apply(this.#seen.get(source), current);
    this.#seen.set(source, current);
  }
}

/** Adds a verifier's cache figures to `registry`. */
export function cacheTracker(registry: MetricsRegistry = metrics): DeltaTracker<object, Readonly<Record<'tokens' | 'certificates' | 'decisions', CacheFigures>>> {
  const names = [['tokens', 'token'], ['certificates', 'certificate'], ['decisions', 'decision']] as const;
  return new DeltaTracker((previous, current) => {
    for (const [field, cache] of names) {
      const before = previous?.[field];
      registry.addCache(cache, current[field].hits - (before?.hits ?? 0), current[field].misses - (before?.misses ?? 0));
    }
  });
}

/** Adds a JWKS source's fetch figures to `registry`. */
export function jwksTracker(registry: MetricsRegistry = metrics): DeltaTracker<object, FetchFigures> {
  return new DeltaTracker((previous, current) => {
    registry.addJwks(current.fetches - (previous?.fetches ?? 0), current.failures - (previous?.failures ?? 0));
  });
}
