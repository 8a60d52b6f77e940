/**
 * A small bounded LRU cache with per-entry expiry.
 *
 * Used for chain verdicts (keyed by a hash of the certificates), token verdicts (keyed by a salted
 * hash of the token) and CA material. Memory is bounded by `maxEntries`; an entry never outlives
 * the expiry its producer gives it (a token's `exp`, a certificate's `notAfter`), whatever the TTL.
 */
export interface CacheOptions {
  /** Most entries kept; the least recently used one is evicted first. 0 disables the cache. */
  readonly maxEntries: number;
  /** Longest time an entry lives, in milliseconds. */
  readonly ttlMs: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

interface Entry<V> {
  readonly value: V;
  readonly expiresAt: number;
}

export class BoundedCache<V> {
  readonly #map = new Map<string, Entry<V>>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #now: () => number;
  #hits = 0;
  #misses = 0;
  /** The key last set or refreshed: already the most recent, so a hit on it needs no re-insertion. */
  #newest: string | undefined;

  constructor(options: CacheOptions) {
    this.#max = Math.max(0, Math.floor(options.maxEntries));
    this.#ttl = Math.max(0, options.ttlMs);
    this.#now = options.now ?? Date.now;
  }

  /** The live value for `key`, refreshing its recency; undefined when absent or expired. */
  get(key: string): V | undefined {
    const entry = this.#map.get(key);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    if (entry.expiresAt <= this.#now()) {
      this.#map.delete(key);
      this.#misses++;
      return undefined;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order), unless it already is.
    if (key !== this.#newest) {
      this.#map.delete(key);
      this.#map.set(key, entry);
      this.#newest = key;
    }
    this.#hits++;
    return entry.value;
  }

  /**
   * Stores `value` until the earlier of now + TTL and `notAfterMs` (epoch milliseconds), if given.
   * An entry that would already be expired is not stored.
   */
  set(key: string, value: V, notAfterMs?: number): void {
    if (this.#max === 0) return;
    const now = this.#now();
    const expiresAt = Math.min(now + this.#ttl, notAfterMs ?? Number.POSITIVE_INFINITY);
    if (!(expiresAt > now)) return;
    this.#map.delete(key);
    this.#map.set(key, { value, expiresAt });
    this.#newest = key;
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next();
      if (oldest.done === true) break;
      this.#map.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.#map.delete(key);
    if (key === this.#newest) this.#newest = undefined;
  }

  clear(): void {
    this.#map.clear();
    this.#newest = undefined;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Hit and miss counts since creation, for metrics and benchmarks. */
  stats(): { hits: number; misses: number; size: number } {
    return { hits: this.#hits, misses: this.#misses, size: this.#map.size };
  }
}
