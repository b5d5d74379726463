/** The network bridge, test-process side: serves the XS side's calls with the desktop host's ports. */
import type { Http, HttpResponse } from "../../modules/ports/http.ts";
import type { Mqtt, QoS } from "../../modules/ports/mqtt.ts";
import { OtaError } from "../../modules/errors.ts";
import { framedHostCall, type Reply } from "../../hosts/sim/bridge-host.ts";
import type { HostCall } from "../../hosts/sim/xsnap.ts";

export function bridgeHost(ports: { http: Http; mqtt?: Mqtt }): HostCall {
  const { http, mqtt } = ports;
  const open = new Map<number, HttpResponse>();
  let next = 1;
  // Messages for XS wait here until it polls.
  const inbox: { topic: string; payload: Uint8Array }[] = [];
  let arrived: (() => void) | undefined;
  mqtt?.onMessage((topic, payload) => {
    inbox.push({ topic, payload });
    arrived?.();
  });
  const reply = (json: Record<string, unknown>, bytes?: Uint8Array): Reply => ({ json, bytes });
  return framedHostCall(async (json, body) => {
    switch (json.op) {
      case "http.request": {
        const request = json.request as Parameters<Http["request"]>[0];
        // A request body comes as the call's bytes (JSON cannot carry a Uint8Array).
        const response = await http.request(json.body === true ? { ...request, body: body.slice() } : request);
        const id = next++;
        open.set(id, response);
        return reply({ id, status: response.status, headers: response.headers });
      }
      case "http.read": {
        const chunk = await open.get(json.id as number)?.read();
        return chunk === undefined ? reply({ end: true }) : reply({}, chunk);
      }
      case "http.close":
        open.get(json.id as number)?.close();
        open.delete(json.id as number);
        return reply({});
      case "mqtt.subscribe":
        await needMqtt().subscribe(json.topic as string, json.qos as QoS);
        return reply({});
      case "mqtt.publish":
        await needMqtt().publish(json.topic as string, body.slice(), json.qos as QoS);
        return reply({});
      case "mqtt.poll": {
        if (inbox.length === 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Number(json.wait) || 0);
            arrived = () => (clearTimeout(timer), resolve());
          });
          arrived = undefined;
        }
        const batch = inbox.splice(0);
        const bytes = new Uint8Array(batch.reduce((n, m) => n + m.payload.length, 0));
        let at = 0;
        for (const m of batch) {
          bytes.set(m.payload, at);
          at += m.payload.length;
        }
        return reply({ events: batch.map((m) => ({ kind: "mqtt.message", topic: m.topic, length: m.payload.length })) }, bytes);
      }
      default:
        throw new OtaError("bad-argument", `unknown bridge call ${String(json.op)}`);
    }
  });

  function needMqtt(): Mqtt {
    if (!mqtt) throw new Error("this suite's environment has no MQTT connection");
    return mqtt;
  }
}
