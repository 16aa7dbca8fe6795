import type { JobsOptions } from "bullmq";
import { ConfigError, DbjobsError } from "../lib/errors.js";
import type { QueueBackendKind } from "../lib/queue-store.js";
import { errorCodes } from "../lib/retry.js";
import { traceEnqueue } from "../lib/tracing.js";
import { addJobArguments, addJobSql, prepareJob } from "./bullmq-job.js";

/**
 * Enqueue in the application's own transaction: the job commits or rolls
 * back with the rows it is about, and never starts before they are visible.
 *
 * - PostgreSQL backend: the job is written by BullMQ's own `bullmq.add_job`
 *   on the caller's connection. Its row, and the NOTIFY that wakes workers,
 *   exist only once the transaction commits.
 * - Redis backend: Redis cannot join a PostgreSQL transaction, so the job is
 *   a row of `dbjobs.job_outbox` written on the caller's connection; after
 *   the commit `dbjobs relay` adds it to Redis (src/queues/outbox-relay.ts).
 *
 * Locks to know about on PostgreSQL: until the caller commits, `add_job`
 * holds a shared advisory lock that only `obliterate` of that queue waits
 * for, and, for a deduplicated job (invoice-totals of one invoice), the
 * deduplication id's advisory lock, which another enqueue of the same id and
 * the finish of that id's running job wait for. Keep such transactions short.
 */

/** A Prisma interactive-transaction client, `tx` in `prisma.$transaction(async (tx) => …)`. */
export interface PrismaTransactionClient {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>;
}

/** A pg client (`pg.Client`, or `pg.PoolClient` from `pool.connect()`) inside BEGIN … COMMIT. */
export interface PgTransactionClient {
  query(text: string, values?: unknown[]): PromiseLike<{ rows: unknown[] }>;
}

export type TransactionClient = PrismaTransactionClient | PgTransactionClient;

/** What an enqueue in a transaction returns: the job's id, valid once the transaction commits. */
export interface EnqueuedInTransaction {
  queue: string;
  /**
   * PostgreSQL: the job's id (an existing job's when deduplicated). Redis: the
   * id the relay gives the job, the outbox row's id unless `jobId` was given;
   * a deduplicated enqueue collapses into the existing job instead.
   */
  id: string;
  backend: QueueBackendKind;
}

/** `tx` is not a client inside a transaction; enqueueing on it would not be transactional. */
export class NotInTransactionError extends DbjobsError {
  constructor(message: string) {
    super("DBJOBS_NOT_IN_TRANSACTION", message, { retryable: false });
  }
}

export interface TransactionalEnqueue {
  tx: TransactionClient;
  backend: QueueBackendKind;
  queue: string;
  /** The payload as given (the worker applies the schema's defaults, as for any enqueue). */
  payload: unknown;
  /** The queue's defaultJobOptions. */
  defaults: JobsOptions;
  /** The call's own options, deduplication included. */
  options: JobsOptions;
}

/**
 * dbjobs.add_to_outbox (migration 20261207030000_transactional_enqueue): takes
 * $1 queue, $2 name, $3 data, $4 opts, $5 enqueue time (epoch ms); inserts an
 * outbox row and notifies channel dbjobs_outbox at commit. Returns the job's
 * future id.
 */
const addToOutboxSql = "SELECT dbjobs.add_to_outbox($1::text, $2::text, $3::jsonb, $4::jsonb, $5::bigint) AS id";

export async function enqueueInTransaction(request: TransactionalEnqueue): Promise<EnqueuedInTransaction> {
  const run = transactionQuery(request.tx);
  // The trace context goes in the job's options, where BullMQ's worker looks for it (on Redis through the outbox row).
  return traceEnqueue(request.queue, request.queue, async (metadata) => {
    const options = metadata ? { ...request.options, telemetry: { metadata } } : request.options;
    return addInTransaction(run, request, await prepareJob(request.queue, request.queue, request.payload, request.defaults, options));
  });
}

async function addInTransaction(
  run: (sql: string, values: unknown[]) => Promise<{ id: string }[]>,
  request: TransactionalEnqueue,
  prepared: Awaited<ReturnType<typeof prepareJob>>,
): Promise<EnqueuedInTransaction> {
  const [sql, values] =
    request.backend === "postgres"
      ? [addJobSql, addJobArguments(prepared)]
      : [addToOutboxSql, [request.queue, prepared.json.name, prepared.json.data, JSON.stringify(prepared.json.opts ?? {}), String(prepared.json.timestamp)]];
  let rows: { id: string }[];
  try {
    rows = await run(sql, values);
  } catch (err) {
    throw explainSetupFailure(err, request.backend) ?? err;
  }
  const id = rows[0]?.id;
  if (typeof id !== "string") throw new Error(`enqueue in a transaction returned no job id (rows: ${JSON.stringify(rows)})`);
  return { queue: request.queue, id, backend: request.backend };
}

/** How to run one statement on `tx`, after checking it really is inside a transaction. */
function transactionQuery(tx: TransactionClient): (sql: string, values: unknown[]) => Promise<{ id: string }[]> {
  const candidate = tx as unknown as Record<string, unknown> | null;
  if (candidate && typeof candidate.$queryRawUnsafe === "function") {
    // The client Prisma hands to an interactive transaction has no $connect ($disconnect, $on, $extends) of its own.
    if (typeof candidate.$connect === "function") {
      throw new NotInTransactionError(
        "Enqueue with { tx } takes the transaction client of prisma.$transaction(async (tx) => …), not the PrismaClient itself: outside a transaction the job would not commit or roll back with your rows.",
      );
    }
    const prisma = tx as PrismaTransactionClient;
    return async (sql, values) => (await prisma.$queryRawUnsafe<{ id: string }[]>(sql, ...values)) ?? [];
  }
  if (candidate && typeof candidate.query === "function") {
    if (typeof candidate.totalCount === "number") {
      throw new NotInTransactionError(
        "Enqueue with { tx } takes a pg client inside a transaction, not a pg.Pool (a pool runs each query on any connection): const client = await pool.connect(); await client.query('BEGIN'); … pass { tx: client }, then COMMIT.",
      );
    }
    // pg reports the server's transaction status with every ReadyForQuery: I idle, T in a transaction, E failed.
    const status = typeof candidate.getTransactionStatus === "function" ? (candidate.getTransactionStatus as () => string | null).call(tx) : null;
    if (status === "I") {
      throw new NotInTransactionError(
        "Enqueue with { tx } needs the pg client inside a transaction: run BEGIN on it first (and COMMIT after), or the job would not roll back with your rows.",
      );
    }
    if (status === "E") {
      throw new NotInTransactionError("The pg client's transaction has already failed; roll it back and start again.");
    }
    const pg = tx as PgTransactionClient;
    return async (sql, values) => (await pg.query(sql, values)).rows as { id: string }[];
  }
  throw new NotInTransactionError(
    "Enqueue with { tx } takes a Prisma interactive-transaction client (tx in prisma.$transaction(async (tx) => …)) or a pg client inside BEGIN … COMMIT.",
  );
}

/** A missing schema or function: the caller's database lacks what `dbjobs migrate` creates. */
function explainSetupFailure(err: unknown, backend: QueueBackendKind): Error | undefined {
  const codes = errorCodes(err);
  if (!codes.some((code) => code === "3F000" || code === "42883" || code === "42P01")) return undefined;
  const message =
    backend === "postgres"
      ? "The transaction's database has no BullMQ queue schema (bullmq.add_job). On the PostgreSQL backend the queues must live in the application's database to enqueue in its transactions: unset QUEUE_DATABASE_URL (or point it at DATABASE_URL) and run `dbjobs migrate`."
      : "The transaction's database has no job outbox (dbjobs.add_to_outbox). Run `dbjobs migrate` on the application's database.";
  return new ConfigError(message, { cause: err });
}
