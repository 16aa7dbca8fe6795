import type { Command } from "commander";
import { listAudit } from "../../audit/list-audit.js";
import { parseTime } from "../../history/history-query.js";
import { createCliContext, printJson } from "../context.js";
import { BadArgumentError } from "../operator-errors.js";
import { parseLimit } from "../operator-queues.js";

/** `dbjobs audit`: who did what, newest first (dbjobs.audit_log, kept as long as the job history). */
export function registerAuditCommand(program: Command): void {
  program
    .command("audit")
    .description("the audit log of operator actions (retry, clean, pause, resume, enqueue), newest first")
    .option("--limit <n>", "rows to show", "50")
    .option("--since <time>", "at or after: ISO 8601 (2026-12-07T10:00Z) or back from now (15m, 2h, 7d)")
    .option("--json", "print JSON")
    .action(async (options: { limit: string; since?: string; json?: boolean }) => {
      const limit = parseLimit(options.limit);
      if (limit > 10_000) throw new BadArgumentError(`--limit "${options.limit}" is more than 10000; narrow it with --since.`);
      const since = options.since === undefined ? undefined : parseTime(options.since, "--since");
      const context = createCliContext({ quiet: true });
      try {
        const rows = await listAudit(context.db().pool, { limit, since });
        if (options.json) {
          printJson({ entries: rows });
          return;
        }
        if (rows.length === 0) {
          console.log("no audited actions");
          return;
        }
        console.table(
          rows.map((row) => ({
            at: row.at.toISOString(),
            actor: row.actor,
            source: row.source,
            action: row.action,
            target: row.target,
            affected: row.affected ?? "",
            outcome: row.outcome.length > 60 ? `${row.outcome.slice(0, 59)}…` : row.outcome,
          })),
        );
      } finally {
        await context.close();
      }
    });
}
