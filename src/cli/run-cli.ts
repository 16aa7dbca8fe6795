import type { Command } from "commander";
import { DbjobsError } from "../lib/errors.js";
import { redactUrl, scrubCredentials } from "../lib/logger.js";
import { errorCodes } from "../lib/retry.js";

/** Exit code for an operator error (bad input, unknown queue, a service down), as distinct from a crash. */
export const EXIT_USAGE = 2;

/**
 * What to tell the operator about a failure from PostgreSQL: the fix, not a
 * driver stack trace. Undefined when the error is not one we can explain.
 */
export function explainDatabaseFailure(err: unknown, databaseUrl = process.env.DATABASE_URL): string | undefined {
  const codes = errorCodes(err);
  const where = databaseUrl ? ` at ${redactUrl(databaseUrl)}` : "";
  // 3D000 / P1003: no such database. 42P01 / P2021: no such table, i.e. not migrated.
  if (codes.some((code) => code === "3D000" || code === "P1003"))
    return `The database${where} does not exist. Run \`dbjobs migrate\` (it creates and migrates it).`;
  if (codes.some((code) => code === "42P01" || code === "P2021")) return `The database${where} is not migrated. Run \`dbjobs migrate\`.`;
  if (codes.some((code) => code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "P1001" || code === "57P03"))
    return `Cannot reach PostgreSQL${where} (${codes[0]}). Start PostgreSQL or set DATABASE_URL.`;
  if (codes.some((code) => code === "28P01" || code === "28000"))
    return `PostgreSQL refused the credentials${where}. Fix the user or password in DATABASE_URL.`;
  return undefined;
}

/** Runs the program; a failure prints one line that says what to do, and exits non-zero. Stacks only with DBJOBS_DEBUG=1. */
export async function runCli(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof DbjobsError) {
      process.stderr.write(`dbjobs: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    const explained = explainDatabaseFailure(err);
    if (explained) {
      process.stderr.write(`dbjobs: ${explained}\n`);
      process.exit(EXIT_USAGE);
    }
    const detail =
      process.env.DBJOBS_DEBUG === "1"
        ? ((err as Error).stack ?? String(err))
        : `${(err as Error).message ?? String(err)} (set DBJOBS_DEBUG=1 for the stack trace)`;
    process.stderr.write(`dbjobs: ${scrubCredentials(detail)}\n`);
    process.exit(1);
  }
}
