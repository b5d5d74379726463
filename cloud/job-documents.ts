/**
 * Job documents for one firmware file, in each format a device reads (modules/jobs): AWS OTA
 * (`afr_ota`, HTTP or MQTT stream), nRF Connect `aws_fota`, Zerynth FOTA. The local cloud sends
 * them; `xs-ota job document` prints them for AWS's CreateJob. For AWS, `url` is the
 * `${aws:iot:s3-presigned-url:...}` placeholder that AWS IoT replaces with a presigned URL each
 * time it sends the document.
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
}

/** `${aws:iot:s3-presigned-url:<url>}`: what AWS IoT replaces with a presigned URL of the object. */
export function presignedPlaceholder(url: string): string {
  return `\${aws:iot:s3-presigned-url:${url}}`;
}

export function jobDocument(i: DocumentInput): Record<string, unknown> {
  if (i.protocol === "mqtt" && i.format !== "aws") throw new Error(`format ${i.format} has no MQTT download; use HTTP`);
  if (i.protocol === "mqtt" && !i.stream) throw new Error("an MQTT job needs its stream id");
  if (i.protocol === "http" && !i.url) throw new Error("an HTTP job needs the file's URL");
  const url = i.url ?? "";
  if (i.format === "nrf") return { operation: "app_fw_update", fwversion: i.version, size: i.bytes.length, location: { url } };
  if (i.format === "zerynth") return { bc_idx: 0, bc_crc: createHash("md5").update(i.bytes).digest("hex"), bc_size: i.bytes.length, bc_url: url };
  const file: Record<string, unknown> = { filepath: "/fw", fileid: 0, certfile: i.certfile, filesize: i.bytes.length };
  if (i.protocol === "http") {
    file["auth_scheme"] = "aws.s3.presigned";
    file["update_data_url"] = url;
  }
  if (i.signature !== undefined) file["sig-sha256-ecdsa"] = i.signature;
  return { afr_ota: { protocols: [i.protocol === "http" ? "HTTP" : "MQTT"], ...(i.protocol === "mqtt" ? { streamname: i.stream } : {}), files: [file] } };
}
