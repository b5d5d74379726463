/**
 * The network bridge, XS side: ports whose work happens in the test process. Each call is one
 * `issueCommand` (XS waits for the answer), framed as a u32 length, a JSON header, then raw bytes.
 * Runs inside XS only (uses its `issueCommand` global).
 */
import type { Http, HttpRequest, HttpResponse } from "../../modules/ports/http.ts";
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
