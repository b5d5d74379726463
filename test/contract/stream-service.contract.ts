/**
 * The stream client over a real MQTT broker (aedes) against the local cloud's AWS stream service
 * (cloud/aws-streams.ts, which decodes with an independent CBOR library and refuses the way AWS
 * really does). On XS the MQTT connection is bridged to the test process. Hostile behaviour is
 * chosen by stream id; the test file sets the service up.
 */
import { suite } from "./harness.ts";
import { bytesEqual, ok, rejectsCode } from "./assert.ts";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { BlockWriter } from "../../modules/storage/block-writer.ts";
import { StreamDownload, type StreamOptions, type StreamResult } from "../../modules/aws/stream.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { suiteEnv } from "./env.ts";
import { pattern } from "./pattern.ts";

export const STREAM_FILE_SIZE = 150_001;
export const STREAM_FILE_SEED = 9;
export const THING = "dev-7";
const file = () => pattern(STREAM_FILE_SIZE, STREAM_FILE_SEED);

async function fetchStream(stream: string, options: Partial<StreamOptions> = {}): Promise<StreamResult> {
  const env = suiteEnv();
  if (!env.mqtt || !env.clock || !env.settle) throw new Error("this suite needs mqtt, clock and settle");
  const slot = new NorFlash({ size: 160 * 1024, strict: true });
  const digest = nobleDigests.create("sha256");
  const client = new StreamDownload({
    mqtt: env.mqtt, clock: env.clock, thing: THING, stream, fileId: 0, size: STREAM_FILE_SIZE,
    writer: new BlockWriter(slot, STREAM_FILE_SIZE), digests: [digest], blockSize: 4096, window: 2, requestTimeout: 400, maxRetries: 2, ...options,
  });
  env.mqtt.onMessage((topic, payload) => client.handle(topic, payload));
  const result = await env.settle(client.start());
  bytesEqual(new Uint8Array(slot.read(STREAM_FILE_SIZE, 0)), file(), "the file in flash");
  bytesEqual(digest.finish(), nobleSha256(file()), "its SHA-256, hashed in order");
  return result;
}

export default suite("aws streams over a broker", (test) => {
  test("downloads the file at 1 KB, 4 KB and 32 KB blocks", async () => {
    for (const blockSize of [1024, 4096, 32768]) await fetchStream("good", { blockSize, blocksPerRequest: 64 });
  });

  test("copes with blocks out of order and twice", async () => {
    const r = await fetchStream("reverse-dup");
    ok(r.duplicates > 0, "duplicates seen and ignored");
  });

  test("asks again when a request goes unanswered", async () => {
    const r = await fetchStream("drop-third");
    ok(r.retries > 0, "a request was asked again");
  });

  test("gives up on a silent service", async () => {
    await rejectsCode(() => fetchStream("silent"), "no-progress", "quiet");
  });

  test("reports AWS's refusal code, sent as an indefinite-length CBOR map", async () => {
    await rejectsCode(() => fetchStream("reject"), "stream-rejected", "ResourceNotFound");
  });

  test("the service refuses a file id it does not have, and the client says so", async () => {
    await rejectsCode(() => fetchStream("good", { fileId: 5 }), "stream-rejected", "ResourceNotFound");
  });

  test("hostile blocks are refused, with the reason: file id, index, length, CBOR", async () => {
    await rejectsCode(() => fetchStream("bad-file"), "stream-protocol", "file 9");
    await rejectsCode(() => fetchStream("bad-index"), "stream-protocol", "outside");
    await rejectsCode(() => fetchStream("bad-length"), "stream-protocol", "expected");
    await rejectsCode(() => fetchStream("bad-cbor"), "stream-protocol", "CBOR");
  });
});
