import { randomUUID } from "node:crypto";
import { type HistoryRow, redactPayload, resultSummaryJson } from "./history-row.js";

/** The most finish times one batch row spans (the table's CHECK job_history_span): a time bound on jobs is then one on batches. */
export const MAX_BATCH_SPAN_MS = 60_000;

/** Finished jobs of one queue, state and error fingerprint, sealed under an id: written as one row of dbjobs.job_history, and only ever with these rows. */
export interface HistoryBatch {
  id: string;
  queue: string;
  state: HistoryRow["state"];
  /** The fingerprint its jobs' errors share: a failure group's batches are then found, newest first, through one btree. */
  fingerprint: string | null;
  /** In finish order. */
  rows: HistoryRow[];
}

/**
 * Groups rows into batches of one queue, state and error fingerprint (failed
 * jobs are few, so their batches can be small), each at most `maxRows` rows
 * spanning at most MAX_BATCH_SPAN_MS of finishes.
 */
export function sealBatches(rows: readonly HistoryRow[], maxRows: number): HistoryBatch[] {
  const groups = new Map<string, HistoryRow[]>();
  for (const row of rows) {
    const key = `${row.state}\u0000${row.queue}\u0000${row.errorFingerprint ?? ""}`;
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  const batches: HistoryBatch[] = [];
  for (const group of groups.values()) {
    group.sort((a, b) => a.finishedAt - b.finishedAt);
    let open: HistoryBatch | undefined;
    for (const row of group) {
      const first = open?.rows[0];
      if (!open || !first || open.rows.length >= maxRows || row.finishedAt - first.finishedAt > MAX_BATCH_SPAN_MS) {
        open = { id: randomUUID(), queue: row.queue, state: row.state, fingerprint: row.errorFingerprint, rows: [] };
        batches.push(open);
      }
      open.rows.push(row);
    }
  }
  return batches;
}

/** A job id BullMQ counted (digits only, within a safe integer): batches keep a range of these, and the rest as a list. */
export function numericJobId(id: string): number | undefined {
  return /^[0-9]{1,15}$/.test(id) ? Number(id) : undefined;
}

/**
 * The batch as the writer's INSERT takes it, in its parameters' order: id,
 * queue, state, first and last finish (epoch ms), job ids, the redacted
 * payloads and the rest of each job as JSON arrays (null fields left out),
 * the lowest and highest numeric id, the other ids, and where jobs failed
 * their fingerprint and error text.
 */
export function batchParams(batch: HistoryBatch): unknown[] {
  const text = JSON.stringify;
  const ids: string[] = [];
  const otherIds: string[] = [];
  let lowest = Number.POSITIVE_INFINITY;
  let highest = Number.NEGATIVE_INFINITY;
  const payloads: string[] = [];
  const jobs: string[] = [];
  const messages: string[] = [];
  for (const row of batch.rows) {
    ids.push(row.jobId);
    const numeric = numericJobId(row.jobId);
    if (numeric === undefined) otherIds.push(row.jobId);
    else {
      lowest = Math.min(lowest, numeric);
      highest = Math.max(highest, numeric);
    }
    payloads.push(text(redactPayload(row.payload, row.redact)) ?? "{}");
    jobs.push(jobJson(row));
    if (row.errorMessage !== null) messages.push(row.errorMessage);
  }
  const first = batch.rows[0]?.finishedAt ?? 0;
  const last = batch.rows[batch.rows.length - 1]?.finishedAt ?? first;
  const hasNumeric = lowest <= highest;
  return [
    batch.id,
    batch.queue,
    batch.state,
    first,
    last,
    ids,
    `[${payloads.join(",")}]`,
    `[${jobs.join(",")}]`,
    hasNumeric ? lowest : null,
    hasNumeric ? highest : null,
    otherIds.length > 0 ? otherIds : null,
    batch.fingerprint,
    messages.length > 0 ? messages.join("\n") : null,
  ];
}

/** One element of a batch's "jobs", as jobJson writes it and the search reads it: absent keys are null. */
export interface StoredJob {
  /** name */
  n: string;
  /** attempts */
  a: number;
  /** finished, epoch ms */
  f: number;
  /** enqueued, epoch ms */
  e?: number;
  /** started, epoch ms */
  st?: number;
  /** result summary */
  r?: unknown;
  /** error class, message and fingerprint */
  ec?: string;
  em?: string;
  fp?: string;
}

/** One element of the batch's "jobs" (StoredJob), written by hand: one string per job, no object. */
function jobJson(row: HistoryRow): string {
  const text = JSON.stringify;
  let json = `{"n":${text(row.name)},"a":${row.attempts},"f":${row.finishedAt}`;
  if (row.enqueuedAt !== null) json += `,"e":${row.enqueuedAt}`;
  if (row.startedAt !== null) json += `,"st":${row.startedAt}`;
  const result = resultSummaryJson(row.result);
  if (result !== null) json += `,"r":${result}`;
  if (row.errorClass !== null) json += `,"ec":${text(row.errorClass)}`;
  if (row.errorMessage !== null) json += `,"em":${text(row.errorMessage)}`;
  if (row.errorFingerprint !== null) json += `,"fp":${text(row.errorFingerprint)}`;
  return `${json}}`;
}
