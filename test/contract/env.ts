/**
 * What a suite needs from the engine it runs on, set before its cases run: on Node the desktop
 * host's ports, on XS ports bridged to the test process (test/xs/bridge.ts). Portable.
 */
import type { Http } from "../../modules/ports/http.ts";

export interface SuiteEnv {
  http: Http;
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
