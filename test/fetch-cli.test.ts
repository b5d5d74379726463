/**
 * `xs-ota fetch`, and the range downloader against a real web server (nginx, started by the
 * test; .ci/run installs it): what a user sees when pointing the tool at their own server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { downloadRange } from "../modules/transfer/http-download.ts";
import { NodeHttp } from "../hosts/sim/http.ts";
import { NodeClock } from "../hosts/sim/clock.ts";
import { pattern } from "./contract/pattern.ts";
import { startHostileServer, type HostileServer } from "./support/hostile-http.ts";
import { hasNginx, startNginx, type NginxServer } from "./support/nginx.ts";
import { runCli } from "./support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-fetch-"));
const FILE = pattern(1_000_003, 5);
const SHA = createHash("sha256").update(FILE).digest("hex");
let server: HostileServer;
let nginx: NginxServer | undefined;

beforeAll(async () => {
  server = await startHostileServer({ body: FILE });
  writeFileSync(join(dir, "fw.bin"), FILE);
  if (hasNginx()) nginx = await startNginx(dir);
});
afterAll(async () => {
  await server?.close();
  await nginx?.close();
});

async function fetch(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCli(["fetch", ...args]);
}

const saved = (path: string) => Buffer.from(readFileSync(path)).equals(Buffer.from(FILE));

describe("xs-ota fetch", () => {
  it("downloads a file, checks its SHA-256 and says how it went", async () => {
    const out = join(dir, "a.bin");
    const r = await fetch(server.url("/good/fw.bin"), "--out", out, "--sha256", SHA);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`saved .*a\\.bin: 1000003 bytes, sha256 ${SHA} \\(1 requests`));
    expect(saved(out)).toBe(true);
    expect(existsSync(`${out}.xs-ota-progress`)).toBe(false);
  });

  it("uses fixed windows when asked, and checks a given size", async () => {
    const out = join(dir, "b.bin");
    const r = await fetch(server.url("/good/fw.bin"), "--out", out, "--window", "262144", "--size", String(FILE.length));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/\(4 requests/);
    expect((await fetch(server.url("/good/fw.bin"), "--out", join(dir, "c.bin"), "--size", "999")).err).toMatch(/server's file is 1000003 bytes, the job says 999 \[http-protocol\]/);
  });

  it("resumes from the part file a previous run left, with its progress record", async () => {
    const out = join(dir, "d.bin");
    writeFileSync(`${out}.xs-ota-part`, FILE.subarray(0, 400_000));
    const url = server.url("/good/resume/fw.bin");
    writeFileSync(`${out}.xs-ota-progress`, JSON.stringify({ url, size: FILE.length, offset: 400_000 }));
    const before = server.requests.length;
    const r = await fetch(url, "--out", out, "--sha256", SHA);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/resuming .* at 400000 bytes/);
    expect(server.requests.slice(before).map((q) => q.range)).toEqual(["bytes=400000-"]);
    expect(saved(out)).toBe(true);
    expect(existsSync(`${out}.xs-ota-part`)).toBe(false);
  });

  it("records how far it got when a run fails, so the next run resumes there", async () => {
    const out = join(dir, "e.bin");
    const url = server.url(`/forbidden-after/2/${Date.now()}/fw.bin`);
    const first = await fetch(url, "--out", out, "--window", "100000");
    expect(first.code).toBe(1);
    expect(first.err).toMatch(/URL expired or refused \(HTTP 403/);
    expect(JSON.parse(readFileSync(`${out}.xs-ota-progress`, "utf8"))).toMatchObject({ url, offset: 200_000 });
    expect(first.err).toContain(`200000 bytes kept in ${out}.xs-ota-part for the next run`);
    expect(existsSync(out)).toBe(false);
    const second = await fetch(url, "--out", out, "--window", "100000");
    expect(second.out).toMatch(/resuming .* at 200000 bytes/);
  });

  it("a refused, failed or wrong download leaves what --out held as it was", async () => {
    const out = join(dir, "keep.bin");
    const old = Buffer.from("the previous firmware, still wanted");
    const cases: [string, string[], RegExp][] = [
      ["/status/403/fw.bin", [], /URL expired or refused \(HTTP 403/],
      ["/status/404/fw.bin", [], /HTTP 404/],
      ["/bad-content-range/start/fw.bin", ["--window", "65536"], /Content-Range/],
      ["/good/fw.bin", ["--sha256", "0".repeat(64)], /sha256 of the download is .* is unchanged/],
      ["/good/fw.bin", ["--size", "999"], /the job says 999/],
    ];
    for (const [path, extra, reason] of cases) {
      writeFileSync(out, old);
      const r = await fetch(server.url(path), "--out", out, ...extra);
      expect(r.code, path).toBe(1);
      expect(r.err, path).toMatch(reason);
      expect(readFileSync(out).equals(old), `${path}: --out untouched`).toBe(true);
    }
    // And a good run replaces it whole.
    const r = await fetch(server.url("/good/fw.bin"), "--out", out, "--sha256", SHA);
    expect(r.code).toBe(0);
    expect(saved(out)).toBe(true);
  });

  it("a server that trickles ends with the rate floor's reason, not hours later", async () => {
    const out = join(dir, "slow.bin");
    // 2 KB per connection, then a graceful close: progress every time, 1 s of backoff between.
    const r = await fetch(server.url("/trickle/2048/fw.bin"), "--out", out, "--min-rate", "10000", "--rate-window", "1000");
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/below the floor of 10000 bytes\/s .*\[too-slow\]/);
    expect(existsSync(out)).toBe(false);
  });

  it("bad files and paths: one line naming the file, no stack trace", async () => {
    const missingCa = await fetch(server.url("/good/fw.bin"), "--out", join(dir, "i.bin"), "--ca", join(dir, "no-such-ca.pem"));
    expect(missingCa.code).toBe(1);
    expect(missingCa.err).toMatch(/^error: cannot read the CA file .*no-such-ca\.pem: no such file$/);
    const intoDir = await fetch(server.url("/good/fw.bin"), "--out", dir);
    expect(intoDir.code).toBe(1);
    expect(intoDir.err).toMatch(/is a directory/);
    for (const r of [missingCa, intoDir]) expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("exits 1 with the reason for what a device would refuse", async () => {
    const cases: [string, RegExp][] = [
      ["/status/404/fw.bin", /URL expired or refused \(HTTP 404.*\[url-refused\]/],
      ["/redirect-loop/fw.bin", /more than 5 redirects.*\[http-protocol\]/],
      ["/bad-content-range/total/fw.bin", /the job says|server's file/],
    ];
    for (const [path, reason] of cases) {
      const r = await fetch(server.url(path), "--out", join(dir, "f.bin"), "--size", String(FILE.length), "--window", "65536");
      expect(r.code, path).toBe(1);
      expect(r.err, path).toMatch(reason);
    }
    const wrong = await fetch(server.url("/good/fw.bin"), "--out", join(dir, "g.bin"), "--sha256", "0".repeat(64));
    expect(wrong.code).toBe(1);
    expect(wrong.err).toMatch(new RegExp(`sha256 of the download is ${SHA}, expected 0{64}`));
  });

  it("usage errors exit 2", async () => {
    expect((await fetch(server.url("/good/fw.bin"))).code).toBe(2);
    expect((await fetch(server.url("/good/fw.bin"), "--out", join(dir, "h.bin"), "--sha256", "xyz")).code).toBe(2);
    expect((await fetch(server.url("/good/fw.bin"), "--out", join(dir, "h.bin"), "--size", "-5")).code).toBe(2);
    expect((await fetch(server.url("/good/fw.bin"), "--out", join(dir, "h.bin"), "--bogus", "1")).code).toBe(2);
  });
});

describe.skipIf(!hasNginx())("against nginx", () => {
  const get = (options: { window?: number; offset?: number; size?: number; sink?: (c: Uint8Array, at: number) => void }) => {
    const received = new Uint8Array(FILE.length);
    return downloadRange({
      http: new NodeHttp(),
      clock: new NodeClock(),
      url: nginx!.url("/fw.bin"),
      size: FILE.length,
      sink: (chunk, at) => received.set(chunk, at),
      ...options,
    }).then((result) => ({ result, received }));
  };

  it("whole, windowed, resumed and size-learning downloads are exact", async () => {
    for (const options of [{}, { window: 65536 }, { window: 300_000 }, { size: undefined, window: 100_000 }]) {
      const { received } = await get(options);
      expect(Buffer.from(received).equals(Buffer.from(FILE)), JSON.stringify(options)).toBe(true);
    }
    const { received, result } = await get({ offset: 777_777 });
    expect(Buffer.from(received.subarray(777_777)).equals(Buffer.from(FILE.subarray(777_777)))).toBe(true);
    expect(result.requests).toBe(1);
  });

  it("xs-ota fetch from nginx", async () => {
    const out = join(dir, "nginx.bin");
    const r = await fetch(nginx!.url("/fw.bin"), "--out", out, "--sha256", SHA, "--window", "131072");
    expect(r.code).toBe(0);
    expect(saved(out)).toBe(true);
  });

  it("a job size nginx's file does not have is refused", async () => {
    await expect(get({ size: FILE.length + 10 })).rejects.toMatchObject({ code: "http-protocol" });
  });
});
