/**
 * What a suite needs from the engine it runs on, set before its cases run: on Node the desktop
 * host's ports, on XS ports bridged to the test process (test/xs/bridge.ts). Portable.
 */
import type { Clock } from "../../modules/ports/clock.ts";
import type { Http } from "../../modules/ports/http.ts";
import type { Mqtt } from "../../modules/ports/mqtt.ts";

export interface SuiteEnv {
  http: Http;
  /** A connection to the test's broker, when the suite needs one. */
  mqtt?: Mqtt;
  /** The clock transfers use: real time on Node, a manual one on XS (see `settle`). */
  clock?: Clock;
  /** Waits for a transfer, moving whatever must move meanwhile (bridged messages, timers). */
  settle?<T>(promise: Promise<T>): Promise<T>;
  /** Settings from the test process: server URLs, CA PEM, file digests... */
  config: Record<string, unknown>;
}

const KEY = "__xsotaSuiteEnv";

export function setSuiteEnv(env: SuiteEnv): void {
  (globalThis as Record<string, unknown>)[KEY] = env;
}

export function suiteEnv(): SuiteEnv {
  const env = (globalThis as Record<string, unknown>)[KEY] as SuiteEnv | undefined;
  if (!env) throw new Error("this suite needs an environment: register it with contract(..., { env })");
  return env;
}

/**
 * One macrotask turn: every promise job queued before it has run. Node's setImmediate, or on the
 * device-faithful XS its engine's (test code only: a Moddable app has no setImmediate).
 */
export function nextTurn(): Promise<void> {
  const g = globalThis as { setImmediate?: (callback: () => void) => unknown; xsnap?: { setImmediate(callback: () => void): void } };
  const later = g.setImmediate ?? g.xsnap?.setImmediate;
  if (!later) throw new Error("this engine offers no macrotask turn to the test harness");
  return new Promise<void>((resolve) => {
    later(resolve);
  });
}
