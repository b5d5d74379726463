/**
 * The desktop cloud in one process (Node only): an MQTT broker (an embedded aedes on 127.0.0.1, or
 * an external one such as Mosquitto given as `brokerUrl`), the AWS IoT Jobs stand-in
 * (cloud/aws-jobs.ts), MQTT streams (cloud/aws-streams.ts), the presigned-URL file
 * server over HTTPS with the local CA (cloud/files.ts, cloud/tls.ts), EnOS OTA (cloud/enos.ts,
 * its plain-HTTP file endpoint is `urls.http`), and a small JSON control API on 127.0.0.1:
 *
 *   POST /jobs       {thing | things, file (a path on this machine), key? (PEM path to sign with),
 *                     protocol?: http|mqtt (default http), format?: aws|nrf|zerynth|enos (default aws),
 *                     jobId?, productKey? (enos; default "xsota"), certfile? (aws; default
 *                     SIGNER_LABEL), filepath? (aws; default "/fw")}  -> 201 {jobId, document}
 *   GET  /jobs       -> 200 {jobs: JobRecord[]}
 *   POST /enos/devices {productKey (default "xsota"), deviceKey, deviceSecret?, productSecret?}
 *                    -> 201 {productKey, deviceKey, deviceSecret, productSecret}: an EnOS device
 *                    the broker then holds to EnOS's login (cloud/enos-auth.ts); missing secrets
 *                    are kept if it had them, made up otherwise
 *   GET  /jobs/<id>  -> 200 JobDescription (job + executions), or {enos} for an EnOS offer; 404
 *   GET  /           -> the live dashboard, an HTML page (cloud/dashboard.ts): devices and jobs
 *   GET  /events     -> text/event-stream, `event: state` with the DashboardState on connect and on every change
 *   GET  /api/state  -> 200 DashboardState {now, devices, jobs}
 *   errors           -> 4xx/5xx {error: "reason"}
 *
 * Documents (the signature, when a key is given, is ECDSA P-256 over SHA-256, DER, base64, under
 * the request's certfile label, default SIGNER_LABEL; the device verifies with its key of that label):
 *   aws http:  afr_ota {protocols:["HTTP"], files:[{filepath, fileid 0, filesize, certfile, auth_scheme,
 *              update_data_url: "${aws:iot:s3-presigned-url-v2:fw/<jobId>.bin}", sig-sha256-ecdsa}]}
 *              (a fresh presigned URL each time the document is sent)
 *   aws mqtt:  afr_ota {protocols:["MQTT"], streamname: "<jobId>", files:[{fileid 0, ...}]}, one
 *              stream per job for each target
 *   nrf:       {operation:"app_fw_update", fwversion, size, location:{url: <placeholder>}}
 *   zerynth:   {bc_idx:0, bc_crc: md5, bc_size, bc_url: <placeholder>}
 *   enos:      the firmware is offered to product `productKey` (no AWS job), its fileUrl an
 *              enos-connect:// URI or a path (CreateJobRequest.enosFileUrl), and an upgrade is
 *              pushed to each target (device key = thing) that is online; the others find it
 *              with getversion when they connect. document = the offer.
 *
 * State: jobs in dataDir/jobs.json and the executions' later changes in dataDir/jobs.log (AwsJobsService,
 * cloud/job-store.ts), EnOS devices in dataDir/enos-devices.json,
 * each job's firmware and how it was offered in
 * dataDir/files/<jobId>.bin + <jobId>.json, written before the job is stored and re-offered on
 * start (an offer whose job never got stored, a creation cut short, may be created again); the
 * CA in dataDir/tls.
 *
 * Broker: by default an embedded aedes listens on 127.0.0.1:`mqttPort` and `urls.mqtt` is its URL.
 * It answers as AWS IoT Core does on reserved topics (cloud/reserved-topics.ts): a Jobs or stream
 * request's answer goes to the client that asked, subscribed or not, and to no one else.
 * With `brokerUrl` (mqtt://host:port, mqtts://, ws://) there is no MQTT listener: every service
 * uses one client connection to that broker (cloud/broker-client.ts), devices connect to the same
 * broker, and `urls.mqtt` is `brokerUrl`. Start-up fails with the reason when the broker cannot be
 * reached (bounded wait) or refuses a subscription; later drops are reconnected. The services
 * subscribe to `$aws/things/+/...` and `/sys/+/+/ota/...` for every thing, so one cloud per broker
 * (or per broker namespace) is assumed, and the broker's ACL must let this client use those topics.
 *
 * Mutual TLS, as AWS IoT Core on 8883: the embedded broker also listens on 127.0.0.1:`mqttsPort`
 * (`urls.mqtts`, mqtts://127.0.0.1:<port>) with the local CA's server certificate (SAN localhost,
 * 127.0.0.1). A client must present a certificate the local CA issued (`xs-ota thing create`,
 * cloud/tls.ts issueThingCertificate), and its CN is its thing name: the thing policy
 * (cloud/thing-policy.ts) keeps it to `$aws/things/<that name>/...` (plus any topic outside
 * `$aws/things/`). Clients of the plain listener are not restricted. With `brokerUrl` there is no
 * TLS listener of the cloud's own and `urls.mqtts` is absent: the external broker's TLS, if any,
 * is its own configuration.
 * There the answers are ordinary messages: a device gets them only if it subscribed to the
 * `/accepted`, `/rejected` and `data` topics (this repository's agent does; AWS's C OTA agent,
 * which expects AWS's reserved-topic delivery, does not) and every subscriber sees them.
 */
import { createPrivateKey, createSign } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { startEmbeddedBroker } from "./embedded-broker.ts";
import { BrokerClient } from "./broker-client.ts";
import type { StreamBroker } from "./aws-streams.ts";
import { AwsJobsService, type JobDescription, type JobRecord } from "./aws-jobs.ts";
import { AwsStreamService } from "./aws-streams.ts";
import { FileService } from "./files.ts";
import { EnosService, type EnosFileEndpoint } from "./enos.ts";
import { EnosIdentities, type EnosDeviceIdentity } from "./enos-auth.ts";
import { makeLocalCa } from "./tls.ts";
import { thingPolicy } from "./thing-policy.ts";
import { DELTA_FILE_ID, documentFieldProblem, jobDocument, presignedPlaceholder } from "./job-documents.ts";
import { DeltaToolError, makeDelta } from "./delta.ts";
import { firmwareInfo } from "./firmware-info.ts";
import { Dashboard, dashboardPage, dashboardState, type DashboardOffer, type DashboardState, type SeenDevice } from "./dashboard.ts";

export const DEFAULT_MQTT_PORT = 1883;
/** AWS IoT Core's port for MQTT over mutual TLS. */
export const DEFAULT_MQTTS_PORT = 8883;
export const DEFAULT_CONTROL_PORT = 8180;
export const DEFAULT_HTTPS_PORT = 8443;
/** The certfile label in documents: what a device's key store must hold the public key under. */
export const SIGNER_LABEL = "signer.crt";

export type JobFormat = "aws" | "nrf" | "zerynth" | "enos";
export type JobProtocol = "http" | "mqtt";

export interface CloudOptions {
  dataDir: string;
  /** The embedded broker's port: default 1883; 0: any free port. Not with `brokerUrl`. */
  mqttPort?: number;
  /** The embedded broker's mutual-TLS port: default 8883; 0: any free port. Not with `brokerUrl`. */
  mqttsPort?: number;
  /** HTTPS file server; default 8443; 0: any; 443: presigned URLs without a port, as S3's. */
  httpsPort?: number;
  /** EnOS plain-HTTP file endpoint; default any free port. */
  httpPort?: number;
  /** Default 8180; 0: any. */
  controlPort?: number;
  /** An external MQTT broker (e.g. mqtt://127.0.0.1:1883 for Mosquitto) instead of the embedded aedes. */
  brokerUrl?: string;
  /**
   * The origin presigned URLs name (e.g. https://127.0.0.1:9443: a proxy in front of the file
   * server, such as bench:device's link model); default the file server's own. The host must be
   * one the server certificate names (127.0.0.1 or localhost) for devices to accept it.
   */
  filesOrigin?: string;
  /**
   * Called with one readable line per job or device event (`job fw-1: dev-1 IN_PROGRESS 12/89`,
   * `job fw-1: dev-1 SUCCEEDED accepted v1.0.1`, `dev-1 connected`): what `xs-ota cloud`
   * prints. Progress is thinned to one line per execution per 10 % or per second (cloud/dashboard.ts).
   */
  onEvent?: (line: string) => void;
}

export interface Cloud {
  /** `mqtts`: the embedded broker's mutual-TLS listener; absent with `brokerUrl`. */
  urls: { mqtt: string; mqtts?: string; https: string; http: string; control: string };
  /** The CA certificate (PEM) devices trust for the HTTPS file server. */
  caCert: string;
  caPath: string;
  jobs: AwsJobsService;
  streams: AwsStreamService;
  files: FileService;
  enos: EnosService;
  /** Why the embedded broker refused connections, subscriptions or messages, newest last (none with an external broker). */
  refusals: readonly string[];
  close(): Promise<void>;
}

export interface CreateJobRequest {
  thing?: string;
  things?: string[];
  file: string;
  key?: string;
  protocol?: JobProtocol;
  format?: JobFormat;
  jobId?: string;
  /** The firmware's version, for a raw binary whose header declares none. */
  version?: string;
  productKey?: string;
  /** AWS only: the key label the device verifies with (default SIGNER_LABEL). */
  certfile?: string;
  /** AWS only: the document's filepath (default "/fw"). */
  filepath?: string;
  /**
   * EnOS only: how the offer names the file. Default "enos-connect" when every target is a
   * registered device (POST /enos/devices), which can log in to the file download; otherwise
   * "path", which devices fetch from the file endpoint without a login.
   */
  enosFileUrl?: "path" | "enos-connect";
  /**
   * AWS only: the image the targets may run (a path). The cloud makes a patch from it to `file`
   * (xdelta3) and offers it beside the full image: file 1 of the job's stream, or a second
   * presigned URL.
   */
  deltaFrom?: string;
}

/** What is kept per job in dataDir/files/<jobId>.json. */
interface OfferRecord {
  jobId: string;
  format: JobFormat;
  protocol: JobProtocol;
  targets: string[];
  version: string;
  productKey?: string;
  enosFileUrl?: "path" | "enos-connect";
  document: Record<string, unknown>;
  /** Milliseconds since the epoch; the dashboard's "created" of an EnOS offer (absent in records of older runs). */
  createdAt?: number;
  /** A patch is offered too: dataDir/files/<jobId>.patch, its size. */
  patchBytes?: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const JOB_ID = /^[a-zA-Z0-9_-]{1,64}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function writeAtomic(path: string, data: string | Uint8Array): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, data);
  renameSync(temp, path);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "the request is not JSON");
  }
}

async function listen(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** ECDSA P-256 / SHA-256 over the whole file, DER, base64 (as AWS code signing's sig-sha256-ecdsa). */
export function signFirmware(bytes: Uint8Array, keyPem: string): string {
  const key = createPrivateKey(keyPem);
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new HttpError(400, "the key is not an ECDSA P-256 private key");
  return createSign("sha256").update(bytes).sign(key).toString("base64");
}

/** The version the image declares, else the one the request names (a raw binary declares none). */
function firmwareVersion(bytes: Uint8Array, named: unknown): string {
  let declared: string | undefined;
  try {
    declared = firmwareInfo(bytes).version;
  } catch (e) {
    throw new HttpError(400, `not a firmware image: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (named !== undefined && typeof named !== "string") throw new HttpError(400, "version must be a string");
  if (declared !== undefined && named !== undefined && named !== declared) throw new HttpError(400, `the image declares version ${declared}, the request says ${named}`);
  const version = declared ?? named;
  if (version === undefined) throw new HttpError(400, "not an ESP32 or W800 image (no header declares its version); for a raw binary, give its version");
  return version;
}

export async function startCloud(options: CloudOptions): Promise<Cloud> {
  if (options.brokerUrl !== undefined && options.mqttPort !== undefined) throw new Error("mqttPort is the embedded broker's port: give either brokerUrl or mqttPort");
  if (options.brokerUrl !== undefined && options.mqttsPort !== undefined) throw new Error("mqttsPort is the embedded broker's TLS port: give either brokerUrl or mqttsPort");
  const dataDir = options.dataDir;
  const filesDir = join(dataDir, "files");
  mkdirSync(filesDir, { recursive: true });
  const ca = await makeLocalCa(join(dataDir, "tls"));
  const caPath = join(dataDir, "tls", "ca.pem");

  const cleanups: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  const identities = new EnosIdentities({ file: join(dataDir, "enos-devices.json") });
  try {
    let broker: StreamBroker;
    let mqttUrl: string;
    let mqttsUrl: string | undefined;
    let client: BrokerClient | undefined;
    let refusals: readonly string[] = [];
    // What the dashboard knows of devices beyond their executions: when each was last heard
    // from, and (embedded broker only) whether it is connected.
    const seen = new Map<string, SeenDevice>();
    let dashboard: Dashboard | undefined;
    const heard = (thing: string, cloud: SeenDevice["cloud"], connected?: boolean) => {
      if (thing === "") return;
      const was = seen.get(thing);
      const entry: SeenDevice = { lastSeen: Date.now(), cloud: cloud === "mqtt" ? (was?.cloud ?? "mqtt") : cloud };
      const open = connected ?? was?.connected;
      if (open !== undefined) entry.connected = open;
      seen.set(thing, entry);
      dashboard?.changed();
    };
    if (options.brokerUrl !== undefined) {
      client = await BrokerClient.connect(options.brokerUrl);
      const connected = client;
      cleanups.push(() => connected.close());
      broker = client;
      mqttUrl = options.brokerUrl;
    } else {
      const embedded = await startEmbeddedBroker({
        port: options.mqttPort ?? DEFAULT_MQTT_PORT,
        tls: { port: options.mqttsPort ?? DEFAULT_MQTTS_PORT, ca: ca.caCert, cert: ca.serverCert, key: ca.serverKey },
        guards: [thingPolicy(), identities.guard()],
      });
      cleanups.push(() => embedded.close());
      broker = embedded.broker;
      mqttUrl = embedded.url;
      mqttsUrl = embedded.mqttsUrl;
      refusals = embedded.refusals;
      // The client id is the thing name for this repository's devices (and the certificate's CN on mqtts).
      embedded.aedes.on("client", (c) => heard(c.id, "mqtt", true));
      embedded.aedes.on("clientDisconnect", (c) => heard(c.id, "mqtt", false));
    }

    const files = new FileService();
    const httpsOrigin = await files.start({ port: options.httpsPort ?? DEFAULT_HTTPS_PORT, tls: { key: ca.serverKey, cert: ca.serverCert } });
    cleanups.push(() => files.stop());

    const jobs = new AwsJobsService(broker, { dataDir, presign: (name, expiresIn) => files.presign(name, { expiresIn, https: true, ...(options.filesOrigin !== undefined ? { origin: options.filesOrigin } : {}) }) });
    jobs.onActivity = (a) => (a.kind === "request" ? heard(a.thing, "aws") : dashboard?.changed());
    await jobs.start();
    cleanups.push(() => jobs.stop());
    const streams = new AwsStreamService(broker);
    await streams.start();
    cleanups.push(() => streams.stop());
    const enos = new EnosService(broker, { identities });
    enos.onActivity = (a) => heard(a.deviceKey, "enos");
    await enos.start();
    cleanups.push(() => enos.stop());
    if (client !== undefined && client.refused.length > 0) {
      throw new Error(`the MQTT broker at ${mqttUrl} refused the subscription to ${client.refused.join(", ")} (check its ACL)`);
    }
    const enosFiles: EnosFileEndpoint = await enos.startFiles({ port: options.httpPort ?? 0 });
    cleanups.push(() => enosFiles.close());

    const offers = new Map<string, OfferRecord>();
    const offer = (record: OfferRecord, bytes: Uint8Array, patch?: Uint8Array): Record<string, unknown> | undefined => {
      let entry: Record<string, unknown> | undefined;
      if (record.format === "enos") {
        entry = { ...enos.addFirmware(record.productKey ?? "xsota", { version: record.version, file: bytes, fileName: `${record.jobId}.bin`, uri: record.enosFileUrl }) };
      } else if (record.protocol === "mqtt") {
        const streamFiles = [{ fileId: 0, data: bytes }, ...(patch ? [{ fileId: DELTA_FILE_ID, data: patch }] : [])];
        for (const thing of record.targets) streams.addStream(thing, record.jobId, streamFiles);
      } else {
        files.addFile(`fw/${record.jobId}.bin`, bytes);
        if (patch) files.addFile(`fw/${record.jobId}.patch`, patch);
      }
      offers.set(record.jobId, record);
      return entry;
    };
    // Re-offer what earlier runs offered.
    for (const name of readdirSync(filesDir)) {
      if (!name.endsWith(".json")) continue;
      let record: OfferRecord;
      try {
        record = JSON.parse(readFileSync(join(filesDir, name), "utf8")) as OfferRecord;
      } catch (e) {
        throw new Error(`${join(filesDir, name)}: not an offer record (${e instanceof Error ? e.message : String(e)}); move it away`);
      }
      const bin = join(filesDir, `${record.jobId}.bin`);
      const patch = join(filesDir, `${record.jobId}.patch`);
      if (existsSync(bin)) offer(record, new Uint8Array(readFileSync(bin)), record.patchBytes !== undefined && existsSync(patch) ? new Uint8Array(readFileSync(patch)) : undefined);
    }

    const createJob = async (body: unknown): Promise<{ jobId: string; document: Record<string, unknown> }> => {
      if (!isObject(body)) throw new HttpError(400, "the request must be a JSON object");
      const req = body as Partial<CreateJobRequest>;
      const targets = req.things ?? (req.thing === undefined ? [] : [req.thing]);
      if (!Array.isArray(targets) || targets.length === 0 || !targets.every((t) => typeof t === "string")) throw new HttpError(400, "name at least one thing");
      const format = req.format ?? "aws";
      if (!["aws", "nrf", "zerynth", "enos"].includes(format)) throw new HttpError(400, `format must be aws, nrf, zerynth or enos, got ${String(format)}`);
      const protocol = req.protocol ?? "http";
      if (protocol !== "http" && protocol !== "mqtt") throw new HttpError(400, `protocol must be http or mqtt, got ${String(protocol)}`);
      if (protocol === "mqtt" && format !== "aws") throw new HttpError(400, `format ${format} has no MQTT download; use --protocol http`);
      for (const field of ["certfile", "filepath"] as const) {
        if (req[field] === undefined) continue;
        if (format !== "aws") throw new HttpError(400, `${field} is a field of AWS OTA (afr_ota) documents; format ${format} has none`);
        const problem = documentFieldProblem(field, req[field]);
        if (problem !== undefined) throw new HttpError(400, problem);
      }
      if (typeof req.file !== "string") throw new HttpError(400, "file (a path) is required");
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(readFileSync(req.file));
      } catch (e) {
        throw new HttpError(400, `cannot read ${req.file}: ${e instanceof Error ? e.message : String(e)}`);
      }
      const version = firmwareVersion(bytes, req.version);
      let signature: string | undefined;
      if (req.key !== undefined) {
        let pem: string;
        try {
          pem = readFileSync(req.key, "utf8");
        } catch (e) {
          throw new HttpError(400, `cannot read key ${req.key}: ${e instanceof Error ? e.message : String(e)}`);
        }
        try {
          signature = signFirmware(bytes, pem);
        } catch (e) {
          if (e instanceof HttpError) throw e;
          throw new HttpError(400, `cannot sign with ${req.key}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      const jobId = req.jobId ?? `fw-${version.replace(/[^a-zA-Z0-9_-]/g, "_")}-${Date.now().toString(36)}`;
      if (typeof jobId !== "string" || !JOB_ID.test(jobId)) throw new HttpError(400, `job ID ${JSON.stringify(jobId)}: [a-zA-Z0-9_-]{1,64}`);
      // An AWS offer without its job is what a cut during an earlier creation leaves: not a conflict.
      if (offers.get(jobId)?.format === "enos" || jobs.describeJob(jobId)) throw new HttpError(409, `job ${jobId} already exists`);
      let patch: Uint8Array | undefined;
      let deltaFrom: Uint8Array | undefined;
      if (req.deltaFrom !== undefined) {
        if (format !== "aws") throw new HttpError(400, `deltaFrom: format ${format} has no place for a patch; deltas are offered in AWS OTA documents`);
        if (typeof req.deltaFrom !== "string") throw new HttpError(400, "deltaFrom must be a path");
        let from: Uint8Array;
        try {
          from = new Uint8Array(readFileSync(req.deltaFrom));
        } catch (e) {
          throw new HttpError(400, `cannot read ${req.deltaFrom}: ${e instanceof Error ? e.message : String(e)}`);
        }
        try {
          patch = await makeDelta(from, bytes);
        } catch (e) {
          throw new HttpError(e instanceof DeltaToolError ? 500 : 400, e instanceof Error ? e.message : String(e));
        }
        deltaFrom = from;
      }
      let document: Record<string, unknown> = {};
      if (format !== "enos") {
        const url = protocol === "http" ? presignedPlaceholder(`fw/${jobId}.bin`) : undefined;
        const delta = patch && deltaFrom ? { from: deltaFrom, patch, ...(protocol === "http" ? { url: presignedPlaceholder(`fw/${jobId}.patch`) } : {}) } : undefined;
        document = jobDocument({ format, protocol, bytes, version, url, stream: jobId, signature, certfile: req.certfile ?? SIGNER_LABEL, filepath: req.filepath, ...(delta ? { delta } : {}) });
      }
      const record: OfferRecord = { jobId, format, protocol, targets: [...targets], version, document, createdAt: Date.now(), ...(patch ? { patchBytes: patch.length } : {}) };
      if (format === "enos") {
        const productKey = req.productKey ?? "xsota";
        if (req.enosFileUrl !== undefined && req.enosFileUrl !== "path" && req.enosFileUrl !== "enos-connect") throw new HttpError(400, `enosFileUrl must be path or enos-connect, got ${String(req.enosFileUrl)}`);
        record.productKey = productKey;
        record.enosFileUrl = req.enosFileUrl ?? (targets.every((t) => identities.identity(productKey, t) !== undefined) ? "enos-connect" : "path");
      } else if (req.enosFileUrl !== undefined) throw new HttpError(400, `enosFileUrl is a field of EnOS offers; format ${format} has none`);
      const written: string[] = [];
      try {
        const entry = offer(record, bytes, patch);
        if (entry !== undefined) record.document = entry;
        // On disk before any device hears of the job: a cut after jobs.json named it, and before
        // its file was written, would leave a job whose stream or URL no restart can serve.
        const toWrite: [string, Uint8Array | string][] = [[`${jobId}.bin`, bytes], ...(patch ? [[`${jobId}.patch`, patch] as [string, Uint8Array]] : []), [`${jobId}.json`, JSON.stringify(record, null, 1)]];
        for (const [name, data] of toWrite) {
          writeAtomic(join(filesDir, name), data);
          written.push(join(filesDir, name));
        }
        if (entry !== undefined) {
          // As EnOS starts an OTA job: an upgrade push to each target; a device that is away misses it.
          const productKey = record.productKey ?? "xsota";
          for (const deviceKey of targets) enos.pushUpgrade(productKey, deviceKey, version, { timeoutMs: 30_000 }).catch(() => undefined);
          dashboard?.changed();
        } else {
          await jobs.createJob({ jobId, document, targets, presignedUrlConfig: { expiresInSec: 3600 } });
        }
      } catch (e) {
        offers.delete(jobId);
        if (!jobs.describeJob(jobId)) for (const path of written) rmSync(path, { force: true });
        if (e instanceof HttpError) throw e;
        throw new HttpError(400, e instanceof Error ? e.message : String(e));
      }
      return { jobId, document: record.document };
    };

    const state = (): DashboardState => {
      const views = new Map<string, DashboardOffer>();
      for (const o of offers.values()) {
        const view: DashboardOffer = { jobId: o.jobId, format: o.format, protocol: o.protocol, version: o.version, targets: o.targets };
        if (o.productKey !== undefined) view.productKey = o.productKey;
        if (o.createdAt !== undefined) view.createdAt = o.createdAt;
        views.set(o.jobId, view);
      }
      const described = jobs.listJobs().flatMap((j) => {
        const d = jobs.describeJob(j.jobId);
        return d ? [d] : [];
      });
      return dashboardState({ now: Date.now(), jobs: described, offers: views, enosDevices: enos.devices, seen });
    };
    dashboard = new Dashboard(state, options.onEvent);
    const board = dashboard;
    cleanups.push(async () => board.close());

    const describe = (jobId: string): JobDescription | { enos: OfferRecord } => {
      const d = jobs.describeJob(jobId);
      if (d) return d;
      const o = offers.get(jobId);
      if (o && o.format === "enos") return { enos: o };
      throw new HttpError(404, `no job ${jobId}`);
    };

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const send = (status: number, body: unknown) => {
        const text = JSON.stringify(body);
        res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
        res.end(text);
      };
      try {
        const path = new URL(req.url ?? "/", "http://localhost").pathname.replace(/\/+$/, "");
        const method = req.method ?? "GET";
        if (method === "GET" && path === "") {
          const page = dashboardPage(board.state);
          res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": Buffer.byteLength(page), "cache-control": "no-store" });
          return void res.end(page);
        }
        if (method === "GET" && path === "/events") return board.subscribe(res);
        if (method === "GET" && path === "/api/state") return send(200, board.state);
        if (path === "/jobs" && method === "POST") return send(201, await createJob(await readJson(req)));
        if (path === "/enos/devices" && method === "POST") {
          const body = await readJson(req);
          if (!isObject(body)) throw new HttpError(400, "the request must be a JSON object {productKey, deviceKey, deviceSecret?, productSecret?}");
          const text = (v: unknown, what: string) => {
            if (v !== undefined && typeof v !== "string") throw new HttpError(400, `${what} must be a string`);
            return v;
          };
          let identity: EnosDeviceIdentity;
          try {
            identity = identities.register(String(text(body["productKey"], "productKey") ?? "xsota"), String(text(body["deviceKey"], "deviceKey") ?? ""), {
              deviceSecret: text(body["deviceSecret"], "deviceSecret"),
              productSecret: text(body["productSecret"], "productSecret"),
            });
          } catch (e) {
            throw new HttpError(400, (e as Error).message);
          }
          return send(201, identity);
        }
        if (path === "/jobs" && method === "GET") {
          const list: (JobRecord | OfferRecord)[] = [...jobs.listJobs(), ...[...offers.values()].filter((o) => o.format === "enos")];
          return send(200, { jobs: list });
        }
        const m = /^\/jobs\/([^/]+)$/.exec(path);
        if (m && method === "GET") return send(200, describe(decodeURIComponent(m[1] ?? "")));
        throw new HttpError(path === "/jobs" || m ? 405 : 404, `${method} ${path} is not part of the control API`);
      } catch (e) {
        if (e instanceof HttpError) send(e.status, { error: e.message });
        else send(500, { error: e instanceof Error ? e.message : String(e) });
      }
    };
    const controlSockets = new Set<Socket>();
    const control = createHttpServer((req, res) => void handle(req, res));
    control.on("connection", (s: Socket) => {
      controlSockets.add(s);
      s.on("close", () => controlSockets.delete(s));
    });
    const controlPort = await listen(control, options.controlPort ?? DEFAULT_CONTROL_PORT);
    cleanups.push(async () => {
      const closed = new Promise<void>((resolve) => control.close(() => resolve()));
      for (const s of controlSockets) s.destroy();
      await closed;
    });

    let closing: Promise<void> | undefined;
    return {
      urls: { mqtt: mqttUrl, ...(mqttsUrl !== undefined ? { mqtts: mqttsUrl } : {}), https: httpsOrigin, http: enosFiles.origin, control: `http://127.0.0.1:${controlPort}` },
      caCert: ca.caCert,
      caPath,
      jobs,
      streams,
      files,
      enos,
      refusals,
      close: () => (closing ??= closeAll()),
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
