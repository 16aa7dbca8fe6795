import { beforeAll, describe, expect, it } from "vitest";
import { HistoryQueryError, type HistoryQueryInput, parseHistoryQuery } from "../src/history/history-query.js";
import { historyRow, writeHistory } from "./support/history-rows.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/** `dbjobs search` over history rows written by the history writer: output, paging, and refusals of bad input. */
describe("dbjobs search", () => {
  const testDatabase = useTestDb();
  let env: Record<string, string>;

  beforeAll(async () => {
    env = cliEnv(testConfig(testDatabase.url), { LOG_LEVEL: "warn" });
    // 30 bulk-messaging jobs (campaign c0..c2, one minute apart up to 2026-06-01 12:00 UTC) and one failed invoice-totals job.
    const end = Date.parse("2026-06-01T12:00:00Z");
    const invoiceId = "8c1e0000-0000-4000-8000-000000000001";
    await writeHistory(testDatabase.db.pool, [
      ...Array.from({ length: 30 }, (_, index) =>
        historyRow({
          queue: "bulk-messaging",
          jobId: `bm-${index + 1}`,
          finishedAt: end - (index + 1) * 60_000,
          payload: { campaignId: `c${(index + 1) % 3}`, channel: "sms" },
        }),
      ),
      historyRow({
        queue: "invoice-totals",
        jobId: "it-1",
        state: "failed",
        attempts: 3,
        finishedAt: Date.parse("2026-06-01T10:00:00Z"),
        payload: { invoiceIds: [invoiceId] },
        errorClass: "Error",
        errorMessage: `invoice ${invoiceId} not found`,
        errorFingerprint: "abcdef012345",
      }),
    ]);
  });

  it("finds jobs by a payload field, newest first, and pages with the printed cursor", async () => {
    const first = await runCli(["search", "campaignId=c1", "--limit", "4", "--json"], env);
    expect(first.code, first.stderr).toBe(0);
    const page = JSON.parse(first.stdout) as { entries: { jobId: string }[]; nextCursor?: string };
    expect(page.entries.map((entry) => entry.jobId)).toEqual(["bm-1", "bm-4", "bm-7", "bm-10"]);
    const rest = await runCli(["search", "campaignId=c1", "--limit", "100", "--cursor", page.nextCursor as string, "--json"], env);
    const next = JSON.parse(rest.stdout) as { entries: { jobId: string }[]; nextCursor?: string };
    expect(next.entries.map((entry) => entry.jobId)).toEqual(["bm-13", "bm-16", "bm-19", "bm-22", "bm-25", "bm-28"]);
    expect(next.nextCursor).toBeUndefined();
  });

  it("finds a failure by its fingerprint, by its error text, by an id in an array field, and prints a table", async () => {
    const byFingerprint = await runCli(["search", "--fingerprint", "abcdef012345", "--json"], env);
    expect((JSON.parse(byFingerprint.stdout) as { entries: { jobId: string }[] }).entries.map((entry) => entry.jobId)).toEqual(["it-1"]);
    const byText = await runCli(["search", "--error", "NOT FOUND", "--queue", "invoice-totals", "--state", "failed"], env);
    expect(byText.code).toBe(0);
    expect(byText.stdout).toContain("it-1");
    expect(byText.stdout).toContain("abcdef012345");
    const byArrayMember = await runCli(["search", "invoiceIds=8c1e0000-0000-4000-8000-000000000001", "--json"], env);
    expect((JSON.parse(byArrayMember.stdout) as { entries: unknown[] }).entries).toHaveLength(1);
    const inWindow = await runCli(["search", "--queue", "bulk-messaging", "--since", "2026-06-01T11:55:00Z", "--until", "2026-06-01T11:59:30Z", "--json"], env);
    expect((JSON.parse(inWindow.stdout) as { entries: { jobId: string }[] }).entries.map((entry) => entry.jobId)).toEqual([
      "bm-1",
      "bm-2",
      "bm-3",
      "bm-4",
      "bm-5",
    ]);
    // A duration counts back from now.
    const now = new Date("2026-06-01T12:00:00Z");
    expect(parseHistoryQuery({ since: "90m" }, now).since).toEqual(new Date("2026-06-01T10:30:00Z"));
  });

  it("refuses bad input with the field and the fix, exit code 2, before querying", async () => {
    const { code, stderr, stdout } = await runCli(["search", "campaignId", "--since", "5m"], env);
    expect(code).toBe(2);
    expect(stderr).toMatch(/"campaignId" is not FIELD=VALUE: write e\.g\. campaignId=spring-2026/);
    expect(stdout).toBe("");
  });

  // The same checks, without a process each: the CLI passes its arguments to parseHistoryQuery unchanged.
  it.each<[HistoryQueryInput, RegExp]>([
    [{ fields: ["attempts:=three"] }, /the value after := must be JSON/],
    [{ since: "yesterday" }, /--since "yesterday" is not a time: write an ISO 8601/],
    [{ since: "2026-12-07", until: "2026-12-01" }, /--since \(2026-12-07T00:00:00\.000Z\) must be before --until/],
    [{ queue: "emails" }, /--queue "emails" is not a queue\. Known queues: bulk-messaging/],
    [{ state: "active" }, /--state "active" is not a finished state\. Use one of: completed, failed, cancelled/],
    [{ limit: "0" }, /--limit "0" must be a whole number from 1 to 1000/],
    [{ cursor: "xyz" }, /--cursor "xyz" is not a cursor of this search/],
    [{ fingerprint: "ABC" }, /--fingerprint "ABC" is not a fingerprint/],
  ])("refuses %j", (input, message) => {
    expect(() => parseHistoryQuery(input)).toThrow(HistoryQueryError);
    expect(() => parseHistoryQuery(input)).toThrow(message);
  });
});
