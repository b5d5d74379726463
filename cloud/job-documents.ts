/**
 * Job documents for one firmware file, in each format a device reads (modules/jobs): AWS OTA
 * (`afr_ota`, HTTP or MQTT stream), nRF Connect `aws_fota`, Zerynth FOTA. The local cloud sends
 * them; `xs-ota job document` prints them for AWS's CreateJob. For AWS, `url` is the
 * `${aws:iot:s3-presigned-url:...}` placeholder that AWS IoT replaces with a presigned URL each
 * time it sends the document.
 *
 * `certfile` and `filepath` are the job creator's, as in AWS's CreateOTAUpdate (the signing
 * profile's certificatePathOnDevice or the custom signature's certificateName becomes `certfile`,
 * the file's fileName becomes `filepath`). A device looks the verification key up under
 * `certfile`; this agent ignores `filepath` (it writes the other app slot). Both must be what the
 * device's parser takes (modules/aws/documents.ts): 1..256 and 1..1024 characters, no control
 * characters.
 */
import { createHash } from "node:crypto";

export type DocumentFormat = "aws" | "nrf" | "zerynth";
export type DocumentProtocol = "http" | "mqtt";

export interface DocumentInput {
  format: DocumentFormat;
  protocol: DocumentProtocol;
  /** The firmware file. */
  bytes: Uint8Array;
  /** Its version (nRF fwversion). */
  version: string;
  /** For HTTP: the URL or presigned-URL placeholder. */
  url?: string;
  /** For MQTT: the AWS IoT stream's id. */
  stream?: string;
  /** Base64 DER ECDSA P-256 signature over SHA-256 of the file (AWS's sig-sha256-ecdsa). */
  signature?: string;
  /** The code-signing key's label on the device (AWS certfile). */
  certfile: string;
  /** Where the device is to put the file (AWS filepath); default DEFAULT_FILEPATH. */
  filepath?: string;
  /** AWS only: a patch from `from` to `bytes`, offered beside the full image (`xs_ota_delta`). */
  delta?: DeltaInput;
}

export interface DeltaInput {
  /** The image the patch was made from. */
  from: Uint8Array;
  /** The VCDIFF patch. */
  patch: Uint8Array;
  /** For HTTP: its URL or presigned-URL placeholder. For MQTT it is file 1 of the job's stream. */
  url?: string;
}

/** The stream file id of a job's patch (file 0 is the full image). */
export const DELTA_FILE_ID = 1;

export const DEFAULT_FILEPATH = "/fw";
const MAX_CERTFILE = 256;
const MAX_FILEPATH = 1024;

/** Why `value` cannot be the document's `field` ("certfile" or "filepath"), or undefined when it can. */
export function documentFieldProblem(field: "certfile" | "filepath", value: unknown): string | undefined {
  if (typeof value !== "string") return `${field} must be a string`;
  const max = field === "certfile" ? MAX_CERTFILE : MAX_FILEPATH;
  const length = [...value].length;
  if (length === 0) return `${field} is empty`;
  if (length > max) return `${field} is ${length} characters; a device takes at most ${max}`;
  for (const c of value) {
    const code = c.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) return `${field} has control characters`;
  }
  return undefined;
}

/**
 * `${aws:iot:s3-presigned-url-v2:<url>}`: what AWS IoT replaces with a presigned URL of the object,
 * in the form AWS documents (https://docs.aws.amazon.com/iot/latest/developerguide/create-manage-jobs.html,
 * "Presigned URLs": `${aws:iot:s3-presigned-url-v2:https://s3.region.amazonaws.com/<bucket>/<code file>}`).
 * The local cloud also resolves the older `${aws:iot:s3-presigned-url:<url>}`.
 */
export function presignedPlaceholder(url: string): string {
  return `\${aws:iot:s3-presigned-url-v2:${url}}`;
}

export function jobDocument(i: DocumentInput): Record<string, unknown> {
  if (i.delta !== undefined && i.format !== "aws") throw new Error(`format ${i.format} has no place for a patch; deltas are offered in AWS OTA documents`);
  if (i.protocol === "mqtt" && i.format !== "aws") throw new Error(`format ${i.format} has no MQTT download; use HTTP`);
  if (i.protocol === "mqtt" && !i.stream) throw new Error("an MQTT job needs its stream id");
  if (i.protocol === "http" && !i.url) throw new Error("an HTTP job needs the file's URL");
  const url = i.url ?? "";
  if (i.format === "nrf") return { operation: "app_fw_update", fwversion: i.version, size: i.bytes.length, location: { url } };
  if (i.format === "zerynth") return { bc_idx: 0, bc_crc: createHash("md5").update(i.bytes).digest("hex"), bc_size: i.bytes.length, bc_url: url };
  const filepath = i.filepath ?? DEFAULT_FILEPATH;
  for (const [field, value] of [["certfile", i.certfile], ["filepath", filepath]] as const) {
    const problem = documentFieldProblem(field, value);
    if (problem !== undefined) throw new Error(problem);
  }
  const file: Record<string, unknown> = { filepath, fileid: 0, certfile: i.certfile, filesize: i.bytes.length };
  if (i.protocol === "http") {
    file["auth_scheme"] = "aws.s3.presigned";
    file["update_data_url"] = url;
  }
  if (i.signature !== undefined) file["sig-sha256-ecdsa"] = i.signature;
  if (i.delta !== undefined) {
    if (i.protocol === "http" && !i.delta.url) throw new Error("an HTTP job's patch needs its URL");
    const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
    file["xs_ota_delta"] = {
      from_size: i.delta.from.length,
      from_sha256: sha256(i.delta.from),
      filesize: i.delta.patch.length,
      sha256: sha256(i.delta.patch),
      ...(i.protocol === "http" ? { update_data_url: i.delta.url } : { fileid: DELTA_FILE_ID }),
    };
  }
  return { afr_ota: { protocols: [i.protocol === "http" ? "HTTP" : "MQTT"], ...(i.protocol === "mqtt" ? { streamname: i.stream } : {}), files: [file] } };
}
