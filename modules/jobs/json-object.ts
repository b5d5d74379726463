/** A cloud message's payload as a JSON object, or why it is not one. Never throws. */
import { utf8Decode } from "../codec/utf8.ts";

/**
 * The deepest nesting of arrays and objects a message may have. XS's JSON.parse recurses on the
 * native stack: a 10 KB message of 5000 nested arrays overflows it and the engine aborts (the
 * device restarts) instead of throwing. Job documents nest about 5 deep.
 */
export const MAX_JSON_DEPTH = 32;

// Read in slices: on XS charCodeAt costs time in proportion to the string's length.
const SLICE = 128;

/** Why `text` must not reach JSON.parse (nested deeper than MAX_JSON_DEPTH), or undefined. */
export function jsonDepthProblem(text: string): string | undefined {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let base = 0; base < text.length; base += SLICE) {
    const part = text.length <= SLICE ? text : text.slice(base, base + SLICE);
    for (let j = 0; j < part.length; j++) {
      const c = part.charCodeAt(j);
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x5b || c === 0x7b) {
        if (++depth > MAX_JSON_DEPTH) return `payload nests arrays and objects deeper than ${MAX_JSON_DEPTH}`;
      } else if (c === 0x5d || c === 0x7d) depth--;
    }
  }
  return undefined;
}

export function readJsonObject(payload: Uint8Array | string): Record<string, unknown> | string {
  let text: string;
  if (typeof payload === "string") text = payload;
  else {
    try {
      text = utf8Decode(payload);
    } catch (e) {
      return e instanceof Error ? e.message : "payload is not UTF-8";
    }
  }
  const deep = jsonDepthProblem(text);
  if (deep !== undefined) return deep;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "payload is not JSON";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "payload is not a JSON object";
  return value as Record<string, unknown>;
}
