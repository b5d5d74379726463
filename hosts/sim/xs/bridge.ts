/**
 * The simulator's bridge, XS side. Firmware runs in an xsnap worker; whatever a chip would do in
 * hardware (flash, radio, timers, crypto accelerator, NVS) the Node process does for it. Each call
 * is one `issueCommand` (XS waits for the answer, as a blocking driver call would), framed as a
 * u32 length, a JSON header, then raw bytes.
 *
 * Bytes travel without a copy in JavaScript, as they would to a native driver (XS meters a
 * copy at 2 per byte, which would swamp what the agent itself costs): a call's bytes go in a
 * second message, the whole buffer they view, and a reply's bytes come back in a message of
 * their own, a fresh buffer. Only small payloads ride in the frame.
 *
 * Events (timers due, MQTT messages) go the other way: the host runs `__sim.pump()` when XS is
 * idle, and pump takes them one by one and hands each to its handler, as Moddable's event
 * loop calls into JavaScript. Runs inside XS only (the engine's native `issueCommand`).
 */
import { OtaError, type OtaErrorCode } from "../../../modules/errors.ts";
import { utf8Decode, utf8Encode } from "../../../modules/codec/utf8.ts";
import { nativeLayer, type XsnapNative } from "./native.ts";

const issueCommand = (request: ArrayBuffer): ArrayBuffer => nativeLayer().issueCommand(request);

// The frames' JSON in C where the engine has it: the bridge stands for native drivers, whose
// cost must not count as the agent's (JavaScript UTF-8 triples the compute per KB of an update).
// The Node side frames too (hosts/sim/bridge-host.ts), with no native layer.
const text = (): XsnapNative | undefined => (globalThis as { xsnap?: XsnapNative }).xsnap;

function encodeJson(value: unknown): Uint8Array {
  const Encoder = text()?.TextEncoder;
  return Encoder ? new Encoder().encode(JSON.stringify(value)) : utf8Encode(JSON.stringify(value));
}

function decodeJson(bytes: Uint8Array, start: number, end: number): unknown {
  const Decoder = text()?.TextDecoder;
  return JSON.parse(Decoder ? new Decoder().decode(bytes.subarray(start, end)) : utf8Decode(bytes, start, end));
}

export interface BridgeReply {
  json: { error?: { code: OtaErrorCode; message: string }; [key: string]: unknown };
  bytes: Uint8Array;
}

export function frame(header: unknown, bytes: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = encodeJson(header);
  const out = new Uint8Array(4 + json.length + bytes.length);
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  out.set(bytes, 4 + json.length);
  return out;
}

export function unframe(message: Uint8Array): BridgeReply {
  const length = new DataView(message.buffer, message.byteOffset, message.byteLength).getUint32(0);
  const json = decodeJson(message, 4, 4 + length) as BridgeReply["json"];
  return { json, bytes: message.subarray(4 + length) };
}

/** Below this, copying into the frame is cheaper than a second message. */
export const RAW_MIN = 256;

/** One host call; an OtaError the host reports is thrown here as the same OtaError. */
export function call(op: string, args: Record<string, unknown> = {}, bytes?: Uint8Array): BridgeReply {
  // A view into a much larger buffer (a block inside a message) is still sent whole: the host cuts it.
  const raw = bytes !== undefined && bytes.byteLength >= RAW_MIN && bytes.buffer.byteLength <= 4 * bytes.byteLength + 4096;
  const header = raw ? { op, ...args, raw: { offset: bytes.byteOffset, length: bytes.byteLength } } : { op, ...args };
  let reply = unframe(new Uint8Array(issueCommand(frame(header, raw ? undefined : bytes).buffer as ArrayBuffer)));
  if (raw && reply.json.send === true) reply = unframe(new Uint8Array(issueCommand(bytes.buffer as ArrayBuffer)));
  if (typeof reply.json.raw === "number") reply = { json: reply.json, bytes: new Uint8Array(issueCommand(new ArrayBuffer(0))) };
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

/** Takes the queued events from the host, one by one, and delivers each. */
export function pump(): void {
  for (;;) {
    const { json, bytes } = call("events.next");
    if (!json.event) return;
    dispatch(json.event as BridgeEvent, bytes);
  }
}

function dispatch(event: BridgeEvent, payload: Uint8Array): void {
  try {
    handlers.get(event.kind)?.(event, payload);
  } catch (e) {
    call("system.log", { level: "error", message: `event ${event.kind}: ${e instanceof Error ? e.message : String(e)}` });
  }
}

/** Hands each event (its payload cut from `bytes`) to its handler; a throw is logged, not fatal. Returns how many. */
export function deliver(events: BridgeEvent[], bytes: Uint8Array): number {
  let at = 0;
  for (const event of events) {
    const length = event.length ?? 0;
    dispatch(event, bytes.subarray(at, at + length));
    at += length;
  }
  return events.length;
}
