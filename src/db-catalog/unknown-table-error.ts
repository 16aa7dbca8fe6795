import { DbjobsError } from "../lib/errors.js";

/**
 * A table named in a db-maintenance payload that is not one of ours (schema
 * public, ordinary or partitioned). Retrying cannot make it one, so the job
 * fails at once.
 */
export class UnknownTableError extends DbjobsError {
  readonly tables: string[];

  constructor(tables: string[], known: string[]) {
    const list = tables.map((table) => JSON.stringify(table)).join(", ");
    super(
      "DBJOBS_UNKNOWN_TABLE",
      `tables: ${list} ${tables.length === 1 ? "is not a table" : "are not tables"} of this application (schema public; system catalogs and other schemas are never touched). ` +
        `Known tables: ${known.join(", ") || "(none)"}.`,
      { retryable: false },
    );
    this.tables = tables;
  }
}
