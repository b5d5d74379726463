/**
 * The KeyStore port on the device: the code-signing public keys the app was provisioned with
 * (PEM: SPKI public keys or the X.509 certificates uploaded to AWS), checked when the board is
 * made, so a bad key fails at start-up rather than at the first update.
 */
import type { KeyStore } from "xs-ota/ports/key-store";
import { publicKeyFromPem } from "xs-ota/verify/keys";

export class PemKeyStore implements KeyStore {
  readonly #keys = new Map<string, Uint8Array>();
  readonly #thing: string;

  constructor(thing: string, keys: Record<string, string>) {
    this.#thing = thing;
    for (const [label, pem] of Object.entries(keys)) this.#keys.set(label, publicKeyFromPem(pem));
  }

  publicKey(label: string): Uint8Array | undefined {
    return this.#keys.get(label)?.slice();
  }

  thingName(): string {
    return this.#thing;
  }
}
