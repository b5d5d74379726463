/**
 * The Mqtt port over the simulator's bridge: the host holds the device's MQTT session; messages
 * and connection changes come in as events when XS is idle.
 */
import type { Mqtt, QoS } from "../../../modules/ports/mqtt.ts";
import { utf8Encode } from "../../../modules/codec/utf8.ts";
import { call, onEvent } from "./bridge.ts";

export class BridgedMqtt implements Mqtt {
  readonly #messages: ((topic: string, payload: Uint8Array) => void)[] = [];
  readonly #changes: ((connected: boolean) => void)[] = [];

  constructor() {
    onEvent("mqtt.message", (event, payload) => {
      for (const h of this.#messages) h(event.topic as string, payload);
    });
    onEvent("mqtt.connection", (event) => {
      for (const h of this.#changes) h(event.connected === true);
    });
  }

  async subscribe(topic: string, qos: QoS): Promise<void> {
    call("mqtt.subscribe", { topic, qos });
  }

  async publish(topic: string, payload: Uint8Array | string, qos: QoS): Promise<void> {
    const bytes = typeof payload === "string" ? utf8Encode(payload) : payload;
    call("mqtt.publish", { topic, qos }, bytes);
  }

  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.#messages.push(handler);
  }

  onConnectionChange(handler: (connected: boolean) => void): void {
    this.#changes.push(handler);
  }
}
