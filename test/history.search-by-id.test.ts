import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { parseHistoryQuery } from "../src/history/history-query.js";
import { searchHistory } from "../src/history/search-history.js";
import { historyRow, writeHistory } from "./support/history-rows.js";
import { useTestDb } from "./support/test-env.js";

/**
 * `--id` finds a job whatever kind of id it has: BullMQ's counted ids through
 * the batches' id ranges (which overlap across queues, and widen when a job
 * finishes late), given ids (the outbox's uuids) through the list of other ids.
 */
describe("job history search by job id", () => {
  const testDatabase = useTestDb();
  const uuids = Array.from({ length: 20 }, () => randomUUID());

  beforeAll(async () => {
    const start = Date.parse("2026-06-01T12:00:00Z");
    const rows = [];
    for (let n = 1; n <= 300; n++) {
      // Two queues count the same ids; job 7 of archiving finishes last, so each archiving batch after it spans 7..n.
      const finishedAt = start + n * 100 + (n === 7 ? 25_000 : 0);
      rows.push(historyRow({ queue: "archiving", jobId: String(n), finishedAt, payload: { n } }));
      rows.push(historyRow({ queue: "cache-prefetch", jobId: String(n), finishedAt: finishedAt + 1, payload: { n } }));
    }
    uuids.forEach((id, index) => {
      rows.push(historyRow({ queue: "invoice-totals", jobId: id, finishedAt: start + index * 1000 }));
    });
    rows.push(historyRow({ queue: "archiving", jobId: "0042", finishedAt: start }));
    await writeHistory(testDatabase.db.pool, rows, 50);
  });

  const found = async (input: Parameters<typeof parseHistoryQuery>[0]) =>
    (await searchHistory(testDatabase.db.pool, parseHistoryQuery(input))).entries.map((entry) => `${entry.queue}/${entry.jobId}`);

  it("finds a counted id in every queue that has it, and in one queue with --queue", async () => {
    for (const id of ["1", "7", "8", "150", "300"]) {
      expect(await found({ id })).toEqual([`cache-prefetch/${id}`, `archiving/${id}`]);
      expect(await found({ id, queue: "archiving" })).toEqual([`archiving/${id}`]);
    }
    expect(await found({ id: "301" })).toEqual([]);
  });

  it("finds given ids, and tells 42 from 0042 (both counted, so both in the ranges)", async () => {
    for (const id of uuids) expect(await found({ id })).toEqual([`invoice-totals/${id}`]);
    expect(await found({ id: "0042" })).toEqual(["archiving/0042"]);
    expect(await found({ id: "42" })).toEqual(["cache-prefetch/42", "archiving/42"]);
  });

  it("stores the counted ids as ranges and the given ones as a list", async () => {
    // Takes nothing. Per queue: whether every batch has a range, whether any has other ids, and how many other ids there are.
    const { rows } = await testDatabase.db.pool.query(
      `SELECT "queue", bool_and("id_range" IS NOT NULL) AS "ranged", bool_or("other_ids" IS NOT NULL) AS "listed",
              coalesce(sum(cardinality("other_ids")), 0)::int AS "others"
         FROM "dbjobs"."job_history" GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { queue: "archiving", ranged: true, listed: false, others: 0 },
      { queue: "cache-prefetch", ranged: true, listed: false, others: 0 },
      { queue: "invoice-totals", ranged: false, listed: true, others: 20 },
    ]);
  });
});
