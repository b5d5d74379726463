/** The tests' MQTT broker: the local cloud's embedded one (cloud/embedded-broker.ts). */
import { startEmbeddedBroker, type EmbeddedBroker } from "../../cloud/embedded-broker.ts";

export type TestBroker = EmbeddedBroker;

/** Starts a broker on 127.0.0.1, on `port` if given (e.g. to restart on the same one), else on a free port. */
export function startBroker(options: { port?: number } = {}): Promise<TestBroker> {
  return startEmbeddedBroker(options);
}
