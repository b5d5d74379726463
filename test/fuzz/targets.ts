/** Every fuzz target, in the order the runner takes them. */
import { codecTargets } from "./codecs.ts";
import { deltaTargets } from "./delta.ts";
import { documentTargets } from "./documents.ts";
import { stagingTargets } from "./staging.ts";
import { storageTargets } from "./storage.ts";
import { verifyTargets } from "./verify.ts";
import type { FuzzTarget } from "./support.ts";

export const targets: FuzzTarget[] = [...documentTargets, ...codecTargets, ...storageTargets, ...stagingTargets, ...verifyTargets, ...deltaTargets];
