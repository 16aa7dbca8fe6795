-- Job history (issue 18): one row per finished job, completed, failed for
-- good, or cancelled, written in batches by the worker runtime
-- (src/history/history-writer.ts) and searched by `dbjobs search`
-- (src/history/search-history.ts).
--
-- RANGE-partitioned by day on finished_at (UTC): partition-maintenance makes
-- the days ahead and drops whole days older than HISTORY_RETENTION_DAYS
-- (src/partitions/), so retention never deletes row by row. Rows of a day
-- without its partition wait in the default partition until the next run
-- moves them.

-- pg_trgm makes `--error TEXT` (ILIKE '%TEXT%' on the message) an index scan.
-- It ships in PostgreSQL's contrib package and is a trusted extension (any
-- database owner may create it since PostgreSQL 13); where it is missing the
-- migration still succeeds and the search falls back to scanning the rows the
-- other filters (queue, state, time) leave.
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION
  WHEN insufficient_privilege OR undefined_file OR feature_not_supported OR object_not_in_prerequisite_state THEN
    RAISE NOTICE 'pg_trgm not installed (%); searching the error text will scan instead of using an index', SQLERRM;
END
$$;

CREATE TABLE "dbjobs"."job_history" (
    "queue" TEXT NOT NULL,
    "job_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL,
    "enqueued_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ,
    "finished_at" TIMESTAMPTZ NOT NULL,
    -- The payload as the job received it, with its queue's personal fields
    -- replaced by "[redacted]" (the contract's `history.redact`).
    "payload" JSONB NOT NULL,
    "result" JSONB,
    "error_class" TEXT,
    "error_message" TEXT,
    "error_fingerprint" TEXT,
    CONSTRAINT "job_history_state" CHECK ("state" IN ('completed', 'failed', 'cancelled'))
) PARTITION BY RANGE ("finished_at");

CREATE TABLE "dbjobs"."job_history_default" PARTITION OF "dbjobs"."job_history" DEFAULT;

-- One row per finish of a job: the writer's ON CONFLICT DO NOTHING makes a
-- batch written twice harmless. Also the index for `--id`.
CREATE UNIQUE INDEX "job_history_job" ON "dbjobs"."job_history" ("job_id", "queue", "finished_at");
-- Newest first, per queue and state: the search's usual order and filters.
CREATE INDEX "job_history_queue_state_finished" ON "dbjobs"."job_history" ("queue", "state", "finished_at" DESC);
-- Newest first over every queue (a search by payload or time only).
CREATE INDEX "job_history_finished" ON "dbjobs"."job_history" ("finished_at" DESC);
-- FIELD=VALUE: payload @> '{"FIELD": VALUE}'.
CREATE INDEX "job_history_payload" ON "dbjobs"."job_history" USING GIN ("payload" jsonb_path_ops);
CREATE INDEX "job_history_fingerprint" ON "dbjobs"."job_history" ("error_fingerprint", "finished_at" DESC) WHERE "error_fingerprint" IS NOT NULL;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    EXECUTE 'CREATE INDEX "job_history_error_text" ON "dbjobs"."job_history" USING GIN ("error_message" gin_trgm_ops) WHERE "error_message" IS NOT NULL';
  END IF;
END
$$;
