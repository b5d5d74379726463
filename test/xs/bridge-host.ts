/** The network bridge, test-process side: serves the XS side's calls with the desktop host's ports. */
import type { Http, HttpResponse } from "../../modules/ports/http.ts";
import { isOtaError } from "../../modules/errors.ts";
import { frame, unframe } from "./bridge.ts";
import type { HostCall } from "./worker.ts";

export function httpBridge(http: Http): HostCall {
  const open = new Map<number, HttpResponse>();
  let next = 1;
  return async (message) => {
    const { json } = unframe(message);
    try {
      switch (json.op) {
        case "http.request": {
          const response = await http.request(json.request as Parameters<Http["request"]>[0]);
          const id = next++;
          open.set(id, response);
          return frame({ id, status: response.status, headers: response.headers });
        }
        case "http.read": {
          const chunk = await open.get(json.id as number)?.read();
          return chunk === undefined ? frame({ end: true }) : frame({}, chunk);
        }
        case "http.close":
          open.get(json.id as number)?.close();
          open.delete(json.id as number);
          return frame({});
        default:
          return frame({ error: { code: "bad-argument", message: `unknown bridge call ${String(json.op)}` } });
      }
    } catch (e) {
      if (isOtaError(e)) return frame({ error: { code: e.code, message: e.message } });
      throw e;
    }
  };
}
