/** The Http port over the simulator's bridge: the host makes the request with Node's http/https. */
import type { Http, HttpRequest, HttpResponse } from "../../../modules/ports/http.ts";
import { call } from "./bridge.ts";

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
