/**
 * The Clock port over Moddable's `timer` and `time` modules. Timer callbacks run from
 * Moddable's event loop, never inside `setTimer`, as the port asks.
 *
 * `Time.ticks` is milliseconds from an arbitrary origin that may wrap around (it is a 32-bit
 * millisecond counter on ESP32); `Time.delta` measures across a wrap, so `now()` adds up deltas
 * and never goes backwards. `Date.now()` is wall time only after SNTP or the app set the clock:
 * before that Moddable's clock starts near 1970, so anything earlier than 2020 counts as unknown.
 */
import Timer from "timer";
import Time from "time";
import type { Clock, TimerId } from "xs-ota/ports/clock";

const EARLIEST_WALL_TIME = Date.UTC(2020, 0, 1);

export class Esp32Clock implements Clock {
  readonly #timers = new Map<TimerId, Timer>();
  #next = 1;
  #lastTicks = Time.ticks;
  #elapsed = 0;

  now(): number {
    const ticks = Time.ticks;
    this.#elapsed += Math.max(0, Time.delta(this.#lastTicks, ticks));
    this.#lastTicks = ticks;
    return this.#elapsed;
  }

  wallTime(): number | undefined {
    const now = Date.now();
    return now >= EARLIEST_WALL_TIME ? now : undefined;
  }

  setTimer(ms: number, callback: () => void): TimerId {
    const id = this.#next++;
    const timer = Timer.set(() => {
      this.#timers.delete(id);
      callback();
    }, Math.max(0, ms));
    this.#timers.set(id, timer);
    return id;
  }

  clearTimer(id: TimerId): void {
    const timer = this.#timers.get(id);
    if (!timer) return;
    this.#timers.delete(id);
    Timer.clear(timer);
  }
}
