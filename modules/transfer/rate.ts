/**
 * A floor under a transfer's sustained rate, against servers that trickle: a few bytes just
 * before every timeout keep a download "making progress" forever, and retry budgets that count
 * attempts without progress never run out. Time is cut into windows of `window` ms from the
 * transfer's start; a window that delivers fewer than `minRate * window / 1000` bytes ends the
 * transfer with "too-slow". Checked whenever something happens (a chunk or block arrives, a
 * request is retried), so a silent link is caught by its own timeouts first.
 *
 * Bounded: two numbers of state, whatever the file size.
 */
import { OtaError } from "../errors.ts";
import type { Clock } from "../ports/clock.ts";

export interface RateFloorOptions {
  /** Bytes per second a window must average; 0 turns the floor off. */
  minRate: number;
  /** Window length in ms. */
  window: number;
}

/** The defaults: 256 bytes/s over 2 minutes (a 1.5 MB image over 2.5 kB/s NB-IoT still passes). */
export const DEFAULT_RATE_FLOOR: RateFloorOptions = Object.freeze({ minRate: 256, window: 120_000 });

export class RateFloor {
  readonly #clock: Clock;
  readonly #o: RateFloorOptions;
  #windowStart: number;
  #windowBytes: number;

  constructor(clock: Clock, options: Partial<RateFloorOptions> = {}, received = 0) {
    const o = { ...DEFAULT_RATE_FLOOR, ...options };
    if (!(Number.isFinite(o.minRate) && o.minRate >= 0)) throw new OtaError("bad-argument", `minRate must be 0 or more bytes per second, got ${o.minRate}`);
    if (!(Number.isSafeInteger(o.window) && o.window >= 1000)) throw new OtaError("bad-argument", `the rate window must be at least 1000 ms, got ${o.window}`);
    this.#clock = clock;
    this.#o = o;
    this.#windowStart = clock.now();
    this.#windowBytes = received;
  }

  /** `received`: the transfer's bytes so far. Throws OtaError "too-slow" when a window fell short. */
  check(received: number): void {
    if (this.#o.minRate === 0) return;
    const now = this.#clock.now();
    const elapsed = now - this.#windowStart;
    if (elapsed < this.#o.window) return;
    const got = received - this.#windowBytes;
    const floor = (this.#o.minRate * elapsed) / 1000;
    if (got < floor) {
      throw new OtaError("too-slow", `${got} bytes in the last ${Math.round(elapsed / 1000)} s: below the floor of ${this.#o.minRate} bytes/s (${received} bytes in all)`);
    }
    this.#windowStart = now;
    this.#windowBytes = received;
  }
}
