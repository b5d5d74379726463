/**
 * The range downloader against a deliberately hostile HTTP server (test/support/hostile-http.ts),
 * over the desktop Http host on Node and the bridged one on XS. Every case ends in the exact file
 * (checked byte for byte and by SHA-256) or in a specific error; never a wrong file.
 */
import { suite } from "./harness.ts";
import { bytesEqual, equal, ok, rejectsCode } from "./assert.ts";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { downloadRange, type DownloadOptions, type DownloadResult } from "../../modules/transfer/http-download.ts";
import { resumeImage } from "../../modules/transfer/progress.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { suiteEnv } from "./env.ts";
import { InstantClock } from "./manual-clock.ts";
import { pattern } from "./pattern.ts";

/** The file every server path serves; the test process builds the same bytes. */
export const BODY_SIZE = 300_000;
export const BODY_SEED = 77;

interface Target {
  slot: NorFlash;
  writer: ImageWriter;
  digest: ReturnType<typeof nobleDigests.create>;
}

const body = () => pattern(BODY_SIZE, BODY_SEED);
const url = (path: string, tls = false) => `${suiteEnv().config[tls ? "https" : "http"] as string}${path}`;

function target(): Target {
  const slot = new NorFlash({ size: 320 * 1024, strict: true });
  return { slot, writer: new ImageWriter(slot, BODY_SIZE), digest: nobleDigests.create("sha256") };
}

function get(path: string, t: Target, extra: Partial<DownloadOptions> = {}): Promise<DownloadResult> {
  return downloadRange({
    http: suiteEnv().http,
    clock: new InstantClock(),
    url: url(path),
    size: BODY_SIZE,
    timeout: 2000,
    retries: 3,
    sink: (chunk, at) => {
      t.writer.write(chunk, at);
      t.digest.update(chunk);
    },
    ...extra,
  });
}

function exact(t: Target): void {
  t.writer.finish();
  bytesEqual(new Uint8Array(t.slot.read(BODY_SIZE, 0)), body(), "the file, byte for byte");
  bytesEqual(t.digest.finish(), nobleSha256(body()), "its SHA-256");
}

export default suite("http range downloader", (test) => {
  test("whole file in one open-ended request", async () => {
    const t = target();
    const r = await get("/good/fw.bin", t);
    exact(t);
    equal(r.requests, 1, "requests");
  });

  test("fixed 64 KB windows", async () => {
    const t = target();
    const r = await get("/good/fw.bin", t, { window: 65536 });
    exact(t);
    equal(r.requests, Math.ceil(BODY_SIZE / 65536), "one request per window");
  });

  test("unknown size is learned from the first response and held to", async () => {
    const t = target();
    let learned = 0;
    const r = await get("/good/fw.bin", t, { size: undefined, window: 100_000, onSize: (s) => (learned = s) });
    exact(t);
    equal(learned, BODY_SIZE);
    equal(r.requests, 3, "windowed from the first request");
    const u = target();
    await get("/good/fw.bin", u, { size: undefined, window: 1_000_000 });
    exact(u);
  });

  test("resumes after a reboot from the recorded offset, keeping what flash holds", async () => {
    const t = target();
    const first = body().subarray(0, 123_457);
    t.writer.write(first);
    t.digest.update(first);
    const slot = t.slot;
    const digest = nobleDigests.create("sha256");
    const writer = resumeImage(slot, BODY_SIZE, 123_457, [digest]);
    const resumed: Target = { slot, writer, digest };
    const r = await get("/good/fw.bin", resumed, { offset: writer.offset });
    exact(resumed);
    equal(r.requests, 1);
  });

  test("a server that ignores Range: fine from 0, an error on a resume", async () => {
    const t = target();
    await get("/ignore-range/fw.bin", t);
    exact(t);
    const u = target();
    u.writer.write(body().subarray(0, 1000));
    await rejectsCode(() => get("/ignore-range/fw.bin", u, { offset: 1000 }), "http-protocol", "ignored Range");
  });

  test("a wrong or missing Content-Range is refused with what is wrong", async () => {
    const cases: [string, string][] = [
      ["start", "asked for bytes"],
      ["end", "asked for bytes"],
      ["total", "the job says"],
      ["missing", "without Content-Range"],
      ["unparsable", "unparsable Content-Range"],
    ];
    for (const [mode, text] of cases) {
      await rejectsCode(() => get(`/bad-content-range/${mode}/fw.bin`, target(), { window: 65536 }), "http-protocol", text);
    }
  });

  test("a job size that differs from the server's file is refused", async () => {
    await rejectsCode(() => get("/good/fw.bin", target(), { size: BODY_SIZE + 1 }), "http-protocol", `server's file is ${BODY_SIZE} bytes`);
  });

  test("dropped connections resume from the last byte received and finish", async () => {
    const t = target();
    const r = await get("/reset-every/100000/fw.bin", t);
    exact(t);
    ok(r.failures >= 2, "retried after each reset");
  });

  test("a server that always cuts its body short: an error at last, and what arrived is right", async () => {
    // chunked/cut does not honour Range, so its resume is refused as such.
    const cases: [string, "no-progress" | "http-protocol", string][] = [
      ["/short-body/fw.bin", "no-progress", "without progress"],
      ["/chunked/cut/fw.bin", "http-protocol", "ignored Range"],
    ];
    for (const [path, code, text] of cases) {
      const t = target();
      let at = 0;
      const sink = (chunk: Uint8Array, offset: number) => {
        t.writer.write(chunk, offset);
        at = offset + chunk.length;
      };
      // How far it gets depends on whether the reset overtakes the last half in the kernel.
      await rejectsCode(() => get(path, t, { sink }), code, text);
      ok(at > 0 && at < BODY_SIZE, `${path}: got part of the file (${at} bytes)`);
      bytesEqual(new Uint8Array(t.slot.read(at, 0)), body().subarray(0, at), `${path}: what arrived is the file's start`);
    }
  });

  test("a server that trickles (4 KB, then a cut, again and again) meets the rate floor; without one it finishes", async () => {
    // Each attempt makes progress, so the retry budget alone would never end it: 4 KB per
    // second of the (virtual) backoff is below a floor of 8 KB/s over 5 s.
    const slow = target();
    await rejectsCode(() => get("/trickle/4096/fw.bin", slow, { retries: 3, rate: { minRate: 8192, window: 5000 } }), "too-slow", "below the floor of 8192 bytes/s");
    const off = target();
    await get("/trickle/4096/fw.bin", off, { retries: 3, rate: { minRate: 0 } });
    exact(off);
  });

  test("a body longer than Content-Length never reaches the file", async () => {
    const t = target();
    await get("/long-body/fw.bin", t, { window: 65536 });
    exact(t);
  });

  test("chunked encoding, with and without Range", async () => {
    const t = target();
    await get("/chunked/range/fw.bin", t, { window: 100_000 });
    exact(t);
    const u = target();
    await get("/chunked/no-range/fw.bin", u);
    exact(u);
  });

  test("a server that stalls: retried, then given up on with the reason", async () => {
    await rejectsCode(() => get("/stall/fw.bin", target(), { timeout: 150, retries: 1 }), "no-progress", "nothing for 150 ms");
    const t = target();
    const r = await get("/stall-after/120000/fw.bin", t, { timeout: 150, retries: 1 });
    exact(t);
    ok(r.failures >= 2, "each stall was retried after progress");
  });

  test("403 after a while: url-refused, then a fresh URL continues from the same offset", async () => {
    const t = target();
    let at = 0;
    await rejectsCode(
      () => get(`/forbidden-after/2/${Math.floor(Math.random() * 1e9)}/fw.bin`, t, { window: 65536, sink: (chunk, offset) => (t.writer.write(chunk, offset), t.digest.update(chunk), (at = offset + chunk.length)) }),
      "url-refused",
      "HTTP 403",
    );
    equal(at, 2 * 65536, "two windows arrived before the refusal");
    await get("/good/fw.bin", t, { offset: at, window: 65536 });
    exact(t);
  });

  test("400, 403, 404 are url-refused; 410 is fatal; 500 is retried then given up", async () => {
    for (const status of [400, 403, 404]) await rejectsCode(() => get(`/status/${status}/fw.bin`, target()), "url-refused", `HTTP ${status}`);
    await rejectsCode(() => get("/status/410/fw.bin", target()), "http-status", "HTTP 410");
    await rejectsCode(() => get("/status/500/fw.bin", target(), { retries: 2 }), "no-progress", "HTTP 500");
  });

  test("redirects are followed (absolute, root and relative Locations), a few times only", async () => {
    for (const path of ["/redirect/absolute/good/fw.bin", "/redirect/root/good/fw.bin", "/redirect/dot/good/fw.bin", "/redirect-chain/5/good/fw.bin"]) {
      const t = target();
      const r = await get(path, t);
      exact(t);
      ok(r.redirects >= 1, `${path}: redirected`);
    }
    await rejectsCode(() => get("/redirect-chain/6/good/fw.bin", target()), "http-protocol", "more than 5 redirects");
    await rejectsCode(() => get("/redirect-loop/fw.bin", target()), "http-protocol", "redirects");
  });

  test("https with the device's CA; never redirected down to http; untrusted server refused", async () => {
    const ca = suiteEnv().config["ca"] as string;
    const t = target();
    await get("", t, { url: url("/good/fw.bin", true), ca });
    exact(t);
    await rejectsCode(() => get("", target(), { url: url("/redirect-to-http/good/fw.bin", true), ca }), "http-protocol", "https to http");
    await rejectsCode(() => get("", target(), { url: url("/good/fw.bin", true), retries: 1 }), "no-progress", "GET");
  });

  test("cancelled between chunks", async () => {
    let calls = 0;
    await rejectsCode(() => get("/good/fw.bin", target(), { cancelled: () => ++calls > 3 }), "cancelled");
  });

  test("arguments outside the contract are refused before any request", async () => {
    await rejectsCode(() => get("/good/fw.bin", target(), { size: 0 }), "bad-argument");
    await rejectsCode(() => get("/good/fw.bin", target(), { offset: BODY_SIZE + 1 }), "bad-argument", "offset");
    await rejectsCode(() => get("/good/fw.bin", target(), { window: -1 }), "bad-argument", "window");
    await rejectsCode(() => get("", target(), { url: "ftp://example.com/fw.bin" }), "bad-argument", "http");
  });
});
