import { type AnalyzeCandidate, analyzeCandidates } from "../../db-catalog/analyze-candidates.js";
import { estimateIndexBloat, type IndexBloat, indexBytes, minReindexBytes } from "../../db-catalog/index-bloat.js";
import { type OwnTable, resolveScope } from "../../db-catalog/own-tables.js";
import { lockNames, withTryAdvisoryLock } from "../../lib/advisory-locks.js";
import { coerceError } from "../../lib/errors.js";
import { isConnectionFailure } from "../../lib/retry.js";
import type { JobContext, JobHandler } from "../../queues/job-context.js";
import type { DbMaintenancePayload, DbMaintenanceResult, dbMaintenanceContract, PlannedAction } from "./contract.js";
import { leftoversOnTable, listInvalidLeftovers } from "./invalid-leftovers.js";
import { withLockRetry } from "./lock-retry.js";
import { type MaintenanceSession, withMaintenanceSession } from "./maintenance-session.js";
import { dropIndexConcurrently, reindexConcurrently } from "./reindex-concurrently.js";

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
export const handleDbMaintenance: JobHandler<typeof dbMaintenanceContract> = async (payload, context) => {
  const { log } = context;
  const result: DbMaintenanceResult = {
    dryRun: payload.dryRun,
    bloatMethod: null,
    analyzed: [],
    reindexed: [],
    droppedInvalid: [],
    skipped: [],
    planned: [],
  };
  const ran = await withMaintenanceSession(context.db, payload.lockTimeoutMs, async (session) => {
    // A table that is not ours fails the job before it takes the lock (UnknownTableError, not retried).
    const scope = await resolveScope(session.client, payload.tables);
    return withTryAdvisoryLock(session.client, lockNames.dbMaintenance(), async () => {
      const run: MaintenanceRun = { session, scope, payload, result, ctx: context };
      await dropInvalidLeftovers(run);
      if (payload.analyze) await analyzeTables(run);
      if (payload.reindex) await reindexBloated(run);
    });
  });
  if (!ran.acquired) {
    log.info("another db-maintenance run holds the lock; skipping this one");
    result.skipped.push({ name: "db-maintenance", reason: "another db-maintenance run is in progress (advisory lock held); this run did nothing" });
    return result;
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
};

/** What every step of one run works with. */
interface MaintenanceRun {
  session: MaintenanceSession;
  scope: OwnTable[];
  payload: DbMaintenancePayload;
  result: DbMaintenanceResult;
  ctx: Pick<JobContext, "db" | "log" | "reportProgress" | "signal" | "cleanupPool">;
}

async function dropInvalidLeftovers(run: MaintenanceRun) {
  const { session, scope, payload, result, ctx } = run;
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
    const outcome = await guarded(run, leftover.name, () => withLockRetry(() => dropIndexConcurrently(session, leftover.qualified)));
    if (outcome?.ok) {
      result.droppedInvalid.push(leftover.name);
      ctx.log.info({ index: leftover.name, table: leftover.table }, "dropped invalid index left by a failed concurrent build");
    } else if (outcome) skipForLock(run, leftover.name, outcome.attempts);
  }
}

async function analyzeTables(run: MaintenanceRun) {
  const { session, scope, payload, result, ctx } = run;
  const candidates = await analyzeCandidates(session.client, scope);
  for (const candidate of candidates) result.planned.push(analyzeAction(candidate));
  if (payload.dryRun) return;
  for (const [position, candidate] of candidates.entries()) {
    await ctx.reportProgress({ step: "analyze", table: candidate.table, done: position, total: candidates.length });
    const started = Date.now();
    const outcome = await guarded(run, candidate.table, () => withLockRetry(() => session.client.query(`ANALYZE ${candidate.qualified}`)));
    if (outcome?.ok) {
      result.analyzed.push(candidate.table);
      ctx.log.info({ table: candidate.table, reason: candidate.reason, durationMs: Date.now() - started }, "analyzed");
    } else if (outcome) skipForLock(run, candidate.table, outcome.attempts);
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

async function reindexBloated(run: MaintenanceRun) {
  const { session, scope, payload, result, ctx } = run;
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
    const outcome = await guarded(run, index.index, () =>
      dropLeftoversIfStopped(
        run,
        index,
        withLockRetry(
          () =>
            reindexConcurrently(session, index.qualified, {
              monitor: ctx.db.pool,
              onProgress: (build) => {
                ctx.log.info({ index: index.index, ...build }, "reindex in progress");
                void ctx.reportProgress({ ...progress, build });
              },
            }),
          { onLockBusy: () => dropLeftoversOf(run, index) },
        ),
      ),
    );
    if (outcome?.ok) {
      const after = await indexBytes(session.client, index.qualified);
      result.reindexed.push({ index: index.index, table: index.table, before: index.bytes, after, bloatRatio: index.ratio ?? 0 });
      ctx.log.info({ index: index.index, before: index.bytes, after, durationMs: Date.now() - started }, "reindexed concurrently");
    } else if (outcome) skipForLock(run, index.index, outcome.attempts);
  }
}

/** A REINDEX CONCURRENTLY that timed out after building started leaves an invalid _ccnew index; drop it before retrying. */
async function dropLeftoversOf({ session, ctx }: MaintenanceRun, index: IndexBloat) {
  for (const leftover of await leftoversOnTable(session.client, index.qualifiedTable)) {
    try {
      await dropIndexConcurrently(session, leftover);
      ctx.log.info({ index: index.index, leftover }, "dropped the invalid leftover of a timed-out reindex before retrying");
    } catch (err) {
      ctx.log.warn({ err, index: index.index, leftover }, "could not drop the leftover of a timed-out reindex; the next run drops it");
    }
  }
}

/**
 * A cancelled REINDEX CONCURRENTLY leaves an invalid `_ccnew` index. It is
 * dropped here, on a session of its own (the job's are refused after a stop),
 * before the stop is passed on; should that fail, the next run drops it.
 */
async function dropLeftoversIfStopped<T>(run: MaintenanceRun, index: IndexBloat, reindex: Promise<T>): Promise<T> {
  try {
    return await reindex;
  } catch (err) {
    const { ctx, payload } = run;
    if (!ctx.signal.aborted || !ctx.cleanupPool) throw err;
    try {
      await withMaintenanceSession(ctx.cleanupPool, payload.lockTimeoutMs, async (cleanup) => {
        for (const leftover of await leftoversOnTable(cleanup.client, index.qualifiedTable)) {
          await dropIndexConcurrently(cleanup, leftover);
          ctx.log.info({ index: index.index, leftover }, "dropped the invalid index a cancelled reindex left");
        }
      });
    } catch (cleanupError) {
      ctx.log.warn({ err: cleanupError, index: index.index }, "could not drop the leftover of a cancelled reindex; the next run drops it");
    }
    throw err;
  }
}

function skipForLock({ payload, result, ctx }: MaintenanceRun, name: string, attempts: number) {
  const reason = `lock not available within lock_timeout ${payload.lockTimeoutMs} ms after ${attempts} attempts (another session holds a conflicting lock); will be retried next run`;
  result.skipped.push({ name, reason });
  ctx.log.warn({ name, attempts }, "skipped: lock busy");
}

/**
 * Runs one object's maintenance. An error about that object (say, an index
 * PostgreSQL refuses to rebuild concurrently) is reported as skipped and the
 * run goes on; a lost connection ends the run so BullMQ retries it.
 */
async function guarded<T>({ session, result, ctx }: MaintenanceRun, name: string, work: () => Promise<T>): Promise<T | undefined> {
  session.throwIfLost();
  try {
    return await work();
  } catch (err) {
    // A cancel or deadline ends the run; so does a lost connection, which BullMQ retries.
    if (session.lost.aborted || ctx.signal.aborted || isConnectionFailure(err)) throw err;
    ctx.log.error({ err, name }, "maintenance of one object failed; continuing with the others");
    result.skipped.push({ name, reason: `failed: ${coerceError(err).message}` });
    return undefined;
  }
}
