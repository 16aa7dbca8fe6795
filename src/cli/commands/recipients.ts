import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { Command } from "commander";
import { readRecipientIdLines } from "../../jobs/bulk-messaging/recipient-id-lines.js";
import { stageRecipientList } from "../../jobs/bulk-messaging/recipient-lists.js";
import { DbjobsError } from "../../lib/errors.js";
import { createCliContext, printJson } from "../context.js";

/**
 * `dbjobs recipients stage --file ids.txt`: stages a bulk-messaging
 * campaign's recipients (one patient uuid per line; `.gz` files are
 * decompressed, `-` reads stdin) and prints the list id to enqueue as
 * `recipientListId`.
 */
async function openIds(file: string): Promise<Readable> {
  if (file === "-") return process.stdin;
  try {
    await access(file);
  } catch {
    throw new DbjobsError("DBJOBS_BAD_ARGUMENT", `--file ${file}: no such file; give a text file with one patient uuid per line (or - for stdin).`, {
      retryable: false,
    });
  }
  const stream = createReadStream(file);
  return file.endsWith(".gz") ? stream.pipe(createGunzip()) : stream;
}

export function registerRecipientsCommand(program: Command): void {
  const recipients = program.command("recipients").description("recipient lists for bulk-messaging campaigns");
  recipients
    .command("stage")
    .description("stage patient ids (one per line) in PostgreSQL and print the list id for recipientListId")
    .requiredOption("--file <path>", "text file with one patient uuid per line; .gz is decompressed; - reads stdin")
    .option("--id <listId>", "stage under this id instead of one derived from the content")
    .option("--json", "print JSON")
    .action(async (options: { file: string; id?: string; json?: boolean }) => {
      const context = createCliContext({ quiet: true });
      try {
        const ids = await readRecipientIdLines(await openIds(options.file), options.file === "-" ? "stdin" : options.file);
        const staged = await stageRecipientList(context.db().pool, ids, { listId: options.id, retentionDays: context.config.RECIPIENT_LIST_RETENTION_DAYS });
        if (options.json) printJson(staged);
        else console.log(`${staged.created ? "staged" : "already staged:"} recipient list ${staged.id} (${staged.count} recipients)`);
      } finally {
        await context.close();
      }
    });
}
