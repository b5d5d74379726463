import { contract } from "./contract/vitest.ts";
import agent from "./contract/agent.contract.ts";

contract(agent, new URL("./contract/agent.contract.ts", import.meta.url));
