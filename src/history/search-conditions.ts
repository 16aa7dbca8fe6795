import { MAX_BATCH_SPAN_MS, numericJobId } from "./history-batch.js";
import type { HistoryQuery } from "./history-query.js";

/**
 * A search's conditions at two levels, sharing one list of bind values:
 * `batch` picks the rows of dbjobs.job_history (alias h) that may hold a
 * match, through its indexes; `job` picks the matching jobs among those
 * batches' unnested jobs (alias x: job_id, payload, job). A batch spans at
 * most MAX_BATCH_SPAN_MS of finishes, so a job time bound becomes a range on
 * the batches' last finish, which the partitions and the index bound; a
 * numeric job id is looked for in the batches' id ranges, any other in
 * their lists of other ids.
 */
export interface SearchConditions {
  batch: string[];
  job: string[];
  values: unknown[];
  /** Whether an index lookup picks the batches (a payload field, error text, a job id): each such query costs the lookup, whatever it reads. */
  selective: boolean;
  /** Epoch ms every batch that may hold a match finished last before (from --until and the cursor), if bounded. */
  finishedBefore?: number;
}

/** A job's finish time, epoch ms. */
export const jobFinishedMs = `(x."job" ->> 'f')::bigint`;

export function searchConditions(query: HistoryQuery): SearchConditions {
  const batch: string[] = [];
  const job: string[] = [];
  const values: unknown[] = [];
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  for (const field of query.fields) {
    // The value itself, or an array holding it (patientIds=…, invoiceIds=…): both are containment, both use the index.
    const nest = (value: unknown) => field.path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);
    const [plain, inArray] = [nest(field.value), nest([field.value])];
    batch.push(`(h."payloads" @> ${bind(JSON.stringify([plain]))}::jsonb OR h."payloads" @> ${bind(JSON.stringify([inArray]))}::jsonb)`);
    job.push(`(x."payload" @> ${bind(JSON.stringify(plain))}::jsonb OR x."payload" @> ${bind(JSON.stringify(inArray))}::jsonb)`);
  }
  if (query.queue !== undefined) batch.push(`h."queue" = ${bind(query.queue)}`);
  if (query.state !== undefined) batch.push(`h."state" = ${bind(query.state)}`);
  if (query.since) {
    batch.push(`h."finished_at" >= ${bind(query.since)}`);
    job.push(`${jobFinishedMs} >= ${bind(query.since.getTime())}`);
  }
  const uppers: number[] = [];
  if (query.until) {
    const until = query.until.getTime();
    batch.push(`h."first_finished_at" < ${bind(query.until)}`);
    job.push(`${jobFinishedMs} < ${bind(until)}`);
    uppers.push(until + MAX_BATCH_SPAN_MS);
  }
  if (query.fingerprint !== undefined) {
    const fingerprint = bind(query.fingerprint);
    batch.push(`h."fingerprint" = ${fingerprint}`);
    job.push(`x."job" ->> 'fp' = ${fingerprint}`);
  }
  if (query.errorText !== undefined) {
    const pattern = bind(`%${escapeLike(query.errorText)}%`);
    batch.push(`h."error_text" ILIKE ${pattern}`);
    job.push(`x."job" ->> 'em' ILIKE ${pattern}`);
  }
  if (query.jobId !== undefined) {
    const numeric = numericJobId(query.jobId);
    batch.push(numeric === undefined ? `h."other_ids" @> ARRAY[${bind(query.jobId)}::text]` : `h."id_range" @> ${bind(numeric)}::bigint`);
    job.push(`x."job_id" = ${bind(query.jobId)}`);
  }
  if (query.cursor) {
    // A cursor from before batch rows may carry µs; the history keeps ms, and Date drops the rest.
    const at = new Date(query.cursor.finishedAt).getTime();
    batch.push(`h."first_finished_at" <= ${bind(new Date(at))}`);
    uppers.push(at + MAX_BATCH_SPAN_MS + 1);
    job.push(
      `(${jobFinishedMs}, h."queue" COLLATE "C", x."job_id" COLLATE "C") < (${bind(at)}::bigint, ${bind(query.cursor.queue)}::text COLLATE "C", ${bind(query.cursor.jobId)}::text COLLATE "C")`,
    );
  }
  const finishedBefore = uppers.length > 0 ? Math.min(...uppers) : undefined;
  if (finishedBefore !== undefined) batch.push(`h."finished_at" < ${bind(new Date(finishedBefore))}`);
  const selective = query.fields.length > 0 || query.errorText !== undefined || query.jobId !== undefined;
  return { batch, job, values, selective, ...(finishedBefore !== undefined ? { finishedBefore } : {}) };
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}
