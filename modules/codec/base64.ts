/**
 * Base64, standard alphabet (RFC 4648 section 4), strict: this decodes signatures and PEM bodies,
 * where one text must mean one byte string. So a decoder here refuses what lenient decoders
 * skip or guess at: whitespace (PEM callers strip line breaks themselves), the URL-safe letters,
 * `=` before the end, more than two `=`, padding that does not complete a group of 4, a length
 * no encoder produces (4k + 1), and non-zero bits left over in the last character.
 * Padding is optional: "Zg==" and "Zg" both decode to "f".
 */
import { OtaError } from "../errors.ts";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PAD = 0x3d; // "="

/** Thrown for bad base64: an OtaError "malformed" that also says where, so PEM can map it to a line. */
export class Base64Error extends OtaError {
  /** Index in the decoded text of the character at fault. */
  readonly position: number;
  constructor(position: number, message: string) {
    super("malformed", message);
    this.position = position;
  }
}

// Char code -> 6-bit value, or -1. Built when the module loads: on a device that is at preload,
// on the build machine, and the table then sits read-only in flash instead of in RAM.
const TABLE: Int8Array = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) t[ALPHABET.charCodeAt(i)] = i;
  return t;
})();

function describe(text: string, i: number): string {
  const c = text.charCodeAt(i);
  const hex = (c < 16 ? "0" : "") + c.toString(16);
  return `${JSON.stringify(text.charAt(i))} (0x${hex})`;
}

export function decodeBase64(text: string): Uint8Array {
  const t = TABLE;
  // Split into data characters and trailing padding; any "=" before that run is misplaced.
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === PAD) end--;
  const pads = text.length - end;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === PAD) throw new Base64Error(i, `base64: "=" at position ${i} is not at the end`);
    if (c >= 128 || t[c] < 0) throw new Base64Error(i, `base64: character ${describe(text, i)} at position ${i} is not in the base64 alphabet`);
  }
  if (pads > 2) throw new Base64Error(end, `base64: ${pads} "=" at position ${end}; at most 2 may end the text`);
  const rest = end % 4;
  if (rest === 1) throw new Base64Error(end - 1, `base64: length ${end} (without padding) leaves 1 character at position ${end - 1}, which cannot encode a byte`);
  if (pads > 0 && (end + pads) % 4 !== 0) {
    throw new Base64Error(end, `base64: ${pads} "=" at position ${end} after ${end} characters does not complete a group of 4`);
  }

  const out = new Uint8Array(((end - rest) / 4) * 3 + (rest === 0 ? 0 : rest - 1));
  let o = 0;
  let i = 0;
  for (; i + 4 <= end; i += 4) {
    const v = (t[text.charCodeAt(i)] << 18) | (t[text.charCodeAt(i + 1)] << 12) | (t[text.charCodeAt(i + 2)] << 6) | t[text.charCodeAt(i + 3)];
    out[o++] = v >>> 16;
    out[o++] = (v >>> 8) & 0xff;
    out[o++] = v & 0xff;
  }
  if (rest === 2) {
    const a = t[text.charCodeAt(i)];
    const b = t[text.charCodeAt(i + 1)];
    // Only the top 2 bits of b carry data; the encoder leaves the other 4 zero.
    if (b & 0x0f) throw new Base64Error(i + 1, `base64: character ${describe(text, i + 1)} at position ${i + 1} has non-zero unused bits (not canonical)`);
    out[o++] = (a << 2) | (b >>> 4);
  } else if (rest === 3) {
    const a = t[text.charCodeAt(i)];
    const b = t[text.charCodeAt(i + 1)];
    const c = t[text.charCodeAt(i + 2)];
    if (c & 0x03) throw new Base64Error(i + 2, `base64: character ${describe(text, i + 2)} at position ${i + 2} has non-zero unused bits (not canonical)`);
    out[o++] = (a << 2) | (b >>> 4);
    out[o++] = ((b & 0x0f) << 4) | (c >>> 2);
  }
  return out;
}

/** Standard alphabet, padded with "=". */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    s += ALPHABET[v >>> 18] + ALPHABET[(v >>> 12) & 63] + ALPHABET[(v >>> 6) & 63] + ALPHABET[v & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const v = bytes[i] << 16;
    s += ALPHABET[v >>> 18] + ALPHABET[(v >>> 12) & 63] + "==";
  } else if (rest === 2) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    s += ALPHABET[v >>> 18] + ALPHABET[(v >>> 12) & 63] + ALPHABET[(v >>> 6) & 63] + "=";
  }
  return s;
}
