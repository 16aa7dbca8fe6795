import { createHash } from "node:crypto";
import type pg from "pg";
import { DbjobsError } from "../../lib/errors.js";
import { uuidArray } from "../../lib/pg-binary-array.js";
import { isUuid } from "../../lib/uuid.js";

/**
 * Recipient lists staged in PostgreSQL (tables dbjobs.recipient_lists and
 * dbjobs.recipient_list_members, in the application's database), so that a
 * campaign of 100,000 patients carries one `recipientListId` instead of 3.9 MB
 * of ids in its payload, in every copy of the job and every HTTP request.
 *
 * Staging is idempotent: without a client-given id the list id is derived
 * from the content (sorted, distinct, lower-case ids), so staging the same
 * recipients again returns the same list; a client-given id staged again with
 * the same recipients returns it too, with other recipients it is refused.
 * One transaction per staging: a list is there whole or not at all.
 */

/** The most recipients one list holds: the campaign size the contract promises. */
export const maxRecipientsPerList = 100_000;

/** A client-given list id: safe in URLs, logs and file names. */
export const recipientListIdPattern = /^[A-Za-z0-9_.-]{1,128}$/;

/** How many bad ids an error names before it summarises the rest. */
const namedProblems = 5;

export class RecipientListError extends DbjobsError {
  constructor(
    code: "DBJOBS_BAD_RECIPIENTS" | "DBJOBS_TOO_MANY_RECIPIENTS" | "DBJOBS_RECIPIENT_LIST_CONFLICT" | "DBJOBS_RECIPIENT_LIST_MISSING",
    message: string,
  ) {
    super(code, message, { retryable: false });
  }
}

/**
 * Collects recipient ids one at a time (from an array, a file's lines or an
 * HTTP body), checking each; `where` names the id's place for error messages
 * ("line 17", "ids[3]"). Repeated ids are kept once.
 */
export class RecipientIdCollector {
  private readonly ids = new Set<string>();
  private readonly problems: string[] = [];
  private badCount = 0;
  private total = 0;

  constructor(private readonly source: string) {}

  /** False once the list is over `maxRecipientsPerList`: stop reading. */
  add(raw: string, where: string): boolean {
    this.total++;
    const id = raw.trim().toLowerCase();
    if (!isUuid(id)) {
      this.badCount++;
      if (this.problems.length < namedProblems) this.problems.push(`${where}: ${JSON.stringify(raw.slice(0, 60))} is not a uuid`);
    } else this.ids.add(id);
    return this.total <= maxRecipientsPerList;
  }

  /** The distinct ids, sorted; throws a RecipientListError naming the bad ones, an empty list or too many. */
  finish(): string[] {
    if (this.total > maxRecipientsPerList) {
      throw new RecipientListError(
        "DBJOBS_TOO_MANY_RECIPIENTS",
        `${this.source}: more than ${maxRecipientsPerList.toLocaleString("en")} recipients; split the campaign into several lists and campaigns. Nothing was staged.`,
      );
    }
    if (this.badCount > 0) {
      const more = this.badCount > this.problems.length ? `; and ${this.badCount - this.problems.length} more` : "";
      throw new RecipientListError(
        "DBJOBS_BAD_RECIPIENTS",
        `${this.source}: ${this.problems.join("; ")}${more}. Give one patient uuid per entry; nothing was staged.`,
      );
    }
    if (this.ids.size === 0) throw new RecipientListError("DBJOBS_BAD_RECIPIENTS", `${this.source}: no recipients; give at least one patient uuid.`);
    return [...this.ids].sort();
  }
}

/** Checks `ids` (an array given to the producer) and returns them distinct and sorted. */
export function collectRecipientIds(ids: Iterable<unknown>, source = "ids"): string[] {
  const collector = new RecipientIdCollector(source);
  let index = 0;
  for (const id of ids) {
    if (!collector.add(typeof id === "string" ? id : String(id), `${source}[${index++}]`)) break;
  }
  return collector.finish();
}

export interface StageOptions {
  /** Stage under this id instead of one derived from the content. */
  listId?: string;
  /** Lists unused for this many days are deleted first. @defaultValue 7 */
  retentionDays?: number;
}

export interface StagedRecipientList {
  /** Give it to bulk-messaging as `recipientListId`. */
  id: string;
  /** Distinct recipients in the list. */
  count: number;
  /** False when the same list was already staged (nothing was written but its last use). */
  created: boolean;
}

/** Members per INSERT: 20,000 uuids make a 0.3 MB bind parameter. */
const membersPerInsert = 20_000;

// Takes $1 retention in days. Deletes lists unused for that long (their members go by cascade).
const deleteExpiredSql = `DELETE FROM "dbjobs"."recipient_lists" WHERE "last_used_at" < now() - make_interval(days => $1::int)`;

// Takes $1 list id, $2 content hash, $3 count. Creates the list, or marks an
// existing one used; returns whether it was created and the stored hash. A
// concurrent staging of the same id waits here for the first one's commit.
const upsertListSql = `
INSERT INTO "dbjobs"."recipient_lists" ("id", "content_sha256", "count") VALUES ($1, $2, $3)
ON CONFLICT ("id") DO UPDATE SET "last_used_at" = now()
RETURNING (xmax = 0) AS "created", "content_sha256" AS "contentSha256", "count"`;

// Takes $1 list id, $2 uuid[] patient ids. Adds them as members.
const insertMembersSql = `INSERT INTO "dbjobs"."recipient_list_members" ("list_id", "patient_id") SELECT $1, unnest($2::uuid[])`;

/** Stages `sortedIds` (from `collectRecipientIds` or a RecipientIdCollector) in one transaction. */
export async function stageRecipientList(pool: pg.Pool, sortedIds: readonly string[], options: StageOptions = {}): Promise<StagedRecipientList> {
  if (options.listId !== undefined && !recipientListIdPattern.test(options.listId)) {
    throw new RecipientListError(
      "DBJOBS_BAD_RECIPIENTS",
      `list id ${JSON.stringify(options.listId)}: use 1-128 letters, digits, '_', '.' or '-', or give none to have one derived from the recipients.`,
    );
  }
  const contentSha256 = createHash("sha256").update(sortedIds.join("\n")).digest("hex");
  const id = options.listId ?? `rl-${contentSha256.slice(0, 32)}`;
  await pool.query(deleteExpiredSql, [options.retentionDays ?? 7]);

  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const { rows } = await client.query<{ created: boolean; contentSha256: string; count: number }>(upsertListSql, [id, contentSha256, sortedIds.length]);
    const stored = rows[0] as { created: boolean; contentSha256: string; count: number };
    if (!stored.created && stored.contentSha256 !== contentSha256) {
      throw new RecipientListError(
        "DBJOBS_RECIPIENT_LIST_CONFLICT",
        `recipient list "${id}" already holds other recipients (${stored.count}); stage these under a new id, or give no id to have one derived from the recipients. Nothing was staged.`,
      );
    }
    if (stored.created) {
      for (let start = 0; start < sortedIds.length; start += membersPerInsert) {
        await client.query(insertMembersSql, [id, uuidArray(sortedIds.slice(start, start + membersPerInsert))]);
      }
    }
    await client.query("COMMIT");
    return { id, count: sortedIds.length, created: stored.created };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

// Takes $1 list id. Marks the list used (so retention does not take it while
// a campaign runs on it) and returns its count; no row when there is no such list.
const useListSql = `UPDATE "dbjobs"."recipient_lists" SET "last_used_at" = now() WHERE "id" = $1 RETURNING "count"`;

/** The list's size, marking it used; a RecipientListError (not retryable) when it does not exist. */
export async function useRecipientList(sql: Pick<pg.Pool, "query">, listId: string, retentionDays: number): Promise<number> {
  const { rows } = await sql.query<{ count: number }>(useListSql, [listId]);
  if (rows[0]) return rows[0].count;
  throw new RecipientListError(
    "DBJOBS_RECIPIENT_LIST_MISSING",
    `recipient list "${listId}" does not exist: it was never staged, or went unused for RECIPIENT_LIST_RETENTION_DAYS (${retentionDays}) and was deleted. Stage the recipients again and enqueue the campaign with the id that returns.`,
  );
}

// Takes $1 list id, $2 the last patient id of the previous page (or null),
// $3 page size. Returns the next members in patient_id order: one range scan
// of the primary key, however far into the list.
const pageSql = `
SELECT "patient_id"::text AS "patientId" FROM "dbjobs"."recipient_list_members"
 WHERE "list_id" = $1 AND "patient_id" > coalesce($2::uuid, '00000000-0000-0000-0000-000000000000')
 ORDER BY "patient_id" LIMIT $3`;

/** The list's members after `afterId`, `limit` at a time, in patient-id order. */
export async function readRecipientPage(sql: Pick<pg.Pool, "query">, listId: string, afterId: string | null, limit: number): Promise<string[]> {
  const { rows } = await sql.query<{ patientId: string }>(pageSql, [listId, afterId, limit]);
  return rows.map((row) => row.patientId);
}
