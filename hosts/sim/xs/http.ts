/**
 * The Http port over the simulator's bridge: the host makes the request with Node's http/https.
 * A body chunk the host has at hand comes back with the read; otherwise the read answers
 * "pending" and the chunk arrives later as an event, as Moddable's HTTP client calls back when
 * data is readable, so the firmware is idle (and other events run) while the network is slow.
 */
import type { Http, HttpRequest, HttpResponse } from "../../../modules/ports/http.ts";
import { OtaError, type OtaErrorCode } from "../../../modules/errors.ts";
import { call, onEvent } from "./bridge.ts";

interface Waiting {
  resolve(chunk: Uint8Array | undefined): void;
  reject(error: Error): void;
}

const waiting = new Map<number, Waiting>();

onEvent("http.data", (event, bytes) => {
  const id = event.id as number;
  const w = waiting.get(id);
  waiting.delete(id);
  if (!w) return;
  const error = event.error as { code: OtaErrorCode; message: string } | undefined;
  if (error) w.reject(new OtaError(error.code, error.message));
  else w.resolve(event.end ? undefined : bytes);
});

export class BridgedHttp implements Http {
  async request(request: HttpRequest): Promise<HttpResponse> {
    // A body travels as the call's bytes: JSON would spell a Uint8Array out as an object.
    const { body, ...head } = request;
    const { json } = body === undefined ? call("http.request", { request: head }) : call("http.request", { request: head, body: true }, body);
    const id = json.id as number;
    let closed = false;
    return {
      status: json.status as number,
      headers: json.headers as Record<string, string>,
      async read() {
        if (closed) return undefined;
        const reply = call("http.read", { id });
        if (reply.json.pending) return new Promise<Uint8Array | undefined>((resolve, reject) => waiting.set(id, { resolve, reject }));
        return reply.json.end ? undefined : reply.bytes;
      },
      close() {
        if (closed) return;
        closed = true;
        waiting.delete(id);
        call("http.close", { id });
      },
    };
  }
}
