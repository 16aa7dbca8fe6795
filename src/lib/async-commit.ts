import type pg from "pg";

/**
 * A scalar subquery that turns off synchronous commit for the statement's own
 * transaction: its commit returns without waiting for the WAL flush, which
 * PostgreSQL's WAL writer does within 3 × wal_writer_delay (0.6 s by
 * default). Put in a statement (a select-list item or a one-time WHERE
 * condition), it costs no round trip. What a PostgreSQL crash may then lose
 * is the last 0.6 s of such commits; `flushAsyncCommits` closes that window
 * where a caller needs it closed.
 */
export const asyncCommitCondition = `(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL`;

// Commits a transaction that has an id and wrote WAL, synchronously: only such
// a commit waits for the WAL flush (one that wrote nothing, as after `SELECT
// txid_current()`, commits without flushing), and the flush covers every
// earlier asynchronous commit. A transactional logical-decoding message is the
// smallest such write that needs no table and no privilege; logical decoding
// consumers see it under the prefix "dbjobs".
const flushAsyncCommitsSql = `SELECT pg_logical_emit_message(true, 'dbjobs', 'flush asynchronous commits') IS NOT NULL AS "flushed"`;

/** Makes every earlier asynchronous commit durable. */
export async function flushAsyncCommits(sql: Pick<pg.Pool, "query">): Promise<void> {
  await sql.query(flushAsyncCommitsSql);
}
