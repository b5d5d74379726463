/** Runs inside XS: the suite environment with bridged ports. */
import { setSuiteEnv } from "../contract/env.ts";
import { BridgedHttp } from "./bridge.ts";

export function setup(config: Record<string, unknown>): void {
  setSuiteEnv({ http: new BridgedHttp(), config });
}
