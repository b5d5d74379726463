/** Helpers for tests that start a real server process (nginx, Mosquitto) on loopback. */
import type { ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { createConnection, createServer, type AddressInfo } from "node:net";
import { delimiter, join } from "node:path";

/** A port the kernel just handed out; the server binds it right after (callers retry the race). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolvePort(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function answers(port: number): Promise<boolean> {
  return new Promise((resolveAnswer) => {
    const socket = createConnection({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolveAnswer(true);
    });
    socket.once("error", () => resolveAnswer(false));
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A daemon's executable: on PATH, or in /usr/sbin (Debian's place, often not on PATH); undefined if none. */
export function findProgram(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter((d) => d !== ""), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Stops a server process with `signal` and waits for it; SIGKILL if it has not gone after a few seconds. */
export function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolveStop) => {
    const hard = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(hard);
      resolveStop();
    });
    child.kill(signal);
  });
}
