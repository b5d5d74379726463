/** The range downloader's contract suite, on Node and on XS, against the hostile server over http and https. */
import { afterAll, beforeAll } from "vitest";
import { contract } from "./contract/vitest.ts";
import downloads, { BODY_SEED, BODY_SIZE } from "./contract/download.contract.ts";
import { pattern } from "./contract/pattern.ts";
import { startHostileServer, type HostileServer } from "./support/hostile-http.ts";
import { makeTestCa } from "./support/tls.ts";
import { NodeHttp } from "../hosts/sim/http.ts";

let http: HostileServer;
let https: HostileServer;
const ca = makeTestCa();

beforeAll(async () => {
  const body = pattern(BODY_SIZE, BODY_SEED);
  http = await startHostileServer({ body });
  https = await startHostileServer({ body, tls: ca, httpOrigin: http.origin });
});
afterAll(async () => {
  await http?.close();
  await https?.close();
});

contract(downloads, new URL("./contract/download.contract.ts", import.meta.url), {
  env: () => ({ http: new NodeHttp(), config: { http: http.origin, https: https.origin, ca: ca.ca.cert } }),
});
