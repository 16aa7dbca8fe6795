import type { Command } from "commander";
import { DbjobsError } from "../lib/errors.js";

/** Exit code for an operator error (bad input, unknown queue), as distinct from a crash. */
export const EXIT_USAGE = 2;

/** Runs the program; a DbjobsError prints its message (which says what to do) and exits non-zero. */
export async function runCli(program: Command, argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof DbjobsError) {
      process.stderr.write(`dbjobs: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    process.stderr.write(`dbjobs: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  }
}
