import { DbjobsError } from "../lib/errors.js";

/**
 * A table named in a db-maintenance payload that it does not take (see
 * internal-tables.ts). Retrying cannot make it one, so the job fails at once;
 * the message lists what could have been named.
 */
export class UnknownTableError extends DbjobsError {
  readonly tables: string[];

  constructor(tables: string[], known: { application: string[]; internal: string[] }) {
    const list = tables.map((table) => JSON.stringify(table)).join(", ");
    super(
      "DBJOBS_UNKNOWN_TABLE",
      `tables: ${list} ${tables.length === 1 ? "is not a table" : "are not tables"} db-maintenance takes (system catalogs, other schemas and extensions' tables are never touched). ` +
        `Known tables: ${known.application.join(", ") || "(none)"}.` +
        (known.internal.length > 0 ? ` Internal tables, taken only when named: ${known.internal.join(", ")}.` : ""),
      { retryable: false },
    );
    this.tables = tables;
  }
}
