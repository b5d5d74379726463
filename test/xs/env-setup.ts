/** Runs inside XS: the suite environment with bridged ports and a manual clock driven by polling. */
import { setSuiteEnv } from "../contract/env.ts";
import { ManualClock, drive } from "../contract/manual-clock.ts";
import { BridgedHttp, PolledMqtt } from "./bridge.ts";

export function setup(config: Record<string, unknown>): void {
  const mqtt = config["mqtt"] ? new PolledMqtt() : undefined;
  const clock = new ManualClock();
  setSuiteEnv({
    http: new BridgedHttp(),
    mqtt,
    clock,
    // Timers fire only when a poll of 50 ms brought no message: as if the network went quiet.
    settle: (promise) => drive(promise, clock, 100_000, mqtt ? () => mqtt.poll(50) : undefined),
    config,
  });
}
