/** Assertions for contract suites: portable, so they run on XS as well as Node. */
import { isOtaError, type OtaErrorCode } from "../../modules/errors.ts";

export class AssertionError extends Error {
  override name = "AssertionError";
}

function show(v: unknown): string {
  if (v instanceof Uint8Array) return `bytes[${v.length}] ${hex(v.subarray(0, 48))}${v.length > 48 ? "…" : ""}`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  return s;
}

export function ok(cond: unknown, what = "expected a true condition"): asserts cond {
  if (!cond) throw new AssertionError(what);
}

export function equal<T>(actual: T, expected: T, what = "value"): void {
  if (!Object.is(actual, expected)) throw new AssertionError(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function deepEqual(actual: unknown, expected: unknown, what = "value"): void {
  if (show(actual) !== show(expected)) throw new AssertionError(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

export function bytesEqual(actual: Uint8Array, expected: Uint8Array, what = "bytes"): void {
  if (actual.length !== expected.length) throw new AssertionError(`${what}: length ${actual.length}, expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) {
      throw new AssertionError(`${what}: differ at ${i}: ${actual[i]} vs expected ${expected[i]}`);
    }
  }
}

/** Runs fn and checks that it throws an OtaError with this code (and, if given, a message containing `text`). */
export function throwsCode(fn: () => unknown, code: OtaErrorCode, text?: string): void {
  try {
    fn();
  } catch (e) {
    checkError(e, code, text);
    return;
  }
  throw new AssertionError(`expected an OtaError '${code}', nothing was thrown`);
}

export async function rejectsCode(fn: () => Promise<unknown>, code: OtaErrorCode, text?: string): Promise<void> {
  try {
    await fn();
  } catch (e) {
    checkError(e, code, text);
    return;
  }
  throw new AssertionError(`expected an OtaError '${code}', nothing was thrown`);
}

function checkError(e: unknown, code: OtaErrorCode, text?: string): void {
  if (!isOtaError(e)) throw new AssertionError(`expected an OtaError '${code}', got ${String(e)}`);
  if (e.code !== code) throw new AssertionError(`expected error code '${code}', got '${e.code}': ${e.message}`);
  if (text !== undefined && !e.message.includes(text)) {
    throw new AssertionError(`error message '${e.message}' does not mention '${text}'`);
  }
}
