/**
 * PEM (RFC 7468 textual encoding): every `-----BEGIN X-----` ... `-----END X-----` block in a
 * text, with text around blocks ignored (OpenSSL writes "Certificate:" dumps and "Bag
 * Attributes" there). LF or CRLF line ends. Inside a block all whitespace is dropped and the
 * rest must be strict base64; RFC 1421 headers ("Proc-Type:", encrypted keys) are not supported
 * and fail as bad base64. A bad body is reported by its line and column in the text, which is
 * what a person fixing a pasted key needs.
 */
import { Base64Error, decodeBase64 } from "./base64.ts";
import { OtaError } from "../errors.ts";

export interface PemBlock {
  label: string;
  der: Uint8Array;
}

// RegExps are made per call, never kept at module level: in flash (preload) a RegExp has no
// match data, and Moddable's XS (8.2.3) crashes in exec's temporary copy once a collection runs.
const BEGIN = () => /^-----BEGIN ([^-]*)-----$/;
const END = () => /^-----END ([^-]*)-----$/;
// ASCII whitespace only, the same set columnOf() skips, so columns stay right.
const strip = (line: string) => line.replace(/^[ \t\r\f\v]+|[ \t\r\f\v]+$/g, "");

export function parsePem(text: string): PemBlock[] {
  const lines = text.split("\n");
  const blocks: PemBlock[] = [];
  for (let n = 0; n < lines.length; n++) {
    const begin = BEGIN().exec(strip(lines[n]));
    if (!begin) continue;
    const label = begin[1];
    const startLine = n + 1;
    // Body lines, and where each starts in the whitespace-free body, to map base64 errors back.
    let body = "";
    const starts: { line: number; at: number }[] = [];
    let closed = false;
    for (n++; n < lines.length; n++) {
      const line = strip(lines[n]);
      const end = END().exec(line);
      if (end) {
        if (end[1] !== label) {
          throw new OtaError("malformed", `PEM: block "BEGIN ${label}" at line ${startLine} ends with "END ${end[1]}" at line ${n + 1}`);
        }
        closed = true;
        break;
      }
      if (BEGIN().test(line)) {
        throw new OtaError("malformed", `PEM: block "BEGIN ${label}" at line ${startLine} has no END line before the next BEGIN at line ${n + 1}`);
      }
      starts.push({ line: n, at: body.length });
      // A literal here, not a module-level RegExp: on a device a preloaded RegExp is read-only,
      // and a global one cannot reset its lastIndex.
      body += line.replace(/[ \t\r\f\v]+/g, "");
    }
    if (!closed) throw new OtaError("malformed", `PEM: block "BEGIN ${label}" at line ${startLine} has no "END ${label}" line`);
    blocks.push({ label, der: decodeBody(body, starts, lines, label) });
  }
  return blocks;
}

function decodeBody(body: string, starts: { line: number; at: number }[], lines: string[], label: string): Uint8Array {
  try {
    return decodeBase64(body);
  } catch (e) {
    if (!(e instanceof Base64Error)) throw e;
    let where = starts.length - 1;
    while (where > 0 && starts[where].at > e.position) where--;
    const at = starts[where];
    const line = at ? at.line : 0;
    const column = at ? columnOf(lines[line], e.position - at.at) : 0;
    const reason = e.message.replace(/^base64: /, "").replace(/ at position \d+/, "");
    throw new OtaError("malformed", `PEM block "${label}", line ${line + 1} column ${column}: bad base64: ${reason}`);
  }
}

/** 1-based column of the `index`-th non-whitespace character of `line` (past the end: after it). */
function columnOf(line: string, index: number): number {
  let seen = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0b || c === 0x0c) continue;
    if (seen === index) return i + 1;
    seen++;
  }
  return line.length + 1;
}
