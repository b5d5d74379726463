/**
 * Reading the files users hand to commands: a path that is missing, a directory, empty, or not
 * what the command takes ends in one line that names the file and what is wrong (InputError),
 * never in a stack trace. cli/main.ts prints an InputError as `error: <message>`, exit 1.
 */
import { readFileSync, statSync } from "node:fs";
import { X509Certificate } from "node:crypto";

export class InputError extends Error {}

/** "no such file", "it is a directory": what an fs error means to a user. */
export function fsReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const known: Record<string, string> = {
    ENOENT: "no such file",
    EISDIR: "it is a directory",
    EACCES: "permission denied",
    EPERM: "permission denied",
    ENOTDIR: "a part of its path is not a directory",
    ELOOP: "too many symbolic links",
    EMFILE: "too many open files",
  };
  return (code !== undefined ? known[code] : undefined) ?? (e instanceof Error ? e.message : String(e));
}

/** Checks that `path` is a readable, non-empty regular file; `what` names it ("the key", "the image"). */
export function checkInput(path: string, what: string): void {
  let size: number;
  try {
    const s = statSync(path);
    if (s.isDirectory()) throw new InputError(`${what ? `${what} ` : ""}${path}: it is a directory`);
    size = s.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`cannot read ${what ? `${what} ` : ""}${path}: ${fsReason(e)}`);
  }
  if (size === 0) throw new InputError(`${what ? `${what} ` : ""}${path} is empty`);
}

export function readInput(path: string, what: string): Uint8Array {
  checkInput(path, what);
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new InputError(`cannot read ${what} ${path}: ${fsReason(e)}`);
  }
}

export function readTextInput(path: string, what: string): string {
  return Buffer.from(readInput(path, what)).toString("utf8");
}

/** PEM CA certificates: every block must parse, and there must be one. */
export function readCaInput(path: string): string {
  const text = readTextInput(path, "the CA file");
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new InputError(`the CA file ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (e) {
      throw new InputError(`the CA file ${path}: certificate ${i + 1} does not parse (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  return text;
}

/** What a PEM file holds, by its first block's label: the two halves of a key are easy to swap. */
export function pemKind(text: string): "private" | "public" | "certificate" | "other" | "none" {
  const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1];
  if (label === undefined) return "none";
  if (/PRIVATE KEY$/.test(label)) return "private";
  if (label === "PUBLIC KEY") return "public";
  if (label === "CERTIFICATE") return "certificate";
  return "other";
}

/** A signing key file that is a private key in PEM, refused in one line otherwise (before any use). */
export function checkPrivateKeyFile(path: string, command = "job create"): string {
  const text = readTextInput(path, "the signing key");
  const kind = pemKind(text);
  if (kind === "public" || kind === "certificate") throw new InputError(`${path} is a ${kind === "public" ? "public key" : "certificate"}; ${command} signs with the private key (signing-key.pem)`);
  if (kind !== "private") throw new InputError(`${path} is not a PEM private key (no -----BEGIN PRIVATE KEY----- block); ${command} signs with the private key (signing-key.pem)`);
  return text;
}

/** A key a device verifies with: a public key or certificate, never the private half. */
export function checkPublicKeyFile(path: string): string {
  const text = readTextInput(path, "the public key");
  const kind = pemKind(text);
  if (kind === "private") throw new InputError(`${path} is a private key; the device needs the public key (signing-key.pub.pem)`);
  if (kind === "none" || kind === "other") throw new InputError(`${path} is not a PEM public key or certificate (no -----BEGIN PUBLIC KEY----- block); the device needs the public key (signing-key.pub.pem)`);
  return text;
}

/** Turns what a command threw into its one line; undefined when it is a programming error. */
export function describeFailure(e: unknown): string | undefined {
  if (e instanceof InputError) return e.message;
  const errno = e as NodeJS.ErrnoException;
  if (errno && typeof errno.code === "string" && typeof errno.path === "string") return `${errno.path}: ${fsReason(e)}`;
  return undefined;
}
