import { UnrecoverableError } from "bullmq";
import { z } from "zod";
import { type AnalyzeCandidate, analyzeCandidates } from "../lib/analyze-candidates.js";
import { listInvalidLeftovers, type OwnTable, resolveScope } from "../lib/catalog.js";
import { type BloatMethod, estimateIndexBloat, type IndexBloat, indexBytes, minReindexBytes } from "../lib/index-bloat.js";
import { UnknownTableError } from "../lib/maintenance-errors.js";
import { isConnectionFailure, type MaintenanceSession, openMaintenanceSession, withLockRetry } from "../lib/maintenance-session.js";
import { dropIndexConcurrently, leftoversOnTable, reindexConcurrently } from "../lib/reindex-concurrently.js";
import { defineJob, type JobContext } from "../queues/job-definition.js";

/**
 * db-maintenance: the upkeep users ran by hand (seed 000 "Index Maintenance"),
 * on a schedule and without blocking traffic.
 *
 *  1. drop indexes left invalid by an earlier failed concurrent build;
 *  2. ANALYZE the tables whose changes passed autovacuum's own threshold, and
 *     every partitioned parent (autovacuum never analyzes those);
 *  3. REINDEX INDEX CONCURRENTLY the btree indexes whose estimated bloat
 *     passes minBloatRatio, one at a time.
 *
 * Everything runs in one autocommit session with a short lock_timeout, so the
 * job never queues in front of application writes; an object whose lock
 * stays busy after a few retries is reported as skipped. An advisory lock
 * lets one run at a time: an overlapping cron fire returns at once. Every
 * identifier comes from the catalog through format('%I'); `tables` only
 * narrows the catalog's list, it is never pasted into SQL.
 */
const tableName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, {
    error: (issue) =>
      `${JSON.stringify(issue.input)} is not a table name: use one of the application's tables in schema public (letters, digits, _ or $, at most 63 characters, e.g. "invoices")`,
  })
  .refine((name) => !name.toLowerCase().startsWith("pg_"), {
    error: (issue) => `${JSON.stringify(issue.input)} is a system catalog name (pg_*); those are never maintained, name one of the application's tables`,
  });

export const dbMaintenancePayload = z
  .object({
    /** ANALYZE tables past their threshold and partitioned parents. @defaultValue true */
    analyze: z.boolean().default(true),
    /** REINDEX CONCURRENTLY indexes past minBloatRatio. @defaultValue false */
    reindex: z.boolean().default(false),
    /** Only these tables (a partitioned parent includes its partitions). @defaultValue every table in schema public */
    tables: z.array(tableName).min(1).max(1000).optional(),
    /** Reindex when actual size / fresh-build size reaches this. @defaultValue 1.5 */
    minBloatRatio: z.number().min(1.1).max(10).default(1.5),
    /** List the actions with reasons and estimates; change nothing. @defaultValue false */
    dryRun: z.boolean().default(false),
    /** lock_timeout of every maintenance statement. @defaultValue 2000 */
    lockTimeoutMs: z.number().int().min(100).max(60_000).default(2000),
  })
  .strict();

export type DbMaintenancePayload = z.output<typeof dbMaintenancePayload>;

export interface PlannedAction {
  action: "drop-invalid" | "analyze" | "reindex";
  target: string;
  reason: string;
  estimate: Record<string, number | string | null>;
}

export interface DbMaintenanceResult {
  dryRun: boolean;
  /** How index bloat was estimated; null when reindex was off. */
  bloatMethod: BloatMethod | null;
  analyzed: string[];
  /** Sizes in bytes; `after` is null when the index could not be measured right after (lock busy). */
  reindexed: { index: string; table: string; before: number; after: number | null; bloatRatio: number }[];
  droppedInvalid: string[];
  skipped: { name: string; reason: string }[];
  /** Every action this run decided on, with its reason and estimate (what a dry run would do). */
  planned: PlannedAction[];
}

type Ctx = Pick<JobContext, "db" | "log" | "reportProgress">;

export const dbMaintenanceJob = defineJob({
  queue: "db-maintenance",
  payloadSchema: dbMaintenancePayload,

  async handle(payload, context): Promise<DbMaintenanceResult> {
    const { db, log } = context;
    const result: DbMaintenanceResult = {
      dryRun: payload.dryRun,
      bloatMethod: null,
      analyzed: [],
      reindexed: [],
      droppedInvalid: [],
      skipped: [],
      planned: [],
    };
    const session = await openMaintenanceSession(db.pool, payload.lockTimeoutMs);
    try {
      let scope: OwnTable[];
      try {
        scope = await resolveScope(session.client, payload.tables);
      } catch (err) {
        if (err instanceof UnknownTableError) throw new UnrecoverableError(err.message);
        throw err;
      }
      if (!(await session.tryLock())) {
        log.info("another db-maintenance run holds the lock; skipping this one");
        result.skipped.push({ name: "db-maintenance", reason: "another db-maintenance run is in progress (advisory lock held); this run did nothing" });
        return result;
      }
      await dropInvalidLeftovers(session, scope, payload, result, context);
      if (payload.analyze) await analyzeTables(session, scope, payload, result, context);
      if (payload.reindex) await reindexBloated(session, scope, payload, result, context);
    } finally {
      await session.release();
    }
    await context.reportProgress({
      step: "done",
      analyzed: result.analyzed.length,
      reindexed: result.reindexed.length,
      droppedInvalid: result.droppedInvalid.length,
      skipped: result.skipped.length,
    });
    log.info(
      {
        dryRun: result.dryRun,
        bloatMethod: result.bloatMethod,
        analyzed: result.analyzed.length,
        reindexed: result.reindexed.length,
        droppedInvalid: result.droppedInvalid.length,
        skipped: result.skipped,
        planned: result.planned.length,
      },
      payload.dryRun ? "db maintenance dry run planned" : "db maintenance done",
    );
    return result;
  },
});

async function dropInvalidLeftovers(session: MaintenanceSession, scope: OwnTable[], payload: DbMaintenancePayload, result: DbMaintenanceResult, ctx: Ctx) {
  const leftovers = await listInvalidLeftovers(session.client, scope);
  for (const [position, leftover] of leftovers.entries()) {
    result.planned.push({
      action: "drop-invalid",
      target: leftover.name,
      reason: `invalid index on ${leftover.table} left by a failed concurrent index build`,
      estimate: { bytes: leftover.bytes },
    });
    if (payload.dryRun) continue;
    await ctx.reportProgress({ step: "drop-invalid", index: leftover.name, done: position, total: leftovers.length });
    const outcome = await guarded(leftover.name, result, ctx, () => withLockRetry(() => dropIndexConcurrently(session, leftover.qualified)));
    if (outcome?.ok) {
      result.droppedInvalid.push(leftover.name);
      ctx.log.info({ index: leftover.name, table: leftover.table }, "dropped invalid index left by a failed concurrent build");
    } else if (outcome) skipForLock(leftover.name, outcome.attempts, payload, result, ctx);
  }
}

async function analyzeTables(session: MaintenanceSession, scope: OwnTable[], payload: DbMaintenancePayload, result: DbMaintenanceResult, ctx: Ctx) {
  const candidates = await analyzeCandidates(session.client, scope);
  for (const candidate of candidates) result.planned.push(analyzeAction(candidate));
  if (payload.dryRun) return;
  for (const [position, candidate] of candidates.entries()) {
    await ctx.reportProgress({ step: "analyze", table: candidate.table, done: position, total: candidates.length });
    const started = Date.now();
    const outcome = await guarded(candidate.table, result, ctx, () => withLockRetry(() => session.client.query(`ANALYZE ${candidate.qualified}`)));
    if (outcome?.ok) {
      result.analyzed.push(candidate.table);
      ctx.log.info({ table: candidate.table, reason: candidate.reason, durationMs: Date.now() - started }, "analyzed");
    } else if (outcome) skipForLock(candidate.table, outcome.attempts, payload, result, ctx);
  }
}

function analyzeAction(candidate: AnalyzeCandidate): PlannedAction {
  return {
    action: "analyze",
    target: candidate.table,
    reason: candidate.reason,
    estimate: {
      modsSinceAnalyze: candidate.modsSinceAnalyze,
      threshold: candidate.threshold,
      estimatedRows: candidate.estimatedRows,
      lastAnalyzedAt: candidate.lastAnalyzedAt?.toISOString() ?? null,
    },
  };
}

async function reindexBloated(session: MaintenanceSession, scope: OwnTable[], payload: DbMaintenancePayload, result: DbMaintenanceResult, ctx: Ctx) {
  const { method, indexes, unavailable } = await estimateIndexBloat(session.client, scope);
  result.bloatMethod = method;
  for (const entry of unavailable) result.skipped.push({ name: entry.index, reason: entry.reason });
  const bloated: IndexBloat[] = [];
  for (const index of indexes) {
    if (index.ratio === null) {
      result.skipped.push({ name: index.index, reason: `bloat unknown: no planner statistics for ${index.table} yet (ANALYZE it, or install pgstattuple)` });
    } else if (index.ratio >= payload.minBloatRatio) {
      bloated.push(index);
      result.planned.push({
        action: "reindex",
        target: index.index,
        reason: `estimated bloat ${index.ratio}× ≥ minBloatRatio ${payload.minBloatRatio} (${method})`,
        estimate: { bytes: index.bytes, estimatedBytes: index.estimatedBytes, ratio: index.ratio, method },
      });
    }
  }
  ctx.log.info({ method, estimated: indexes.length, bloated: bloated.length, minBytes: minReindexBytes }, "index bloat estimated");
  if (payload.dryRun) return;

  for (const [position, index] of bloated.entries()) {
    const progress = { step: "reindex", index: index.index, table: index.table, done: position, total: bloated.length };
    await ctx.reportProgress(progress);
    const started = Date.now();
    const outcome = await guarded(index.index, result, ctx, () =>
      withLockRetry(
        () =>
          reindexConcurrently(session, index.qualified, {
            monitor: ctx.db.pool,
            onProgress: (build) => {
              ctx.log.info({ index: index.index, ...build }, "reindex in progress");
              void ctx.reportProgress({ ...progress, build });
            },
          }),
        { onLockTimeout: () => dropLeftoversOf(session, index, ctx) },
      ),
    );
    if (outcome?.ok) {
      const after = await indexBytes(session.client, index.qualified);
      result.reindexed.push({ index: index.index, table: index.table, before: index.bytes, after, bloatRatio: index.ratio ?? 0 });
      ctx.log.info({ index: index.index, before: index.bytes, after, durationMs: Date.now() - started }, "reindexed concurrently");
    } else if (outcome) skipForLock(index.index, outcome.attempts, payload, result, ctx);
  }
}

/** A REINDEX CONCURRENTLY that timed out after building started leaves an invalid _ccnew index; drop it before retrying. */
async function dropLeftoversOf(session: MaintenanceSession, index: IndexBloat, ctx: Ctx) {
  for (const leftover of await leftoversOnTable(session.client, index.qualifiedTable)) {
    try {
      await dropIndexConcurrently(session, leftover);
      ctx.log.info({ index: index.index, leftover }, "dropped the invalid leftover of a timed-out reindex before retrying");
    } catch (err) {
      ctx.log.warn({ err, index: index.index, leftover }, "could not drop the leftover of a timed-out reindex; the next run drops it");
    }
  }
}

function skipForLock(name: string, attempts: number, payload: DbMaintenancePayload, result: DbMaintenanceResult, ctx: Ctx) {
  const reason = `lock not available within lock_timeout ${payload.lockTimeoutMs} ms after ${attempts} attempts (another session holds a conflicting lock); will be retried next run`;
  result.skipped.push({ name, reason });
  ctx.log.warn({ name, attempts }, "skipped: lock busy");
}

/**
 * Runs one object's maintenance. An error about that object (say, an index
 * PostgreSQL refuses to rebuild concurrently) is reported as skipped and the
 * run goes on; a lost connection ends the run so BullMQ retries it.
 */
async function guarded<T>(name: string, result: DbMaintenanceResult, ctx: Ctx, work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (err) {
    if (isConnectionFailure(err)) throw err;
    ctx.log.error({ err, name }, "maintenance of one object failed; continuing with the others");
    result.skipped.push({ name, reason: `failed: ${(err as Error).message}` });
    return undefined;
  }
}
