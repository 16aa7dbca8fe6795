import type pg from "pg";
import { z } from "zod";
import { isUuid } from "../../lib/uuid.js";
import type { BulkMessagingResult } from "./contract.js";
import { readRecipientPage } from "./recipient-lists.js";

/**
 * A campaign's recipients, a batch at a time, from any point: the start, or
 * where a run that gave up its worker slot got to. That point, with the counts
 * up to it, is kept in the job's progress (`resumeAt`), which BullMQ keeps
 * with the job between runs. Losing it costs only time: a run from the start
 * skips every message already sent and counts it from the messages table.
 */
export interface CampaignCursor {
  /** Recipient entries (payload ids or list members) before this point. */
  offset: number;
  /** A staged list's last member before this point (members come in id order). */
  afterId?: string;
}

export interface CampaignSlice {
  ids: string[];
  /** The point just after this slice. */
  next: CampaignCursor;
}

/** Where a run resumes, and the campaign's counts up to there. */
export interface ResumePoint extends CampaignCursor {
  processed: number;
  sent: number;
  failed: number;
  skipped: number;
}

const count = z.number().int().min(0);
const savedResumePoint = z.object({
  offset: count,
  afterId: z.string().refine(isUuid).optional(),
  processed: count,
  sent: count,
  failed: count,
  skipped: count,
});
const savedProgress = z.object({ total: count, resumeAt: savedResumePoint });

/** The resume point an earlier run left in the job's progress, if it is one for this campaign of `total` recipients. */
export function resumePointFrom(progress: unknown, total: number, fromList: boolean): ResumePoint | undefined {
  const parsed = savedProgress.safeParse(progress);
  if (!parsed.success || parsed.data.total !== total) return undefined;
  const point = parsed.data.resumeAt;
  if (point.offset > total || (fromList && point.offset > 0 && point.afterId === undefined)) return undefined;
  return point;
}

/** `result`'s counts at `cursor`, to save as the point a later run resumes from. */
export function resumePoint(cursor: CampaignCursor, result: BulkMessagingResult): ResumePoint {
  const { processed, sent, failed, skipped } = result;
  return { ...cursor, processed, sent, failed, skipped };
}

/** The payload's ids from `from`, `batchSize` at a time. */
export async function* payloadSlices(patientIds: string[], batchSize: number, from: CampaignCursor): AsyncIterable<CampaignSlice> {
  for (let start = from.offset; start < patientIds.length; start += batchSize) {
    const ids = patientIds.slice(start, start + batchSize);
    yield { ids, next: { offset: start + ids.length } };
  }
}

/**
 * A staged list's members after `from`, `batchSize` at a time, in patient-id
 * order (keyset pages: each read starts after the last id of the one before,
 * so the 100th page costs what the first does). The list does not change once
 * staged, so a rerun reads the same pages; messages already sent are skipped as always.
 */
export async function* listSlices(pool: pg.Pool, listId: string, batchSize: number, from: CampaignCursor): AsyncIterable<CampaignSlice> {
  let after = from.afterId ?? null;
  let offset = from.offset;
  for (;;) {
    const ids = await readRecipientPage(pool, listId, after, batchSize);
    if (ids.length === 0) return;
    after = ids[ids.length - 1] as string;
    offset += ids.length;
    yield { ids, next: { offset, afterId: after } };
  }
}
