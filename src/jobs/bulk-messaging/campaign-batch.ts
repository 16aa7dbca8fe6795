import type pg from "pg";
import { textArray, timestamptzArray, uuidArray } from "../../lib/pg-binary-array.js";
import { retryOnConflict } from "../../lib/retry.js";
import { compileBody } from "./body-template.js";
import { mapWithConcurrency } from "./map-with-concurrency.js";
import type { MessageChannel, MessagingProvider, SendOutcome } from "./provider.js";
import type { ProviderRateLimit } from "./provider-rate-limit.js";
import type { RateLimiter } from "./rate-limiter.js";

/**
 * One batch of a bulk-messaging campaign in at most four SQL statements,
 * whatever the batch size (seed 004 needed six per recipient). Every statement
 * takes whole arrays (`unnest`), so each has a fixed handful of bind
 * parameters, and each is safe to run again: a retried or resumed batch picks
 * up the rows an earlier attempt left behind.
 *
 *   1. look up the batch's patients and their conversations on this channel;
 *   2. create the missing conversations (ON CONFLICT DO NOTHING: a concurrent job may create them too)
 *      and return their ids;
 *   3. create the messages, already marked `sending` (ON CONFLICT DO NOTHING on
 *      campaignId+patientId+channel), in the conversations statements 1 and 2
 *      found or made (looking up only those another writer made meanwhile), and
 *      return the batch's messages: new ones and those an earlier attempt left
 *      `sending` to send, finished ones to count;
 *      — provider sends, bounded concurrency and rate limit —
 *   4. record every outcome and move the conversations of the sent ones, in one statement.
 *
 * Statement 2 runs only when a conversation is missing and 4 only when there is an outcome.
 * Both commit without waiting for the WAL flush; see `asyncCommit` for why that is safe.
 *
 * The lookups reach patients and conversations by key, one index probe per
 * patient (a LATERAL subquery with LIMIT 1), so a batch costs the same on
 * tables of millions of rows. Left to choose, the planner hashed the whole
 * patients and conversations tables in every batch: 1,000 probes look dearer
 * than one sequential scan under the default costs.
 *
 * The statements go to the pg pool directly rather than through Prisma's raw
 * queries: the same SQL, with about 1.4 s less worker CPU per 100k messages.
 *
 * Why messages are created as `sending` rather than `queued` and then updated:
 * `sending` means "the provider may have it, resend with the same idempotency
 * key", which is what a new row means too, since this job sends it next. A
 * queued→sending UPDATE would write every row once more (a new row version
 * and an entry in every index: it cannot be a HOT update, the page is full)
 * for a state no one reads: about a fifth of the job's database time in the
 * bench. Rows some other writer left `queued` are sent like `sending` ones,
 * with their id as idempotency key.
 */

// Takes $1 uuid[] patient ids (sorted), $2 channel. Returns one row per patient
// that exists: its id, names, address for the channel, and the id of its
// conversation on that channel or null. The LIMIT 1 subqueries keep the
// planner on one primary-key (and one unique-key) probe per id.
const lookupSql = `
SELECT p."id"::text AS "patientId", p."firstName", p."lastName",
       CASE WHEN $2::"MessageChannel" = 'sms' THEN p."phone" ELSE p."email" END AS "address",
       c."id"::text AS "conversationId"
  FROM unnest($1::uuid[]) AS b("id")
  CROSS JOIN LATERAL (SELECT * FROM "patients" p WHERE p."id" = b."id" LIMIT 1) p
  LEFT JOIN LATERAL (
    SELECT c."id" FROM "conversations" c WHERE c."patientId" = b."id" AND c."channel" = $2::"MessageChannel" LIMIT 1
  ) c ON true`;

// Statements 2 and 4 commit without waiting for the WAL flush (a select-list
// item, so it costs no round trip). Their rows are durable all the same: the
// next batch's statement 3 commits synchronously, which flushes all WAL before
// it, and the job ends with flushAsyncCommits (below). Should PostgreSQL crash in
// between, a lost conversation is created again by the rerun, and a lost
// outcome leaves its message `sending`, which the rerun sends again under the
// same idempotency key, which the provider does not deliver twice. Statement 3
// must stay synchronous: the provider is called once it returns.
// (A scalar subquery: evaluated once per statement, not once per returned row.)
const asyncCommit = `(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL AS "asyncCommit"`;

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

// Takes $1 uuid[] patient ids (sorted), $2 text[] their personalised bodies,
// $3 uuid[] their conversation ids or nulls (same order), $4 campaign id, $5
// channel. Creates each patient's message, marked `sending`, in its
// conversation; where the caller has no conversation id (another job created
// it after statement 1 looked), the conversation is looked up here, in a new
// snapshot that sees it. A message the campaign already has is left alone.
// Returns every message of these patients in this campaign: state 'pending'
// (just created, with a null body: the caller has it; or left
// `queued`/`sending` by an earlier attempt, with its stored body), or the
// status it finished in. Both halves read one snapshot, which cannot contain
// the rows being created, so no message comes back twice; the second half
// probes only the patients the first did not create a message for.
const createMessagesSql = `
WITH created AS (
  INSERT INTO "messaging_messages" ("conversationId", "patientId", "campaignId", "channel", "direction", "body", "status")
  SELECT b."conversationId", b."patientId", $4, $5::"MessageChannel", 'outbound', b."body", 'sending'
    FROM (
      SELECT b."patientId", b."body",
             coalesce(b."conversationId", (
               SELECT c."id" FROM "conversations" c WHERE c."patientId" = b."patientId" AND c."channel" = $5::"MessageChannel" LIMIT 1
             )) AS "conversationId"
        FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS b("patientId", "body", "conversationId")
    ) b
   WHERE b."conversationId" IS NOT NULL
  ON CONFLICT ("campaignId", "patientId", "channel") DO NOTHING
  RETURNING "id", "patientId"
)
SELECT "id"::text AS "id", "patientId"::text AS "patientId", NULL AS "body", 'pending' AS "state" FROM created
UNION ALL
SELECT m."id"::text, m."patientId"::text,
       CASE WHEN m."status" IN ('queued', 'sending') THEN m."body" END,
       CASE WHEN m."status" IN ('queued', 'sending') THEN 'pending' ELSE m."status"::text END
  FROM unnest($1::uuid[]) AS b("patientId")
  -- One probe of the unique key per patient. Statistics lag behind a campaign
  -- being written, and "campaignId = $4 AND patientId = ANY($1)" was planned as
  -- a scan of every message the campaign already has, in every batch.
  CROSS JOIN LATERAL (
    SELECT * FROM "messaging_messages" m
     WHERE m."campaignId" = $4 AND m."patientId" = b."patientId" AND m."channel" = $5::"MessageChannel"
     LIMIT 1
  ) m
 WHERE b."patientId" NOT IN (SELECT "patientId" FROM created)`;

// Takes $1 uuid[] message ids, $2 text[] outcome ('sent' | 'failed'), $3 text[]
// provider message ids, $4 text[] errors, $5 timestamptz[] sent times (same
// order). Records each outcome on a message not yet finished, and moves the
// conversations of the sent ones to lastMessageAt (never backwards) and
// lastMessageDirection 'outbound'. Returns how many messages it recorded.
// "id = ANY($1)" lets the planner reach the messages through the primary key;
// the status test compares text so that no index on status can be chosen
// instead (with statistics that lag behind the campaign, the planner scanned
// the status index, dead entries included, in every batch).
const recordOutcomesSql = `
WITH outcome AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
           AS o("id", "status", "providerMessageId", "error", "sentAt")
), recorded AS (
  UPDATE "messaging_messages" m
     SET "status" = o."status"::"MessageStatus",
         "providerMessageId" = o."providerMessageId",
         "error" = o."error",
         "sentAt" = o."sentAt"
    FROM outcome o
   WHERE m."id" = o."id" AND m."id" = ANY($1::uuid[]) AND m."status"::text IN ('queued', 'sending')
  RETURNING m."conversationId", o."status", o."sentAt"
), touched AS (
  UPDATE "conversations" c
     SET "lastMessageAt" = greatest(c."lastMessageAt", r."sentAt"),
         "lastMessageDirection" = 'outbound',
         "updatedAt" = now()
    FROM (SELECT "conversationId", max("sentAt") AS "sentAt" FROM recorded WHERE "status" = 'sent' GROUP BY 1) r
   WHERE c."id" = r."conversationId"
  RETURNING 1
)
SELECT (SELECT count(*) FROM recorded)::int AS "recorded", ${asyncCommit}`;

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
  /** Messages the provider could not take after its retries; they stay `sending`. */
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
}

interface CreatedConversationRow {
  patientId: string;
  conversationId: string;
}

interface ClaimRow {
  id: string;
  patientId: string;
  body: string | null;
  state: "pending" | "sent" | "delivered" | "failed";
}

/** Where the batch's statements run: the process's pg pool (or a wrapper that counts them). */
export type BatchSql = Pick<pg.Pool, "query">;

export async function runCampaignBatch(sql: BatchSql, sender: BatchSender, batch: CampaignBatch): Promise<BatchOutcome> {
  const ids = [...batch.patientIds].sort();
  const outcome: BatchOutcome = { sent: 0, failed: 0, skipped: 0, unavailable: 0 };

  const { rows: patients } = await sql.query<LookupRow>(lookupSql, [uuidArray(ids), batch.channel]);
  outcome.skipped = ids.length - patients.length;
  if (patients.length === 0) return outcome;

  // What the later steps need of each patient found: its conversation (filled
  // in once created), its address and its rendered body.
  const renderBody = compileBody(batch.bodyTemplate);
  const found = new Map(patients.map((row) => [row.patientId, { conversationId: row.conversationId, address: row.address, body: renderBody(row) }]));
  const missing = patients
    .filter((row) => row.conversationId === null)
    .map((row) => row.patientId)
    .sort();
  if (missing.length > 0) {
    const { rows: created } = await retryOnConflict(() => sql.query<CreatedConversationRow>(createConversationsSql, [uuidArray(missing), batch.channel]));
    for (const row of created) {
      const patient = found.get(row.patientId);
      if (patient) patient.conversationId = row.conversationId;
    }
  }

  const knownIds = [...found.keys()];
  const bodies = knownIds.map((id) => found.get(id)?.body ?? null);
  const conversationIds = knownIds.map((id) => found.get(id)?.conversationId ?? null);
  const { rows: claimed } = await retryOnConflict(() =>
    sql.query<ClaimRow>(createMessagesSql, [uuidArray(knownIds), textArray(bodies), uuidArray(conversationIds), batch.campaignId, batch.channel]),
  );
  // No message for a patient deleted while the batch ran, or one whose message
  // another writer created after this statement's snapshot: counted with the unknown ones.
  outcome.skipped += patients.length - claimed.length;

  const pending: ClaimRow[] = [];
  for (const row of claimed) {
    if (row.state === "pending") pending.push(row);
    else if (row.state === "failed") outcome.failed++;
    else outcome.sent++;
  }

  const results = await mapWithConcurrency(pending, sender.sendConcurrency, async (row): Promise<SendOutcome & { sentAtMs?: number }> => {
    const patient = found.get(row.patientId);
    const to = patient?.address;
    if (!to) return { status: "failed", error: `patient has no ${batch.channel === "sms" ? "phone number" : "email address"}` };
    sender.signal?.throwIfAborted();
    if (sender.limiter.limited) await sender.limiter.acquire();
    sender.signal?.throwIfAborted();
    if (sender.providerRateLimit) await sender.providerRateLimit.take();
    try {
      const result = await sender.provider.send(
        {
          idempotencyKey: row.id,
          channel: batch.channel,
          to,
          body: row.body ?? patient?.body ?? "",
        },
        { signal: sender.signal },
      );
      return result.status === "sent" ? { ...result, sentAtMs: Date.now() } : result;
    } catch (err) {
      // Cancelled: the batch stops here; its messages stay `sending` and a rerun sends them with the same idempotency key.
      sender.signal?.throwIfAborted();
      // A provider must return outcomes; one that throws is treated as unavailable, never as sent.
      return { status: "unavailable", error: (err as Error).message };
    }
  });

  const recordIds: string[] = [];
  const statuses: string[] = [];
  const providerIds: (string | null)[] = [];
  const errors: (string | null)[] = [];
  const sentAts: (number | null)[] = [];
  results.forEach((result, index) => {
    if (result.status === "unavailable") {
      outcome.unavailable++;
      outcome.lastUnavailableError = result.error;
      return;
    }
    recordIds.push((pending[index] as ClaimRow).id);
    statuses.push(result.status);
    providerIds.push(result.status === "sent" ? result.providerMessageId : null);
    errors.push(result.status === "failed" ? result.error.slice(0, 2000) : null);
    sentAts.push(result.status === "sent" ? (result.sentAtMs ?? null) : null);
    if (result.status === "sent") outcome.sent++;
    else outcome.failed++;
  });

  if (recordIds.length > 0) {
    await retryOnConflict(() =>
      sql.query(recordOutcomesSql, [uuidArray(recordIds), textArray(statuses), textArray(providerIds), textArray(errors), timestamptzArray(sentAts)]),
    );
  }
  return outcome;
}

// Commits a transaction that has an id and wrote WAL, synchronously: only such
// a commit waits for the WAL flush (one that wrote nothing, as after `SELECT
// txid_current()`, commits without flushing), and the flush covers every
// earlier asynchronous commit. A transactional logical-decoding message is the
// smallest such write that needs no table and no privilege; logical decoding
// consumers see it under the prefix "dbjobs".
const flushAsyncCommitsSql = `SELECT pg_logical_emit_message(true, 'dbjobs', 'flush asynchronous commits') IS NOT NULL AS "flushed"`;

/** Makes the batches' asynchronous commits durable; run it before a job reports its counts. */
export async function flushAsyncCommits(sql: BatchSql): Promise<void> {
  await sql.query(flushAsyncCommitsSql);
}
