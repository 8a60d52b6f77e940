/**
 * Process-wide Prometheus counters of the plugin server, kept in a prom-client registry: the plugin
 * increments them (no PDK round trip, a few counter increments per request) and the launcher serves
 * them on `GET /metrics` when started with `--metrics-port` (see bin/pluginserver/metrics-server.ts),
 * together with prom-client's default process and Node.js metrics, which are collected only then.
 *
 * Label values are bounded: `outcome` is allow|deny, `reason` is a reason code (src/errors.ts
 * `REASONS`) or bound|unbound, `cache` is token|certificate|decision. Never a subject, a
 * thumbprint, a peer address or anything else a client chooses.
 */
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
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
  /** The prom-client registry holding this registry's metrics (and the process ones once asked for). */
  readonly registry = new Registry();
  readonly #requests = new Counter({
    name: 'mtls_pop_requests_total', help: 'Requests decided by the mtls-pop access phase, by outcome and reason code.',
    labelNames: ['outcome', 'reason'] as const, registers: [this.registry],
  });
  readonly #hits = new Counter({ name: 'mtls_pop_cache_hits_total', help: 'Lookups answered by a verifier cache.', labelNames: ['cache'] as const, registers: [this.registry] });
  readonly #misses = new Counter({ name: 'mtls_pop_cache_misses_total', help: 'Lookups a verifier cache could not answer.', labelNames: ['cache'] as const, registers: [this.registry] });
  readonly #jwksFetches = new Counter({ name: 'mtls_pop_jwks_fetches_total', help: 'JWKS fetch cycles started (discovery and JWKS count as one).', registers: [this.registry] });
  readonly #jwksFailures = new Counter({ name: 'mtls_pop_jwks_fetch_failures_total', help: 'JWKS fetch cycles that failed.', registers: [this.registry] });
  #processMetrics = false;

  constructor() {
    // Every cache shows up from the first scrape, at 0.
    for (const cache of CACHE_NAMES) {
      this.#hits.inc({ cache }, 0);
      this.#misses.inc({ cache }, 0);
    }
  }

  countRequest(result: RequestOutcome): void {
    // Defence in depth: a label value outside the fixed sets is never exposed.
    const known = result.outcome === 'allow' ? ALLOW_REASONS.has(result.reason) : Object.hasOwn(REASONS, result.reason);
    this.#requests.inc({ outcome: result.outcome, reason: known ? result.reason : 'other' });
  }

  addCache(cache: CacheName, hits: number, misses: number): void {
    if (hits > 0) this.#hits.inc({ cache }, hits);
    if (misses > 0) this.#misses.inc({ cache }, misses);
  }

  addJwks(fetches: number, failures: number): void {
    if (fetches > 0) this.#jwksFetches.inc(fetches);
    if (failures > 0) this.#jwksFailures.inc(failures);
  }

  /**
   * Adds prom-client's default metrics (process CPU, memory, file descriptors, event-loop lag, GC,
   * heap) to this registry; their collectors (an event-loop delay monitor, a GC observer) start
   * here, so the launcher calls this only when the endpoint is on. Idempotent.
   */
  collectProcessMetrics(): void {
    if (this.#processMetrics) return;
    this.#processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type of `render()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
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
