/**
 * Seeded randomness for the fuzzer: one small PRNG (sfc32 seeded through splitmix32) that drives
 * both the mutation engine and fast-check's arbitraries, so that one 32-bit seed reproduces one
 * input exactly. Input `i` of a run with base seed `B` uses seed `B + i`, which is what the runner
 * prints for a failure (`--seed B+i --runs 1` replays it).
 */
import fc from 'fast-check';

function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** sfc32; also a pure-rand 8 style generator (`next()` mutates and returns a signed 32-bit value) for fc.Random. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number, state?: readonly number[]) {
    if (state !== undefined) {
      [this.#a, this.#b, this.#c, this.#d] = state as [number, number, number, number];
      return;
    }
    const mix = splitmix32(seed);
    this.#a = mix();
    this.#b = mix();
    this.#c = mix();
    this.#d = mix();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** pure-rand interface: signed 32-bit. */
  next(): number {
    return this.u32() | 0;
  }

  clone(): Rng {
    return new Rng(0, this.getState());
  }

  getState(): readonly number[] {
    return [this.#a, this.#b, this.#c, this.#d];
  }

  /** Integer in [0, n). */
  int(n: number): number {
    if (n <= 1) return 0;
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** Integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  bool(probability = 0.5): boolean {
    return this.u32() / 0x1_0000_0000 < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** Small counts are far more likely than large ones (1 with p=1/2, 2 with 1/4, ...), capped at `max`. */
  geometric(max: number): number {
    let n = 1;
    while (n < max && this.bool()) n++;
    return n;
  }

  /** An independent generator derived from this one. */
  fork(): Rng {
    return new Rng(this.u32());
  }

  /** One value of a fast-check arbitrary, drawn from this generator (with fast-check's bias toward edge cases half the time). */
  draw<T>(arbitrary: fc.Arbitrary<T>): T {
    const bias = this.bool() ? undefined : this.pick([2, 5, 20]);
    return arbitrary.generate(new fc.Random(this.fork()), bias).value;
  }
}
