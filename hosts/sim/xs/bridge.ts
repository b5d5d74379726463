/**
 * The simulator's bridge, XS side. Firmware runs in an xsnap worker; whatever a chip would do in
 * hardware (flash, radio, timers, crypto accelerator, NVS) the Node process does for it. Each call
 * is one `issueCommand` (XS waits for the answer, as a blocking driver call would), framed as a
 * u32 length, a JSON header, then raw bytes.
 *
 * Events (timers due, MQTT messages) go the other way: the host runs `__sim.pump()` when XS is
 * idle, and pump takes them with one call and hands each to its handler, as Moddable's event
 * loop calls into JavaScript. Runs inside XS only (uses its `issueCommand` global).
 */
import { OtaError, type OtaErrorCode } from "../../../modules/errors.ts";

declare const issueCommand: (request: ArrayBuffer) => ArrayBuffer;

export interface BridgeReply {
  json: { error?: { code: OtaErrorCode; message: string }; [key: string]: unknown };
  bytes: Uint8Array;
}

export function frame(header: unknown, bytes: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length + bytes.length);
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  out.set(bytes, 4 + json.length);
  return out;
}

export function unframe(message: Uint8Array): BridgeReply {
  const length = new DataView(message.buffer, message.byteOffset, message.byteLength).getUint32(0);
  const json = JSON.parse(new TextDecoder().decode(message.subarray(4, 4 + length))) as BridgeReply["json"];
  return { json, bytes: message.subarray(4 + length) };
}

/** One host call; an OtaError the host reports is thrown here as the same OtaError. */
export function call(op: string, args: Record<string, unknown> = {}, bytes?: Uint8Array): BridgeReply {
  const request = frame({ op, ...args }, bytes);
  const reply = unframe(new Uint8Array(issueCommand(request.buffer as ArrayBuffer)));
  if (reply.json.error) throw new OtaError(reply.json.error.code, reply.json.error.message);
  if (typeof reply.json.hostError === "string") throw new Error(`bridge: ${reply.json.hostError}`);
  return reply;
}

/** An event as the host queues it: its kind, its fields, and `length` bytes of the payload. */
export interface BridgeEvent {
  kind: string;
  length?: number;
  [field: string]: unknown;
}

type EventHandler = (event: BridgeEvent, bytes: Uint8Array) => void;
const handlers = new Map<string, EventHandler>();

/** Registers the handler for events of `kind` (one per kind: each port owns its kind). */
export function onEvent(kind: string, handler: EventHandler): void {
  handlers.set(kind, handler);
}

/** Takes every queued event from the host and delivers it. */
export function pump(): void {
  const { json, bytes } = call("events.take");
  deliver(json.events as BridgeEvent[], bytes);
}

/** Hands each event (its payload cut from `bytes`) to its handler; a throw is logged, not fatal. Returns how many. */
export function deliver(events: BridgeEvent[], bytes: Uint8Array): number {
  let at = 0;
  for (const event of events) {
    const length = event.length ?? 0;
    const payload = bytes.slice(at, at + length);
    at += length;
    try {
      handlers.get(event.kind)?.(event, payload);
    } catch (e) {
      call("system.log", { level: "error", message: `event ${event.kind}: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  return events.length;
}
