import { describe, expect, it } from "vitest";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { testConfig, useTestDb } from "./support/test-env.js";

/** A verb whose stdout is its result logs warnings at most, and LOG_LEVEL=error keeps even those (a slow query) off stderr. */
describe("quiet verbs and LOG_LEVEL", () => {
  const testDatabase = useTestDb();

  it("status --json with every query slow: a warning at LOG_LEVEL=info, nothing at LOG_LEVEL=error", async () => {
    const config = testConfig(testDatabase.url);
    const run = (level: string) => runCli(["status", "--json"], cliEnv(config, { LOG_LEVEL: level, SLOW_QUERY_MS: "1" }), 90_000);
    const loud = await run("info");
    expect(loud.code).toBe(0);
    expect(loud.stderr).toContain('"msg":"slow query"');
    const quiet = await run("error");
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe("");
    expect(JSON.parse(quiet.stdout).queues.length).toBeGreaterThan(0);
  });
});
