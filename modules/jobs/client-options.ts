/** Request settings the cloud protocol clients share, checked once. */
import type { QoS } from "../ports/mqtt.ts";
import { OtaError } from "../errors.ts";

export function requestSettings(o: { timeoutMs?: number; qos?: QoS }): { timeoutMs: number; qos: QoS } {
  const timeoutMs = o.timeoutMs ?? 10_000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new OtaError("bad-argument", "timeoutMs must be a positive number");
  const qos = o.qos ?? 1;
  if (qos !== 0 && qos !== 1) throw new OtaError("bad-argument", "qos must be 0 or 1");
  return { timeoutMs, qos };
}
