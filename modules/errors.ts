/**
 * Every failure the agent can meet has a code from this list and a message for people.
 * Expected failures (bad input, network, signature) travel as OtaError values and end as
 * reported outcomes; only programming errors are left to throw anything else.
 */
export type OtaErrorCode =
  | "flash-bounds" // an offset or length outside the flash or partition
  | "flash-align" // an erase or write not on the boundary the flash requires
  | "flash-not-erased" // strict NOR model: a write would need to set a bit back to 1
  | "flash-power-cut" // fault injection: power was lost during or before this operation
  | "partition-unknown" // no partition of that name
  | "partition-table" // a partition table with errors
  | "image-too-large" // the image does not fit its slot
  | "image-offset" // a resume offset or write offset that is not where the writer is
  | "image-incomplete" // finish() before every byte arrived
  | "image-invalid" // an app image the bootloader would refuse (header, segments, checksum, hash)
  | "patch-invalid" // a delta patch (VCDIFF) that is malformed, truncated or uses what the decoder does not support
  | "patch-source" // a delta patch made from another image than the running one (it reads past the source)
  | "otadata-corrupt" // otadata that cannot be read as two entries
  | "boot-no-slot" // boot control cannot find a slot to select or fall back to
  | "boot-state" // an operation that the current boot state does not allow
  | "malformed" // bytes that do not parse: base64, DER, PEM (the message says where and why)
  | "key-invalid" // a public key or certificate that cannot verify P-256 signatures
  | "signature-malformed" // a signature that is neither DER nor raw r||s of P-256
  | "signature-invalid" // a well-formed signature that does not match the image and key
  | "digest-mismatch" // the image's digest differs from the one the job promised
  | "version-rejected" // the image is not newer than the running firmware
  | "security-version" // the image's security version is below the device's minimum
  | "unsigned" // an image without a signature on a device not set up for development
  | "network" // a connection failed, dropped or was reset (worth retrying)
  | "timeout" // nothing arrived for the allowed time (worth retrying)
  | "http-status" // an HTTP status the transfer cannot use (the message has it)
  | "http-protocol" // a response that breaks the rules: Range, Content-Range, lengths, redirects
  | "url-refused" // 400/403/404 on a download URL: expired or refused; ask the job for a fresh one
  | "stream-protocol" // an MQTT stream message that breaks the rules: CBOR, file id, index, length
  | "stream-rejected" // the stream service refused a request (its error code in the message)
  | "no-progress" // retries ran out without a byte of progress
  | "too-slow" // the transfer delivered less than its minimum sustained rate (a server that trickles)
  | "cancelled" // the transfer was abandoned on purpose (a new job replaced it)
  | "bad-argument"; // a caller passed something outside the documented range

export class OtaError extends Error {
  readonly code: OtaErrorCode;
  constructor(code: OtaErrorCode, message: string) {
    super(message);
    // Defined, not assigned: on a device Error.prototype is frozen (preload), and assigning a
    // name it inherits read-only throws there.
    Object.defineProperty(this, "name", { value: "OtaError", writable: true, configurable: true });
    this.code = code;
  }
}

export function isOtaError(e: unknown, code?: OtaErrorCode): e is OtaError {
  return e instanceof OtaError && (code === undefined || e.code === code);
}
