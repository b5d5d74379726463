/**
 * The desktop Http host (hosts/sim/http.ts) against the port's contract: real sockets on
 * loopback, a server that misbehaves on purpose (test/support/hostile-http.ts), openssl-made
 * certificates, and the real nginx as the reference for Range answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http from "node:http";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeHttp } from "../hosts/sim/http.ts";
import { isOtaError, type OtaErrorCode } from "../modules/errors.ts";
import type { HttpRequest, HttpResponse } from "../modules/ports/http.ts";
import { startHostileServer, type HostileServer } from "./support/hostile-http.ts";
import { hasNginx, startNginx, type NginxServer } from "./support/nginx.ts";
import { makeTestCa, type TestCa } from "./support/tls.ts";
import { concatBytes } from "../modules/codec/bytes.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-http-"));
const file = new Uint8Array(1_000_003); // odd size: no range lines up with a power of two
for (let i = 0; i < file.length; i++) file[i] = (i * 2654435761) >>> 24;

const host = new NodeHttp();
/** Generous: only the stall tests rely on a timeout firing, and they set their own. */
const get = (url: string, more: Partial<HttpRequest> = {}) => host.request({ method: "GET", url, timeout: 10_000, ...more });

async function readAll(response: HttpResponse): Promise<{ bytes: Uint8Array; chunks: Uint8Array[] }> {
  const chunks: Uint8Array[] = [];
  // Bounded: 10,000 chunks is far more than any body here.
  for (let i = 0; i < 10_000; i++) {
    const chunk = await response.read();
    if (chunk === undefined) return { bytes: concatBytes(chunks), chunks };
    chunks.push(chunk);
  }
  throw new Error("body did not end");
}

/** Reads until the body fails; returns the bytes before the failure and the failure. */
async function readUntilFailure(response: HttpResponse): Promise<{ got: number; error: unknown }> {
  let got = 0;
  for (let i = 0; i < 10_000; i++) {
    try {
      const chunk = await response.read();
      if (chunk === undefined) return { got, error: undefined };
      got += chunk.length;
    } catch (error) {
      return { got, error };
    }
  }
  throw new Error("body did not end");
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

/** toEqual walks typed arrays element by element (seconds per MB); Buffer.equals is memcmp. */
function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  expect(Buffer.from(actual.buffer, actual.byteOffset, actual.length).equals(expected), "bytes differ").toBe(true);
}

function expectCode(error: unknown, code: OtaErrorCode, message?: RegExp): void {
  expect(isOtaError(error, code), String(error)).toBe(true);
  if (message !== undefined) expect(String(error)).toMatch(message);
}

/** A port nothing listens on: bound by us a moment ago, then closed. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

let server: HostileServer;
let ca: TestCa;
let otherCa: TestCa;
let tlsServer: HostileServer;
let wrongNameServer: HostileServer;

beforeAll(async () => {
  ca = makeTestCa(join(dir, "ca"));
  otherCa = makeTestCa(join(dir, "other-ca"));
  server = await startHostileServer({ body: file });
  tlsServer = await startHostileServer({ body: file, tls: ca, httpOrigin: server.origin });
  wrongNameServer = await startHostileServer({ body: file, tls: ca, certificate: "other-name" });
});

afterAll(async () => {
  await Promise.all([server?.close(), tlsServer?.close(), wrongNameServer?.close()]);
});

describe("status, headers and body", () => {
  it("answers the status and lower-case headers, and the chunks reassemble to the file", async () => {
    const response = await get(server.url("/good/fw.bin"));
    expect(response.status).toBe(200);
    expect(response.headers["content-length"]).toBe(String(file.length));
    expect(response.headers["accept-ranges"]).toBe("bytes");
    for (const name of Object.keys(response.headers)) expect(name).toBe(name.toLowerCase());
    const { bytes, chunks } = await readAll(response);
    // Compared only after the last read: the chunks are views, and must not have been reused.
    expectBytes(bytes, file);
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) {
      expect(Object.getPrototypeOf(chunk)).toBe(Uint8Array.prototype);
      expect(chunk.length).toBeGreaterThan(0);
      expect(chunk.length).toBeLessThanOrEqual(64 * 1024);
    }
    expect(await response.read()).toBeUndefined();
  });

  it("joins repeated headers with \", \" and does not follow redirects", async () => {
    const twice = http.createServer((_req, res) => {
      res.setHeader("X-Twice", ["a", "b"]);
      res.setHeader("Set-Cookie", ["c=1", "d=2"]);
      res.end("ok");
    });
    await new Promise<void>((resolve) => twice.listen(0, "127.0.0.1", () => resolve()));
    try {
      const { port } = twice.address() as AddressInfo;
      const response = await get(`http://127.0.0.1:${port}/`);
      expect(response.headers["x-twice"]).toBe("a, b");
      expect(response.headers["set-cookie"]).toBe("c=1, d=2");
      expect(new TextDecoder().decode((await readAll(response)).bytes)).toBe("ok");
    } finally {
      await new Promise<void>((resolve) => twice.close(() => resolve()));
    }
    const redirected = await get(server.url("/redirect/absolute/good/fw.bin"));
    expect(redirected.status).toBe(302);
    expect(redirected.headers.location).toBe(server.url("/good/fw.bin"));
    redirected.close();
  });

  it("passes Range through and returns 206 and 416 as they come", async () => {
    const ranged = await get(server.url("/good/fw.bin"), { headers: { Range: "bytes=1000-2999" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers["content-range"]).toBe(`bytes 1000-2999/${file.length}`);
    expectBytes((await readAll(ranged)).bytes, file.subarray(1000, 3000));
    const open = await get(server.url("/good/fw.bin"), { headers: { Range: "bytes=999000-" } });
    expect(open.headers["content-range"]).toBe(`bytes 999000-${file.length - 1}/${file.length}`);
    expectBytes((await readAll(open)).bytes, file.subarray(999000));
    const beyond = await get(server.url("/good/fw.bin"), { headers: { Range: `bytes=${file.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers["content-range"]).toBe(`bytes */${file.length}`);
    await readAll(beyond);
    const last = server.requests.at(-1);
    expect(last).toMatchObject({ method: "GET", path: "/good/fw.bin", range: `bytes=${file.length}-` });
  });

  it("HEAD has headers and no body", async () => {
    const response = await host.request({ method: "HEAD", url: server.url("/good/fw.bin"), timeout: 10_000 });
    expect(response.status).toBe(200);
    expect(response.headers["content-length"]).toBe(String(file.length));
    expect(await response.read()).toBeUndefined();
    expect(server.requests.at(-1)?.method).toBe("HEAD");
  });

  it("decodes chunked bodies, ranged or not", async () => {
    const ranged = await get(server.url("/chunked/range/fw.bin"), { headers: { Range: "bytes=100-" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers["transfer-encoding"]).toBe("chunked");
    expect(ranged.headers["content-length"]).toBeUndefined();
    expectBytes((await readAll(ranged)).bytes, file.subarray(100));
    const whole = await get(server.url("/chunked/no-range/fw.bin"), { headers: { Range: "bytes=100-" } });
    expect(whole.status).toBe(200);
    expectBytes((await readAll(whole)).bytes, file);
  });

  it("a body longer than its Content-Length ends at the Content-Length", async () => {
    // Node's parser stops at Content-Length and fails the extra bytes as a new response
    // (HPE_CLOSED_CONNECTION on the request, after the body is complete): the host reports a
    // whole body of the announced length and drops the rest.
    const response = await get(server.url("/long-body/fw.bin"), { headers: { Range: "bytes=10-1009" } });
    expect(response.headers["content-length"]).toBe("1000");
    expectBytes((await readAll(response)).bytes, file.subarray(10, 1010));
  });
});

describe("connections that fail", () => {
  it("a body cut short rejects read() with \"network\", after the bytes that came", async () => {
    // A presigned URL's query is a credential: messages go to logs and reports without it.
    const response = await get(server.url("/short-body/fw.bin?X-Amz-Signature=s3cr3t"));
    const { got, error } = await readUntilFailure(response);
    expectCode(error, "network", new RegExp(`connection closed after ${got} of ${file.length} bytes`));
    expect(String(error)).toContain("/short-body/fw.bin");
    expect(String(error)).not.toContain("s3cr3t");
    expect(got).toBe(Math.floor(file.length / 2));
    await expect(response.read()).rejects.toMatchObject({ code: "network" });
  });

  it("a chunked body without its last chunk rejects read() with \"network\"", async () => {
    const { got, error } = await readUntilFailure(await get(server.url("/chunked/cut/fw.bin")));
    expectCode(error, "network", /before the last chunk/);
    expect(got).toBe(Math.floor(file.length / 2));
  });

  it("a connection closed every K bytes ends each body after K bytes", async () => {
    const { got, error } = await readUntilFailure(await get(server.url("/reset-every/300000/fw.bin"), { headers: { Range: "bytes=5000-" } }));
    expectCode(error, "network", new RegExp(`after 300000 of ${file.length - 5000} bytes`));
    expect(got).toBe(300_000);
  });

  it("a stalled body rejects the waiting read() with \"timeout\"", async () => {
    const response = await get(server.url("/stall/fw.bin"), { timeout: 300 });
    expect(response.status).toBe(200);
    expectCode(await rejection(response.read()), "timeout", /300 ms after 0 body bytes/);
    const after = await get(server.url("/stall-after/1000/fw.bin"), { timeout: 300 });
    const { got, error } = await readUntilFailure(after);
    expect(got).toBe(1000);
    expectCode(error, "timeout");
  });

  it("a server that never answers rejects the request with \"timeout\"", async () => {
    expectCode(await rejection(get(server.url("/stall-before-headers/fw.bin"), { timeout: 300 })), "timeout", /before the response headers/);
  });

  it("a refused connection rejects with \"network\" and the cause", async () => {
    const port = await closedPort();
    expectCode(await rejection(get(`http://127.0.0.1:${port}/fw.bin`)), "network", /ECONNREFUSED/);
  });

  it("bad arguments are refused before any connection", async () => {
    const bad: HttpRequest[] = [
      { method: "GET", url: "/good/fw.bin" },
      { method: "GET", url: "fw.bin" },
      { method: "GET", url: "ftp://127.0.0.1/fw.bin" },
      { method: "GET", url: "file:///etc/passwd" },
      { method: "GET", url: "http://user:pw@127.0.0.1/fw.bin" },
      { method: "GET", url: server.url("/good/fw.bin"), timeout: 0 },
      { method: "GET", url: server.url("/good/fw.bin"), headers: { "X-Bad": "a\r\nb" } },
      { method: "PUT" as unknown as "GET", url: server.url("/good/fw.bin") },
      { method: "GET", url: server.url("/good/fw.bin"), body: new Uint8Array(1) },
    ];
    const before = server.requests.length;
    for (const request of bad) expectCode(await rejection(host.request(request)), "bad-argument");
    expect(server.requests.length).toBe(before);
  });

  it("close() mid-body ends the body, and a read waiting at the time resolves undefined", async () => {
    const response = await get(server.url("/good/fw.bin"));
    expect((await response.read())?.length).toBeGreaterThan(0);
    response.close();
    expect(await response.read()).toBeUndefined();
    const stalled = await get(server.url("/stall/fw.bin"));
    const waiting = stalled.read();
    stalled.close();
    expect(await waiting).toBeUndefined();
    expect(await stalled.read()).toBeUndefined();
  });

  it("uses no shared agent: sequential requests come on different connections, asking to close", async () => {
    const before = server.requests.length;
    for (let i = 0; i < 2; i++) await readAll(await get(server.url("/good/fw.bin"), { headers: { Range: "bytes=0-9" } }));
    const [a, b] = server.requests.slice(before);
    expect(a.remotePort).toBeDefined();
    expect(a.remotePort).not.toBe(b.remotePort);
    expect(a.headers.connection).toBe("close");
  });

  it("pulls the body: an unread response holds the server back instead of buffering the body", async () => {
    // 32 MB from one reused 64 KB buffer; the server counts what the kernel took. Loopback
    // socket buffers hold a few MB, so if the host read ahead everything would be taken.
    const piece = Buffer.alloc(64 * 1024, 0xa5);
    const pieces = 512;
    let taken = 0;
    const big = http.createServer((_req, res) => {
      res.writeHead(200, { "Content-Length": piece.length * pieces });
      let sent = 0;
      const next = (): void => {
        if (sent === pieces) return void res.end();
        sent++;
        res.write(piece, (err) => {
          if (err === undefined || err === null) {
            taken += piece.length;
            next();
          }
        });
      };
      next();
    });
    await new Promise<void>((resolve) => big.listen(0, "127.0.0.1", () => resolve()));
    try {
      const { port } = big.address() as AddressInfo;
      const response = await get(`http://127.0.0.1:${port}/`);
      // One read first: the flow must stop again after it, not only before the first.
      const first = await response.read();
      // Wait until the server stops making progress (bounded: 5 s at most).
      let last = -1;
      for (let i = 0; i < 100 && taken !== last; i++) {
        last = taken;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(taken).toBeLessThan(piece.length * pieces);
      const { bytes } = await readAll(response);
      expect((first?.length ?? 0) + bytes.length).toBe(piece.length * pieces);
      expect(bytes.every((b) => b === 0xa5)).toBe(true);
    } finally {
      big.closeAllConnections();
      await new Promise<void>((resolve) => big.close(() => resolve()));
    }
  });
});

describe("https", () => {
  it("works with the test CA, by IP address and by name", async () => {
    const byIp = await get(tlsServer.url("/good/fw.bin"), { ca: ca.ca.cert });
    expect(byIp.status).toBe(200);
    expectBytes((await readAll(byIp)).bytes, file);
    const byName = await get(tlsServer.url("/good/fw.bin").replace("127.0.0.1", "localhost"), { ca: ca.ca.cert, headers: { Range: "bytes=7-8" } });
    expect(byName.status).toBe(206);
    expectBytes((await readAll(byName)).bytes, file.subarray(7, 9));
  });

  it("trusts nothing without `ca`, and only the CA given", async () => {
    expectCode(await rejection(get(tlsServer.url("/good/fw.bin"))), "network", /certificate/i);
    expectCode(await rejection(get(tlsServer.url("/good/fw.bin"), { ca: otherCa.ca.cert })), "network", /certificate/i);
  });

  it("refuses a certificate for another name", async () => {
    expectCode(await rejection(get(wrongNameServer.url("/good/fw.bin"), { ca: ca.ca.cert })), "network", /ERR_TLS_CERT_ALTNAME_INVALID|does not match/);
  });

  it("reports a cut body, a stall and a redirect to http: as over plain http", async () => {
    const { error } = await readUntilFailure(await get(tlsServer.url("/short-body/fw.bin"), { ca: ca.ca.cert }));
    expectCode(error, "network", /connection closed after \d+ of/);
    expectCode(await rejection(get(tlsServer.url("/stall-before-headers/fw.bin"), { ca: ca.ca.cert, timeout: 300 })), "timeout");
    const redirected = await get(tlsServer.url("/redirect-to-http/good/fw.bin"), { ca: ca.ca.cert });
    expect(redirected.status).toBe(302);
    expect(redirected.headers.location).toBe(server.url("/good/fw.bin"));
    redirected.close();
  });
});

const nginxNote = hasNginx() ? "" : " (skipped: no nginx binary in PATH or /usr/sbin; .ci/run installs it)";
describe.skipIf(!hasNginx())(`nginx as the reference server${nginxNote}`, () => {
  const mb = new Uint8Array(1 << 20);
  for (let i = 0; i < mb.length; i++) mb[i] = (i * 2246822519) >>> 24;
  let nginx: NginxServer;

  beforeAll(async () => {
    const root = join(dir, "www");
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, "fw.bin"), mb);
    nginx = await startNginx(root);
  });
  afterAll(async () => {
    await nginx?.close();
  });

  it("serves 1 MB whole, and ranges with a correct 206 Content-Range", async () => {
    const whole = await get(nginx.url("/fw.bin"));
    expect(whole.status).toBe(200);
    expect(whole.headers["accept-ranges"]).toBe("bytes");
    expectBytes((await readAll(whole)).bytes, mb);
    const ranged = await get(nginx.url("/fw.bin"), { headers: { Range: "bytes=300000-699999" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers["content-range"]).toBe(`bytes 300000-699999/${mb.length}`);
    expect(ranged.headers["content-length"]).toBe("400000");
    expectBytes((await readAll(ranged)).bytes, mb.subarray(300_000, 700_000));
    const tail = await get(nginx.url("/fw.bin"), { headers: { Range: "bytes=1048000-" } });
    expect(tail.headers["content-range"]).toBe(`bytes 1048000-1048575/${mb.length}`);
    expectBytes((await readAll(tail)).bytes, mb.subarray(1_048_000));
    const beyond = await get(nginx.url("/fw.bin"), { headers: { Range: `bytes=${mb.length}-` } });
    expect(beyond.status).toBe(416);
    beyond.close();
    const head = await host.request({ method: "HEAD", url: nginx.url("/fw.bin"), timeout: 10_000 });
    expect(head.headers["content-length"]).toBe(String(mb.length));
    expect(await head.read()).toBeUndefined();
  });
});
