/**
 * Presigned URLs shaped like S3's: a file server on HTTPS port 443 gives URLs without a port
 * (https://127.0.0.1/fw/...), as S3's always are, and a device following one updates; any other
 * port stays in the URL. Binding 443 needs root or CAP_NET_BIND_SERVICE: without it (or with 443
 * taken) the 443 cases are skipped and say why.
 */
import { afterAll, describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync } from "mqtt";
import { FileService } from "../cloud/files.ts";
import { makeLocalCa } from "../cloud/tls.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";
import { parseAwsJobMessage } from "../modules/aws/documents.ts";
import { parseHttpUrl } from "../modules/transfer/url.ts";
import { appImage } from "./contract/boot-fixture.ts";
import { SimDevice, until } from "./support/sim-device.ts";

const root = mkdtempSync(join(tmpdir(), "xs-ota-s3-urls-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Why 127.0.0.1:443 cannot be bound here, or undefined when it can. */
async function port443Blocked(): Promise<string | undefined> {
  const server = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(443, "127.0.0.1", () => resolve());
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EACCES") return "binding port 443 needs root or CAP_NET_BIND_SERVICE";
    if (code === "EADDRINUSE") return "127.0.0.1:443 is in use by another program";
    throw e;
  }
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return undefined;
}

const blocked = await port443Blocked();
const on443 = (name: string) => (blocked === undefined ? name : `${name} (skipped: ${blocked})`);

function fetchBody(url: string, ca: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    }).on("error", reject);
  });
}

describe("presigned URLs", () => {
  it("on any other port the origin and the URLs keep the port", async () => {
    const ca = await makeLocalCa();
    const files = new FileService();
    try {
      const origin = await files.start({ port: 0, tls: { key: ca.serverKey, cert: ca.serverCert } });
      expect(origin).toBe(`https://127.0.0.1:${files.port}`);
      files.addFile("fw/a.bin", new Uint8Array([1, 2, 3]));
      const url = files.presign("fw/a.bin", { expiresIn: 60 });
      expect(url.startsWith(`https://127.0.0.1:${files.port}/fw/a.bin?`)).toBe(true);
      expect(files.presign("fw/a.bin", { expiresIn: 60, host: "localhost" }).startsWith(`https://localhost:${files.port}/fw/a.bin?`)).toBe(true);
      expect((await fetchBody(url, ca.caCert)).body).toEqual(Buffer.from([1, 2, 3]));
    } finally {
      await files.stop();
    }
  });

  it.skipIf(blocked !== undefined)(on443("on HTTPS port 443 the URL has no port, and it serves the file there"), async () => {
    const ca = await makeLocalCa();
    const files = new FileService();
    try {
      expect(await files.start({ port: 443, tls: { key: ca.serverKey, cert: ca.serverCert } })).toBe("https://127.0.0.1");
      files.addFile("fw/b.bin", new Uint8Array([4, 5, 6]));
      const url = files.presign("fw/b.bin", { expiresIn: 60 });
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1\/fw\/b\.bin\?expires=\d+&signature=[0-9a-f]{64}$/);
      expect(files.presign("fw/b.bin", { expiresIn: 60, host: "localhost" }).startsWith("https://localhost/fw/b.bin?")).toBe(true);
      expect(parseHttpUrl(url).port).toBe(443);
      const got = await fetchBody(url, ca.caCert);
      expect(got.status).toBe(200);
      expect(got.body).toEqual(Buffer.from([4, 5, 6]));
    } finally {
      await files.stop();
    }
  });

  it.skipIf(blocked !== undefined)(on443("xs-ota cloud with --https-port 443: the job's update_data_url has no port and a device updates from it"), async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const keyPath = join(root, "key.pem");
    const firmware = join(root, "app-1.0.1.bin");
    writeFileSync(keyPath, privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(firmware, appImage("1.0.1", 12_000));
    let cloud: Cloud | undefined;
    let device: SimDevice | undefined;
    try {
      cloud = await startCloud({ dataDir: join(root, "cloud"), mqttPort: 0, mqttsPort: 0, httpsPort: 443, httpPort: 0, controlPort: 0 });
      expect(cloud.urls.https).toBe("https://127.0.0.1");
      const res = await fetch(`${cloud.urls.control}/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ thing: "s3-dev", file: firmware, key: keyPath, jobId: "s3-shaped" }),
      });
      expect(res.status).toBe(201);

      // What a device is sent: the placeholder became a port-less presigned URL.
      const probe = await connectAsync(cloud.urls.mqtt, { clientId: "s3-probe", protocolVersion: 4, reconnectPeriod: 0 });
      const answer = new Promise<Buffer>((resolve) => probe.on("message", (_t, payload) => resolve(payload)));
      await probe.publishAsync("$aws/things/s3-dev/jobs/$next/get", JSON.stringify({ clientToken: "p" }), { qos: 1 });
      const parsed = parseAwsJobMessage(new Uint8Array(await answer));
      await probe.endAsync();
      if (parsed.kind !== "plan") throw new Error(`no plan: ${JSON.stringify(parsed)}`);
      expect(parsed.plan.url).toMatch(/^https:\/\/127\.0\.0\.1\/fw\/s3-shaped\.bin\?/);

      const c = cloud;
      device = new SimDevice({ thing: "s3-dev", brokerUrl: c.urls.mqtt, keys: { [SIGNER_LABEL]: publicKey.export({ type: "spki", format: "pem" }).toString() }, config: { ca: c.caCert } });
      await device.start();
      await until(() => c.jobs.execution("s3-dev", "s3-shaped")?.status === "SUCCEEDED", 20_000, "SUCCEEDED");
      await device.settled();
      expect(device.version).toBe("1.0.1");
      expect(c.files.counters.bytesServed).toBeGreaterThanOrEqual(12_000);
    } finally {
      await device?.powerCut();
      await cloud?.close();
    }
  }, 30_000);
});
