/**
 * Stand-in for Moddable's "mc/config" (the manifest's `config` object): the test firmware's
 * provisioning, which the runner hands over with the board (thing, keys, broker, CAs).
 */
import { boardIdentity } from "./identity.ts";

const identity = boardIdentity();

export default {
  file: { root: "/" },
  thing: identity.thing,
  keys: identity.keys,
  ca: identity.config.ca,
  mqtt: identity.mqtt,
  // An EnOS device's provisioning: its product, secret and the HTTP broker (absent: AWS).
  enos: identity.cloud.kind === "enos" ? identity.cloud : undefined,
};
