/**
 * EnOS device login (modules/enos/login.ts): the MQTT CONNECT fields and the HTTP broker's auth
 * body, checked against the EnOS guide's worked example and its formula.
 */
import { suite } from "./harness.ts";
import { equal, ok } from "./assert.ts";
import { enosHttpAuthBody, enosMqttLogin } from "../../modules/enos/login.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { isOtaError } from "../../modules/errors.ts";

function refusal(run: () => unknown, fragment: string): void {
  try {
    run();
  } catch (e) {
    ok(isOtaError(e) && e.code === "bad-argument", `expected an OtaError bad-argument, got ${String(e)}`);
    ok((e as Error).message.includes(fragment), `'${(e as Error).message}' does not mention '${fragment}'`);
    return;
  }
  throw new Error(`expected a refusal mentioning '${fragment}'`);
}

export default suite("EnOS login", (test) => {
  test("the guide's worked example: securemode 2 with the device secret", () => {
    const login = enosMqttLogin({ clientId: "123456", productKey: "654321", deviceKey: "test", deviceSecret: "abcdefg" }, 1548753362502, nobleDigests);
    equal(login.clientId, "123456|securemode=2,signmethod=sha256,timestamp=1548753362502|", "client id");
    equal(login.username, "test&654321", "user name");
    equal(login.password, "B99032D49C706F7B27B22AB5CD2DD3C56A31E1BCBBC83BA0A2A6BB3272FBB166", "password");
  });

  test("securemode 3 signs with the product secret; the client id defaults to the device key", () => {
    const login = enosMqttLogin({ productKey: "654321", deviceKey: "test", productSecret: "abcdefg" }, 1548753362502, nobleDigests);
    equal(login.clientId, "test|securemode=3,signmethod=sha256,timestamp=1548753362502|", "client id");
    // The same content as the worked example but for the client id: a different signature.
    ok(/^[0-9A-F]{64}$/.test(login.password), "upper-case hex sha256");
    ok(login.password !== "B99032D49C706F7B27B22AB5CD2DD3C56A31E1BCBBC83BA0A2A6BB3272FBB166", "depends on the client id");
    const device = enosMqttLogin({ productKey: "654321", deviceKey: "test", deviceSecret: "abcdefg", productSecret: "other" }, 1548753362502, nobleDigests);
    ok(device.clientId.includes("securemode=2"), "a device secret wins over the product secret");
  });

  test("the HTTP broker's auth body", () => {
    const body = JSON.parse(enosHttpAuthBody({ productKey: "pK11111", deviceKey: "dK987654", deviceSecret: "s3cret" }, 300000, nobleDigests)) as Record<string, unknown>;
    equal(body["signMethod"], "sha256", "signMethod");
    equal(body["lifetime"], 300000, "lifetime");
    // sha256("deviceKeydK987654lifetime300000productKeypK11111signMethodsha256s3cret")
    equal(body["sign"], "d5254f950bbb5f2ae2c76e32a0aadebac26f2922a72dc2091fa7dacd0400c7e6", "sign");
  });

  test("what the login strings cannot carry is refused", () => {
    refusal(() => enosMqttLogin({ productKey: "p&k", deviceKey: "d", deviceSecret: "s" }, 1, nobleDigests), "product key");
    refusal(() => enosMqttLogin({ productKey: "pk", deviceKey: "d|k", deviceSecret: "s" }, 1, nobleDigests), "device key");
    refusal(() => enosMqttLogin({ productKey: "pk", deviceKey: "dk", clientId: "x".repeat(65), deviceSecret: "s" }, 1, nobleDigests), "client id must be 1 to 64");
    refusal(() => enosMqttLogin({ productKey: "pk", deviceKey: "dk" }, 1, nobleDigests), "needs a device secret");
    refusal(() => enosMqttLogin({ productKey: "pk", deviceKey: "dk", deviceSecret: "s" }, -1, nobleDigests), "timestamp");
    refusal(() => enosHttpAuthBody({ productKey: "pk", deviceKey: "dk", productSecret: "s" }, 300000, nobleDigests), "device secret");
    refusal(() => enosHttpAuthBody({ productKey: "pk", deviceKey: "dk", deviceSecret: "s" }, 0, nobleDigests), "lifetime");
  });
});
