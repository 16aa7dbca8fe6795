import type pg from "pg";
import { lockNames, withAdvisoryLock } from "../../lib/advisory-locks.js";
import { flushAsyncCommits } from "../../lib/async-commit.js";
import { ChunkLanes } from "../../lib/chunk-lanes.js";
import { withSession } from "../../lib/session.js";
import { isUuid } from "../../lib/uuid.js";
import type { JobHandler } from "../../queues/job-context.js";
import { type BatchOutcome, type BatchSender, runCampaignBatch } from "./campaign-batch.js";
import { type CampaignCursor, type CampaignSlice, listSlices, payloadSlices, resumePoint, resumePointFrom } from "./campaign-slices.js";
import type { BulkMessagingPayload, BulkMessagingResult, bulkMessagingContract } from "./contract.js";
import { ProviderUnavailableError } from "./messaging-errors.js";
import { RateLimiter } from "./rate-limiter.js";
import { useRecipientList } from "./recipient-lists.js";
import { takeTenantSlot, tenantLimit } from "./tenant-slots.js";

/**
 * bulk-messaging: sends one campaign to up to 100,000 patients (seed 004,
 * CRITICAL #1), batch by batch, with a fixed number of statements per batch
 * (see campaign-batch.ts) instead of six per recipient. The recipients come
 * in the payload (`patientIds`) or from a list staged in PostgreSQL
 * (`recipientListId`, recipient-lists.ts), read in keyset pages. Every
 * provider call waits for the limit all workers share (provider-rate-limit.ts).
 *
 * Exactly once, even across crashes: a message is unique per (campaignId,
 * patientId, channel), its id is derived from those three, and the provider
 * gets it as its idempotency key. A rerun (BullMQ stalled-job recovery after
 * a SIGKILL, a retry, the same campaign enqueued again) skips messages already
 * `sent`/`failed` and sends the others, including any sent but not yet written
 * when the run stopped, under the same keys, which the provider answers
 * without sending twice.
 * Jobs for the same campaign and channel run one at a time (an advisory lock),
 * so two of them never send the same message at the same moment.
 *
 * Taking turns, so that one clinic's 100,000 messages do not hold up
 * another's 1,000: a campaign with a `tenantId` first takes one of its
 * tenant's slots (tenant-slots.ts); with none free its job is postponed,
 * out of the workers' way, and tries again a second later. Every
 * `MESSAGING_FAIR_SLICE_BATCHES` batches a campaign asks whether another job
 * waits for a worker; if one does, it saves where it got to in its progress,
 * releases its locks and puts its job at the back of the line, so waiting
 * campaigns go round-robin over the worker slots. Its next run resumes there
 * (campaign-slices.ts). Postponing spends no attempt and is no failure.
 */
export const handleBulkMessaging: JobHandler<typeof bulkMessagingContract> = async (payload, context) => {
  const { db, log, config, services, reportProgress, signal } = context;
  const { campaignId, channel, tenantId } = payload;
  const provider = services.messaging(log);
  const sender: BatchSender = {
    provider,
    limiter: new RateLimiter(payload.sendRatePerSecond),
    providerRateLimit: services.messagingRateLimit(),
    sendConcurrency: payload.sendConcurrency,
    signal,
  };
  const retentionDays = config.RECIPIENT_LIST_RETENTION_DAYS;
  // Checked before the lock is taken, so a list that is gone fails the job at once (not retryable).
  const total = payload.recipientListId ? await useRecipientList(db.pool, payload.recipientListId, retentionDays) : (payload.patientIds?.length ?? 0);
  // Where an earlier run of this job gave up its worker slot (see "Taking turns" above).
  const resumed = resumePointFrom(context.job.progress, total, payload.recipientListId !== undefined);
  const from: CampaignCursor = resumed ?? { offset: 0 };
  const result: BulkMessagingResult = {
    processed: resumed?.processed ?? 0,
    total,
    sent: resumed?.sent ?? 0,
    failed: resumed?.failed ?? 0,
    skipped: resumed?.skipped ?? 0,
  };
  const turns: Turns = {
    sliceBatches: config.MESSAGING_FAIR_SLICE_BATCHES,
    othersWaiting: () =>
      context.waitingJobs().then(
        (waiting) => waiting > 0,
        (err: unknown) => {
          log.debug({ err }, "could not count the waiting jobs; carrying on");
          return false;
        },
      ),
  };
  // Progress carries the resume point this run started from, so a crash, a retry or a cancel resumes there too.
  const report = (progress: BulkMessagingResult) => reportProgress(resumed ? { ...progress, resumeAt: resumed } : { ...progress });

  // The locks are held on a session of their own while the batches run on the
  // pool. Should that session be lost, the locks go with it: no further batch
  // starts and the job fails, to be retried, instead of sending unlocked.
  const run = await withSession(db, ({ client, lost, throwIfLost }) =>
    withAdvisoryLock(
      client,
      lockNames.campaign(channel, campaignId),
      async (): Promise<CampaignRun> => {
        const slot = tenantId === undefined ? undefined : await takeTenantSlot(client, tenantId, tenantLimit(config, tenantId));
        if (tenantId !== undefined && !slot) return { kind: "no-tenant-slot" };
        try {
          const fields = { campaignId, channel, tenantId, total: result.total, batchSize: payload.batchSize, provider: provider.name };
          if (resumed) log.info({ ...fields, resumeAt: resumed.offset }, "campaign resumed");
          else log.info(fields, "campaign started");
          const seen = resumed && payload.patientIds ? idsBefore(payload.patientIds, resumed.offset) : new Set<string>();
          const slices = payload.recipientListId
            ? listSlices(db.pool, payload.recipientListId, payload.batchSize, from)
            : payloadSlices(payload.patientIds ?? [], payload.batchSize, from);
          const outcome = await sendInBatches(db.pool, payload, slices, sender, { result, seen, report, throwIfLost, turns });
          // Before the counts are reported, so a finished job's outcomes survive a PostgreSQL crash.
          await flushAsyncCommits(client);
          return outcome;
        } finally {
          await slot?.release();
        }
      },
      {
        signal: lost,
        onWait: (waits) => {
          if (waits % 20 === 0) log.info({ campaignId }, "another job is sending this campaign; waiting for it to finish");
        },
      },
    ),
  );

  if (run.kind === "no-tenant-slot") {
    log.debug({ campaignId, tenantId }, "every slot of the tenant is taken; postponed");
    return context.postpone(tenantSlotRetryMs * (1 + Math.random() / 5));
  }
  if (run.kind === "yielded") {
    await reportProgress({ ...result, resumeAt: resumePoint(run.cursor, result) });
    log.info({ campaignId, tenantId, processed: result.processed, total }, "campaign gave its turn to a waiting job");
    return context.postpone(0);
  }
  // Thrown once the session is back in the pool: its connection is healthy, only the provider is not.
  if (run.unavailable) throw new ProviderUnavailableError(run.unavailable.unavailable, run.unavailable.lastUnavailableError ?? "unknown error");

  log.info(result, "campaign finished");
  return result;
};

/**
 * How long a campaign whose tenant has every slot taken stays out of the
 * workers' way before it tries again (plus up to a fifth, so that postponed
 * campaigns do not come back in step).
 */
const tenantSlotRetryMs = 1000;

type CampaignRun = { kind: "no-tenant-slot" } | { kind: "yielded"; cursor: CampaignCursor } | { kind: "done"; unavailable?: BatchOutcome };

/** When a run gives up its worker slot: after every `sliceBatches` batches, if another job waits for one. */
interface Turns {
  sliceBatches: number;
  othersWaiting(): Promise<boolean>;
}

interface BatchRun {
  /** Counted into as batches finish. */
  result: BulkMessagingResult;
  /** Lower-case ids already handled (and those before the resume point). */
  seen: Set<string>;
  report(progress: BulkMessagingResult): Promise<void>;
  throwIfLost(): void;
  turns: Turns;
}

/** The payload's well-formed ids before `offset`, lower-cased: a resumed run skips their repeats as the first run did. */
function idsBefore(patientIds: string[], offset: number): Set<string> {
  const seen = new Set<string>();
  for (const raw of patientIds.slice(0, offset)) {
    const id = raw.toLowerCase();
    if (isUuid(id)) seen.add(id);
  }
  return seen;
}

/**
 * Batches in flight at once. With two, PostgreSQL works on one batch while this
 * process renders bodies, calls the provider and records the other; more only
 * queue up behind the pool on a small machine.
 */
const batchConcurrency = 2;

/**
 * Runs the campaign's batches, counting into `result` and reporting progress
 * after each. Ids that are not uuids, or repeat one already seen in another
 * case, are skipped. Ends early in two cases: a batch the provider could not
 * take (no batch starts after it, and the messages it could not send wait for
 * the retry), or another job waiting when a slice of `turns.sliceBatches`
 * batches is done (the batches in flight finish first, so everything before
 * the returned cursor is done).
 */
async function sendInBatches(
  pool: pg.Pool,
  payload: BulkMessagingPayload,
  slices: AsyncIterable<CampaignSlice>,
  sender: BatchSender,
  { result, seen, report, throwIfLost, turns }: BatchRun,
): Promise<CampaignRun> {
  const { campaignId, channel } = payload;
  const lanes = new ChunkLanes(batchConcurrency);
  let unavailable: BatchOutcome | undefined;

  const runBatch = async (slice: string[]) => {
    // A failure here stops the lanes: the batches in flight finish, no other starts.
    throwIfLost();
    const patientIds: string[] = [];
    for (const raw of slice) {
      const id = raw.toLowerCase();
      if (isUuid(id) && !seen.has(id)) {
        seen.add(id);
        patientIds.push(id);
      } else result.skipped++;
    }
    const outcome: BatchOutcome =
      patientIds.length > 0
        ? await runCampaignBatch(pool, sender, { campaignId, channel, bodyTemplate: payload.body, patientIds })
        : { sent: 0, failed: 0, skipped: 0, unavailable: 0 };
    result.sent += outcome.sent;
    result.failed += outcome.failed;
    result.skipped += outcome.skipped;
    result.processed += slice.length - outcome.unavailable;
    await report(result);
    if (outcome.unavailable > 0) unavailable = outcome;
  };

  let started = 0;
  let position: CampaignCursor | undefined;
  for await (const slice of slices) {
    // Stop starting batches rather than hammer a provider that is down; the retry resumes here.
    if (unavailable) break;
    if (position && started % turns.sliceBatches === 0 && (await turns.othersWaiting())) {
      await lanes.drain();
      if (unavailable) break;
      return { kind: "yielded", cursor: position };
    }
    started++;
    position = slice.next;
    await lanes.start(() => runBatch(slice.ids));
  }
  await lanes.drain();
  return { kind: "done", unavailable };
}
