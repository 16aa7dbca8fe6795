import type { Command } from "commander";
import { redactUrl } from "../../lib/logger.js";
import { migrateForConfig } from "../../queues/migrate-all.js";
import { createCliContext, printJson } from "../context.js";

export function registerMigrateCommand(program: Command): void {
  program
    .command("migrate")
    .description("create the database if missing and apply pending SQL migrations (recorded like prisma migrate deploy)")
    .option("--json", "print the result as JSON")
    .action(async (options: { json?: boolean }) => {
      const context = createCliContext({ quiet: options.json });
      const result = await migrateForConfig(context.config, context.logger);
      const { queueCatalog } = result;
      if (options.json) printJson(result);
      else {
        if (result.createdDatabase) console.log(`created database ${redactUrl(context.config.DATABASE_URL)}`);
        console.log(result.applied.length ? `applied: ${result.applied.join(", ")}` : "database is up to date");
        if (result.queueSchemaVersion !== undefined) console.log(`queue schema bullmq at version ${result.queueSchemaVersion}`);
        console.log(`dbjobs.enqueue knows ${queueCatalog.queues.length} queues, on ${queueCatalog.backend}`);
      }
    });
}
