/**
 * npm run bench:transfer
 *
 * A 4 MB image over loopback, measured side by side in one run:
 * - bytes on the wire (every TCP byte both ways, through a counting proxy) per image byte, for
 *   the HTTP range downloader and for AWS MQTT streams at 1 KB, 4 KB and 32 KB blocks;
 * - wall time against `curl` fetching the same file from the same server.
 */
import { spawn } from "node:child_process";
import { createServer, connect, type Server, type Socket } from "node:net";
import { mkdtempSync, openSync, closeSync, writeSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { downloadRange } from "../modules/transfer/http-download.ts";
import { StreamDownload } from "../modules/aws/stream.ts";
import { BlockWriter } from "../modules/storage/block-writer.ts";
import { NodeHttp } from "../hosts/sim/http.ts";
import { NodeMqtt } from "../hosts/sim/mqtt.ts";
import { NodeClock } from "../hosts/sim/clock.ts";
import { NorFlash } from "../hosts/sim/nor-flash.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { AwsStreamService } from "../cloud/aws-streams.ts";
import { startHostileServer } from "../test/support/hostile-http.ts";
import { startBroker } from "../test/support/broker.ts";

const SIZE = 4 * 1024 * 1024;
const image = new Uint8Array(SIZE);
for (let i = 0; i < SIZE; i++) image[i] = (i * 2654435761) >>> 24;

/** A TCP proxy on loopback that counts the bytes it carries. */
async function countingProxy(port: number): Promise<{ port: number; bytes(): number; reset(): void; close(): Promise<void> }> {
  let bytes = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.on("data", (d) => (bytes += d.length));
    upstream.on("data", (d) => (bytes += d.length));
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy did not listen");
  return {
    port: address.port,
    bytes: () => bytes,
    reset: () => (bytes = 0),
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
}

async function best<T>(runs: number, f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  let out: { ms: number; value: T } | undefined;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const value = await f();
    const ms = performance.now() - t;
    if (!out || ms < out.ms) out = { ms, value };
  }
  return out!;
}

const dir = mkdtempSync(join(tmpdir(), "xs-ota-bench-"));
const http = await startHostileServer({ body: image });
const httpPort = Number(new URL(http.origin).port);
const httpProxy = await countingProxy(httpPort);

async function httpFetch(window: number, port = httpPort): Promise<number> {
  const fd = openSync(join(dir, "out.bin"), "w");
  const hash = nodeDigests.create("sha256");
  await downloadRange({
    http: new NodeHttp(), clock: new NodeClock(), url: `http://127.0.0.1:${port}/good/fw.bin`, size: SIZE, window,
    sink: (chunk, at) => { writeSync(fd, chunk, 0, chunk.length, at); hash.update(chunk); },
  });
  closeSync(fd);
  return SIZE;
}

/** curl fetching the same file; asynchronously, since the server runs in this process. */
function curl(): Promise<number> {
  const t = performance.now();
  const child = spawn("curl", ["-s", "-f", "-o", join(dir, "curl.bin"), `http://127.0.0.1:${httpPort}/good/fw.bin`], { stdio: "ignore" });
  return new Promise((resolve, reject) =>
    child.on("exit", (code) => (code === 0 ? resolve(performance.now() - t) : reject(new Error(`curl exited ${code}`)))),
  );
}

console.log(`4 MB image over loopback (${process.version}); best of 3 for times`);
let curlMs = Infinity;
for (let i = 0; i < 3; i++) curlMs = Math.min(curlMs, await curl());
console.log(`  curl                             ${curlMs.toFixed(1).padStart(7)} ms`);

const rows: string[] = [];
for (const window of [0, 64 * 1024]) {
  httpProxy.reset();
  await httpFetch(window, httpProxy.port);
  const wire = httpProxy.bytes() / SIZE;
  const { ms } = await best(3, () => httpFetch(window));
  const label = window ? "HTTP range, 64 KB windows" : "HTTP range, one request";
  console.log(`  ${label.padEnd(32)} ${ms.toFixed(1).padStart(7)} ms  ${(ms / curlMs).toFixed(2)}x curl   wire ${wire.toFixed(4)} bytes per image byte`);
  rows.push(`${label} ${wire.toFixed(4)}`);
}

const broker = await startBroker();
const service = new AwsStreamService(broker.aedes);
await service.start();
service.addStream("bench", "AFR_OTA-bench", [{ fileId: 0, data: image }]);
const mqttProxy = await countingProxy(Number(new URL(broker.url).port));

async function streamOnce(blockSize: number): Promise<void> {
  const device = await NodeMqtt.connect(`mqtt://127.0.0.1:${mqttProxy.port}`, { clientId: `bench-${blockSize}-${Math.random()}` });
  const slot = new NorFlash({ size: SIZE });
  const client = new StreamDownload({
    mqtt: device, clock: new NodeClock(), thing: "bench", stream: "AFR_OTA-bench", fileId: 0, size: SIZE,
    writer: new BlockWriter(slot, SIZE), digests: [nodeDigests.create("sha256")], blockSize, window: 2, blocksPerRequest: Math.floor(128 * 1024 / blockSize),
  });
  device.onMessage((topic, payload) => client.handle(topic, payload));
  await client.start();
  await device.close();
}

for (const blockSize of [1024, 4096, 32768]) {
  mqttProxy.reset();
  const { ms } = await best(1, () => streamOnce(blockSize));
  const wire = mqttProxy.bytes() / SIZE;
  const label = `MQTT streams, ${blockSize / 1024} KB blocks`;
  console.log(`  ${label.padEnd(32)} ${ms.toFixed(1).padStart(7)} ms  ${(ms / curlMs).toFixed(2)}x curl   wire ${wire.toFixed(4)} bytes per image byte`);
  rows.push(`${label} ${wire.toFixed(4)}`);
}

await mqttProxy.close();
await service.stop();
await broker.close();
await httpProxy.close();
await http.close();
rmSync(dir, { recursive: true, force: true });
console.log(`transfer: wire bytes per image byte: ${rows.join("; ")}`);
