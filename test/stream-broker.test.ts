/**
 * The device's stream client over a real MQTT broker (aedes) against the local cloud's AWS stream
 * service, which decodes with an independent CBOR library (cborg) and answers refusals the way
 * AWS really does (indefinite-length maps). Hostile behaviours come from the service's hooks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { NodeMqtt } from "../hosts/sim/mqtt.ts";
import { NorFlash } from "../hosts/sim/nor-flash.ts";
import { NodeClock } from "../hosts/sim/clock.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { BlockWriter } from "../modules/storage/block-writer.ts";
import { StreamDownload, type StreamOptions, type StreamResult } from "../modules/transfer/mqtt-stream.ts";
import { OtaError } from "../modules/errors.ts";
import { AwsStreamService, type StreamAction, type StreamRequestInfo } from "../cloud/aws-streams.ts";
import { startBroker, type TestBroker } from "./support/broker.ts";
import { pattern } from "./contract/pattern.ts";

const FILE = pattern(150_001, 9);
let broker: TestBroker;
let service: AwsStreamService;
let device: NodeMqtt;
let hook: ((r: StreamRequestInfo) => StreamAction | undefined) | undefined;

beforeAll(async () => {
  broker = await startBroker();
  service = new AwsStreamService(broker.aedes, { onRequest: (r) => hook?.(r) });
  await service.start();
  service.addStream("dev-7", "AFR_OTA-abc", [{ fileId: 0, data: FILE }]);
  device = await NodeMqtt.connect(broker.url, { clientId: "dev-7" });
});
afterAll(async () => {
  await device?.close();
  await service?.stop();
  await broker?.close();
});

async function fetchStream(options: Partial<StreamOptions> = {}): Promise<{ result: StreamResult; slot: NorFlash; sha256: string }> {
  const slot = new NorFlash({ size: 160 * 1024, strict: true });
  const digest = nodeDigests.create("sha256");
  const client = new StreamDownload({
    mqtt: device, clock: new NodeClock(), thing: "dev-7", stream: "AFR_OTA-abc", fileId: 0, size: FILE.length,
    writer: new BlockWriter(slot, FILE.length), digests: [digest], blockSize: 4096, window: 2, requestTimeout: 400, maxRetries: 2, ...options,
  });
  device.onMessage((topic, payload) => client.handle(topic, payload));
  const result = await client.start();
  return { result, slot, sha256: Buffer.from(digest.finish()).toString("hex") };
}

async function failsWith(p: Promise<unknown>, code: string, reason: RegExp): Promise<void> {
  const e = await p.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(e, "should have failed").toBeInstanceOf(OtaError);
  expect((e as OtaError).code).toBe(code);
  expect((e as OtaError).message).toMatch(reason);
}

const expected = createHash("sha256").update(FILE).digest("hex");
const exact = (slot: NorFlash) => expect(Buffer.from(slot.read(FILE.length, 0)).equals(Buffer.from(FILE))).toBe(true);

describe("AWS MQTT streams over a real broker", () => {
  it("downloads the file at 1 KB, 4 KB and 32 KB blocks", async () => {
    hook = undefined;
    for (const blockSize of [1024, 4096, 32768]) {
      const { slot, sha256 } = await fetchStream({ blockSize, blocksPerRequest: 64 });
      exact(slot);
      expect(sha256).toBe(expected);
    }
  });

  it("copes with blocks out of order and twice", async () => {
    hook = () => ({ order: (blocks) => [...blocks].reverse(), duplicate: true });
    const { slot, sha256, result } = await fetchStream();
    exact(slot);
    expect(sha256).toBe(expected);
    expect(result.duplicates).toBeGreaterThan(0);
  });

  it("asks again when a request goes unanswered", async () => {
    hook = (r) => (r.index % 3 === 0 ? { drop: true } : undefined);
    const { slot, result } = await fetchStream();
    exact(slot);
    expect(result.retries).toBeGreaterThan(0);
  });

  it("gives up on a silent service with no-progress", async () => {
    hook = () => ({ drop: true });
    await failsWith(fetchStream(), "no-progress", /quiet/);
  });

  it("reports AWS's refusal code (sent as an indefinite-length CBOR map)", async () => {
    hook = () => ({ reject: { code: "ResourceNotFound", message: "no such file" } });
    await failsWith(fetchStream(), "stream-rejected", /ResourceNotFound/);
  });

  it("the real service refuses a file id it does not have, and the client says so", async () => {
    hook = undefined;
    await failsWith(fetchStream({ fileId: 5 }), "stream-rejected", /ResourceNotFound/);
  });

  it("refuses hostile blocks: wrong file id, index out of range, wrong length, malformed CBOR", async () => {
    const cases: [StreamAction, RegExp][] = [
      [{ mutate: (m) => ({ ...m, f: 9 }) }, /file 9/],
      [{ mutate: (m) => ({ ...m, i: 99_999 }) }, /outside/],
      [{ mutate: (m) => ({ ...m, p: (m["p"] as Uint8Array).subarray(3) }) }, /expected/],
      [{ raw: new Uint8Array([0xa1, 0x61]) }, /undecodable/],
    ];
    for (const [action, reason] of cases) {
      hook = () => action;
      await failsWith(fetchStream(), "stream-protocol", reason);
    }
  });
});
