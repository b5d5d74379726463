/**
 * Download progress that survives a reboot. The record names what it is for (a job's file and
 * its size) so that a different image never resumes onto old bytes, and it is written only every
 * `every` bytes because each write wears the NVS flash. It is written after the bytes it counts
 * are in flash, so it never runs ahead of them; after a resume the caller records the writer's
 * (possibly backed-off) offset before writing again.
 */
import type { Digest } from "../ports/digest.ts";
import type { Flash } from "../ports/flash.ts";
import type { StateStore } from "../ports/state-store.ts";
import { utf8Decode, utf8Encode } from "../codec/utf8.ts";
import { ImageWriter, type EraseOptions } from "../storage/image-writer.ts";

interface Record {
  id: string;
  size: number;
  offset: number;
}

export class ProgressRecorder {
  readonly #store: StateStore;
  readonly #key: string;
  readonly #every: number;
  #last = -1;

  constructor(store: StateStore, key: string, every = 64 * 1024) {
    this.#store = store;
    this.#key = key;
    this.#every = every;
  }

  /** The recorded offset for this file, or 0 when the record is missing, unreadable or for another file. */
  load(id: string, size: number): number {
    const bytes = this.#store.get(this.#key);
    if (!bytes) return 0;
    try {
      const r = JSON.parse(utf8Decode(bytes)) as Partial<Record>;
      if (r.id !== id || r.size !== size || !Number.isSafeInteger(r.offset) || (r.offset as number) < 0 || (r.offset as number) > size) return 0;
      this.#last = r.offset as number;
      return r.offset as number;
    } catch {
      return 0;
    }
  }

  /** Records `offset` if it moved `every` bytes since the last record, or when `force`. */
  record(id: string, size: number, offset: number, force = false): void {
    if (!force && this.#last >= 0 && offset - this.#last < this.#every && offset !== size) return;
    const record: Record = { id, size, offset };
    this.#store.set(this.#key, utf8Encode(JSON.stringify(record)));
    this.#last = offset;
  }

  clear(): void {
    this.#store.delete(this.#key);
    this.#last = -1;
  }
}

/**
 * Reopens a partly written image: the writer continues where flash holds good bytes (see
 * ImageWriter.resume), and each digest is fed again with those bytes, read back in blocks, since
 * a digest's state cannot be stored.
 */
export function resumeImage(slot: Flash, size: number, recorded: number, digests: Digest[], erase: EraseOptions = {}): ImageWriter {
  const writer = ImageWriter.resume(slot, size, recorded, erase);
  const block = slot.status().blockLength;
  for (let at = 0; at < writer.offset; at += block) {
    const chunk = slot.read(Math.min(block, writer.offset - at), at);
    for (const d of digests) d.update(chunk);
  }
  return writer;
}
