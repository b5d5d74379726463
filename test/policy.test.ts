import { contract } from "./contract/vitest.ts";
import policy from "./contract/policy.contract.ts";

contract(policy, new URL("./contract/policy.contract.ts", import.meta.url));
