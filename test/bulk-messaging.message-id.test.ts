import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { campaignMessageId } from "../src/jobs/bulk-messaging/campaign-message-id.js";

describe("campaign message ids", () => {
  const patients = Array.from({ length: 20_000 }, () => randomUUID());

  it("are the same in every run, and valid version-8 uuids", () => {
    for (const patient of patients.slice(0, 100)) {
      const id = campaignMessageId("spring", patient, "sms");
      expect(id).toBe(campaignMessageId("spring", patient.toUpperCase(), "sms"));
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(id).not.toBe(patient);
    }
  });

  it("differ for every patient of a campaign, and between campaigns and channels", () => {
    const ids = new Set<string>();
    for (const [campaign, channel] of [
      ["spring", "sms"],
      ["spring", "email"],
      ["autumn", "sms"],
    ] as const) {
      for (const patient of patients) ids.add(campaignMessageId(campaign, patient, channel));
    }
    expect(ids.size).toBe(3 * patients.length);
  });

  it("refuses a patient id that is not a uuid, naming the field", () => {
    expect(() => campaignMessageId("spring", "42", "sms")).toThrow(/patientId must be a uuid/);
  });
});
