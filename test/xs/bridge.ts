/**
 * The network bridge for contract suites on XS: HTTP as the simulator bridges it
 * (hosts/sim/xs/http.ts), and an MQTT connection that XS polls, so a suite's manual clock
 * decides when silence has lasted long enough. Runs inside XS only.
 */
import { call, deliver, type BridgeEvent } from "../../hosts/sim/xs/bridge.ts";
import { BridgedMqtt } from "../../hosts/sim/xs/mqtt.ts";

export { frame, unframe, call, type BridgeReply } from "../../hosts/sim/xs/bridge.ts";
export { BridgedHttp } from "../../hosts/sim/xs/http.ts";

/**
 * An MQTT connection held by the test process. Messages for it wait there until XS polls:
 * `poll(wait)` blocks XS up to `wait` ms for the first one and delivers all that came.
 */
export class PolledMqtt extends BridgedMqtt {
  poll(wait: number): number {
    const { json, bytes } = call("mqtt.poll", { wait });
    return deliver(json.events as BridgeEvent[], bytes);
  }
}
