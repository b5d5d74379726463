/**
 * The KeyStore port on the device: the code-signing public keys the app was provisioned with,
 * as PEM (modules/verify/pem-key-store.ts).
 */
export { PemKeyStore } from "xs-ota/verify/pem-key-store";
