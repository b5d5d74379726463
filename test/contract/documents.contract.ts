/**
 * Job documents: AWS IoT Jobs messages (afr_ota, nRF aws_fota, Zerynth, custom) and the EnOS
 * upgrade push, parsed into UpdatePlans or refused with a reason that names the field.
 */
import { suite } from "./harness.ts";
import { AssertionError, deepEqual, equal, ok } from "./assert.ts";
import { parseAwsJobMessage, type AwsJobOptions } from "../../modules/aws/documents.ts";
import { parseEnosUpgrade } from "../../modules/enos/documents.ts";
import type { ParseResult, UpdatePlan } from "../../modules/jobs/plan.ts";
import { utf8Encode } from "../../modules/codec/utf8.ts";

// A DER ECDSA P-256 signature (70 bytes), as in AWS's agent tests.
const SIG = "MEQCIF2QDvww1G/kpRGZ8FYvQrok1bSZvXjXefRk7sqNcyPTAiB4dvGt8fozIY5NC0vUDJ2MY42ZERYEcrbwA4n6q7vrBg==";
const URL = "https://bucket.s3.us-east-1.amazonaws.com/ota.bin?X-Amz-Signature=abc123";
const MD5 = "0123456789abcdef0123456789abcdef";
const SHA256 = "9f86d081884c7d659a2feb1ff4d1b1ee9c2c72f0a8a8ac45a9ca15f2c3a4f1aa";

type Json = Record<string, unknown>;

/** Keys sorted at every level, so plans compare whatever order their fields were set in. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === "object") {
    const out: Json = {};
    for (const k of Object.keys(v).sort()) out[k] = canonical((v as Json)[k]);
    return out;
  }
  return v;
}

function planOf(r: ParseResult): UpdatePlan {
  if (r.kind !== "plan") throw new AssertionError(`expected a plan, got ${JSON.stringify(r)}`);
  return r.plan;
}

function expectPlan(r: ParseResult, expected: UpdatePlan): void {
  deepEqual(canonical(planOf(r)), canonical(expected), "plan");
}

function expectInvalid(r: ParseResult, fragment: string, jobId?: string): void {
  if (r.kind !== "invalid") throw new AssertionError(`expected invalid (${fragment}), got ${JSON.stringify(r)}`);
  ok(r.reason.includes(fragment), `reason '${r.reason}' does not mention '${fragment}'`);
  equal(r.jobId, jobId, "jobId of the refusal");
}

function file(over: Json = {}): Json {
  return { filepath: "/app", filesize: 181124, fileid: 0, certfile: "ota-key", "sig-sha256-ecdsa": SIG, ...over };
}

function ota(over: Json = {}, fileOver: Json = {}): Json {
  return { protocols: ["MQTT"], streamname: "AFR_OTA-stream1", files: [file(fileOver)], ...over };
}

function message(document: unknown, execOver: Json = {}): string {
  return JSON.stringify({
    clientToken: "0:device",
    timestamp: 1602795143,
    execution: { jobId: "job-1", status: "QUEUED", versionNumber: 2, executionNumber: 1, jobDocument: document, ...execOver },
  });
}

const aws = (document: unknown, options: AwsJobOptions = {}, execOver: Json = {}) => parseAwsJobMessage(message(document, execOver), options);
const awsFile = (fileOver: Json, options: AwsJobOptions = {}) => aws({ afr_ota: ota({}, fileOver) }, options);
const both = (over: Json = {}) => ({ afr_ota: ota({ protocols: ["MQTT", "HTTP"], ...over }, { update_data_url: URL }) });

function nrf(location: Json, over: Json = {}): Json {
  return { operation: "app_fw_update", fwversion: "v1.0.2", size: 181124, location, ...over };
}

function enos(params: Json, over: Json = {}): string {
  return JSON.stringify({
    id: "1001",
    version: "1.0",
    method: "ota.device.upgrade",
    params: { version: "v2.1.0", sign: MD5, signMethod: "md5", fileUrl: "https://files.example.com/fw/app.bin", fileSize: 1024, ...params },
    ...over,
  });
}

export default suite("job documents", (test) => {
  test("AWS OTA over MQTT: stream, file id, signature, status details and version number", () => {
    const r = aws({ afr_ota: ota() }, {}, { statusDetails: { self_test: "ready", updatedBy: "0x1000000" } });
    expectPlan(r, {
      jobId: "job-1",
      format: "aws-ota",
      protocol: "mqtt",
      size: 181124,
      stream: "AFR_OTA-stream1",
      fileId: 0,
      signature: { base64: SIG, keyLabel: "ota-key" },
      statusDetails: { self_test: "ready", updatedBy: "0x1000000" },
      versionNumber: 2,
    });
  });

  test("AWS OTA over HTTP: the presigned URL, no stream", () => {
    const r = aws({ afr_ota: ota({ protocols: ["HTTP"], streamname: undefined }, { update_data_url: URL, auth_scheme: "aws.s3.presigned" }) });
    expectPlan(r, {
      jobId: "job-1",
      format: "aws-ota",
      protocol: "http",
      size: 181124,
      url: URL,
      signature: { base64: SIG, keyLabel: "ota-key" },
      versionNumber: 2,
    });
  });

  test("both protocols allowed: MQTT by default, HTTP when the device prefers it", () => {
    equal(planOf(aws(both())).protocol, "mqtt", "no preference");
    equal(planOf(aws(both(), { preferProtocol: "mqtt" })).stream, "AFR_OTA-stream1");
    const http = planOf(aws(both({ protocols: ["HTTP", "MQTT"] }), { preferProtocol: "http" }));
    equal(http.protocol, "http");
    equal(http.url, URL);
    equal(http.stream, undefined, "no stream on an HTTP plan");
  });

  test("a preference the job does not allow gives way to what it allows", () => {
    equal(planOf(aws({ afr_ota: ota() }, { preferProtocol: "http" })).protocol, "mqtt", "MQTT-only job");
    const httpOnly = { afr_ota: ota({ protocols: ["HTTP"] }, { update_data_url: URL }) };
    equal(planOf(aws(httpOnly, { preferProtocol: "mqtt" })).protocol, "http", "HTTP-only job");
    equal(planOf(aws(httpOnly)).protocol, "http", "HTTP-only job, no preference");
  });

  test("the chosen protocol needs its own field", () => {
    expectInvalid(aws(both({ streamname: undefined })), "afr_ota.streamname is missing", "job-1");
    equal(planOf(aws(both({ streamname: undefined }), { preferProtocol: "http" })).protocol, "http");
    expectInvalid(aws({ afr_ota: ota({ protocols: ["HTTP"] }) }), "afr_ota.files[0].update_data_url is missing", "job-1");
  });

  test("bytes are read as UTF-8; bad UTF-8 is refused", () => {
    equal(planOf(parseAwsJobMessage(utf8Encode(message({ afr_ota: ota() })))).size, 181124);
    expectInvalid(parseAwsJobMessage(new Uint8Array([0x7b, 0xff, 0x7d])), "UTF-8");
  });

  test("no execution means no job", () => {
    deepEqual(parseAwsJobMessage('{"clientToken":"0:device","timestamp":1602795143}'), { kind: "none" });
    deepEqual(parseAwsJobMessage("{}"), { kind: "none" });
  });

  test("other documents come back as custom jobs", () => {
    const r = aws({ action: "reboot", delay: 5 }, {}, { statusDetails: { step: "1" } });
    deepEqual(canonical(r), canonical({ kind: "custom", jobId: "job-1", document: { action: "reboot", delay: 5 }, statusDetails: { step: "1" }, versionNumber: 2 }));
    equal(aws({ operation: "mdm_fw_update" }).kind, "custom", "another nRF operation");
  });

  test("nRF aws_fota: host and path make the URL; fwversion is the version", () => {
    const location = { protocol: "https:", host: "bucket.s3.amazonaws.com", path: "app_update.bin" };
    expectPlan(aws(nrf(location), { allowUnsigned: true }), {
      jobId: "job-1",
      format: "nrf-fota",
      protocol: "http",
      size: 181124,
      url: "https://bucket.s3.amazonaws.com/app_update.bin",
      version: "v1.0.2",
      versionNumber: 2,
    });
    const url = (loc: Json) => planOf(aws(nrf(loc), { allowUnsigned: true })).url;
    equal(url({ ...location, protocol: "http:" }), "http://bucket.s3.amazonaws.com/app_update.bin");
    equal(url({ ...location, protocol: "http" }), "http://bucket.s3.amazonaws.com/app_update.bin");
    equal(url({ ...location, protocol: "https" }), "https://bucket.s3.amazonaws.com/app_update.bin");
    equal(url({ host: "bucket.s3.amazonaws.com", path: "/app_update.bin" }), "https://bucket.s3.amazonaws.com/app_update.bin", "no protocol: https");
    equal(url({ url: "https://example.com/fw/app.bin" }), "https://example.com/fw/app.bin", "newer SDKs' location.url");
  });

  test("nRF aws_fota: unsigned, so refused on a production device; bad fields named", () => {
    const location = { protocol: "https:", host: "bucket.s3.amazonaws.com", path: "app_update.bin" };
    expectInvalid(aws(nrf(location)), "unsigned document on a production device", "job-1");
    const bad = (loc: Json, over: Json, fragment: string) => expectInvalid(aws(nrf(loc, over), { allowUnsigned: true }), fragment, "job-1");
    bad({ ...location, host: undefined }, {}, "location.host is missing");
    bad({ ...location, path: undefined }, {}, "location.path is missing");
    bad({ ...location, protocol: "ftp:" }, {}, 'location.protocol must be "http:" or "https:"');
    bad({ ...location, host: "evil.com/x?" }, {}, "location.host");
    bad({ ...location, path: "a b.bin" }, {}, "location.path has spaces");
    bad({ ...location, path: "x".repeat(256) }, {}, "location.path is 256 characters");
    bad(location, { size: undefined }, "size is missing");
    bad(location, { size: "181124" }, "size must be an integer");
    bad(location, { fwversion: 3 }, "fwversion must be a string");
    bad(location, { location: "https://x" }, "location must be an object");
    bad({ url: "ftp://example.com/fw.bin" }, {}, 'location.url has the unsupported scheme "ftp:"');
  });

  test("Zerynth: MD5 digest, size and URL; bc_idx checked, not used", () => {
    const doc = { bc_idx: 1, bc_crc: MD5.toUpperCase(), bc_size: 123456, bc_url: "https://bucket.s3.amazonaws.com/fw.bin" };
    expectPlan(aws(doc, { allowUnsigned: true }), {
      jobId: "job-1",
      format: "zerynth",
      protocol: "http",
      size: 123456,
      url: "https://bucket.s3.amazonaws.com/fw.bin",
      digest: { algorithm: "md5", hex: MD5 },
      versionNumber: 2,
    });
    expectInvalid(aws(doc), "unsigned document on a production device", "job-1");
    const bad = (over: Json, fragment: string) => expectInvalid(aws({ ...doc, ...over }, { allowUnsigned: true }), fragment, "job-1");
    bad({ bc_idx: -1 }, "bc_idx must be a non-negative integer, got -1");
    bad({ bc_idx: undefined }, "bc_idx is missing");
    bad({ bc_crc: "1234" }, "bc_crc must be 32 hex digits");
    bad({ bc_crc: "g".repeat(32) }, "bc_crc must be 32 hex digits");
    bad({ bc_size: 0 }, "bc_size must be a positive integer, got 0");
    bad({ bc_url: "file:///etc/passwd" }, 'bc_url has the unsupported scheme "file:"');
    expectInvalid(aws(doc, { allowUnsigned: true, maxSize: 100000 }), "bc_size 123456 is over the 100000 bytes this device takes", "job-1");
  });

  test("malformed messages are refused before any job id is known", () => {
    expectInvalid(parseAwsJobMessage("not a json"), "message is not JSON");
    expectInvalid(parseAwsJobMessage(""), "message is not JSON");
    expectInvalid(parseAwsJobMessage("[1,2]"), "message must be a JSON object, got an array");
    expectInvalid(parseAwsJobMessage("null"), "message must be a JSON object, got null");
    expectInvalid(parseAwsJobMessage('{"execution":[]}'), "execution must be an object, got an array");
    expectInvalid(parseAwsJobMessage('{"execution":null}'), "execution must be an object, got null");
    const big = message({ afr_ota: ota(), pad: "x".repeat(33000) });
    expectInvalid(parseAwsJobMessage(big), "at most 32768");
    expectInvalid(parseAwsJobMessage(utf8Encode(big)), "at most 32768");
  });

  test("job ids: present, a string, 1 to 64 of A-Z a-z 0-9 _ -", () => {
    expectInvalid(aws({ afr_ota: ota() }, {}, { jobId: undefined }), "execution.jobId is missing");
    expectInvalid(aws({ afr_ota: ota() }, {}, { jobId: 42 }), "execution.jobId must be a string, got 42");
    expectInvalid(aws({ afr_ota: ota() }, {}, { jobId: "" }), "it must have 1 to 64");
    expectInvalid(aws({ afr_ota: ota() }, {}, { jobId: "j".repeat(65) }), "execution.jobId is 65 characters");
    expectInvalid(aws({ afr_ota: ota() }, {}, { jobId: "job/../1" }), "may only have the characters");
    equal(planOf(aws({ afr_ota: ota() }, {}, { jobId: "A".repeat(64) })).jobId, "A".repeat(64));
  });

  test("execution fields: jobDocument an object, statusDetails strings, versionNumber an integer", () => {
    expectInvalid(aws(undefined), "execution.jobDocument is missing", "job-1");
    expectInvalid(aws("afr_ota"), "execution.jobDocument must be an object", "job-1");
    expectInvalid(aws({ afr_ota: ota() }, {}, { statusDetails: { self_test: 1 } }), "execution.statusDetails.self_test must be a string, got 1", "job-1");
    expectInvalid(aws({ afr_ota: ota() }, {}, { statusDetails: "ready" }), "execution.statusDetails must be an object", "job-1");
    expectInvalid(aws({ afr_ota: ota() }, {}, { statusDetails: { "bad key": "x" } }), "execution.statusDetails key", "job-1");
    expectInvalid(aws({ afr_ota: ota() }, {}, { versionNumber: -1 }), "execution.versionNumber must not be negative", "job-1");
    expectInvalid(aws({ afr_ota: ota() }, {}, { versionNumber: 1.5 }), "execution.versionNumber must be an integer below 2^53, got 1.5", "job-1");
    expectInvalid(aws({ afr_ota: ota() }, {}, { versionNumber: "2" }), "execution.versionNumber must be an integer, got \"2\"", "job-1");
  });

  test("afr_ota and its protocols", () => {
    expectInvalid(aws({ afr_ota: "MQTT" }), "afr_ota must be an object", "job-1");
    expectInvalid(aws({ afr_ota: ota({ protocols: undefined }) }), "afr_ota.protocols is missing", "job-1");
    expectInvalid(aws({ afr_ota: ota({ protocols: "MQTT" }) }), "afr_ota.protocols must be an array", "job-1");
    expectInvalid(aws({ afr_ota: ota({ protocols: [] }) }), "afr_ota.protocols is empty", "job-1");
    expectInvalid(aws({ afr_ota: ota({ protocols: ["XYZ"] }) }), 'afr_ota.protocols[0] must be "MQTT" or "HTTP", got "XYZ"', "job-1");
    expectInvalid(aws({ afr_ota: ota({ protocols: ["MQTT", "mqtt"] }) }), 'afr_ota.protocols[1] must be "MQTT" or "HTTP", got "mqtt"', "job-1");
    expectInvalid(aws({ afr_ota: ota({ protocols: ["MQTT", "MQTT"] }) }), 'afr_ota.protocols lists "MQTT" twice', "job-1");
  });

  test("stream names: 1 to 128 of A-Z a-z 0-9 _ -, nothing that changes the topic", () => {
    expectInvalid(aws({ afr_ota: ota({ streamname: "a/b" }) }), "afr_ota.streamname", "job-1");
    expectInvalid(aws({ afr_ota: ota({ streamname: "#" }) }), "may only have the characters", "job-1");
    expectInvalid(aws({ afr_ota: ota({ streamname: "s".repeat(129) }) }), "afr_ota.streamname is 129 characters", "job-1");
    expectInvalid(aws({ afr_ota: ota({ streamname: 7 }) }), "afr_ota.streamname must be a string", "job-1");
    equal(planOf(aws({ afr_ota: ota({ streamname: "s".repeat(128) }) })).stream, "s".repeat(128));
  });

  test("files: a non-empty array; files[0] is the update, the rest are ignored as AWS's agent does", () => {
    expectInvalid(aws({ afr_ota: ota({ files: undefined }) }), "afr_ota.files is missing", "job-1");
    expectInvalid(aws({ afr_ota: ota({ files: {} }) }), "afr_ota.files must be an array", "job-1");
    expectInvalid(aws({ afr_ota: ota({ files: [] }) }), "afr_ota.files is empty", "job-1");
    expectInvalid(aws({ afr_ota: ota({ files: [1] }) }), "afr_ota.files[0] must be an object, got 1", "job-1");
    equal(planOf(aws({ afr_ota: ota({ files: [file({ filesize: 10 }), "anything"] }) })).size, 10);
  });

  test("file sizes: positive safe integers, within AWS's limit and the device's", () => {
    expectInvalid(awsFile({ filesize: -5 }), "afr_ota.files[0].filesize must be a positive integer, got -5", "job-1");
    expectInvalid(awsFile({ filesize: 0 }), "afr_ota.files[0].filesize must be a positive integer, got 0", "job-1");
    expectInvalid(awsFile({ filesize: 1.5 }), "afr_ota.files[0].filesize must be an integer below 2^53, got 1.5", "job-1");
    expectInvalid(awsFile({ filesize: 1e300 }), "afr_ota.files[0].filesize must be an integer below 2^53", "job-1");
    expectInvalid(awsFile({ filesize: 9007199254740993 }), "afr_ota.files[0].filesize must be an integer below 2^53", "job-1");
    expectInvalid(awsFile({ filesize: 4294963201 }), "afr_ota.files[0].filesize 4294963201 is over 4294963200", "job-1");
    equal(planOf(awsFile({ filesize: 4294963200 })).size, 4294963200);
    expectInvalid(awsFile({ filesize: 2000000 }, { maxSize: 1048576 }), "afr_ota.files[0].filesize 2000000 is over the 1048576 bytes this device takes", "job-1");
    equal(planOf(awsFile({ filesize: 1048576 }, { maxSize: 1048576 })).size, 1048576);
    expectInvalid(awsFile({ filesize: undefined }), "afr_ota.files[0].filesize is missing", "job-1");
    expectInvalid(awsFile({ filesize: true }), "afr_ota.files[0].filesize must be an integer", "job-1");
  });

  test("numbers as strings: decimal digits as AWS's agent reads them, never NaN, hex, signs or leading zeros", () => {
    equal(planOf(awsFile({ filesize: "1024" })).size, 1024);
    equal(planOf(awsFile({ fileid: "7" })).fileId, 7);
    for (const s of ["NaN", "Infinity", "-5", "+5", "0x400", "01024", "1e3", " 1024", "1024 ", ""]) {
      expectInvalid(awsFile({ filesize: s }), `afr_ota.files[0].filesize must be an integer, got ${JSON.stringify(s)}`, "job-1");
    }
    expectInvalid(awsFile({ filesize: "0" }), "must be a positive integer", "job-1");
    expectInvalid(awsFile({ filesize: "9007199254740993" }), "must be an integer below 2^53", "job-1");
    expectInvalid(awsFile({ filesize: "99999999999999999" }), "must be an integer, got", "job-1");
  });

  test("file ids: 0 to 255, like AWS stream files", () => {
    expectInvalid(awsFile({ fileid: undefined }), "afr_ota.files[0].fileid is missing", "job-1");
    expectInvalid(awsFile({ fileid: 256 }), "afr_ota.files[0].fileid must be 0 to 255", "job-1");
    expectInvalid(awsFile({ fileid: -1 }), "afr_ota.files[0].fileid must be 0 to 255", "job-1");
    expectInvalid(awsFile({ fileid: "text" }), 'afr_ota.files[0].fileid must be an integer, got "text"', "job-1");
    equal(planOf(awsFile({ fileid: 255 })).fileId, 255);
  });

  test("optional file fields are checked when present", () => {
    equal(planOf(awsFile({ filepath: undefined })).size, 181124, "filepath is optional");
    expectInvalid(awsFile({ filepath: 5 }), "afr_ota.files[0].filepath must be a string", "job-1");
    expectInvalid(awsFile({ fileType: 256 }), "afr_ota.files[0].fileType must be 0 to 255", "job-1");
    equal(planOf(awsFile({ fileType: 2 })).size, 181124, "a file type the plan does not carry");
    expectInvalid(awsFile({ attr: -1 }), "afr_ota.files[0].attr must be a 32-bit unsigned integer", "job-1");
    expectInvalid(awsFile({ auth_scheme: 1 }), "afr_ota.files[0].auth_scheme must be a string", "job-1");
    expectInvalid(awsFile({ certfile: "" }), "afr_ota.files[0].certfile is empty", "job-1");
    expectInvalid(awsFile({ certfile: "a\nb" }), "afr_ota.files[0].certfile has control characters", "job-1");
  });

  test("URLs: absolute http or https, at most 2048 characters", () => {
    const http = (u: unknown) => aws({ afr_ota: ota({ protocols: ["HTTP"] }, { update_data_url: u }) });
    equal(planOf(http("http://10.0.0.2:8080/fw.bin")).url, "http://10.0.0.2:8080/fw.bin");
    expectInvalid(http("ftp://example.com/fw.bin"), 'afr_ota.files[0].update_data_url has the unsupported scheme "ftp:"', "job-1");
    expectInvalid(http("javascript:alert(1)"), 'unsupported scheme "javascript:"', "job-1");
    expectInvalid(http("/fw.bin"), 'afr_ota.files[0].update_data_url: "/fw.bin" is not an absolute http or https URL', "job-1");
    expectInvalid(http("https://user:pw@example.com/fw.bin"), "user:password@", "job-1");
    expectInvalid(http("https://example.com/" + "a".repeat(2040)), "afr_ota.files[0].update_data_url is 2060 characters; at most 2048", "job-1");
    expectInvalid(http(42), "afr_ota.files[0].update_data_url must be a string", "job-1");
    // Present but unused on an MQTT job: still checked.
    expectInvalid(awsFile({ update_data_url: "ftp://x/y" }), "update_data_url", "job-1");
  });

  test("one URL rule for every format: no spaces, controls or format characters anywhere, a host name or IP", () => {
    const bad = [
      "https://h.exa\u0000mple/fw",
      "https://h .example/fw",
      "https://h.example/f w",
      "https://h.exa\u200bmple/fw",
      "https://h.example/fw\u202e.bin",
      "https://h.example/fw?x=\u0085",
      "https://h\u00e9.example/fw",
      "https://-h.example/fw",
      "https://h..example/fw",
      "https://h.example:0/fw",
      "https://h.example:65536/fw",
      // Found by fuzzing against WHATWG's URL: a numeric last label is an IPv4 address or nothing.
      "https://1.2.3.256/fw",
      "https://1.2.3/fw",
      "https://0x7f.1/fw",
      "https://127.0.0.1./fw",
      "https://[:1]/fw",
      "https://[1::2::3]/fw",
      "https://[1:2:3:4:5:6:7:8:9]/fw",
    ];
    const nrf = (u: string) => aws({ operation: "app_fw_update", fwversion: "v2", size: 1024, location: { url: u } }, { allowUnsigned: true });
    const zerynth = (u: string) => aws({ bc_idx: 1, bc_crc: MD5, bc_size: 1024, bc_url: u }, { allowUnsigned: true });
    const awsHttp = (u: string) => aws({ afr_ota: ota({ protocols: ["HTTP"] }, { update_data_url: u }) });
    const enosPush = (u: string) => parseEnosUpgrade(enos({ fileUrl: u }), { allowUnsigned: true });
    for (const u of bad) {
      for (const [name, parse] of [["aws", awsHttp], ["nrf", nrf], ["zerynth", zerynth], ["enos", enosPush]] as const) {
        const r = parse(u);
        if (r.kind !== "invalid") throw new AssertionError(`${name} took ${JSON.stringify(u)}`);
        // What a reason quotes is escaped: no control or format character reaches a log or a terminal.
        for (let i = 0; i < r.reason.length; i++) {
          const c = r.reason.charCodeAt(i);
          ok(c >= 0x20 && c !== 0x7f && !(c >= 0x80 && c <= 0x9f) && c !== 0x200b && c !== 0x202e, `${name}: the reason for ${JSON.stringify(u)} carries U+${c.toString(16)}`);
        }
      }
    }
    ok((awsHttp("https://h.exa\u200bmple/fw") as { reason: string }).reason.includes("\\u{200B}"), "the format character is shown escaped");
    for (const good of ["https://192.168.0.255/fw", "https://[::1]:8443/fw", "https://[::ffff:10.0.0.1]/fw", "https://[1:2:3:4:5:6:7:8]/fw", "https://0x7f.example/fw"]) {
      equal(planOf(awsHttp(good)).url, good, good);
    }
    equal(planOf(awsHttp("https://my_bucket.s3.example.com:8443/a/b.bin?X-Amz-Signature=ab%20cd")).url, "https://my_bucket.s3.example.com:8443/a/b.bin?X-Amz-Signature=ab%20cd");
    equal(planOf(awsHttp("http://[::1]:8080/fw.bin")).url, "http://[::1]:8080/fw.bin");
  });

  test("signatures: base64 of 8 to 100 bytes, with the certfile that names the key", () => {
    expectInvalid(awsFile({ "sig-sha256-ecdsa": "Zg===" }), "afr_ota.files[0].sig-sha256-ecdsa is not valid base64", "job-1");
    expectInvalid(awsFile({ "sig-sha256-ecdsa": "MEQC IF2Q" }), "is not valid base64", "job-1");
    expectInvalid(awsFile({ "sig-sha256-ecdsa": "AAAA" }), "decodes to 3 bytes", "job-1");
    expectInvalid(awsFile({ "sig-sha256-ecdsa": "A".repeat(200) }), "decodes to 150 bytes", "job-1");
    expectInvalid(awsFile({ "sig-sha256-ecdsa": 12 }), "afr_ota.files[0].sig-sha256-ecdsa must be a base64 string", "job-1");
    expectInvalid(awsFile({ certfile: undefined }), "afr_ota.files[0].certfile is missing", "job-1");
    const raw = "A".repeat(86) + "==";
    deepEqual(planOf(awsFile({ "sig-sha256-ecdsa": raw })).signature, { base64: raw, keyLabel: "ota-key" }, "raw r||s, 64 bytes");
  });

  test("unsigned documents: refused on a production device, taken when allowed", () => {
    expectInvalid(awsFile({ "sig-sha256-ecdsa": undefined }), "afr_ota.files[0].sig-sha256-ecdsa is missing: unsigned document on a production device", "job-1");
    const p = planOf(awsFile({ "sig-sha256-ecdsa": undefined, certfile: undefined }, { allowUnsigned: true }));
    equal(p.signature, undefined, "no signature in the plan");
    // allowUnsigned takes a missing signature, never a bad one.
    expectInvalid(awsFile({ "sig-sha256-ecdsa": "Zg===" }, { allowUnsigned: true }), "not valid base64", "job-1");
    expectInvalid(awsFile({ "sig-sha256-ecdsa": undefined, "sig-sha256-rsa": SIG }, { allowUnsigned: true }), 'signed with "sig-sha256-rsa"', "job-1");
  });

  test("options are checked too", () => {
    expectInvalid(awsFile({}, { maxSize: 0 }), "options.maxSize must be a positive integer");
    expectInvalid(awsFile({}, { maxSize: Number.NaN }), "options.maxSize must be a positive integer");
    expectInvalid(awsFile({}, { preferProtocol: "coap" as "http" }), "options.preferProtocol");
  });

  test("EnOS: an absolute fileUrl, digest and version", () => {
    expectPlan(parseEnosUpgrade(enos({}), { allowUnsigned: true }), {
      jobId: "1001",
      format: "enos",
      protocol: "http",
      size: 1024,
      url: "https://files.example.com/fw/app.bin",
      version: "v2.1.0",
      digest: { algorithm: "md5", hex: MD5 },
    });
    const sha = planOf(parseEnosUpgrade(enos({ signMethod: "SHA256", sign: SHA256.toUpperCase() }), { allowUnsigned: true }));
    deepEqual(sha.digest, { algorithm: "sha256", hex: SHA256 });
    equal(planOf(parseEnosUpgrade(utf8Encode(enos({})), { allowUnsigned: true })).jobId, "1001", "bytes");
  });

  test("EnOS: relative fileUrls resolve against a file base, or come through the HTTP broker", () => {
    const rel = enos({ fileUrl: "/1b30e0ea83002000/ota/kadak13" });
    equal(planOf(parseEnosUpgrade(rel, { allowUnsigned: true, fileBase: "https://iot-http.example.com/files/" })).url, "https://iot-http.example.com/1b30e0ea83002000/ota/kadak13");
    const relPath = enos({ fileUrl: "ota/kadak13" });
    equal(planOf(parseEnosUpgrade(relPath, { allowUnsigned: true, fileBase: "https://iot-http.example.com/files/" })).url, "https://iot-http.example.com/files/ota/kadak13");
    const brokered = planOf(parseEnosUpgrade(rel, { allowUnsigned: true }));
    equal(brokered.fileUri, "/1b30e0ea83002000/ota/kadak13", "fileUri without a file base");
    equal(brokered.url, undefined, "no URL: the channel makes it");
    expectInvalid(parseEnosUpgrade(rel, { allowUnsigned: true, fileBase: "iot-http.example.com" }), "options.fileBase");
  });

  test("EnOS: an enos-connect:// file is carried as the plan's fileUri", () => {
    const plan = planOf(parseEnosUpgrade(enos({ fileUrl: "enos-connect://23f5ff270b800000.zip" }), { allowUnsigned: true, fileBase: "https://iot-http.example.com/" }));
    equal(plan.fileUri, "enos-connect://23f5ff270b800000.zip", "fileUri");
    equal(plan.url, undefined, "url");
    expectInvalid(parseEnosUpgrade(enos({ fileUrl: "enos-connect://" }), { allowUnsigned: true }), "names no file", "1001");
    expectInvalid(parseEnosUpgrade(enos({ fileUrl: "enos-connect://a b" }), { allowUnsigned: true }), "spaces or control characters", "1001");
    expectInvalid(parseEnosUpgrade(enos({ fileUrl: "ftp://files.example.com/x" }), { allowUnsigned: true }), "unsupported scheme", "1001");
  });

  test("EnOS: a digest is not a signature", () => {
    expectInvalid(parseEnosUpgrade(enos({})), "unsigned document on a production device", "1001");
  });

  test("EnOS: bad fields are refused with their names", () => {
    // jobId null: refused before the message id is known.
    const bad = (params: Json, fragment: string, over: Json = {}, jobId: string | null = "1001") =>
      expectInvalid(parseEnosUpgrade(enos(params, over), { allowUnsigned: true, maxSize: 4096 }), fragment, jobId ?? undefined);
    bad({}, "id is missing", { id: undefined }, null);
    bad({}, "id must be a string, got 1001", { id: 1001 }, null);
    bad({}, "id is 65 characters", { id: "1".repeat(65) }, null);
    bad({}, "id \"a b\" must be printable ASCII without spaces", { id: "a b" }, null);
    bad({}, "params is missing", { params: undefined });
    bad({}, "params must be an object", { params: [1] });
    bad({}, "method must be a string", { method: 5 });
    bad({ version: undefined }, "params.version is missing");
    bad({ version: "" }, "params.version is empty");
    bad({ signMethod: "crc32" }, 'params.signMethod must be "md5" or "sha256", got "crc32"');
    bad({ signMethod: undefined }, "params.signMethod is missing");
    bad({ sign: SHA256 }, "params.sign must be 32 hex digits (an MD5)");
    bad({ signMethod: "sha256" }, "params.sign must be 64 hex digits (a SHA-256)");
    bad({ fileSize: "1024" }, 'params.fileSize must be an integer, got "1024"');
    bad({ fileSize: -1 }, "params.fileSize must be a positive integer, got -1");
    bad({ fileSize: 5000 }, "params.fileSize 5000 is over the 4096 bytes this device takes");
    bad({ fileUrl: undefined }, "params.fileUrl is missing");
    bad({ fileUrl: "https://x.example.com/a b" }, "params.fileUrl has spaces or control characters");
    expectInvalid(parseEnosUpgrade("{oops"), "message is not JSON");
  });
  test("a message nested deeper than 32 levels is refused before JSON.parse (XS's parser recurses on the native stack)", () => {
    const deep = (n: number) => "[".repeat(n) + "1" + "]".repeat(n);
    const aws = message({ afr_ota: ota({}, { x: "PLACEHOLDER" }) }).replace('"PLACEHOLDER"', deep(5000));
    expectInvalid(parseAwsJobMessage(aws), "deeper than 32");
    expectInvalid(parseAwsJobMessage(utf8Encode(aws)), "deeper than 32");
    expectInvalid(parseEnosUpgrade(enos({ x: "PLACEHOLDER" }).replace('"PLACEHOLDER"', deep(5000)), { allowUnsigned: true }), "deeper than 32");
    // Brackets inside strings are text, not nesting.
    planOf(parseAwsJobMessage(message({ afr_ota: ota({}, { x: "[".repeat(5000) + '\\"{' }) })));
    planOf(parseAwsJobMessage(message({ afr_ota: ota({}, { x: deep(25) }) })));
  });
});
