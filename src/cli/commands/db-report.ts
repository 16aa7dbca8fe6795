import type { Command } from "commander";
import { reportSections } from "../../db-report/sections.js";
import { createCliContext, printJson } from "../context.js";

export function registerDbReportCommand(program: Command): void {
  const db = program.command("db").description("database views for operators");
  db.command("report")
    .description("partitions, default-partition rows, table and index sizes, unused indexes, archive counts, failed transactions")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      try {
        const report: Record<string, unknown> = {};
        for (const section of reportSections) report[section.key] = await section.collect(context.db());
        if (options.json) printJson(report);
        else for (const section of reportSections) console.log(`\n${section.title}\n${section.render(report[section.key])}`);
      } finally {
        await context.close();
      }
    });
}
