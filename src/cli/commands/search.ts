import type { Command } from "commander";
import { type HistoryQueryInput, parseHistoryQuery } from "../../history/history-query.js";
import { searchHistory } from "../../history/search-history.js";
import { createCliContext, printJson } from "../context.js";
import { firstLine } from "../job-view.js";

/** What commander hands over: the query's options as typed (limit as text), plus --json. */
type SearchOptions = Omit<HistoryQueryInput, "fields" | "limit"> & { limit: string; json?: boolean };

/** `dbjobs search`: the job history in PostgreSQL (finished jobs, kept HISTORY_RETENTION_DAYS), newest first, a page at a time. */
export function registerSearchCommand(program: Command): void {
  program
    .command("search")
    .description("search finished jobs in the history: payload FIELD=VALUE (or FIELD:=JSON), queue, state, time, fingerprint, error text, job id")
    .argument("[fields...]", "payload fields the job must have, e.g. campaignId=spring-2026 or attempts:=3 (nested: filter.kind=sms)")
    .option("--queue <queue>", "only this queue")
    .option("--state <state>", "completed, failed or cancelled")
    .option("--since <time>", "finished at or after: ISO 8601 (2026-12-07T10:00Z) or back from now (15m, 2h, 7d)")
    .option("--until <time>", "finished before: same forms as --since")
    .option("--fingerprint <fingerprint>", "failed with this error fingerprint (see `dbjobs failed <queue> --group`)")
    .option("--error <text>", "text in the error message (case-insensitive)")
    .option("--id <id>", "this job id")
    .option("--limit <n>", "rows per page (1-1000)", "50")
    .option("--cursor <cursor>", "the next page: the cursor the previous page printed")
    .option("--json", "print JSON")
    .action(async (fields: string[], options: SearchOptions) => {
      const query = parseHistoryQuery({ ...options, fields });
      const context = createCliContext({ quiet: true });
      try {
        const page = await searchHistory(context.db().pool, query);
        if (options.json) {
          printJson(page);
          return;
        }
        if (page.entries.length === 0) {
          console.log("no finished jobs match");
          return;
        }
        console.table(
          page.entries.map((entry) => ({
            finished: entry.finishedAt.toISOString(),
            queue: entry.queue,
            id: entry.jobId,
            state: entry.state,
            attempts: entry.attempts,
            fingerprint: entry.errorFingerprint ?? "",
            error: firstLine(entry.errorMessage, 60),
          })),
        );
        if (page.nextCursor) console.log(`more: dbjobs search ... --cursor ${page.nextCursor}`);
      } finally {
        await context.close();
      }
    });
}
