/**
 * Clock: time and timers. The agent never calls setTimeout itself, so tests drive time by hand
 * and the device uses Moddable's Timer.
 *
 * Contract:
 * - `now()` is monotonic milliseconds from an arbitrary origin; it never goes backwards.
 * - `wallTime()` is milliseconds since 1970 when the host knows it (SNTP), otherwise undefined.
 * - `setTimer(ms, callback)` calls back once, no earlier than `ms` after the call, never from
 *   inside `setTimer` itself; `clearTimer` of a fired or cleared timer does nothing.
 */
export type TimerId = number;

export interface Clock {
  now(): number;
  wallTime(): number | undefined;
  setTimer(ms: number, callback: () => void): TimerId;
  clearTimer(id: TimerId): void;
}
