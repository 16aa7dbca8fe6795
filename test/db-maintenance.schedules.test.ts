import { describe, expect, it } from "vitest";
import { dbMaintenancePayload } from "../src/jobs/db-maintenance/contract.js";
import { loadConfig } from "../src/lib/config.js";
import { declaredSchedules } from "../src/queues/schedules.js";
import { validatePayload } from "../src/queues/validate-payload.js";

describe("db-maintenance default schedules (SPEC §4)", () => {
  it("ANALYZE runs nightly and REINDEX weekly, with payloads the job accepts", () => {
    const schedules = declaredSchedules(loadConfig({})).filter((schedule) => schedule.queue === "db-maintenance");
    const analyze = schedules.find((schedule) => schedule.id === "analyze-nightly");
    const reindex = schedules.find((schedule) => schedule.id === "reindex-weekly");
    expect(analyze?.cron).toMatch(/^\d+ \d+ \* \* \*$/);
    expect(reindex?.cron).toMatch(/^\d+ \d+ \* \* [0-6]$/);
    expect(validatePayload("db-maintenance", dbMaintenancePayload, analyze?.payload)).toMatchObject({ analyze: true, reindex: false, dryRun: false });
    expect(validatePayload("db-maintenance", dbMaintenancePayload, reindex?.payload)).toMatchObject({ analyze: false, reindex: true, minBloatRatio: 1.5 });
  });

  it("names every bad field of a payload", () => {
    const attempt = () => validatePayload("db-maintenance", dbMaintenancePayload, { minBloatRatio: 1, lockTimeoutMs: 50, tables: [], vacuum: true });
    for (const field of [/minBloatRatio: .*>=1\.1/, /lockTimeoutMs: .*>=100/, /tables: .*>=1 items/, /vacuum: unknown field; remove it/])
      expect(attempt).toThrow(field);
  });
});
