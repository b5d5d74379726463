/** Stand-in for "embedded:io/socket/tcp/tls" (see sockets.ts). */
export { TLSSocket as default } from "./sockets.ts";
