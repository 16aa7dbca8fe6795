import { DbjobsError } from "../lib/errors.js";
import { isQueueName, queueNames } from "../queues/contracts.js";

/**
 * What `dbjobs search` (and the console's Search page) asks of the job
 * history, checked: every bad part is refused with the field and the fix,
 * before anything is queried.
 */
export const historyStates = ["completed", "failed", "cancelled"] as const;
export type HistoryState = (typeof historyStates)[number];

export interface HistoryQuery {
  /** Payload containment: each entry is a path (`campaignId`, `filter.kind`) and the JSON value it must hold or whose array must contain it. */
  fields: { path: string[]; value: unknown }[];
  queue?: string;
  state?: HistoryState;
  /** finished_at >= since */
  since?: Date;
  /** finished_at < until */
  until?: Date;
  fingerprint?: string;
  /** Case-insensitive text in the error message. */
  errorText?: string;
  jobId?: string;
  /** @defaultValue 50 */
  limit: number;
  /** From a previous page's `nextCursor`. */
  cursor?: HistoryCursor;
}

export interface HistoryCursor {
  finishedAt: string;
  queue: string;
  jobId: string;
}

/** The query as typed: strings, as a CLI or a form gives them. */
export interface HistoryQueryInput {
  /** `FIELD=VALUE` (VALUE a string) or `FIELD:=JSON` (a number, boolean, null, object…). */
  fields?: string[];
  queue?: string;
  state?: string;
  since?: string;
  until?: string;
  fingerprint?: string;
  error?: string;
  id?: string;
  limit?: string | number;
  cursor?: string;
}

export const MAX_HISTORY_LIMIT = 1000;

export class HistoryQueryError extends DbjobsError {
  constructor(message: string) {
    super("DBJOBS_BAD_SEARCH", message, { retryable: false });
  }
}

const fieldPattern = /^([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)(:?=)([\s\S]*)$/;

export function parseField(text: string): { path: string[]; value: unknown } {
  const match = fieldPattern.exec(text);
  if (!match) {
    throw new HistoryQueryError(
      `"${text}" is not FIELD=VALUE: write e.g. campaignId=spring-2026 (a string), attempts:=3 (JSON), or filter.kind=sms for a nested field.`,
    );
  }
  const [, path = "", operator, raw = ""] = match;
  if (operator === "=") return { path: path.split("."), value: raw };
  try {
    return { path: path.split("."), value: JSON.parse(raw) };
  } catch {
    throw new HistoryQueryError(`"${text}": the value after := must be JSON (e.g. 3, true, null, "text"); for a plain string use ${path}=${raw}.`);
  }
}

/** ISO 8601 (`2026-12-07`, `2026-12-07T10:00:00Z`) or a duration back from now (`15m`, `2h`, `7d`). */
export function parseTime(text: string, option: string, now: Date = new Date()): Date {
  const relative = /^(\d+)(m|h|d|w)$/.exec(text.trim());
  if (relative) {
    const unitMs = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[relative[2] as "m" | "h" | "d" | "w"];
    return new Date(now.getTime() - Number(relative[1]) * unitMs);
  }
  const iso = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
  const date = new Date(text);
  if (!iso.test(text.trim()) || Number.isNaN(date.getTime())) {
    throw new HistoryQueryError(
      `${option} "${text}" is not a time: write an ISO 8601 date or time (2026-12-07, 2026-12-07T10:00:00Z) or a duration back from now (15m, 2h, 7d).`,
    );
  }
  return date;
}

export function encodeCursor(cursor: HistoryCursor): string {
  return Buffer.from(JSON.stringify([cursor.finishedAt, cursor.queue, cursor.jobId])).toString("base64url");
}

function decodeCursor(text: string): HistoryCursor {
  try {
    const [finishedAt, queue, jobId] = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as unknown[];
    if (typeof finishedAt === "string" && typeof queue === "string" && typeof jobId === "string" && !Number.isNaN(new Date(finishedAt).getTime())) {
      return { finishedAt, queue, jobId };
    }
  } catch {}
  throw new HistoryQueryError(`--cursor "${text}" is not a cursor of this search: pass the nextCursor a previous page printed, unchanged.`);
}

export function parseHistoryQuery(input: HistoryQueryInput, now: Date = new Date()): HistoryQuery {
  const query: HistoryQuery = { fields: (input.fields ?? []).map(parseField), limit: 50 };
  if (input.queue !== undefined) {
    if (!isQueueName(input.queue)) throw new HistoryQueryError(`--queue "${input.queue}" is not a queue. Known queues: ${queueNames.join(", ")}.`);
    query.queue = input.queue;
  }
  if (input.state !== undefined) {
    if (!(historyStates as readonly string[]).includes(input.state)) {
      throw new HistoryQueryError(`--state "${input.state}" is not a finished state. Use one of: ${historyStates.join(", ")}.`);
    }
    query.state = input.state as HistoryState;
  }
  if (input.since !== undefined) query.since = parseTime(input.since, "--since", now);
  if (input.until !== undefined) query.until = parseTime(input.until, "--until", now);
  if (query.since && query.until && query.since >= query.until) {
    throw new HistoryQueryError(`--since (${query.since.toISOString()}) must be before --until (${query.until.toISOString()}).`);
  }
  if (input.fingerprint !== undefined) {
    if (!/^[0-9a-f]{12}$/.test(input.fingerprint)) {
      throw new HistoryQueryError(
        `--fingerprint "${input.fingerprint}" is not a fingerprint: it is 12 hex characters, as \`dbjobs failed <queue> --group\` prints.`,
      );
    }
    query.fingerprint = input.fingerprint;
  }
  if (input.error !== undefined) {
    if (input.error.trim() === "") throw new HistoryQueryError("--error needs some text to look for in the error message.");
    query.errorText = input.error;
  }
  if (input.id !== undefined) query.jobId = input.id;
  if (input.limit !== undefined) {
    const limit = Number(input.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_LIMIT) {
      throw new HistoryQueryError(`--limit "${input.limit}" must be a whole number from 1 to ${MAX_HISTORY_LIMIT}; page further with --cursor.`);
    }
    query.limit = limit;
  }
  if (input.cursor !== undefined) query.cursor = decodeCursor(input.cursor);
  return query;
}
