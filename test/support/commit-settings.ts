import type pg from "pg";

export interface StatementCommit {
  statement: string;
  synchronousCommit: string;
}

/**
 * A `query` that runs each statement in a transaction of its own and records,
 * under the name `name` gives the statement, the synchronous_commit setting
 * the statement leaves for its commit.
 */
export function commitRecordingSql(pool: pg.Pool, name: (text: string) => string): { sql: Pick<pg.Pool, "query">; commits: StatementCommit[] } {
  const commits: StatementCommit[] = [];
  const sql: Pick<pg.Pool, "query"> = {
    query: (async (text: string, values?: unknown[]) => {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const result = await client.query(text, values);
        const { rows } = await client.query<{ synchronous_commit: string }>("SHOW synchronous_commit");
        await client.query("COMMIT");
        commits.push({ statement: name(text), synchronousCommit: rows[0]?.synchronous_commit ?? "?" });
        return result;
      } finally {
        client.release();
      }
    }) as pg.Pool["query"],
  };
  return { sql, commits };
}
