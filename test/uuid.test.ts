import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { isUuid, writeUuidBytes } from "../src/lib/uuid.js";

describe("uuids in canonical form", () => {
  const valid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";

  it("accepts either case and decodes to the same 16 bytes as Node", () => {
    for (const id of [valid, valid.toUpperCase(), randomUUID()]) {
      expect(isUuid(id), id).toBe(true);
      const bytes = new Uint8Array(18);
      expect(writeUuidBytes(id, bytes, 1)).toBe(true);
      expect(Buffer.from(bytes.subarray(1, 17)).toString("hex")).toBe(id.replaceAll("-", "").toLowerCase());
    }
  });

  it("refuses a bad digit, a misplaced dash, characters past ASCII and wrong lengths", () => {
    // U+0661 and U+FF10 look like digits; U+0661's low 7 bits are "a", a hex digit.
    for (const bad of [
      "0a1b2c3g-4e5f-6789-abcd-ef0123456789",
      "0a1b2c3d04e5f-6789-abcd-ef0123456789",
      "0a1b2c3d-4e5f-6789-abcd-ef012345678\u0661",
      "\uff10a1b2c3d-4e5f-6789-abcd-ef0123456789",
      "{0a1b2c3d-4e5f-6789-abcd-ef01234567}",
      `${valid}0`,
      valid.slice(1),
      "",
    ]) {
      expect(isUuid(bad), bad).toBe(false);
    }
  });
});
