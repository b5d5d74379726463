/**
 * A KeyStore of code-signing keys by label, loaded from PEM (SPKI public keys or the X.509
 * certificates users upload to AWS), checked as they are added, so a bad key fails when the
 * board is made rather than at the first update. Every host's key-store.ts is this one.
 */
import type { KeyStore } from "../ports/key-store.ts";
import { publicKeyFromPem } from "./keys.ts";

export class PemKeyStore implements KeyStore {
  readonly #keys = new Map<string, Uint8Array>();
  readonly #thing: string;

  constructor(thingName: string, keys: Record<string, string> = {}) {
    this.#thing = thingName;
    for (const [label, pem] of Object.entries(keys)) this.add(label, pem);
  }

  /** Adds a key from PEM; a PEM that holds no P-256 key throws "malformed" or "key-invalid". */
  add(label: string, pem: string): void {
    this.#keys.set(label, publicKeyFromPem(pem));
  }

  publicKey(label: string): Uint8Array | undefined {
    return this.#keys.get(label)?.slice();
  }

  thingName(): string {
    return this.#thing;
  }
}
