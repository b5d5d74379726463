/**
 * The KeyStore port in the simulator: the code-signing public keys the device was provisioned
 * with, as PEM (modules/verify/pem-key-store.ts), the same store as on the esp32 host.
 */
export { PemKeyStore } from "../../../modules/verify/pem-key-store.ts";
