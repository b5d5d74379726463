/**
 * An update plan: everything the agent needs from a job, whatever cloud or document format it
 * came in. Parsers (modules/aws/documents.ts, modules/enos/documents.ts) produce it after strict checks; the agent
 * and `xs-ota job parse` consume it.
 */
export type JobFormat = "aws-ota" | "nrf-fota" | "zerynth" | "enos";
export type TransferProtocol = "http" | "mqtt";

export interface UpdatePlan {
  /** AWS jobId (at most 64 characters of [A-Za-z0-9_-]), or the EnOS message id. */
  jobId: string;
  format: JobFormat;
  protocol: TransferProtocol;
  /** The file's size in bytes (> 0). */
  size: number;
  /** HTTP(S) URL (presigned for AWS; absolute after resolving a relative EnOS fileUrl). */
  url?: string;
  /**
   * A file the cloud serves through its own logged-in download instead of a URL (EnOS
   * `enos-connect://...`, or a path relative to the EnOS HTTP broker): the channel's
   * `downloadUrl` makes the URL to fetch. A plan has `url` or `fileUri` when protocol is "http".
   */
  fileUri?: string;
  /** AWS MQTT stream name and file id. */
  stream?: string;
  fileId?: number;
  /** Code signature: base64 DER (or raw) ECDSA P-256 over SHA-256, and the key's label (AWS certfile). */
  signature?: { base64: string; keyLabel: string };
  /** A digest the job promises (Zerynth bc_crc MD5, EnOS sign), lower-case hex. */
  digest?: { algorithm: "md5" | "sha256"; hex: string };
  /** The version the job says it installs, when the document says (nRF fwversion, EnOS version). */
  version?: string;
  /** AWS job execution details that came with the job (self_test, updatedBy), kept for the reboot. */
  statusDetails?: Record<string, string>;
  /** AWS execution version number, when given (for expectedVersion). */
  versionNumber?: number;
  /**
   * A patch that rebuilds this plan's image from the image the device may be running (VCDIFF,
   * RFC 3284). The device takes it only when its running image is the patch's source (length
   * and SHA-256), else the full image; either way the result must be this plan's image byte for
   * byte: `signature` and `digest` are the full image's, checked after the patch is applied.
   */
  delta?: DeltaOffer;
}

export interface DeltaOffer {
  /** The image the patch was made from: its length and SHA-256 (lower-case hex). */
  sourceSize: number;
  sourceSha256: string;
  /** The patch file: its length and SHA-256 (lower-case hex), checked before it is applied. */
  size: number;
  sha256: string;
  /** Where the patch comes from, by the plan's protocol: a URL (HTTP) or a file id of the plan's stream (MQTT). */
  url?: string;
  fileId?: number;
}

/** What a parser returns: a plan, no job at all, a job for the app's own handler, or a refusal. */
export type ParseResult =
  | { kind: "plan"; plan: UpdatePlan }
  | { kind: "none" }
  | { kind: "custom"; jobId: string; document: unknown; statusDetails?: Record<string, string>; versionNumber?: number }
  | { kind: "invalid"; jobId?: string; reason: string };
