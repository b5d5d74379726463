/**
 * cloud/files.ts (presigned-URL file server) over HTTPS with the local CA of cloud/tls.ts, and
 * over plain HTTP: whole files, ranges, 416, expiry, bad signatures, unknown keys, HEAD, counters.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileService, parseRange } from "../cloud/files.ts";
import { makeLocalCa, type LocalCa } from "../cloud/tls.ts";

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function fetchRaw(url: string, options: { method?: string; headers?: Record<string, string>; ca?: string } = {}): Promise<Answer> {
  const u = new URL(url);
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(u, { method: options.method ?? "GET", headers: options.headers, ...(u.protocol === "https:" ? { ca: options.ca ?? [] } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

const dir = mkdtempSync(join(tmpdir(), "xs-ota-files-"));
const data = new Uint8Array(10_000).map((_, i) => (i * 7 + 3) & 0xff);
let ca: LocalCa;
let secure: FileService;
let plain: FileService;

beforeAll(async () => {
  ca = await makeLocalCa(join(dir, "ca"));
  secure = new FileService();
  await secure.start({ tls: { key: ca.serverKey, cert: ca.serverCert } });
  secure.addFile("fw/app.bin", data);
  plain = new FileService({ secret: "fixed secret" });
  await plain.start();
  plain.addFile("app.bin", data);
});
afterAll(async () => {
  await secure?.stop();
  await plain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("local CA", () => {
  it("a CA and a localhost / 127.0.0.1 server certificate it issued, cached in the directory", async () => {
    const caX = new X509Certificate(ca.caCert);
    const server = new X509Certificate(ca.serverCert);
    expect(caX.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(caX)).toBe(true);
    expect(server.verify(caX.publicKey)).toBe(true);
    expect(server.checkHost("localhost")).toBe("localhost");
    expect(server.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(readFileSync(join(dir, "ca", "ca.pem"), "utf8")).toBe(ca.caCert);
    expect(readFileSync(join(dir, "ca", "server.key"), "utf8")).toBe(ca.serverKey);
    expect(await makeLocalCa(join(dir, "ca"))).toEqual(ca);
  });

  it("reuses a CA written by an earlier process; replaces a broken one", async () => {
    const other = join(dir, "copy");
    const first = await makeLocalCa(other);
    // Another directory name for the same files: the in-process cache does not apply, the files do.
    const again = await makeLocalCa(join(dir, ".", "copy", "."));
    expect(again.caCert).toBe(first.caCert);
    const broken = join(dir, "broken");
    const made = await makeLocalCa(broken);
    writeFileSync(join(broken, "server.pem"), "garbage");
    const remade = await makeLocalCa(join(broken, "."));
    expect(remade.caCert).not.toBe(made.caCert);
    expect(() => new X509Certificate(remade.serverCert)).not.toThrow();
  });

  it("a client that does not trust the CA refuses the server", async () => {
    const url = secure.presign("fw/app.bin", { expiresIn: 60 });
    await expect(fetchRaw(url, { ca: (await makeLocalCa()).caCert })).rejects.toThrow();
  });
});

describe("presigned file service", () => {
  it("GET over HTTPS serves the whole file with Accept-Ranges; counters count", async () => {
    secure.resetCounters();
    const url = secure.presign("fw/app.bin", { expiresIn: 3600, https: true });
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/fw\/app\.bin\?expires=\d+&signature=[0-9a-f]{64}$/);
    const r = await fetchRaw(url, { ca: ca.caCert });
    expect(r.status).toBe(200);
    expect(r.headers["accept-ranges"]).toBe("bytes");
    expect(r.headers["content-length"]).toBe(String(data.length));
    expect(Buffer.from(data).equals(r.body)).toBe(true);
    expect(secure.counters).toMatchObject({ requests: 1, bytesServed: data.length, byStatus: { 200: 1 } });
  });

  it("a URL may name another origin (a proxy in front); its signature still holds at the server", async () => {
    const url = plain.presign("app.bin", { expiresIn: 60, origin: "http://127.0.0.1:9" });
    expect(url.startsWith("http://127.0.0.1:9/app.bin?expires=")).toBe(true);
    const r = await fetchRaw(url.replace("http://127.0.0.1:9", plain.origin));
    expect(r.status).toBe(200);
    expect(Buffer.from(data).equals(r.body)).toBe(true);
  });

  it("Range bytes=a-b and bytes=a- give 206 with Content-Range", async () => {
    const url = plain.presign("app.bin", { expiresIn: 60 });
    const a = await fetchRaw(url, { headers: { range: "bytes=100-199" } });
    expect(a.status).toBe(206);
    expect(a.headers["content-range"]).toBe(`bytes 100-199/${data.length}`);
    expect(Buffer.from(data.subarray(100, 200)).equals(a.body)).toBe(true);
    const b = await fetchRaw(url, { headers: { range: "bytes=9000-" } });
    expect(b.status).toBe(206);
    expect(b.headers["content-range"]).toBe(`bytes 9000-9999/${data.length}`);
    expect(b.body.length).toBe(1000);
    const c = await fetchRaw(url, { headers: { range: "bytes=9990-20000" } });
    expect(c.headers["content-range"]).toBe(`bytes 9990-9999/${data.length}`);
    expect(c.body.length).toBe(10);
    const suffix = await fetchRaw(url, { headers: { range: "bytes=-5" } });
    expect(suffix.headers["content-range"]).toBe(`bytes 9995-9999/${data.length}`);
  });

  it("a range past the end is 416 with Content-Range bytes */size", async () => {
    const url = plain.presign("app.bin", { expiresIn: 60 });
    const r = await fetchRaw(url, { headers: { range: `bytes=${data.length}-` } });
    expect(r.status).toBe(416);
    expect(r.headers["content-range"]).toBe(`bytes */${data.length}`);
    expect(r.body.toString()).toContain("<Code>InvalidRange</Code>");
  });

  it("an expired URL is 403 AccessDenied 'Request has expired'", async () => {
    let now = 1_000_000;
    const files = new FileService({ now: () => now });
    await files.start();
    files.addFile("a.bin", data);
    try {
      const url = files.presign("a.bin", { expiresIn: 10 });
      expect((await fetchRaw(url)).status).toBe(200);
      now += 10;
      expect((await fetchRaw(url)).status).toBe(200); // valid through its expiry second
      now += 1;
      const r = await fetchRaw(url);
      expect(r.status).toBe(403);
      expect(r.headers["content-type"]).toBe("application/xml");
      expect(r.body.toString()).toMatch(/<Error><Code>AccessDenied<\/Code><Message>Request has expired<\/Message>/);
      // A signature that is wrong AND expired: the expiry is reported, as S3 does.
      expect((await fetchRaw(url.replace(/signature=./, "signature=0"))).body.toString()).toContain("Request has expired");
      expect(files.counters.byStatus[403]).toBe(2);
    } finally {
      await files.stop();
    }
  });

  it("a bad signature, a changed expiry or path, or none at all: 403 SignatureDoesNotMatch", async () => {
    const url = plain.presign("app.bin", { expiresIn: 60 });
    const u = new URL(url);
    const sig = u.searchParams.get("signature") ?? "";
    const flipped = new URL(url);
    flipped.searchParams.set("signature", (sig[0] === "0" ? "1" : "0") + sig.slice(1));
    const later = new URL(url);
    later.searchParams.set("expires", String(Number(u.searchParams.get("expires")) + 1000));
    const otherSecret = new FileService({ secret: "another secret" });
    await otherSecret.start({ port: 0 });
    const foreign = otherSecret.presign("app.bin", { expiresIn: 60 }).replace(otherSecret.origin, plain.origin);
    await otherSecret.stop();
    for (const bad of [flipped.href, later.href, `${plain.origin}/app.bin`, `${plain.origin}/app.bin?expires=x&signature=${sig}`, foreign]) {
      const r = await fetchRaw(bad);
      expect(r.status, bad).toBe(403);
      expect(r.body.toString(), bad).toContain("<Code>SignatureDoesNotMatch</Code>");
    }
  });

  it("a well signed URL for a file that is not there is 404 NoSuchKey", async () => {
    const r = await fetchRaw(plain.presign("missing.bin", { expiresIn: 60 }));
    expect(r.status).toBe(404);
    expect(r.body.toString()).toContain("<Code>NoSuchKey</Code>");
  });

  it("HEAD gives the headers without a body; other methods are refused", async () => {
    const url = plain.presign("app.bin", { expiresIn: 60 });
    plain.resetCounters();
    const r = await fetchRaw(url, { method: "HEAD" });
    expect(r.status).toBe(200);
    expect(r.headers["content-length"]).toBe(String(data.length));
    expect(r.headers["accept-ranges"]).toBe("bytes");
    expect(r.headers["etag"]).toMatch(/^"[0-9a-f]{32}"$/);
    expect(r.body.length).toBe(0);
    const ranged = await fetchRaw(url, { method: "HEAD", headers: { range: "bytes=0-9" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers["content-length"]).toBe("10");
    expect(plain.counters.bytesServed).toBe(0);
    expect((await fetchRaw(url, { method: "PUT" })).status).toBe(405);
  });

  it("files from a path; the same URL stays valid when the file is replaced", async () => {
    const path = join(dir, "image.bin");
    writeFileSync(path, Buffer.from("hello"));
    expect(plain.addFileFromPath(path)).toBe("image.bin");
    const url = plain.presign("image.bin", { expiresIn: 60 });
    expect((await fetchRaw(url)).body.toString()).toBe("hello");
    plain.addFile("image.bin", new TextEncoder().encode("world"));
    expect((await fetchRaw(url)).body.toString()).toBe("world");
    expect(() => plain.addFile("../etc/passwd", data)).toThrow();
    expect(() => plain.presign("image.bin", { expiresIn: 60, https: true })).toThrow();
  });

  it("parseRange", () => {
    expect(parseRange(undefined, 10)).toBeUndefined();
    expect(parseRange("bytes=0-0", 10)).toEqual([0, 0]);
    expect(parseRange("bytes=5-", 10)).toEqual([5, 9]);
    expect(parseRange("bytes=10-", 10)).toBe("unsatisfiable");
    expect(parseRange("bytes=-0", 10)).toBe("unsatisfiable");
    expect(parseRange("bytes=-20", 10)).toEqual([0, 9]);
    expect(parseRange("bytes=5-2", 10)).toBeUndefined();
    expect(parseRange("bytes=0-1,3-4", 10)).toBeUndefined();
    expect(parseRange("items=0-1", 10)).toBeUndefined();
  });
});
