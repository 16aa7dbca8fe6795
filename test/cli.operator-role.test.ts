import type { Command } from "commander";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verbKinds, verbName } from "../src/cli/cli-operator.js";
import { buildProgram } from "../src/cli/program.js";
import { type Config, loadConfig } from "../src/lib/config.js";
import { hashPassword } from "../src/lib/password-hash.js";
import { Producer } from "../src/queues/producer.js";
import { failInvoiceJobs } from "./support/failed-jobs.js";
import { cliEnv, runCli } from "./support/spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig } from "./support/test-env.js";

/**
 * The role check on mutating CLI verbs, run as the real CLI in child
 * processes. With DASHBOARD_USERS set, a viewer's (or a credential-less, or a
 * wrong) `retry` and `cancel` exit non-zero with one line naming the
 * variables, change nothing and are audited as refused; an operator's
 * password or DASHBOARD_TOKEN acts; read-only verbs need nothing. Without
 * DASHBOARD_USERS the verbs act as before.
 */
const operator = { name: "olga", password: "olga-operator-password" };
const viewer = { name: "victor", password: "victor-viewer-password" };
const operatorToken = "operator-token-0123456789";
const viewerToken = "viewer-token-0123456789ab";

function allVerbs(command: Command): string[] {
  return command.commands.flatMap((sub) => [verbName(sub), ...allVerbs(sub)]);
}

describe("every CLI verb is classified as mutating, read-only or a process", () => {
  it("lists each verb of the program in verbKinds, and nothing else", () => {
    expect(allVerbs(buildProgram()).sort()).toEqual(Object.keys(verbKinds).sort());
  });

  it("refuses DBJOBS_PASSWORD without DBJOBS_ACTOR, and a short DBJOBS_TOKEN, naming the variable and the fix", () => {
    expect(() => loadConfig({ DBJOBS_PASSWORD: "secret" })).toThrow(/DBJOBS_PASSWORD: needs DBJOBS_ACTOR naming the DASHBOARD_USERS user/);
    expect(() => loadConfig({ DBJOBS_TOKEN: "short" })).toThrow(/DBJOBS_TOKEN: use at least 16 characters \(it must equal DASHBOARD_TOKEN\)/);
    expect(loadConfig({ DBJOBS_ACTOR: "olga", DBJOBS_PASSWORD: "secret" })).toMatchObject({ DBJOBS_ACTOR: "olga", DBJOBS_PASSWORD: "secret" });
  });
});

// Each CLI run is a tsx child process (seconds on a loaded machine).
describe("mutating CLI verbs check the role when DASHBOARD_USERS is set", { timeout: 240_000 }, () => {
  let database: TestDatabase;
  let client: pg.Client;
  let config: Config;
  let producer: Producer;
  let plainEnv: Record<string, string>;
  let rolesEnv: Record<string, string>;
  let failedIds: string[];
  const waitingIds: string[] = [];

  const stateOf = async (id: string) => (await (await producer.queue("invoice-totals")).getJobState(id)) as string;
  const auditRows = async () =>
    (
      await client.query<{ actor: string; source: string; action: string; target: string; outcome: string }>(
        `SELECT "actor", "source", "action", "target", "outcome" FROM "dbjobs"."audit_log" ORDER BY "at", "id"`,
      )
    ).rows;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    config = testConfig(database.url);
    producer = Producer.fromConfig(config);
    failedIds = (await failInvoiceJobs(config, producer, { rangeErrors: 3, refused: 0 })).rangeErrors;
    // Two invoices each, so the jobs are not deduplicated (which delays them): they wait, as no worker runs.
    for (const n of [1, 3, 5]) {
      const job = await producer.enqueue("invoice-totals", { invoiceIds: [n, n + 1].map((k) => `00000000-0000-4000-8000-${String(k).padStart(12, "0")}`) });
      waitingIds.push(String(job.id));
    }
    const cheap = { N: 1024, r: 8, p: 1 };
    const users = [
      `${operator.name}:operator:${await hashPassword(operator.password, cheap)}`,
      `${viewer.name}:viewer:${await hashPassword(viewer.password, cheap)}`,
    ].join(",");
    // "error": a slow-query warning on a loaded machine is not the verb's output.
    plainEnv = cliEnv(config, { LOG_LEVEL: "error" });
    rolesEnv = { ...plainEnv, DASHBOARD_USERS: users, DASHBOARD_TOKEN: operatorToken, DASHBOARD_VIEWER_TOKEN: viewerToken };
  });
  afterAll(async () => {
    await (await producer?.queue("invoice-totals"))?.obliterate({ force: true });
    await producer?.close();
    await client?.end();
    await database?.drop();
  });

  // Log lines (JSON, e.g. a slow-query warning on a loaded machine) are not the verb's output.
  const refusedLine = (stderr: string) => {
    const lines = stderr
      .trim()
      .split("\n")
      .filter((line) => !line.startsWith("{"));
    expect(lines).toHaveLength(1);
    return lines[0] as string;
  };

  it("refuses a viewer's, a credential-less, a wrong and a viewer-token retry or cancel, changing nothing and auditing each", async () => {
    const [failedId, waitingId] = [failedIds[0] as string, waitingIds[0] as string];
    const [viewerRetry, viewerCancel, bare, wrong, viewerTokenCancel] = await Promise.all([
      runCli(["retry", "invoice-totals", failedId], { ...rolesEnv, DBJOBS_ACTOR: viewer.name, DBJOBS_PASSWORD: viewer.password }),
      runCli(["cancel", "invoice-totals", waitingId], { ...rolesEnv, DBJOBS_ACTOR: viewer.name, DBJOBS_PASSWORD: viewer.password }),
      runCli(["retry", "invoice-totals", "--all"], { ...rolesEnv, DBJOBS_ACTOR: "someone" }),
      runCli(["cancel", "invoice-totals", waitingId], { ...rolesEnv, DBJOBS_ACTOR: operator.name, DBJOBS_PASSWORD: "not-her-password" }),
      runCli(["cancel", "invoice-totals", waitingId], { ...rolesEnv, DBJOBS_ACTOR: "tokenholder", DBJOBS_TOKEN: viewerToken }),
    ]);
    for (const run of [viewerRetry, viewerCancel, bare, wrong, viewerTokenCancel]) {
      expect(run.code).not.toBe(0);
      expect(run.stdout).toBe("");
    }
    expect(refusedLine(viewerRetry.stderr)).toMatch(
      /^dbjobs: `dbjobs retry` changes queue state and needs the operator role \(DASHBOARD_USERS is set\): user "victor" has the viewer role, which is read-only; ask an operator, or set DBJOBS_ACTOR to an operator's user name and DBJOBS_PASSWORD to their password, or DBJOBS_TOKEN to the value of DASHBOARD_TOKEN\.$/,
    );
    expect(refusedLine(viewerCancel.stderr)).toContain(
      '`dbjobs cancel` changes queue state and needs the operator role (DASHBOARD_USERS is set): user "victor" has the viewer role',
    );
    expect(refusedLine(bare.stderr)).toContain("no credential given; set DBJOBS_ACTOR to an operator's user name and DBJOBS_PASSWORD");
    expect(refusedLine(wrong.stderr)).toContain('DBJOBS_ACTOR "olga" with DBJOBS_PASSWORD matches no user of DASHBOARD_USERS');
    expect(refusedLine(viewerTokenCancel.stderr)).toContain("DBJOBS_TOKEN is the viewer token, which is read-only");

    expect(await Promise.all(failedIds.map(stateOf))).toEqual(["failed", "failed", "failed"]);
    expect(await stateOf(waitingId)).toBe("waiting");
    const refused = (await auditRows()).map((row) => [row.actor, row.source, row.action, row.target, row.outcome.split(":")[0]]);
    expect(refused.sort()).toEqual(
      [
        ["victor", "cli", "retry", `invoice-totals/${failedId}`, "refused"],
        ["victor", "cli", "cancel", `invoice-totals/${waitingId}`, "refused"],
        ["someone", "cli", "retry", "invoice-totals", "refused"],
        ["olga", "cli", "cancel", `invoice-totals/${waitingId}`, "refused"],
        ["tokenholder", "cli", "cancel", `invoice-totals/${waitingId}`, "refused"],
      ].sort(),
    );
  });

  it("runs read-only verbs without a credential", async () => {
    const [status, schedules] = await Promise.all([runCli(["status", "--json"], rolesEnv), runCli(["schedules", "--json"], rolesEnv)]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).queues.find((queue: { queue: string }) => queue.queue === "invoice-totals")).toMatchObject({ failed: 3, waiting: 3 });
    expect(schedules.code).toBe(0);
    expect(JSON.parse(schedules.stdout).schedules.length).toBeGreaterThan(0);
  });

  it("lets an operator's password retry and DASHBOARD_TOKEN cancel, each audited as ok", async () => {
    const before = (await auditRows()).length;
    const retry = await runCli(["retry", "invoice-totals", failedIds[0] as string, "--json"], {
      ...rolesEnv,
      DBJOBS_ACTOR: operator.name,
      DBJOBS_PASSWORD: operator.password,
    });
    expect(retry.stderr).toBe("");
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ retried: 1, jobIds: [failedIds[0]] });
    const cancel = await runCli(["cancel", "invoice-totals", waitingIds[0] as string, "--json"], {
      ...rolesEnv,
      DBJOBS_TOKEN: operatorToken,
      DBJOBS_ACTOR: "ops-bot",
    });
    expect(cancel.stderr).toBe("");
    expect(cancel.code).toBe(0);
    expect(JSON.parse(cancel.stdout)).toMatchObject({ outcome: "removed", stateBefore: "waiting" });

    expect(await stateOf(failedIds[0] as string)).toBe("waiting");
    expect(await stateOf(waitingIds[0] as string)).toBe("unknown");
    expect((await auditRows()).slice(before).map((row) => [row.actor, row.action, row.outcome])).toEqual([
      ["olga", "retry", "ok"],
      ["ops-bot", "cancel", "ok"],
    ]);
  });

  it("without DASHBOARD_USERS, retry and cancel run with no credential, as before roles existed", async () => {
    const retry = await runCli(["retry", "invoice-totals", failedIds[1] as string, "--json"], plainEnv);
    expect(retry.stderr).toBe("");
    expect(retry.code).toBe(0);
    const cancel = await runCli(["cancel", "invoice-totals", waitingIds[1] as string, "--json"], plainEnv);
    expect(cancel.stderr).toBe("");
    expect(cancel.code).toBe(0);
    expect(await stateOf(failedIds[1] as string)).toBe("waiting");
    expect(await stateOf(waitingIds[1] as string)).toBe("unknown");
  });
});
