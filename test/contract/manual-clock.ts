/**
 * A Clock whose time moves only when a test says so, and `drive`, which runs a transfer to its end:
 * it lets every pending job and I/O callback run, and only when nothing else happens fires the next
 * timer (a retry backoff, a request timeout). So silence and timeouts are tested without waiting,
 * on Node and on XS alike (both have setImmediate). Portable.
 */
import type { Clock, TimerId } from "../../modules/ports/clock.ts";
import { nextTurn } from "./env.ts";

interface Timer {
  id: number;
  at: number;
  callback: () => void;
}

export class ManualClock implements Clock {
  #now = 0;
  #next = 1;
  #timers: Timer[] = [];
  fired = 0;

  now(): number {
    return this.#now;
  }

  wallTime(): number | undefined {
    return undefined;
  }

  setTimer(ms: number, callback: () => void): TimerId {
    const id = this.#next++;
    this.#timers.push({ id, at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimer(id: TimerId): void {
    this.#timers = this.#timers.filter((t) => t.id !== id);
  }

  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time to the earliest timer and fires it; false when none is set. */
  fireNext(): boolean {
    if (this.#timers.length === 0) return false;
    const t = this.#timers.reduce((a, b) => (b.at < a.at ? b : a));
    this.#timers = this.#timers.filter((x) => x !== t);
    this.#now = Math.max(this.#now, t.at);
    this.fired++;
    t.callback();
    return true;
  }
}

const turn = nextTurn;

/**
 * Awaits `promise`, firing the clock's timers whenever nothing else is left to run. `poll`, when
 * given, brings in outside events (bridged network messages) first and says how many came.
 */
export async function drive<T>(promise: Promise<T>, clock: ManualClock, limit = 20000, poll?: () => number): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < limit && !settled; i++) {
    await turn();
    await turn();
    if (settled) break;
    if (poll && poll() > 0) continue;
    clock.fireNext();
  }
  if (!settled) throw new Error(`drive: still running after ${limit} turns (${clock.pending} timers pending)`);
  return promise;
}

/** A Clock whose timers fire as soon as the current work yields: retry backoffs without waiting. */
export class InstantClock implements Clock {
  #now = 0;
  #next = 1;
  #cancelled = new Set<number>();
  delays: number[] = [];

  now(): number {
    return this.#now;
  }

  wallTime(): number | undefined {
    return undefined;
  }

  setTimer(ms: number, callback: () => void): TimerId {
    const id = this.#next++;
    this.delays.push(ms);
    Promise.resolve().then(() => {
      if (this.#cancelled.delete(id)) return;
      this.#now += ms;
      callback();
    });
    return id;
  }

  clearTimer(id: TimerId): void {
    this.#cancelled.add(id);
  }
}
