/**
 * xs-ota job document --file FW.bin (--s3-url URL | --url URL | --stream ID) [--key KEY.pem]
 *                     [--format aws|nrf|zerynth] [--certfile LABEL] [--filepath PATH] [-o job.json]
 *
 * Prints the job document a device reads for FW.bin, for AWS IoT's CreateJob (`aws iot
 * create-job --document file://job.json`). `--s3-url` is the firmware's S3 object URL: the
 * document carries AWS's presigned-URL placeholder for it (CreateJob then needs
 * `--presigned-url-config`); `--url` is any other HTTPS URL, used as it is; `--stream` is an AWS
 * IoT stream id (CreateStream) for MQTT downloads. With `--key` the document carries the
 * signature (sig-sha256-ecdsa) under `certfile` (default signer.crt, the device's key label);
 * `--filepath` sets the file's `filepath` (default /fw). `--delta-from OLD.bin --patch PATCH`
 * also offers a patch (made by `xs-ota delta make`) to devices running OLD.bin: by HTTP from
 * `--patch-s3-url`/`--patch-url`, or as file 1 of the `--stream`.
 */
import { writeFileSync } from "node:fs";
import { checkPrivateKeyFile, readInput } from "./files.ts";
import { printUsageError, withArgs, type CommandSpec } from "./args.ts";
import type { Io } from "./main.ts";
import { documentFieldProblem, jobDocument, presignedPlaceholder, type DeltaInput, type DocumentFormat } from "../cloud/job-documents.ts";
import { signFirmware, SIGNER_LABEL } from "../cloud/server.ts";
import { parseImagePrefix } from "../modules/esp-idf/image.ts";
import { isOtaError } from "../modules/errors.ts";
import { applyDelta } from "../cloud/delta.ts";

export const JOB_DOCUMENT: CommandSpec = {
  name: "job document",
  usage: [
    "job document --file FW.bin (--s3-url URL | --url URL | --stream ID) [--key KEY.pem] [--format aws|nrf|zerynth] [--certfile LABEL] [--filepath PATH] [-o job.json]",
    "job document ... --delta-from OLD.bin --patch PATCH [--patch-s3-url URL | --patch-url URL]",
  ],
  about: ["Prints the job document a device reads for FW.bin, for AWS IoT's CreateJob (aws iot create-job --document file://job.json)."],
  options: {
    file: { type: "string", value: "FW.bin", required: true, description: "the firmware image" },
    "s3-url": { type: "string", value: "URL", description: "the firmware's S3 object URL (the document carries AWS's presigned-URL placeholder)" },
    url: { type: "string", value: "URL", description: "any other http(s) URL, used as it is" },
    stream: { type: "string", value: "ID", description: "an AWS IoT stream id (CreateStream), for MQTT downloads" },
    key: { type: "string", value: "KEY.pem", description: "the private signing key: the document carries the signature" },
    format: { type: "string", value: "aws|nrf|zerynth", choices: ["aws", "nrf", "zerynth"], description: "the document's format (default aws)" },
    certfile: { type: "string", value: "LABEL", description: "the device's key label for the signature (default signer.crt)" },
    filepath: { type: "string", value: "PATH", description: "the file's filepath (default /fw)" },
    "delta-from": { type: "string", value: "OLD.bin", description: "offer a patch to devices running this image too (AWS OTA documents)" },
    patch: { type: "string", value: "PATCH", description: "that patch, from xs-ota delta make (MQTT: file 1 of the stream)" },
    "patch-s3-url": { type: "string", value: "URL", description: "the patch's S3 object URL (HTTP)" },
    "patch-url": { type: "string", value: "URL", description: "the patch's URL, used as it is (HTTP)" },
    out: { type: "string", short: "o", value: "job.json", description: "write the document there instead of stdout" },
  },
};

export function jobDocumentCommand(args: string[], io: Io): Promise<number> {
  return withArgs(JOB_DOCUMENT, args, io, (a) => {
    const o: Record<string, string> = {};
    const names: Record<string, string> = { file: "file", "s3-url": "s3", url: "url", stream: "stream", key: "key", format: "format", certfile: "certfile", filepath: "filepath", out: "out", "delta-from": "deltaFrom", patch: "patch", "patch-s3-url": "patchS3", "patch-url": "patchUrl" };
    for (const [option, name] of Object.entries(names)) {
      const v = a.string(option);
      if (v !== undefined) o[name] = v;
    }
    return document(o, io);
  });
}

function document(o: Record<string, string>, io: Io): number {
  const format = (o["format"] ?? "aws") as DocumentFormat;
  const sources = ["s3", "url", "stream"].filter((k) => o[k] !== undefined);
  if (sources.length !== 1) return usage(io, "give exactly one of --s3-url, --url and --stream");
  const protocol = o["stream"] !== undefined ? "mqtt" : "http";
  if (protocol === "mqtt" && format !== "aws") return usage(io, `format ${format} has no MQTT download`);
  if (o["url"] !== undefined && !/^https?:\/\//.test(o["url"])) return usage(io, `--url must be an http(s) URL, got ${o["url"]}`);
  let bytes: Uint8Array;
  let version: string;
  let signature: string | undefined;
  const file = o["file"] ?? "";
  bytes = readInput(file, "the firmware");
  const key = o["key"] === undefined ? undefined : checkPrivateKeyFile(o["key"], "job document");
  try {
    version = parseImagePrefix(bytes.subarray(0, 288)).desc.version;
  } catch (e) {
    io.err(`error: ${file} is not an ESP32 app image: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  try {
    if (key !== undefined) signature = signFirmware(bytes, key);
  } catch (e) {
    io.err(`error: cannot sign with ${o["key"]}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  for (const field of ["certfile", "filepath"] as const) {
    const value = o[field];
    if (value === undefined) continue;
    if (format !== "aws") return usage(io, `--${field} is for AWS OTA documents; format ${format} has no ${field}`);
    const problem = documentFieldProblem(field, value);
    if (problem !== undefined) return usage(io, `--${field}: ${problem}`);
  }
  const url = o["s3"] !== undefined ? presignedPlaceholder(o["s3"]) : o["url"];
  let delta: DeltaInput | undefined;
  if (o["deltaFrom"] !== undefined || o["patch"] !== undefined) {
    if (o["deltaFrom"] === undefined || o["patch"] === undefined) return usage(io, "--delta-from and --patch go together");
    if (format !== "aws") return usage(io, `format ${format} has no place for a patch; deltas are offered in AWS OTA documents`);
    const patchUrls = ["patchS3", "patchUrl"].filter((k) => o[k] !== undefined);
    if (protocol === "http" && patchUrls.length !== 1) return usage(io, "an HTTP document's patch needs exactly one of --patch-s3-url and --patch-url");
    if (protocol === "mqtt" && patchUrls.length > 0) return usage(io, "over --stream the patch is file 1 of the stream; it takes no URL");
    const patchUrl = o["patchS3"] !== undefined ? presignedPlaceholder(o["patchS3"]) : o["patchUrl"];
    delta = { from: readInput(o["deltaFrom"], "the image the patch applies to"), patch: readInput(o["patch"], "the patch"), ...(patchUrl ? { url: patchUrl } : {}) };
    // A document must not promise a patch that does not make its image: checked with the device's decoder.
    let made: Uint8Array | undefined;
    try {
      made = applyDelta(delta.patch, delta.from, bytes.length);
    } catch (e) {
      if (!isOtaError(e)) throw e;
      io.err(`error: ${o["patch"]}: ${e.message}`);
      return 1;
    }
    if (Buffer.compare(made, bytes) !== 0) {
      io.err(`error: ${o["patch"]} applied to ${o["deltaFrom"]} does not make ${file}`);
      return 1;
    }
  }
  const document = jobDocument({ format, protocol, bytes, version, url, stream: o["stream"], signature, certfile: o["certfile"] ?? SIGNER_LABEL, filepath: o["filepath"], ...(delta ? { delta } : {}) });
  const text = JSON.stringify(document, null, 2);
  if (o["out"] === undefined) {
    for (const line of text.split("\n")) io.out(line);
    return 0;
  }
  try {
    writeFileSync(o["out"], text + "\n");
  } catch (e) {
    io.err(`error: ${(e as Error).message}`);
    return 1;
  }
  io.out(`${o["out"]}: ${format} document for ${version} (${bytes.length} bytes, ${protocol === "http" ? "HTTP" : "MQTT stream"}${signature ? ", signed" : ", unsigned"})`);
  return 0;
}

function usage(io: Io, problem: string): number {
  return printUsageError(JOB_DOCUMENT, io, problem);
}
