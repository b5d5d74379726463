/** The AWS MQTT stream client: window, order, duplicates, hostile services, silence, resume. */
import { suite } from "./harness.ts";
import { bytesEqual, equal, ok, rejectsCode, throwsCode } from "./assert.ts";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { BlockWriter } from "../../modules/storage/block-writer.ts";
import { StreamDownload, type StreamOptions } from "../../modules/aws/stream.ts";
import { fullBitmap, type BlockState as StreamState } from "../../modules/transfer/blocks.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { MemoryStateStore } from "../../hosts/sim/state-store.ts";
import { FakeStreamBroker, type ServiceHooks } from "./fake-streams.ts";
import { ManualClock, drive } from "./manual-clock.ts";
import { pattern } from "./pattern.ts";

const FILE = pattern(70_001, 42);

interface Run {
  broker: FakeStreamBroker;
  slot: NorFlash;
  clock: ManualClock;
  client: StreamDownload;
  digest: ReturnType<typeof nobleDigests.create>;
  states: StreamState[];
  promise: Promise<unknown>;
}

function start(hooks: ServiceHooks = {}, options: Partial<StreamOptions> = {}, slot = new NorFlash({ size: 96 * 1024, strict: true }), file = FILE): Run {
  const broker = new FakeStreamBroker(file, 3, hooks);
  const clock = new ManualClock();
  const digest = nobleDigests.create("sha256");
  const states: StreamState[] = [];
  const writer = new BlockWriter(slot, file.length, options.resume?.erasedTo ?? 0);
  const client = new StreamDownload({
    mqtt: broker, clock, thing: "dev-1", stream: "AFR_OTA-1", fileId: 3, size: file.length, writer, digests: [digest],
    blockSize: 1024, window: 2, requestTimeout: 5000, maxRetries: 3, persist: (s) => states.push({ ...s, bitmap: s.bitmap.slice() }), ...options,
  });
  broker.onMessage((topic, payload) => client.handle(topic, payload));
  return { broker, slot, clock, client, digest, states, promise: client.start() };
}

async function completes(run: Run, file = FILE): Promise<void> {
  await drive(run.promise, run.clock);
  bytesEqual(new Uint8Array(run.slot.read(file.length, 0)), file, "slot holds the file");
  bytesEqual(run.digest.finish(), nobleSha256(file), "digest of the file, in order");
}

export default suite("mqtt streams", (test) => {
  test("streams a file at several block sizes and windows; the last block is short", async () => {
    for (const [blockSize, window] of [[256, 1], [1024, 2], [4096, 4], [65536, 2]]) {
      const run = start({}, { blockSize, window, blocksPerRequest: 8 });
      await completes(run);
      const blocks = Math.ceil(FILE.length / blockSize);
      equal(run.broker.requests.reduce((n, r) => n + r.n, 0), blocks, `blocks requested at ${blockSize}`);
    }
  });

  test("subscribes to the data and rejected topics of its thing and stream", async () => {
    const run = start();
    await completes(run);
    equal(run.broker.subscriptions.join(), "$aws/things/dev-1/streams/AFR_OTA-1/data/cbor,$aws/things/dev-1/streams/AFR_OTA-1/rejected/cbor");
  });

  test("keeps several requests in flight, each within the service's 128 KB", async () => {
    const big = pattern(600_000, 7);
    const run = start({}, { blockSize: 32768, blocksPerRequest: 10, window: 3 }, new NorFlash({ size: 640 * 1024, strict: true }), big);
    let beforeFirstBlock = -1;
    run.broker.onMessage((topic, payload) => {
      if (beforeFirstBlock < 0) beforeFirstBlock = run.broker.requests.length;
      run.client.handle(topic, payload);
    });
    await completes(run, big);
    equal(beforeFirstBlock, 3, "three requests out before the first block came back");
    ok(run.broker.requests.every((r) => r.n * r.l <= 128 * 1024), "no request over 128 KB");
    ok(run.broker.requests.length >= Math.ceil(big.length / (128 * 1024)), "split into several requests");
  });

  test("blocks out of order reach the right place and hash in file order", async () => {
    const run = start({ reverse: true }, { window: 3, blocksPerRequest: 16 });
    await completes(run);
  });

  test("a block received twice is written once and counted as duplicate", async () => {
    const run = start({ copies: 2 });
    await completes(run);
    const result = (await run.promise) as { duplicates: number; blocks: number };
    equal(result.blocks, Math.ceil(FILE.length / 1024));
    // the last block's second copy arrives after the end, when nobody counts any more
    ok(result.duplicates >= result.blocks - 1, "duplicates ignored");
  });

  test("a block for another file id ends the transfer with the reason", async () => {
    const run = start({ block: (m) => ({ ...m, f: 9 }) });
    await rejectsCode(() => drive(run.promise, run.clock), "stream-protocol", "file 9");
  });

  test("an index outside the file, and a wrong length, are refused", async () => {
    const far = start({ block: (m) => ({ ...m, i: 5000 }) });
    await rejectsCode(() => drive(far.promise, far.clock), "stream-protocol", "outside");
    const negative = start({ block: (m) => ({ ...m, i: -1 }) });
    await rejectsCode(() => drive(negative.promise, negative.clock), "stream-protocol", "outside");
    const short = start({ block: (m) => ({ ...m, p: (m["p"] as Uint8Array).subarray(1) }) });
    await rejectsCode(() => drive(short.promise, short.clock), "stream-protocol", "expected 1024");
  });

  test("malformed CBOR, and CBOR that is not the data message, are refused", async () => {
    const junk = start({ block: () => new Uint8Array([0xbf, 0x61]) });
    await rejectsCode(() => drive(junk.promise, junk.clock), "stream-protocol", "undecodable");
    const text = start({ block: () => "hello" });
    await rejectsCode(() => drive(text.promise, text.clock), "stream-protocol", "map");
    const missing = start({ block: (m) => ({ f: m["f"], i: m["i"] }) });
    await rejectsCode(() => drive(missing.promise, missing.clock), "stream-protocol", "byte string p");
  });

  test("a refusal from the service ends the transfer with its code", async () => {
    const run = start({ reject: { code: "ResourceNotFound", message: "No stream AFR_OTA-1" } });
    await rejectsCode(() => drive(run.promise, run.clock), "stream-rejected", "ResourceNotFound");
  });

  test("a refusal carrying another download's client token is not ours", async () => {
    const run = start({ reject: { code: "ResourceNotFound", message: "old request", token: "someone-else" } });
    await rejectsCode(() => drive(run.promise, run.clock), "no-progress", "quiet");
  });

  test("bad messages among good ones are refused and counted, and the file completes", async () => {
    let n = 0;
    const run = start({ block: (m) => (n++ < 5 ? { ...m, f: 8 } : m) });
    await completes(run);
    const result = (await run.promise) as { refused: number };
    equal(result.refused, 5, "refused");
  });

  test("a service that goes quiet is asked again, then given up on", async () => {
    const run = start({ answer: () => false });
    await rejectsCode(() => drive(run.promise, run.clock), "no-progress", "quiet");
    ok(run.broker.requests.length >= 4, "asked again before giving up");
  });

  test("a service that trickles (one block per request, just before the timeout) meets the rate floor", async () => {
    // Every re-ask brings a block, so the quiet count never runs out: 2 blocks per 5 s is far
    // below a floor of 1 KB/s over 20 s.
    let first = false;
    const trickle: ServiceHooks = {
      answer: () => (first = true),
      block: (m) => {
        if (!first) return undefined;
        first = false;
        return m;
      },
    };
    const run = start(trickle, { rate: { minRate: 1024, window: 20_000 } });
    await rejectsCode(() => drive(run.promise, run.clock), "too-slow", "below the floor of 1024 bytes/s");
    ok(run.states.length >= 4, `blocks kept arriving (${run.states.length})`);
  });

  test("a request lost once is asked again and the file completes", async () => {
    const run = start({ answer: (_r, index) => index !== 0 });
    await completes(run);
    ok(run.clock.fired >= 1, "the request timer fired");
    equal(run.broker.requests[0].o, run.broker.requests.find((r, i) => i > 0 && r.o === 0)?.o, "the lost range was asked again");
  });

  test("requests that cannot be sent while the broker is away are asked again, and the file completes", async () => {
    // The first window's publishes fail as they do while the session is down (a cloud restart).
    const run = start({ offline: (index) => index < 2 });
    await completes(run);
    ok(run.clock.fired >= 1, "the request timers asked again");
    equal(run.broker.requests.filter((r) => r.o === 0).length, 2, "block 0's range asked twice");
  });

  test("a broker that never comes back ends the transfer as a quiet stream does", async () => {
    const run = start({ offline: () => true });
    await rejectsCode(() => drive(run.promise, run.clock), "no-progress", "quiet");
  });

  test("resumes after a reboot with the persisted bitmap, asking only for what is missing", async () => {
    const slot = new NorFlash({ size: 96 * 1024, strict: true });
    let count = 0;
    const first = start({ block: (m) => (count++ < 30 ? m : undefined) }, {}, slot);
    await rejectsCode(() => drive(first.promise, first.clock), "no-progress");
    const saved = first.states[first.states.length - 1];
    ok(saved !== undefined, "state was persisted");
    const store = new MemoryStateStore();
    store.set("ota.bitmap", saved.bitmap);
    const second = start({}, { resume: { bitmap: store.get("ota.bitmap")!, erasedTo: saved.erasedTo } }, slot);
    await completes(second);
    const asked = second.broker.requests.reduce((n, r) => n + r.n, 0);
    equal(asked, Math.ceil(FILE.length / 1024) - 30, "only the missing blocks");
  });

  test("cancel stops the transfer; later messages are ignored", async () => {
    const run = start({ answer: () => false });
    run.client.cancel();
    await rejectsCode(() => drive(run.promise, run.clock), "cancelled");
    equal(run.client.handle("$aws/things/dev-1/streams/AFR_OTA-1/data/cbor", new Uint8Array([0xa0])), true);
  });

  test("options outside the protocol's limits are refused", () => {
    const writer = new BlockWriter(new NorFlash({ size: 96 * 1024 }), FILE.length);
    const base = { mqtt: new FakeStreamBroker(FILE, 3), clock: new ManualClock(), thing: "t", stream: "s", fileId: 3, size: FILE.length, writer, digests: [], blockSize: 1024 };
    throwsCode(() => new StreamDownload({ ...base, blockSize: 255 }), "bad-argument", "block size");
    throwsCode(() => new StreamDownload({ ...base, blockSize: 128 * 1024 + 1 }), "bad-argument", "block size");
    throwsCode(() => new StreamDownload({ ...base, resume: { bitmap: new Uint8Array(3), erasedTo: 0 } }), "bad-argument", "bitmap");
    throwsCode(() => new StreamDownload({ ...base, resume: { bitmap: fullBitmap(100), erasedTo: 0 }, blockSize: 1024 }), "bad-argument", "bitmap");
  });

  test("the resume state of a 4 MB image at 1 KB blocks fits a Preference value", () => {
    equal(fullBitmap(4096).length, 512);
    new MemoryStateStore().set("ota.bitmap", fullBitmap(4 * 1024 * 1024 / 1024));
  });
});
