import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { ChunkLanes } from "../lib/chunk-lanes.js";
import { isUuid } from "../lib/uuid.js";
import { defineJob } from "../queues/job-definition.js";
import { type BatchOutcome, flushAsyncCommits, runCampaignBatch } from "./bulk-messaging/campaign-batch.js";
import { createProvider } from "./bulk-messaging/create-provider.js";
import { ProviderUnavailableError } from "./bulk-messaging/messaging-errors.js";
import type { MessagingProvider } from "./bulk-messaging/provider.js";
import { RateLimiter } from "./bulk-messaging/rate-limiter.js";

/**
 * bulk-messaging: sends one campaign to up to 100,000 patients (seed 004,
 * CRITICAL #1), batch by batch, with a fixed number of statements per batch
 * (see src/lib/messaging/campaign-batch.ts) instead of six per recipient.
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
/**
 * Batches in flight at once. With two, PostgreSQL works on one batch while this
 * process renders bodies, calls the provider and records the other; more only
 * queue up behind the pool on a small machine.
 */
const batchConcurrency = 2;

export const bulkMessagingPayload = z
  .object({
    campaignId: z.string().min(1).max(100),
    channel: z.enum(["sms", "email"]),
    /** `{{firstName}}` and `{{lastName}}` are filled in per patient. */
    body: z.string().min(1).max(1600),
    patientIds: z
      .array(z.string().min(1).max(100))
      .min(1)
      .max(100_000)
      .superRefine((ids, ctx) => {
        const seen = new Set<string>();
        const repeated = new Set<string>();
        for (const id of ids) (seen.has(id) ? repeated : seen).add(id);
        if (repeated.size > 0) {
          const sample = [...repeated].slice(0, 3).join(", ");
          ctx.addIssue({ code: "custom", message: `must be unique; repeated: ${sample}${repeated.size > 3 ? ` and ${repeated.size - 3} more` : ""}` });
        }
      }),
    /** Patients per batch (a fixed number of statements each). @defaultValue 1000 */
    batchSize: z.number().int().min(1).max(5000).optional(),
    /** Provider calls per second across the job. @defaultValue unlimited */
    sendRatePerSecond: z.number().positive().max(100_000).optional(),
    /** Provider calls in flight at once. @defaultValue 16 */
    sendConcurrency: z.number().int().min(1).max(256).optional(),
  })
  .strict();

export type BulkMessagingPayload = z.output<typeof bulkMessagingPayload>;

export interface BulkMessagingResult {
  /** Patient ids handled so far (all of them when the job completes). */
  processed: number;
  total: number;
  /** Messages of this campaign in state sent, including those sent by an earlier attempt. */
  sent: number;
  /** Messages the provider refused for good (or patients without an address). */
  failed: number;
  /** Ids that are not uuids or name no patient. */
  skipped: number;
}

/** Lets a test or benchmark hand the job a provider; otherwise MESSAGING_PROVIDER decides. */
let providerOverride: MessagingProvider | undefined;
export function setBulkMessagingProvider(provider: MessagingProvider | undefined): void {
  providerOverride = provider;
}

// Takes $1 a lock name. Returns whether this session now holds the advisory lock
// on it (released by pg_advisory_unlock or when the connection ends, e.g. a crash).
const tryLockSql = `SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS "locked"`;
const unlockSql = `SELECT pg_advisory_unlock(hashtextextended($1, 0))`;

export const bulkMessagingJob = defineJob({
  queue: "bulk-messaging",
  payloadSchema: bulkMessagingPayload,

  async handle(payload, { db, log, config, reportProgress }): Promise<BulkMessagingResult> {
    const batchSize = payload.batchSize ?? 1000;
    const provider = providerOverride ?? createProvider(config, log);
    const sender = { provider, limiter: new RateLimiter(payload.sendRatePerSecond), sendConcurrency: payload.sendConcurrency ?? 16 };
    const result: BulkMessagingResult = { processed: 0, total: payload.patientIds.length, sent: 0, failed: 0, skipped: 0 };

    const lockName = `bulk-messaging:${payload.channel}:${payload.campaignId}`;
    const lockClient = await db.pool.connect();
    let lockError: Error | undefined;
    try {
      for (let waited = 0; !(await lockClient.query<{ locked: boolean }>(tryLockSql, [lockName])).rows[0]?.locked; waited++) {
        if (waited % 20 === 0) log.info({ campaignId: payload.campaignId }, "another job is sending this campaign; waiting for it to finish");
        await sleep(500);
      }
      log.info({ campaignId: payload.campaignId, channel: payload.channel, total: result.total, batchSize, provider: provider.name }, "campaign started");

      const seen = new Set<string>();
      const lanes = new ChunkLanes(batchConcurrency);
      let unavailable: BatchOutcome | undefined;
      const runBatch = async (slice: string[]) => {
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
            ? await runCampaignBatch(db.pool, sender, { campaignId: payload.campaignId, channel: payload.channel, bodyTemplate: payload.body, patientIds })
            : { sent: 0, failed: 0, skipped: 0, unavailable: 0 };
        result.sent += outcome.sent;
        result.failed += outcome.failed;
        result.skipped += outcome.skipped;
        result.processed += slice.length - outcome.unavailable;
        await reportProgress({ ...result });
        if (outcome.unavailable > 0) unavailable = outcome;
      };
      // Stop starting batches rather than hammer a provider that is down; the retry resumes here.
      for (let start = 0; start < payload.patientIds.length && !unavailable; start += batchSize) {
        await lanes.start(() => runBatch(payload.patientIds.slice(start, start + batchSize)));
      }
      await lanes.drain();
      // Before the counts are reported, so a finished job's outcomes survive a PostgreSQL crash.
      await flushAsyncCommits(lockClient);
      if (unavailable) throw new ProviderUnavailableError(unavailable.unavailable, unavailable.lastUnavailableError ?? "unknown error");
    } catch (err) {
      lockError = err as Error;
      throw err;
    } finally {
      await lockClient.query(unlockSql, [lockName]).catch(() => undefined);
      // A connection that failed mid-query may be broken: drop it instead of returning it to the pool.
      lockClient.release(lockError && !(lockError instanceof ProviderUnavailableError) ? lockError : undefined);
    }

    log.info(result, "campaign finished");
    return result;
  },
});
