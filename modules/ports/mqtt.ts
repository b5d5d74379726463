/**
 * Mqtt: one MQTT 3.1.1 session to the cloud's broker (AWS IoT, EnOS), opened by the host with
 * the device's credentials.
 *
 * Contract:
 * - `subscribe(topic, qos)` and `publish(topic, payload, qos)` resolve once the broker
 *   acknowledged (SUBACK / PUBACK for QoS 1; at once for QoS 0) and reject with OtaError
 *   "bad-argument" for topics MQTT forbids. While disconnected they reject.
 * - `onMessage` receives every message on a subscribed topic, payload as bytes, in arrival order,
 *   and every message the broker sends unasked (AWS IoT Core answers Jobs and stream requests on
 *   reserved topics whether or not the device subscribed to them): never filter by subscription.
 * - `onConnectionChange(true|false)` reports each connect and drop; after a reconnect the
 *   host has restored the subscriptions (clean session false) or the agent subscribes again.
 */
export type QoS = 0 | 1;

export interface Mqtt {
  subscribe(topic: string, qos: QoS): Promise<void>;
  publish(topic: string, payload: Uint8Array | string, qos: QoS): Promise<void>;
  onMessage(handler: (topic: string, payload: Uint8Array) => void): void;
  onConnectionChange(handler: (connected: boolean) => void): void;
}
