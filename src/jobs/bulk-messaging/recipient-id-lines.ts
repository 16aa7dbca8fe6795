import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { RecipientIdCollector } from "./recipient-lists.js";

/**
 * Reads recipient ids from a text stream, one per line (blank lines and a
 * trailing carriage return are ignored), as `dbjobs recipients stage --file`
 * and `POST /recipient-lists` take them. Reads line by line, so a 100,000-line
 * file is never one string; stops reading past the list limit. Returns the
 * distinct ids, sorted, or throws a RecipientListError naming the bad lines.
 */
export async function readRecipientIdLines(input: Readable, source: string): Promise<string[]> {
  const collector = new RecipientIdCollector(source);
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === "") continue;
    // Past the limit: stop reading; finish() then refuses the list.
    if (!collector.add(line, `line ${lineNumber}`)) break;
  }
  return collector.finish();
}
