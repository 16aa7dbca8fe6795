import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnalyzeCandidate } from "../src/db-catalog/analyze-candidates.js";
import type { CacheHitRates } from "../src/db-report/cache-hit.js";
import type { IndexBloatReport } from "../src/db-report/index-bloat.js";
import type { IndexUsage, UnusedIndexes } from "../src/db-report/index-usage.js";
import type { TableSize } from "../src/db-report/table-sizes.js";
import type { Config } from "../src/lib/config.js";
import { Producer } from "../src/queues/producer.js";
import { createBloatedTable, indexState } from "./support/db-maintenance-harness.js";
import { type CliRun, cliEnv, runCli, spawnCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig } from "./support/test-env.js";

describe("db-maintenance from the command line", () => {
  let database: TestDatabase;
  let config: Config;
  let worker: CliRun;

  beforeAll(async () => {
    database = await createTestDatabase();
    config = testConfig(database.url);
    await createBloatedTable(database.url, "maint_cli", 100_000);
    worker = spawnCli(["worker", "db-maintenance"], cliEnv(config));
    await worker.waitForOutput(/worker started/, 60_000);
  });

  afterAll(async () => {
    worker?.child.kill("SIGTERM");
    await worker?.exited;
    const producer = Producer.fromConfig(config);
    await (await producer.queue("db-maintenance")).obliterate({ force: true });
    await producer.close();
    await database?.drop();
  });

  it('`enqueue db-maintenance --data \'{"reindex":true,"dryRun":true}\' --wait` prints the plan and changes nothing', async () => {
    const before = await indexState(database.url, "maint_cli_label_idx");
    const run = await runCli(["enqueue", "db-maintenance", "--data", '{"reindex":true,"dryRun":true}', "--wait", "--json"], cliEnv(config), 120_000);
    expect(run.code).toBe(0);
    const output = JSON.parse(run.stdout) as {
      state: string;
      result: { dryRun: boolean; bloatMethod: string; reindexed: unknown[]; planned: { action: string; target: string; reason: string }[] };
    };
    expect(output.state).toBe("completed");
    expect(output.result.dryRun).toBe(true);
    expect(output.result.bloatMethod).toBe("pgstatindex");
    expect(output.result.reindexed).toEqual([]);
    expect(output.result.planned).toContainEqual(expect.objectContaining({ action: "reindex", target: "maint_cli_label_idx" }));
    expect(output.result.planned).toContainEqual(expect.objectContaining({ action: "analyze", target: "transactions" }));
    expect(await indexState(database.url, "maint_cli_label_idx")).toEqual(before);
  });

  it("refuses a system catalog in tables before anything is enqueued, naming the field", async () => {
    const run = await runCli(["enqueue", "db-maintenance", "--data", '{"tables":["pg_class"]}', "--wait"], cliEnv(config));
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/tables\.0: "pg_class" is a system catalog name/);
  });

  it("`db report` shows sizes, unused indexes, cache hits, overdue ANALYZE and bloated indexes", async () => {
    const json = await runCli(["db", "report", "--json"], cliEnv(config));
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as {
      tableSizes: TableSize[];
      indexSizes: IndexUsage[];
      unusedIndexes: UnusedIndexes;
      cacheHitRates: CacheHitRates;
      analyzeOverdue: AnalyzeCandidate[];
      indexBloat: IndexBloatReport;
    };
    const tableSizes = report.tableSizes;
    expect(tableSizes[0]).toMatchObject({ table: "maint_cli" });
    expect(tableSizes[0]?.indexBytes).toBeGreaterThan(1024 * 1024);
    const indexSizes = report.indexSizes;
    expect(indexSizes.map((row) => row.index)).toEqual(expect.arrayContaining(["maint_cli_label_idx", "maint_cli_pkey"]));
    const unused = report.unusedIndexes.indexes.map((row) => row.index);
    expect(unused).toContain("maint_cli_label_idx");
    expect(unused).not.toContain("maint_cli_pkey");
    expect(unused).not.toContain("users_email_key");
    const cache = report.cacheHitRates;
    expect(cache.tableHitRate).toBeGreaterThan(0);
    expect(cache.tableHitRate).toBeLessThanOrEqual(1);
    expect(report.analyzeOverdue.map((row) => row.table)).toContain("transactions");
    const bloat = report.indexBloat;
    expect(bloat.method).toBe("pgstatindex");
    expect(bloat.bloated.map((row) => row.index)).toContain("maint_cli_label_idx");

    const text = await runCli(["db", "report"], cliEnv(config));
    expect(text.code).toBe(0);
    for (const title of ["Table sizes", "Index sizes", "Unused indexes", "Cache hit rates", "overdue for ANALYZE", "bloat threshold"]) {
      expect(text.stdout).toContain(title);
    }
    expect(text.stdout).toMatch(/maint_cli_label_idx\s+maint_cli\s+\d+ kB\s+\d+ kB\s+\d+(\.\d+)?×/);
  });
});
