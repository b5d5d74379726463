/** The stream client over aedes against the local AWS stream service, on Node and (bridged) on XS. */
import { afterAll, beforeAll } from "vitest";
import { contract } from "./contract/vitest.ts";
import streams, { STREAM_FILE_SEED, STREAM_FILE_SIZE, THING } from "./contract/stream-service.contract.ts";
import { pattern } from "./contract/pattern.ts";
import { AwsStreamService, type StreamAction, type StreamRequestInfo } from "../cloud/aws-streams.ts";
import { NodeMqtt } from "../hosts/sim/mqtt.ts";
import { NodeHttp } from "../hosts/sim/http.ts";
import { NodeClock } from "../hosts/sim/clock.ts";
import { startBroker, type TestBroker } from "./support/broker.ts";

const behaviours: Record<string, (r: StreamRequestInfo) => StreamAction | undefined> = {
  good: () => undefined,
  "reverse-dup": () => ({ order: (blocks) => [...blocks].reverse(), duplicate: true }),
  "drop-third": (r) => (r.index % 3 === 0 ? { drop: true } : undefined),
  silent: () => ({ drop: true }),
  reject: () => ({ reject: { code: "ResourceNotFound", message: "no such file" } }),
  "bad-file": () => ({ mutate: (m) => ({ ...m, f: 9 }) }),
  "bad-index": () => ({ mutate: (m) => ({ ...m, i: 99_999 }) }),
  "bad-length": () => ({ mutate: (m) => ({ ...m, p: (m["p"] as Uint8Array).subarray(3) }) }),
  "bad-cbor": () => ({ raw: new Uint8Array([0xa1, 0x61]) }),
};

let broker: TestBroker;
let service: AwsStreamService;
let nodeDevice: NodeMqtt;
let xsDevice: NodeMqtt;

beforeAll(async () => {
  broker = await startBroker();
  service = new AwsStreamService(broker.aedes, { onRequest: (r) => behaviours[r.streamId]?.(r) });
  await service.start();
  const data = pattern(STREAM_FILE_SIZE, STREAM_FILE_SEED);
  for (const stream of Object.keys(behaviours)) service.addStream(THING, stream, [{ fileId: 0, data }]);
  nodeDevice = await NodeMqtt.connect(broker.url, { clientId: `${THING}-node` });
  xsDevice = await NodeMqtt.connect(broker.url, { clientId: `${THING}-xs` });
});
afterAll(async () => {
  await nodeDevice?.close();
  await xsDevice?.close();
  await service?.stop();
  await broker?.close();
});

contract(streams, new URL("./contract/stream-service.contract.ts", import.meta.url), {
  env: () => ({ http: new NodeHttp(), mqtt: nodeDevice, clock: new NodeClock(), settle: (p) => p, config: {} }),
  xsEnv: () => ({ http: new NodeHttp(), mqtt: xsDevice, config: {} }),
});
