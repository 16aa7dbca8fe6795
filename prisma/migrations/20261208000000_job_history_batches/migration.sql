-- Job history as batch rows (issue 18's throughput goal): one row per flush
-- of a worker's history writer, per queue and state, instead of one row per
-- job. Writing a row costs PostgreSQL the same whatever it holds (parsing,
-- the tuple, its WAL, an entry per index), so 500 finished jobs in one row
-- cost about a third of 500 rows (docs/benchmarks.md, "history").
--
-- A batch row holds its jobs as three arrays of one length, zipped by
-- position: "job_ids", "payloads" (the payloads as the search's containment
-- reads them) and "jobs" (the rest of each job, times in epoch ms). GIN
-- indexes on the arrays find the batches holding a payload value or an error
-- text, a range of numeric ids the batches holding a job id, and a btree a
-- failure group's batches (a batch's jobs share their error fingerprint); the search unnests only those
-- (src/history/search-history.ts). "dbjobs"."job_history_jobs" shows one
-- row per job, for SQL by hand.
--
-- RANGE-partitioned by day on "finished_at", the batch's last finish, as the
-- rows were: partition-maintenance makes and drops the same daily
-- partitions. A batch spans at most 60 s of finishes (the CHECK below), so a
-- time bound on jobs is a time bound on batches.

CREATE TABLE "dbjobs"."job_history_batches" (
    -- Chosen by the writer when it seals the batch: a retried write of the
    -- same batch is skipped (ON CONFLICT DO NOTHING), never doubled.
    "batch_id" UUID NOT NULL,
    "queue" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "first_finished_at" TIMESTAMPTZ NOT NULL,
    "finished_at" TIMESTAMPTZ NOT NULL,
    "job_ids" TEXT[] NOT NULL,
    -- The lowest and highest of the batch's numeric job ids (BullMQ's own ids count up per queue), and its
    -- other ids (given ones: the outbox's uuids, a schedule's): `--id` reads one or the other, through an
    -- index entry per batch for the numeric ones instead of one per job.
    "id_range" INT8RANGE,
    "other_ids" TEXT[],
    -- Each job's payload as the job received it, with its queue's personal
    -- fields replaced by "[redacted]" (the contract's `history.redact`).
    "payloads" JSONB NOT NULL,
    -- Each job's {n: name, a: attempts, e: enqueued, st: started, f: finished
    -- (epoch ms), r: result summary, ec/em/fp: error class, message and
    -- fingerprint}; absent keys are null.
    "jobs" JSONB NOT NULL,
    -- The error fingerprint the batch's jobs share: the writer seals a batch
    -- per queue, state and fingerprint (null for completed jobs).
    "fingerprint" TEXT,
    -- The batch's error messages, one per line, for the trigram index.
    "error_text" TEXT,
    CONSTRAINT "job_history_state" CHECK ("state" IN ('completed', 'failed', 'cancelled')),
    CONSTRAINT "job_history_span" CHECK ("first_finished_at" <= "finished_at" AND "finished_at" - "first_finished_at" <= interval '60 seconds'),
    CONSTRAINT "job_history_zip" CHECK (
        cardinality("job_ids") > 0
        AND jsonb_array_length("payloads") = cardinality("job_ids")
        AND jsonb_array_length("jobs") = cardinality("job_ids"))
) PARTITION BY RANGE ("finished_at");

-- Stored uncompressed: compressing each batch cost the server more CPU than
-- the space it saved is worth for a table kept 30 days.
ALTER TABLE "dbjobs"."job_history_batches" ALTER COLUMN "payloads" SET STORAGE EXTERNAL;
ALTER TABLE "dbjobs"."job_history_batches" ALTER COLUMN "jobs" SET STORAGE EXTERNAL;

-- The same daily partitions as the table of rows, under the same names once
-- the old table is gone (names and bounds from the catalog, not from input).
DO $$
DECLARE
  part record;
BEGIN
  FOR part IN
    SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = '"dbjobs"."job_history"'::regclass AND c.relname <> 'job_history_default'
  LOOP
    EXECUTE format('CREATE TABLE "dbjobs".%I PARTITION OF "dbjobs"."job_history_batches" %s', part.relname || '_batches', part.bound);
  END LOOP;
END
$$;
CREATE TABLE "dbjobs"."job_history_batches_default" PARTITION OF "dbjobs"."job_history_batches" DEFAULT;

-- The rows written so far, as batches of one queue, state, fingerprint and minute.
INSERT INTO "dbjobs"."job_history_batches"
  ("batch_id", "queue", "state", "first_finished_at", "finished_at", "job_ids", "id_range", "other_ids", "payloads", "jobs",
   "fingerprint", "error_text")
SELECT gen_random_uuid(), "queue", "state", to_timestamp(min("f") / 1000.0), to_timestamp(max("f") / 1000.0),
       array_agg("job_id" ORDER BY "f", "job_id"),
       CASE WHEN count("counted_id") > 0 THEN int8range(min("counted_id"), max("counted_id"), '[]') END,
       array_agg("job_id" ORDER BY "f", "job_id") FILTER (WHERE "counted_id" IS NULL),
       jsonb_agg("payload" ORDER BY "f", "job_id"),
       jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
         'n', "name", 'a', "attempts",
         'e', floor(extract(epoch FROM "enqueued_at") * 1000)::bigint,
         'st', floor(extract(epoch FROM "started_at") * 1000)::bigint,
         'f', "f", 'r', "result", 'ec', "error_class", 'em', "error_message", 'fp', "error_fingerprint"))
         ORDER BY "f", "job_id"),
       "error_fingerprint",
       string_agg("error_message", E'\n' ORDER BY "f", "job_id")
  FROM (SELECT *, floor(extract(epoch FROM "finished_at") * 1000)::bigint AS "f",
               -- A job id BullMQ counted, as history-batch.ts's numericJobId tells it.
               CASE WHEN "job_id" ~ '^[0-9]{1,15}$' THEN "job_id"::bigint END AS "counted_id"
          FROM "dbjobs"."job_history") AS "row"
 GROUP BY "queue", "state", "error_fingerprint", date_trunc('minute', "finished_at");

DROP TABLE "dbjobs"."job_history";

ALTER TABLE "dbjobs"."job_history_batches" RENAME TO "job_history";
ALTER TABLE "dbjobs"."job_history_batches_default" RENAME TO "job_history_default";
DO $$
DECLARE
  part record;
BEGIN
  FOR part IN
    SELECT c.relname
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = '"dbjobs"."job_history"'::regclass AND c.relname LIKE '%\_batches'
  LOOP
    EXECUTE format('ALTER TABLE "dbjobs".%I RENAME TO %I', part.relname, left(part.relname, -length('_batches')));
  END LOOP;
END
$$;

-- A batch once, also when its write is retried; and the keyset order of the search (newest first).
CREATE UNIQUE INDEX "job_history_batch" ON "dbjobs"."job_history" ("finished_at", "batch_id");
-- Newest first, per queue and state.
CREATE INDEX "job_history_queue_state_finished" ON "dbjobs"."job_history" ("queue", "state", "finished_at", "batch_id");
-- `--id`: the batches whose numeric ids span it, or that hold it among their other ids.
CREATE INDEX "job_history_id_range" ON "dbjobs"."job_history" USING GIST ("id_range") WHERE "id_range" IS NOT NULL;
CREATE INDEX "job_history_other_ids" ON "dbjobs"."job_history" USING GIN ("other_ids") WHERE "other_ids" IS NOT NULL;
-- FIELD=VALUE: payloads @> '[{"FIELD": VALUE}]', the batches holding such a payload.
CREATE INDEX "job_history_payload" ON "dbjobs"."job_history" USING GIN ("payloads" jsonb_path_ops);
-- The same for the few batches that did not complete (`--state failed` with a field): PostgreSQL plans the
-- search's unnamed statement with its values, so it sees that state = 'failed' falls under this condition.
CREATE INDEX "job_history_payload_unfinished" ON "dbjobs"."job_history" USING GIN ("payloads" jsonb_path_ops) WHERE "state" <> 'completed';
-- `--fingerprint`: a failure group's batches, newest first.
CREATE INDEX "job_history_fingerprint" ON "dbjobs"."job_history" ("fingerprint", "finished_at", "batch_id") WHERE "fingerprint" IS NOT NULL;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    EXECUTE 'CREATE INDEX "job_history_error_text" ON "dbjobs"."job_history" USING GIN ("error_text" gin_trgm_ops) WHERE "error_text" IS NOT NULL';
  END IF;
END
$$;

-- One row per finished job, for reading by hand (`SELECT … FROM dbjobs.job_history_jobs WHERE …`).
CREATE VIEW "dbjobs"."job_history_jobs" AS
SELECT h."queue", x."job_id", x."job" ->> 'n' AS "name", h."state", (x."job" ->> 'a')::int AS "attempts",
       to_timestamp((x."job" ->> 'e')::float8 / 1000) AS "enqueued_at",
       to_timestamp((x."job" ->> 'st')::float8 / 1000) AS "started_at",
       to_timestamp((x."job" ->> 'f')::float8 / 1000) AS "finished_at",
       x."payload", x."job" -> 'r' AS "result", x."job" ->> 'ec' AS "error_class", x."job" ->> 'em' AS "error_message",
       x."job" ->> 'fp' AS "error_fingerprint", h."batch_id"
  FROM "dbjobs"."job_history" h
 CROSS JOIN LATERAL ROWS FROM (unnest(h."job_ids"), jsonb_array_elements(h."payloads"), jsonb_array_elements(h."jobs")) AS x("job_id", "payload", "job");
