import type pg from "pg";
import { lockNames, withAdvisoryLock } from "../../lib/advisory-locks.js";
import { ChunkLanes } from "../../lib/chunk-lanes.js";
import { withSession } from "../../lib/session.js";
import { isUuid } from "../../lib/uuid.js";
import type { JobContext, JobHandler } from "../../queues/job-context.js";
import { type BatchOutcome, type BatchSender, flushAsyncCommits, runCampaignBatch } from "./campaign-batch.js";
import type { BulkMessagingPayload, BulkMessagingResult, bulkMessagingContract } from "./contract.js";
import { ProviderUnavailableError } from "./messaging-errors.js";
import { RateLimiter } from "./rate-limiter.js";
import { readRecipientPage, useRecipientList } from "./recipient-lists.js";

/**
 * bulk-messaging: sends one campaign to up to 100,000 patients (seed 004,
 * CRITICAL #1), batch by batch, with a fixed number of statements per batch
 * (see campaign-batch.ts) instead of six per recipient. The recipients come
 * in the payload (`patientIds`) or from a list staged in PostgreSQL
 * (`recipientListId`, recipient-lists.ts), read in keyset pages. Every
 * provider call waits for the limit all workers share (provider-rate-limit.ts).
 *
 * Exactly once, even across crashes: a message is unique per (campaignId,
 * patientId, channel), it is marked `sending` before the provider is called,
 * and the provider gets the message id as its idempotency key. A rerun (BullMQ
 * stalled-job recovery after a SIGKILL, a retry, the same campaign enqueued
 * again) skips messages already `sent`/`failed` and re-sends those left
 * `sending` with the same key, which the provider answers without sending twice.
 * Jobs for the same campaign and channel run one at a time (an advisory lock),
 * so two of them never send the same message at the same moment.
 */
export const handleBulkMessaging: JobHandler<typeof bulkMessagingContract> = async (payload, { db, log, config, services, reportProgress, signal }) => {
  const { campaignId, channel } = payload;
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
  const result: BulkMessagingResult = { processed: 0, total, sent: 0, failed: 0, skipped: 0 };

  // The lock is held on a session of its own while the batches run on the
  // pool. Should that session be lost, the lock goes with it: no further batch
  // starts and the job fails, to be retried, instead of sending unlocked.
  const unavailable = await withSession(db, ({ client, lost, throwIfLost }) =>
    withAdvisoryLock(
      client,
      lockNames.campaign(channel, campaignId),
      async () => {
        log.info({ campaignId, channel, total: result.total, batchSize: payload.batchSize, provider: provider.name }, "campaign started");
        const slices = payload.recipientListId
          ? listSlices(db.pool, payload.recipientListId, payload.batchSize)
          : payloadSlices(payload.patientIds ?? [], payload.batchSize);
        const outcome = await sendInBatches(db.pool, payload, slices, sender, result, reportProgress, throwIfLost);
        // Before the counts are reported, so a finished job's outcomes survive a PostgreSQL crash.
        await flushAsyncCommits(client);
        return outcome;
      },
      {
        signal: lost,
        onWait: (waits) => {
          if (waits % 20 === 0) log.info({ campaignId }, "another job is sending this campaign; waiting for it to finish");
        },
      },
    ),
  );
  // Thrown once the session is back in the pool: its connection is healthy, only the provider is not.
  if (unavailable) throw new ProviderUnavailableError(unavailable.unavailable, unavailable.lastUnavailableError ?? "unknown error");

  log.info(result, "campaign finished");
  return result;
};

/**
 * Batches in flight at once. With two, PostgreSQL works on one batch while this
 * process renders bodies, calls the provider and records the other; more only
 * queue up behind the pool on a small machine.
 */
const batchConcurrency = 2;

/**
 * Runs the campaign's batches, counting into `result` and reporting progress
 * after each. Ids that are not uuids, or repeat one already seen in another
 * case, are skipped. Returns the last batch the provider could not take, if
 * any: no batch starts after it, and the messages it left `sending` wait for
 * the retry.
 */
async function sendInBatches(
  pool: pg.Pool,
  payload: BulkMessagingPayload,
  slices: AsyncIterable<string[]>,
  sender: BatchSender,
  result: BulkMessagingResult,
  reportProgress: JobContext["reportProgress"],
  throwIfLost: () => void,
): Promise<BatchOutcome | undefined> {
  const { campaignId, channel } = payload;
  const seen = new Set<string>();
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
    await reportProgress({ ...result });
    if (outcome.unavailable > 0) unavailable = outcome;
  };

  // Stop starting batches rather than hammer a provider that is down; the retry resumes here.
  for await (const slice of slices) {
    if (unavailable) break;
    await lanes.start(() => runBatch(slice));
  }
  await lanes.drain();
  return unavailable;
}

/** The payload's ids, `batchSize` at a time. */
async function* payloadSlices(patientIds: string[], batchSize: number): AsyncIterable<string[]> {
  for (let start = 0; start < patientIds.length; start += batchSize) yield patientIds.slice(start, start + batchSize);
}

/**
 * A staged list's members, `batchSize` at a time, in patient-id order (keyset
 * pages: each read starts after the last id of the one before, so the 100th
 * page costs what the first does). The list does not change once staged, so a
 * rerun reads the same pages; messages already sent are skipped as always.
 */
async function* listSlices(pool: pg.Pool, listId: string, batchSize: number): AsyncIterable<string[]> {
  let after: string | null = null;
  for (;;) {
    const page = await readRecipientPage(pool, listId, after, batchSize);
    if (page.length === 0) return;
    yield page;
    after = page[page.length - 1] as string;
  }
}
