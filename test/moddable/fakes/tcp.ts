/** Stand-in for "embedded:io/socket/tcp" (see sockets.ts). */
export { TCP as default } from "./sockets.ts";
