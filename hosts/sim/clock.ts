/** The desktop Clock: Node's monotonic clock and timers. */
import type { Clock, TimerId } from "../../modules/ports/clock.ts";

export class NodeClock implements Clock {
  readonly #timers = new Map<number, NodeJS.Timeout>();
  #next = 1;

  now(): number {
    return performance.now();
  }

  wallTime(): number | undefined {
    return Date.now();
  }

  setTimer(ms: number, callback: () => void): TimerId {
    const id = this.#next++;
    this.#timers.set(
      id,
      setTimeout(() => {
        this.#timers.delete(id);
        callback();
      }, Math.max(0, ms)),
    );
    return id;
  }

  clearTimer(id: TimerId): void {
    clearTimeout(this.#timers.get(id));
    this.#timers.delete(id);
  }
}
