import type pg from "pg";
import { asyncCommitCondition } from "../../lib/async-commit.js";
import { textArray, timestamptzArray, uuidArray } from "../../lib/pg-binary-array.js";
import { retryOnConflict } from "../../lib/retry.js";
import { compileBody } from "./body-template.js";
import { campaignMessageId } from "./campaign-message-id.js";
import { mapWithConcurrency } from "./map-with-concurrency.js";
import type { MessageChannel, MessagingProvider, SendOutcome } from "./provider.js";
import type { ProviderRateLimit } from "./provider-rate-limit.js";
import type { RateLimiter } from "./rate-limiter.js";

/**
 * One batch of a bulk-messaging campaign in at most three SQL statements,
 * whatever the batch size (seed 004 needed six per recipient). Every statement
 * takes whole arrays (`unnest`), so each has a fixed handful of bind
 * parameters, and each is safe to run again.
 *
 *   1. look up the batch's patients, their conversations on this channel, and
 *      the campaign's message to each, if it has one;
 *   2. create the missing conversations (ON CONFLICT DO NOTHING: a concurrent
 *      writer may create them too), for the patients the batch will message;
 *      — provider sends, bounded concurrency and rate limit —
 *   3. write each message as it ended (`sent` or `failed`) and move the
 *      conversations of the sent ones, in one statement.
 *
 * Statement 2 runs only when a conversation is missing (and is followed by a
 * lookup only when another writer created one of them meanwhile), 3 only when
 * there is an outcome.
 *
 * Sent first, written once. A message's id, which is also the provider's
 * idempotency key, is derived from its campaign, patient and channel
 * (`campaignMessageId`), so it is the same in every run. Should a run stop
 * between the provider's answer and statement 3 (a crash, a cancel, a lost
 * connection), the rerun finds no message, sends again under the same key,
 * which the provider answers without delivering twice, and writes it then.
 * Writing the message before the call, as `sending`, and again after it cost
 * every message a second row version and entry in each of its indexes (it
 * cannot be a HOT update: the page is full): about a third of the campaign's
 * database time. Messages another writer (or an earlier version of dbjobs)
 * left `queued` or `sending` are sent under their own id and body, and
 * brought to their outcome by the same statement 3.
 *
 * Both writes commit without waiting for the WAL flush (see `asyncCommit`).
 *
 * The lookups reach patients, conversations and messages by key, one index
 * probe per patient (a LATERAL subquery with LIMIT 1), so a batch costs the
 * same on tables of millions of rows. Left to choose, the planner hashed the
 * whole patients and conversations tables in every batch: 1,000 probes look
 * dearer than one sequential scan under the default costs.
 *
 * The statements go to the pg pool directly rather than through Prisma's raw
 * queries: the same SQL, with about 1.4 s less worker CPU per 100k messages.
 */

// Takes $1 uuid[] patient ids (sorted), $2 channel, $3 campaign id. Returns one
// row per patient that exists: its id, names, address for the channel, the id
// of its conversation on that channel or null, and the campaign's message to
// it on that channel (id, status, body) or nulls. The LIMIT 1 subqueries keep
// the planner on one primary-key or unique-key probe per id and table.
const lookupSql = `
SELECT p."id"::text AS "patientId", p."firstName", p."lastName",
       CASE WHEN $2::"MessageChannel" = 'sms' THEN p."phone" ELSE p."email" END AS "address",
       c."id"::text AS "conversationId",
       m."id"::text AS "messageId", m."status"::text AS "messageStatus", m."body" AS "messageBody"
  FROM unnest($1::uuid[]) AS b("id")
  CROSS JOIN LATERAL (SELECT * FROM "patients" p WHERE p."id" = b."id" LIMIT 1) p
  LEFT JOIN LATERAL (
    SELECT c."id" FROM "conversations" c WHERE c."patientId" = b."id" AND c."channel" = $2::"MessageChannel" LIMIT 1
  ) c ON true
  LEFT JOIN LATERAL (
    SELECT m."id", m."status", m."body" FROM "messaging_messages" m
     WHERE m."patientId" = b."id" AND m."campaignId" = $3 AND m."channel" = $2::"MessageChannel"
     LIMIT 1
  ) m ON true`;

// Both writes commit without waiting for the WAL flush (a select-list item, so
// it costs no round trip). Their rows are durable all the same: the job ends
// with flushAsyncCommits (below), which flushes all WAL before it. Should
// PostgreSQL crash in between, a lost conversation is created again by the
// rerun, and a lost message is sent again under the same idempotency key,
// which the provider does not deliver twice, and written then.
// (A scalar subquery: evaluated once per statement, not once per returned row.)
const asyncCommit = `${asyncCommitCondition} AS "asyncCommit"`;

// Takes $1 uuid[] patient ids without a conversation (sorted, so concurrent
// jobs take index locks in the same order), $2 channel. Creates one open
// conversation each; one created meanwhile by someone else is left alone.
// Returns the created ones' patient id and conversation id.
const createConversationsSql = `
INSERT INTO "conversations" ("patientId", "channel")
SELECT b."id", $2::"MessageChannel"
  FROM unnest($1::uuid[]) AS b("id")
 WHERE EXISTS (SELECT 1 FROM "patients" p WHERE p."id" = b."id")
 ORDER BY b."id"
ON CONFLICT ("patientId", "channel") DO NOTHING
RETURNING "patientId"::text AS "patientId", "id"::text AS "conversationId", ${asyncCommit}`;

// Takes $1 uuid[] patient ids, $2 channel. Returns the conversation on that
// channel of each that has one: those another writer created after statement
// 2's snapshot, which this statement's newer snapshot sees.
const findConversationsSql = `
SELECT c."patientId"::text AS "patientId", c."id"::text AS "conversationId"
  FROM unnest($1::uuid[]) AS b("id")
  CROSS JOIN LATERAL (
    SELECT c."id", c."patientId" FROM "conversations" c WHERE c."patientId" = b."id" AND c."channel" = $2::"MessageChannel" LIMIT 1
  ) c`;

// Takes $1 uuid[] message ids, $2 uuid[] patient ids, $3 uuid[] conversation
// ids, $4 text[] bodies, $5 text[] outcome ('sent' | 'failed'), $6 text[]
// provider message ids, $7 text[] errors, $8 timestamptz[] sent times (same
// order), $9 campaign id, $10 channel, $11 the time the batch began sending,
// which is each new message's createdAt: before the provider had it, so a
// reply that arrived meanwhile sorts after it. Writes each message with its outcome;
// one the campaign already has is brought to the outcome only while it is
// still `queued` or `sending` (an earlier writer's), never rewritten once
// finished. Moves the conversations of the sent ones to lastMessageAt (never
// backwards) and lastMessageDirection 'outbound'. Returns how many messages it wrote.
const writeMessagesSql = `
WITH outcome AS (
  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
           AS o("id", "patientId", "conversationId", "body", "status", "providerMessageId", "error", "sentAt")
), written AS (
  INSERT INTO "messaging_messages" AS m
         ("id", "conversationId", "patientId", "campaignId", "channel", "direction", "body", "status", "providerMessageId", "error", "sentAt", "createdAt")
  SELECT o."id", o."conversationId", o."patientId", $9, $10::"MessageChannel", 'outbound', o."body", o."status"::"MessageStatus",
         o."providerMessageId", o."error", o."sentAt", $11::timestamptz
    FROM outcome o
   ORDER BY o."patientId"
  ON CONFLICT ("patientId", "campaignId", "channel") DO UPDATE
     SET "status" = excluded."status", "providerMessageId" = excluded."providerMessageId", "error" = excluded."error", "sentAt" = excluded."sentAt"
   WHERE m."status"::text IN ('queued', 'sending')
  RETURNING m."conversationId", m."status"::text AS "status", m."sentAt"
), touched AS (
  UPDATE "conversations" c
     SET "lastMessageAt" = greatest(c."lastMessageAt", r."sentAt"),
         "lastMessageDirection" = 'outbound',
         "updatedAt" = now()
    FROM (SELECT "conversationId", max("sentAt") AS "sentAt" FROM written WHERE "status" = 'sent' GROUP BY 1) r
   WHERE c."id" = r."conversationId"
  RETURNING 1
)
SELECT (SELECT count(*) FROM written)::int AS "recorded", ${asyncCommit}`;

export interface CampaignBatch {
  campaignId: string;
  channel: MessageChannel;
  /** With `{{firstName}}` / `{{lastName}}` placeholders. */
  bodyTemplate: string;
  /** Well-formed, distinct, lower-case uuids. */
  patientIds: string[];
}

export interface BatchOutcome {
  sent: number;
  failed: number;
  /** Patients that do not exist (or vanished during the batch). */
  skipped: number;
  /** Messages the provider could not take after its retries; a rerun sends them under the same key. */
  unavailable: number;
  lastUnavailableError?: string;
}

export interface BatchSender {
  provider: MessagingProvider;
  limiter: RateLimiter;
  /** The limit every worker shares (MESSAGING_RATE_PER_SECOND); taken after the job's own. */
  providerRateLimit?: ProviderRateLimit;
  /** Provider calls in flight at once. */
  sendConcurrency: number;
  /** The job's signal: once aborted no send starts, and those in flight are aborted. */
  signal?: AbortSignal;
}

interface LookupRow {
  patientId: string;
  firstName: string;
  lastName: string;
  address: string | null;
  conversationId: string | null;
  messageId: string | null;
  messageStatus: "queued" | "sending" | "sent" | "delivered" | "failed" | null;
  messageBody: string | null;
}

interface ConversationRow {
  patientId: string;
  conversationId: string;
}

/** A message this batch sends: new (its id derived, its body rendered), or one left `queued`/`sending`. */
interface Outgoing {
  id: string;
  patientId: string;
  conversationId: string | null;
  address: string | null;
  body: string;
}

/** Where the batch's statements run: the process's pg pool (or a wrapper that counts them). */
export type BatchSql = Pick<pg.Pool, "query">;

export async function runCampaignBatch(sql: BatchSql, sender: BatchSender, batch: CampaignBatch): Promise<BatchOutcome> {
  const ids = [...batch.patientIds].sort();
  const outcome: BatchOutcome = { sent: 0, failed: 0, skipped: 0, unavailable: 0 };

  const { rows: patients } = await sql.query<LookupRow>(lookupSql, [uuidArray(ids), batch.channel, batch.campaignId]);
  outcome.skipped = ids.length - patients.length;

  const renderBody = compileBody(batch.bodyTemplate);
  const outgoing: Outgoing[] = [];
  for (const row of patients) {
    if (row.messageStatus === "sent" || row.messageStatus === "delivered") outcome.sent++;
    else if (row.messageStatus === "failed") outcome.failed++;
    else
      outgoing.push({
        id: row.messageId ?? campaignMessageId(batch.campaignId, row.patientId, batch.channel),
        patientId: row.patientId,
        conversationId: row.conversationId,
        address: row.address,
        body: row.messageBody ?? renderBody(row),
      });
  }
  if (outgoing.length === 0) return outcome;

  // Every message needs its conversation before it is sent: one that cannot have one (its patient was deleted meanwhile) is not sent.
  const missing = outgoing.filter((message) => message.conversationId === null);
  if (missing.length > 0) {
    const conversationOf = await createConversations(sql, missing.map((message) => message.patientId).sort(), batch.channel);
    for (const message of missing) message.conversationId = conversationOf.get(message.patientId) ?? null;
  }
  const sendable = outgoing.filter((message) => message.conversationId !== null);
  outcome.skipped += outgoing.length - sendable.length;
  const sendingSince = new Date();

  const results = await mapWithConcurrency(sendable, sender.sendConcurrency, async (message): Promise<SendOutcome & { sentAtMs?: number }> => {
    const to = message.address;
    if (!to) return { status: "failed", error: `patient has no ${batch.channel === "sms" ? "phone number" : "email address"}` };
    sender.signal?.throwIfAborted();
    if (sender.limiter.limited) await sender.limiter.acquire();
    sender.signal?.throwIfAborted();
    if (sender.providerRateLimit) await sender.providerRateLimit.take();
    try {
      const result = await sender.provider.send({ idempotencyKey: message.id, channel: batch.channel, to, body: message.body }, { signal: sender.signal });
      return result.status === "sent" ? { ...result, sentAtMs: Date.now() } : result;
    } catch (err) {
      // Cancelled: the batch stops here, nothing of it written; a rerun sends its messages under the same keys.
      sender.signal?.throwIfAborted();
      // A provider must return outcomes; one that throws is treated as unavailable, never as sent.
      return { status: "unavailable", error: (err as Error).message };
    }
  });

  const written = {
    ids: [] as string[],
    patientIds: [] as string[],
    conversationIds: [] as (string | null)[],
    bodies: [] as string[],
    statuses: [] as string[],
    providerIds: [] as (string | null)[],
    errors: [] as (string | null)[],
    sentAts: [] as (number | null)[],
  };
  results.forEach((result, index) => {
    if (result.status === "unavailable") {
      outcome.unavailable++;
      outcome.lastUnavailableError = result.error;
      return;
    }
    const message = sendable[index] as Outgoing;
    written.ids.push(message.id);
    written.patientIds.push(message.patientId);
    written.conversationIds.push(message.conversationId);
    written.bodies.push(message.body);
    written.statuses.push(result.status);
    written.providerIds.push(result.status === "sent" ? result.providerMessageId : null);
    written.errors.push(result.status === "failed" ? result.error.slice(0, 2000) : null);
    written.sentAts.push(result.status === "sent" ? (result.sentAtMs ?? null) : null);
    if (result.status === "sent") outcome.sent++;
    else outcome.failed++;
  });

  if (written.ids.length > 0) {
    await retryOnConflict(() =>
      sql.query(writeMessagesSql, [
        uuidArray(written.ids),
        uuidArray(written.patientIds),
        uuidArray(written.conversationIds),
        textArray(written.bodies),
        textArray(written.statuses),
        textArray(written.providerIds),
        textArray(written.errors),
        timestamptzArray(written.sentAts),
        batch.campaignId,
        batch.channel,
        sendingSince,
      ]),
    );
  }
  return outcome;
}

/** Creates the conversations of `patientIds` (sorted) and returns each one's conversation id, including those another writer created meanwhile. */
async function createConversations(sql: BatchSql, patientIds: string[], channel: MessageChannel): Promise<Map<string, string>> {
  const { rows: created } = await retryOnConflict(() => sql.query<ConversationRow>(createConversationsSql, [uuidArray(patientIds), channel]));
  const conversationOf = new Map(created.map((row) => [row.patientId, row.conversationId]));
  const raced = patientIds.filter((id) => !conversationOf.has(id));
  if (raced.length > 0) {
    const { rows: found } = await sql.query<ConversationRow>(findConversationsSql, [uuidArray(raced), channel]);
    for (const row of found) conversationOf.set(row.patientId, row.conversationId);
  }
  return conversationOf;
}
