/**
 * Whole updates on simulated devices (test/support/sim-device.ts) against a real MQTT broker with
 * the local AWS IoT Jobs and EnOS services, AWS MQTT streams, and an HTTP file server. Every
 * scenario runs twice: [aedes] with the services inside the embedded broker, and [mosquitto] with
 * a private Mosquitto process (test/support/mosquitto.ts) and the services on one client
 * connection to it (cloud/broker-client.ts), as `xs-ota cloud --broker` runs them. Without a
 * mosquitto binary the [mosquitto] scenarios are skipped (CI installs it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { connectAsync } from "mqtt";
import { startBroker } from "./support/broker.ts";
import { mosquittoPath, startMosquitto } from "./support/mosquitto.ts";
import { connectBroker } from "../cloud/broker-client.ts";
import { AwsJobsService } from "../cloud/aws-jobs.ts";
import { EnosService } from "../cloud/enos.ts";
import { AwsStreamService } from "../cloud/aws-streams.ts";
import { SimDevice, until } from "./support/sim-device.ts";
import { appImage, sign, signerPem } from "./contract/agent-fixture.ts";

const files = new Map<string, Uint8Array>();
/** Bytes per 10 ms for paths that start with /slow/, so a download can be caught midway. */
const SLOW = 2048;
let served = new Map<string, number>();
let ranges: string[] = [];
let server: Server;
let origin: string;
type BrokerKind = "aedes" | "mosquitto";
/** The broker and services of the variant running now (the variants run one after the other). */
let brokerUrl: string;
let closeBroker: (() => Promise<void>) | undefined;
let jobs: AwsJobsService;
let streams: AwsStreamService;
let enos: EnosService;

function startFiles(): Promise<void> {
  server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const body = files.get(path.replace(/^\/slow/, ""));
    if (!body) return void res.writeHead(404).end();
    ranges.push(`${path} ${req.headers.range ?? ""}`);
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] ? Number(m[2]) : body.length - 1;
    const slice = body.subarray(start, end + 1);
    res.writeHead(m ? 206 : 200, { "content-length": slice.length, ...(m ? { "content-range": `bytes ${start}-${end}/${body.length}` } : {}) });
    if (!path.startsWith("/slow/")) return void res.end(slice);
    let at = 0;
    const tick = setInterval(() => {
      if (res.destroyed) return clearInterval(tick);
      const n = Math.min(SLOW, slice.length - at);
      res.write(slice.subarray(at, at + n));
      at += n;
      served.set(path, (served.get(path) ?? 0) + n);
      if (at >= slice.length) (clearInterval(tick), res.end());
    }, 10);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => {
    const a = server.address();
    origin = typeof a === "object" && a ? `http://127.0.0.1:${a.port}` : "";
    resolve();
  }));
}

/** Starts a broker of `kind` and the cloud services on it. */
async function startServices(kind: BrokerKind): Promise<void> {
  if (kind === "aedes") {
    const broker = await startBroker();
    brokerUrl = broker.url;
    closeBroker = () => broker.close();
    jobs = new AwsJobsService(broker.aedes);
    streams = new AwsStreamService(broker.aedes);
    enos = new EnosService(broker.aedes);
  } else {
    const mosquitto = await startMosquitto();
    const client = await connectBroker(mosquitto.url).catch(async (e: unknown) => {
      await mosquitto.close();
      throw e;
    });
    brokerUrl = mosquitto.url;
    closeBroker = async () => {
      await client.close();
      await mosquitto.close();
    };
    jobs = new AwsJobsService(client);
    streams = new AwsStreamService(client);
    enos = new EnosService(client);
  }
  await jobs.start();
  await streams.start();
  await enos.start();
}

async function stopServices(): Promise<void> {
  for (const d of devices.splice(0)) await d.powerCut();
  await jobs?.stop();
  await streams?.stop();
  await enos?.stop();
  await closeBroker?.();
  closeBroker = undefined;
}

beforeAll(startFiles);
afterAll(async () => {
  await new Promise((r) => server?.close(r));
});

const v101 = appImage("1.0.1", 30_000);
const v102 = appImage("1.0.2", 40_000);
const v100 = appImage("1.0.0", 20_000);
files.set("/fw-1.0.1.bin", v101);
files.set("/fw-1.0.2.bin", v102);
files.set("/fw-1.0.0.bin", v100);

type FileEntry = Record<string, unknown>;
function afr(protocols: string[], file: FileEntry, extra: Record<string, unknown> = {}) {
  return { afr_ota: { protocols, files: [{ filepath: "/fw", fileid: 0, certfile: "signer.crt", auth_scheme: "aws.s3.presigned", ...file }], ...extra } };
}
const httpDoc = (path: string, image: Uint8Array, file: FileEntry = {}) =>
  afr(["HTTP"], { filesize: image.length, update_data_url: `${origin}${path}`, "sig-sha256-ecdsa": sign(image), ...file });

const devices: SimDevice[] = [];
function device(thing: string, extra: Partial<ConstructorParameters<typeof SimDevice>[0]> = {}): SimDevice {
  const d = new SimDevice({ thing, brokerUrl, keys: { "signer.crt": signerPem() }, ...extra });
  devices.push(d);
  return d;
}

const status = (thing: string, jobId: string) => jobs.execution(thing, jobId)?.status;
const reason = (thing: string, jobId: string) => jobs.execution(thing, jobId)?.statusDetails?.["reason"] ?? "";
/** The update requests the Jobs service received from `thing`. */
const updates = (thing: string) => jobs.log.filter((e) => e.operation === "update" && e.thing === thing);
/**
 * DescribeJobExecution over the broker from a client of its own: the execution as the Jobs service
 * answers a device now. Its request reaches the service after everything the broker delivered to
 * the service before, so the answer reflects what a device sent before it went away.
 */
async function askJobs(thing: string, jobId: string): Promise<{ status?: unknown; statusDetails?: Record<string, unknown> }> {
  const client = await connectAsync(brokerUrl, { clientId: `probe-${thing}-${process.pid}`, protocolVersion: 4, reconnectPeriod: 0 });
  try {
    const base = `$aws/things/${thing}/jobs/${jobId}/get`;
    const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer on ${base}/accepted|rejected`)), 5000);
      client.on("message", (topic, payload) => {
        clearTimeout(timer);
        const body = JSON.parse(payload.toString("utf8")) as Record<string, unknown>;
        if (topic === `${base}/accepted`) resolve(body);
        else reject(new Error(`${topic}: ${payload.toString("utf8")}`));
      });
    });
    await client.subscribeAsync([`${base}/accepted`, `${base}/rejected`], { qos: 1 });
    await client.publishAsync(base, JSON.stringify({ clientToken: "probe", includeJobDocument: false }), { qos: 1 });
    return ((await answer)["execution"] ?? {}) as { status?: unknown; statusDetails?: Record<string, unknown> };
  } finally {
    await client.endAsync();
  }
}
/** Queues one job for one thing. */
const addJob = (thing: string, jobId: string, document: unknown) => jobs.createJob({ jobId, document: document as Record<string, unknown>, targets: [thing] });

const hasMosquitto = mosquittoPath() !== undefined;

for (const kind of ["aedes", "mosquitto"] as const) {
  describe.skipIf(kind === "mosquitto" && !hasMosquitto)(`[${kind}]`, () => {
    beforeAll(() => startServices(kind));
    afterAll(stopServices);

    describe("AWS IoT Jobs, end to end", () => {
      it("an HTTP update: download, verify, reboot, self-test, SUCCEEDED in AWS's vocabulary", async () => {
        const d = device("e2e-http");
        await addJob("e2e-http", "job-http", httpDoc("/fw-1.0.1.bin", v101));
        await d.start();
        await until(() => status("e2e-http", "job-http") === "SUCCEEDED", 15_000, "SUCCEEDED");
        await d.settled();
        expect(d.version).toBe("1.0.1");
        expect(d.device.boot.info().state).toBe("valid");
        expect(jobs.execution("e2e-http", "job-http")?.statusDetails).toEqual({ reason: "accepted v1.0.1", updatedBy: "v1.0.0" });
        const sent = updates("e2e-http").map((u) => u.payload);
        expect(sent.some((p) => p.includes('"self_test":"ready"') && p.includes('"updatedBy":"0x01000000"'))).toBe(true);
        expect(sent.some((p) => p.includes('"self_test":"active"'))).toBe(true);
        expect(sent.some((p) => p.includes('"receive"'))).toBe(true);
      });

      it("an MQTT stream update", async () => {
        streams.addStream("e2e-mqtt", "AFR_OTA-1", [{ fileId: 0, data: v101 }]);
        const d = device("e2e-mqtt");
        await addJob("e2e-mqtt", "job-mqtt", afr(["MQTT"], { filesize: v101.length, "sig-sha256-ecdsa": sign(v101) }, { streamname: "AFR_OTA-1" }));
        await d.start();
        await until(() => status("e2e-mqtt", "job-mqtt") === "SUCCEEDED", 15_000, "SUCCEEDED");
        await d.settled();
        expect(d.version).toBe("1.0.1");
      });

      it("a self-test that fails: the image rolls back and the old firmware reports FAILED with the reason", async () => {
        const d = device("e2e-selftest", { selfTest: (version) => version !== "1.0.2" });
        await addJob("e2e-selftest", "job-bad", httpDoc("/fw-1.0.2.bin", v102));
        await d.start();
        await until(() => status("e2e-selftest", "job-bad") === "FAILED", 15_000, "FAILED");
        await d.settled();
        expect(d.version).toBe("1.0.0");
        expect(reason("e2e-selftest", "job-bad")).toMatch(/self-test/);
        expect(updates("e2e-selftest").some((u) => u.payload.includes("SUCCEEDED"))).toBe(false);
      });

      it("a device that vanishes mid-job leaves its job IN_PROGRESS until it comes back and resumes", async () => {
        // The device loses power mid-download; its job stays IN_PROGRESS (no timeout, no reset to
        // QUEUED) while it is gone; back up, it resumes the same job from the bytes in flash.
        const d = device("e2e-cut");
        await addJob("e2e-cut", "job-cut", httpDoc("/slow/fw-1.0.1.bin", v101));
        served = new Map();
        ranges = [];
        await d.start();
        await until(() => (served.get("/slow/fw-1.0.1.bin") ?? 0) >= 12_000, 10_000, "some bytes");
        await until(() => status("e2e-cut", "job-cut") === "IN_PROGRESS", 10_000, "the first progress report");
        await d.powerCut();
        const whileGone = await askJobs("e2e-cut", "job-cut");
        expect(whileGone.status).toBe("IN_PROGRESS");
        expect(status("e2e-cut", "job-cut")).toBe("IN_PROGRESS");
        expect(jobs.describeJob("job-cut")?.job.status).toBe("IN_PROGRESS");
        await d.reboot();
        await until(() => status("e2e-cut", "job-cut") === "SUCCEEDED", 20_000, "SUCCEEDED");
        await d.settled();
        expect(d.version).toBe("1.0.1");
        expect((await askJobs("e2e-cut", "job-cut")).status).toBe("SUCCEEDED");
        const slow = ranges.filter((r) => r.startsWith("/slow/"));
        expect(slow[0]).toBe("/slow/fw-1.0.1.bin bytes=0-");
        expect(slow.slice(1).some((r) => /bytes=[1-9]\d*-/.test(r)), slow.join("; ")).toBe(true);
      });

      it("a new job mid-download replaces the old one, which is never selected", async () => {
        const d = device("e2e-switch");
        await addJob("e2e-switch", "job-old", httpDoc("/slow/fw-1.0.2.bin", v102));
        served = new Map();
        await d.start();
        await until(() => (served.get("/slow/fw-1.0.2.bin") ?? 0) >= 8_000, 10_000, "some bytes");
        await jobs.cancelJob("job-old", { force: true });
        await addJob("e2e-switch", "job-new", httpDoc("/fw-1.0.1.bin", v101));
        await until(() => status("e2e-switch", "job-new") === "SUCCEEDED", 15_000, "SUCCEEDED");
        await d.settled();
        expect(d.version).toBe("1.0.1");
        expect(status("e2e-switch", "job-old")).toBe("CANCELED");
      });

      it("bad jobs each end FAILED with their reason; the firmware stays; the next good job succeeds", async () => {
        const thing = "e2e-bad";
        const d = device(thing);
        const good = { filesize: v101.length, update_data_url: `${origin}/fw-1.0.1.bin`, "sig-sha256-ecdsa": sign(v101) };
        const bad: [string, unknown, RegExp][] = [
          ["missing-size", afr(["HTTP"], { update_data_url: good.update_data_url, "sig-sha256-ecdsa": good["sig-sha256-ecdsa"] }), /filesize/],
          ["huge-size", afr(["HTTP"], { ...good, filesize: 2 ** 40 }), /filesize/],
          ["negative-size", afr(["HTTP"], { ...good, filesize: -5 }), /filesize/],
          ["nan-size", afr(["HTTP"], { ...good, filesize: "NaN" }), /filesize/],
          ["bad-base64", afr(["HTTP"], { ...good, "sig-sha256-ecdsa": "!!!not base64" }), /sig-sha256-ecdsa|base64/],
          ["unknown-protocol", afr(["FTP"], good), /protocol/],
          ["too-large", afr(["HTTP"], { ...good, filesize: 0x20000 }), /filesize|slot|larger|size/],
          ["unsigned", afr(["HTTP"], { filesize: good.filesize, update_data_url: good.update_data_url }), /sign/i],
          ["ftp-url", afr(["HTTP"], { ...good, update_data_url: "ftp://files.test/fw.bin" }), /http|URL/],
          ["same-version", httpDoc("/fw-1.0.0.bin", v100), /already running/],
          ["wrong-signature", afr(["HTTP"], { ...good, "sig-sha256-ecdsa": sign(v102) }), /signature/],
        ];
        for (const [id, doc] of bad) await addJob(thing, id, doc);
        const before = Buffer.from(d.device.otadata());
        await d.start();
        for (const [id, , why] of bad) {
          await until(() => status(thing, id) === "FAILED", 15_000, `${id} FAILED`);
          expect(reason(thing, id), id).toMatch(why);
        }
        expect(d.version).toBe("1.0.0");
        expect(Buffer.from(d.device.otadata()).equals(before)).toBe(true);
        await addJob(thing, "good-after", httpDoc("/fw-1.0.1.bin", v101));
        await until(() => status(thing, "good-after") === "SUCCEEDED", 15_000, "the good job");
        await d.settled();
        expect(d.version).toBe("1.0.1");
      });
    });

    describe("EnOS OTA, end to end", () => {
      const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
      const informed = (dk: string, version?: string) => (enos.device("pk1", dk)?.informs ?? []).some((i) => version === undefined || i.version === version);
      const stepSent = (dk: string, step: string) => (enos.device("pk1", dk)?.progress ?? []).some((p) => String(p.rawStep) === step);
      /** Offers `file` as firmware `version` of pk1; the file server serves `served` (default the same bytes) at its fileUrl. */
      const offer = (version: string, file: Uint8Array, fileName: string, served: Uint8Array = file) => {
        const fw = enos.addFirmware("pk1", { version, file, fileName });
        files.set(fw.fileUrl, served);
        return fw;
      };

      it("an upgrade push: reply 200, progress, reboot, inform of the new version", async () => {
        enos.setGetVersionAnswer("pk1", "dk1", []);
        const d = device("enos-1", { cloud: { kind: "enos", productKey: "pk1", deviceKey: "dk1", fileBase: origin }, config: { allowUnsigned: true } });
        await d.start();
        await until(() => informed("dk1", "1.0.0"), 5000, "inform 1.0.0");
        expect(offer("1.0.1", v101, "fw-1.0.1.bin")).toMatchObject({ version: "1.0.1", sign: md5(v101), signMethod: "md5", fileSize: v101.length });
        const reply = await enos.pushUpgrade("pk1", "dk1", "1.0.1");
        expect(reply.code).toBe(200);
        await until(() => informed("dk1", "1.0.1"), 15_000, "inform 1.0.1");
        await d.settled();
        expect(d.version).toBe("1.0.1");
        expect(stepSent("dk1", "100")).toBe(true);
      });

      it("asks getversion for available versions and installs the newest one above its own", async () => {
        // An unsorted list with an older entry (as a cloud may send it), so the device must choose.
        enos.setGetVersionAnswer("pk1", "dk3", [
          { version: "0.9.0", sign: md5(v100), signMethod: "md5", fileUrl: "/fw-1.0.0.bin", fileSize: v100.length },
          { version: "1.0.2", sign: md5(v102), signMethod: "md5", fileUrl: "/fw-1.0.2.bin", fileSize: v102.length },
          { version: "1.0.1", sign: md5(v101), signMethod: "md5", fileUrl: "/fw-1.0.1.bin", fileSize: v101.length },
        ]);
        const d = device("enos-3", { cloud: { kind: "enos", productKey: "pk1", deviceKey: "dk3", fileBase: origin }, config: { allowUnsigned: true } });
        await d.start();
        await until(() => informed("dk3", "1.0.2"), 15_000, "inform 1.0.2");
        await d.settled();
        expect(d.version).toBe("1.0.2");
        expect(enos.device("pk1", "dk3")?.getVersionRequests ?? 0).toBeGreaterThan(0);
      });

      it("a wrong sign is a verification failure (-3); the firmware stays", async () => {
        enos.setGetVersionAnswer("pk1", "dk2", []);
        const d = device("enos-2", { cloud: { kind: "enos", productKey: "pk1", deviceKey: "dk2", fileBase: origin }, config: { allowUnsigned: true } });
        await d.start();
        await until(() => informed("dk2"), 5000, "inform");
        // The cloud signs other bytes of the same size than the file server serves.
        const other = Uint8Array.from(v101, (b) => b ^ 0xff);
        const fw = offer("1.0.1", other, "wrong-sign-1.0.1.bin", v101);
        expect(fw.sign).not.toBe(md5(v101));
        expect(fw.fileSize).toBe(v101.length);
        await enos.pushUpgrade("pk1", "dk2", "1.0.1");
        await until(() => stepSent("dk2", "-3"), 15_000, "step -3");
        expect(d.version).toBe("1.0.0");
      });
    });
  });
}
