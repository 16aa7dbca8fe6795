import type { Command } from "commander";
import { redactUrl } from "../../lib/logger.js";
import { migrate } from "../../lib/migrate.js";
import { createCliContext, printJson } from "../context.js";

export function registerMigrateCommand(program: Command): void {
  program
    .command("migrate")
    .description("create the database if missing and apply pending SQL migrations (recorded like prisma migrate deploy)")
    .option("--json", "print the result as JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: options.json });
      const result = await migrate({ url: context.config.DATABASE_URL, logger: context.logger });
      if (options.json) printJson(result);
      else {
        if (result.createdDatabase) console.log(`created database ${redactUrl(context.config.DATABASE_URL)}`);
        console.log(result.applied.length ? `applied: ${result.applied.join(", ")}` : "database is up to date");
      }
    });
}
