import { describe, expect, it } from "vitest";
import { errorClassFromStack, fingerprintFailure, normaliseErrorMessage } from "../src/lib/error-fingerprint.js";

describe("error fingerprints for `dbjobs failed --group`", () => {
  it("replaces ids, times, quoted values and numbers so one kind of error gets one fingerprint", () => {
    expect(normaliseErrorMessage("invoice 8c1e2d4a-1b2c-4d5e-8f90-0123456789ab not found after 3 attempts")).toBe(
      "invoice <uuid> not found after <n> attempts",
    );
    expect(normaliseErrorMessage(`duplicate key value violates unique constraint "messages_campaign_patient_key"`)).toBe(
      "duplicate key value violates unique constraint <value>",
    );
    expect(normaliseErrorMessage("timed out at 2026-11-22T15:31:00.123Z after 30000 ms")).toBe("timed out at <time> after <n> ms");
    expect(normaliseErrorMessage("provider said 'rate limited' (429)")).toBe("provider said <value> (<n>)");
  });

  it("takes the class from the stack's first line", () => {
    expect(errorClassFromStack("RangeError: too many lines\n    at handle (file.js:1:1)")).toBe("RangeError");
    expect(errorClassFromStack("PrismaClientKnownRequestError: \nInvalid call")).toBe("PrismaClientKnownRequestError");
    expect(errorClassFromStack(undefined)).toBe("Error");
  });

  it("same class and shape → same fingerprint; another class → another", () => {
    const a = fingerprintFailure("invoice 1 has 12 lines", ["RangeError: invoice 1 has 12 lines\n    at x"]);
    const b = fingerprintFailure("invoice 77 has 3 lines", ["old stack", "RangeError: invoice 77 has 3 lines\n    at y"]);
    const c = fingerprintFailure("invoice 77 has 3 lines", ["TypeError: invoice 77 has 3 lines\n    at y"]);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.fingerprint).not.toBe(c.fingerprint);
    expect(a.fingerprint).toMatch(/^[0-9a-f]{12}$/);
  });
});
