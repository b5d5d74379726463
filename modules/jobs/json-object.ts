/** A cloud message's payload as a JSON object, or why it is not one. Never throws. */
import { utf8Decode } from "../codec/utf8.ts";

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
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "payload is not JSON";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "payload is not a JSON object";
  return value as Record<string, unknown>;
}
