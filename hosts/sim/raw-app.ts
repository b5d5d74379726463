/**
 * The simulator's stand-in for a raw MCU binary (an Mbed app for the Nuvoton board): a real
 * Mbed image carries no header the device can read, and its version is compiled into the code.
 * Here the program is the binary: its JavaScript, with the version it reports in a first line
 * `// xs-ota-app <version>`. The binary ends where flash is still erased (UTF-8 never holds 0xFF).
 */
import { OtaError } from "../../modules/errors.ts";
import { utf8Decode, utf8Encode } from "../../modules/codec/utf8.ts";

const TAG = "// xs-ota-app ";

export function rawAppImage(version: string, source: string): Uint8Array {
  if (!/^[\x21-\x7e]{1,31}$/.test(version)) throw new OtaError("bad-argument", `version must be 1 to 31 printable ASCII characters without spaces, got '${version}'`);
  return utf8Encode(`${TAG}${version}\n${source}`);
}

/** The version a raw app declares in its first line, if it is one. */
export function rawAppVersion(bytes: Uint8Array): string | undefined {
  const head = utf8Decode(bytes.subarray(0, Math.min(bytes.length, 64)).filter((b) => b < 0x80));
  if (!head.startsWith(TAG)) return undefined;
  const end = head.indexOf("\n");
  return end < 0 ? undefined : head.slice(TAG.length, end);
}

/** Reads the program of a raw app that starts at `bytes[0]` and ends at the first erased byte. */
export function rawAppProgram(bytes: Uint8Array): { version: string; source: string } {
  const end = bytes.indexOf(0xff);
  const image = end < 0 ? bytes : bytes.subarray(0, end);
  const version = rawAppVersion(image);
  if (version === undefined) throw new OtaError("image-invalid", "the run area holds no xs-ota raw app (no `// xs-ota-app <version>` first line)");
  return { version, source: utf8Decode(image.subarray(image.indexOf(0x0a) + 1)) };
}
