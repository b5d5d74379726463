/**
 * The network bridge, XS side: ports whose work happens in the test process. Each call is one
 * `issueCommand` (XS waits for the answer), framed as a u32 length, a JSON header, then raw bytes.
 * Runs inside XS only (uses its `issueCommand` global).
 */
import type { Http, HttpRequest, HttpResponse } from "../../modules/ports/http.ts";
import type { Mqtt, QoS } from "../../modules/ports/mqtt.ts";
import { OtaError, type OtaErrorCode } from "../../modules/errors.ts";

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

export function call(op: string, args: Record<string, unknown>, bytes?: Uint8Array): BridgeReply {
  const request = frame({ op, ...args }, bytes);
  const reply = unframe(new Uint8Array(issueCommand(request.buffer as ArrayBuffer)));
  if (reply.json.error) throw new OtaError(reply.json.error.code, reply.json.error.message);
  if (typeof reply.json.hostError === "string") throw new Error(`bridge: ${reply.json.hostError}`);
  return reply;
}

export class BridgedHttp implements Http {
  async request(request: HttpRequest): Promise<HttpResponse> {
    const { json } = call("http.request", { request });
    const id = json.id as number;
    let closed = false;
    return {
      status: json.status as number,
      headers: json.headers as Record<string, string>,
      async read() {
        if (closed) return undefined;
        const reply = call("http.read", { id });
        return reply.json.end ? undefined : reply.bytes.slice();
      },
      close() {
        if (closed) return;
        closed = true;
        call("http.close", { id });
      },
    };
  }
}

/**
 * An MQTT connection held by the test process. Messages for it wait there until XS polls:
 * `poll(wait)` blocks XS up to `wait` ms for the first one and delivers all that came.
 */
export class BridgedMqtt implements Mqtt {
  readonly #handlers: ((topic: string, payload: Uint8Array) => void)[] = [];

  async subscribe(topic: string, qos: QoS): Promise<void> {
    call("mqtt.subscribe", { topic, qos });
  }

  async publish(topic: string, payload: Uint8Array | string, qos: QoS): Promise<void> {
    const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    call("mqtt.publish", { topic, qos }, bytes);
  }

  onMessage(handler: (topic: string, payload: Uint8Array) => void): void {
    this.#handlers.push(handler);
  }

  onConnectionChange(): void {}

  poll(wait: number): number {
    const { json, bytes } = call("mqtt.poll", { wait });
    const messages = json.messages as { topic: string; length: number }[];
    let at = 0;
    for (const m of messages) {
      const payload = bytes.slice(at, at + m.length);
      at += m.length;
      for (const h of this.#handlers) h(m.topic, payload);
    }
    return messages.length;
  }
}
