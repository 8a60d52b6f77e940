/**
 * How long to leave a failing origin (an IdP's JWKS, Kong's Admin API) alone before asking it
 * again: 1 s after the first failure in a row, then 2 s, 4 s, and at most 5 s. Meanwhile callers
 * answer from what they have (cached keys or CA certificates within their stale window, else the
 * last failure), so an outage costs neither the origin a request per client request nor every
 * client request a timeout.
 */
export class FailureBackoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  #failuresInRow = 0;
  #failedAt = 0;

  constructor(baseMs = 1000, maxMs = 5000) {
    this.#baseMs = baseMs;
    this.#maxMs = maxMs;
  }

  /** Whether the wait after the last failure has passed (always true after a success). */
  mayTry(now: number): boolean {
    if (this.#failuresInRow === 0) return true;
    return now - this.#failedAt >= Math.min(this.#baseMs * 2 ** (this.#failuresInRow - 1), this.#maxMs);
  }

  failed(now: number): void {
    this.#failuresInRow++;
    this.#failedAt = now;
  }

  succeeded(): void {
    this.#failuresInRow = 0;
  }
}
