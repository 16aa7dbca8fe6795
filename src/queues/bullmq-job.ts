import type { Job, JobJson, JobsOptions } from "bullmq";

/**
 * A job as BullMQ's `Queue.add` builds it, without adding it anywhere. We
 * write jobs ourselves in two places, a caller's transaction (through
 * `bullmq.add_job` or the outbox) and the queue catalog `dbjobs.enqueue`
 * reads, and both must carry exactly the options a `Queue.add` would store.
 * So rather than re-deriving them, this runs BullMQ's own code: the option
 * merge of `Queue.addJob`, then `Job.create` up to the point where it calls
 * the backend (the Job constructor normalises backoff, sets attempts, the
 * timestamp and the deduplication id; `asJSON` serialises the data;
 * `validateOptions` refuses an integer custom id, a float priority, …). A bad
 * option therefore throws BullMQ's own error before anything is written.
 */
export interface PreparedJob {
  queue: string;
  /** What `Job.create` hands to the backend's `addJob`. */
  json: JobJson;
  /** The caller's `jobId` option; undefined for a backend-assigned id. */
  jobId: string | undefined;
}

type JobQueue = ConstructorParameters<typeof Job>[0];

let checkedJobClass: Promise<new (...args: ConstructorParameters<typeof Job>) => Job & { checkOptions(json: JobJson): void }> | undefined;

// bullmq is imported on first use, so importing the producer stays light.
function loadCheckedJobClass() {
  checkedJobClass ??= import("bullmq").then(
    ({ Job: BullJob }) =>
      class CheckedJob extends BullJob {
        /** `validateOptions` is protected; Job.create calls it on the JSON it is about to add. */
        checkOptions(json: JobJson): void {
          this.validateOptions(json);
        }
      },
  );
  return checkedJobClass;
}

/**
 * The Job constructor reads only `toKey`, `qualifiedName` and `backend` of its
 * queue; none is called, because this job is never added through BullMQ.
 */
function detachedQueue(name: string): JobQueue {
  return { name, qualifiedName: name, toKey: (type: string) => `${name}:${type}`, backend: undefined } as unknown as JobQueue;
}

/** Builds the job `Queue.add(name, data, options)` would add on a queue whose defaultJobOptions are `defaults`. */
export async function prepareJob(queue: string, name: string, data: unknown, defaults: JobsOptions, options: JobsOptions): Promise<PreparedJob> {
  // Queue.addJob, verbatim in effect.
  const jobId = options.jobId;
  if (jobId === "0" || jobId?.startsWith("0:")) throw new Error("JobId cannot be '0' or start with '0:'");
  const merged: JobsOptions = { ...defaults, ...options, jobId };
  // Job.create, without its final backend.addJob.
  const CheckedJob = await loadCheckedJobClass();
  const job = new CheckedJob(detachedQueue(queue), name, data, merged, jobId);
  const json = job.asJSON();
  job.checkOptions(json);
  return { queue, json, jobId };
}

/**
 * The options a queue's jobs get when a call adds none of its own: what
 * `dbjobs.enqueue` passes for every job it writes (the timestamp is the
 * call's, not this one's).
 */
export async function defaultStoredOptions(queue: string, defaults: JobsOptions): Promise<JobsOptions> {
  const { json } = await prepareJob(queue, queue, {}, defaults, {});
  return JSON.parse(JSON.stringify(json.opts)) as JobsOptions;
}

/**
 * The 15 arguments of `bullmq.add_job`, exactly as
 * PostgresQueueBackend.addJob passes them
 * (bullmq/dist/esm/postgres/postgres-queue-backend.js), as text or null: the
 * SQL casts each one, because Prisma types a raw parameter by its JS type.
 */
export function addJobArguments({ queue, json, jobId }: PreparedJob): (string | null)[] {
  const opts = json.opts ?? {};
  const jobOpts = json.delay == null ? opts : { ...opts, delay: json.delay };
  return [
    queue,
    jobId || json.id || "",
    json.name,
    json.data ?? "{}",
    JSON.stringify(jobOpts ?? {}),
    String(json.priority ?? opts.priority ?? 0),
    String(json.delay ?? opts.delay ?? 0),
    String(json.timestamp ?? Date.now()),
    String(opts.attempts ?? 1),
    json.parent?.queueKey ?? null,
    json.parent?.id ?? null,
    json.parentKey ?? null,
    json.deduplicationId ?? null,
    json.repeatJobKey ?? null,
    String(opts.lifo ?? false),
  ];
}

/**
 * bullmq.add_job (BullMQ's own function, schema bullmq, migration 0011 of its
 * PostgreSQL backend). Takes $1 queue, $2 job id ('' for the queue's next id),
 * $3 name, $4 data, $5 opts, $6 priority, $7 delay ms, $8 timestamp (epoch ms),
 * $9 max attempts, $10–$12 parent queue, id and key, $13 deduplication id,
 * $14 scheduler id, $15 lifo. Returns the job id: the new job's, or the
 * existing job's when deduplicated. It runs in the caller's transaction, so
 * the job exists, and its NOTIFY reaches the workers, only at commit.
 * Declared `SET search_path FROM CURRENT`, so it is called schema-qualified.
 */
export const addJobSql =
  "SELECT bullmq.add_job($1::text, $2::text, $3::text, $4::jsonb, $5::jsonb, $6::integer, $7::bigint, $8::bigint, $9::integer, $10::text, $11::text, $12::text, $13::text, $14::text, $15::boolean) AS id";
