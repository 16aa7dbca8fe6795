-- Transactional enqueue (issue #17): what the producer's `enqueue(…, { tx })`
-- and the SQL function dbjobs.enqueue need in the application's database.

-- The declared queues, written by `dbjobs migrate` from the contracts
-- (src/queues/queue-catalog.ts), never by hand. "job_options" are the options
-- BullMQ's Job.create stores for a job of that queue (defaultJobOptions merged
-- with the contract's jobOptions), so a job enqueued from SQL gets the same
-- attempts, backoff and retention as one from the TypeScript producer.
CREATE TABLE "dbjobs"."queues" (
    "name" TEXT NOT NULL,
    "position" INTEGER NOT NULL,
    "job_options" JSONB NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT "queues_pkey" PRIMARY KEY ("name")
);

-- Where the queues live: QUEUE_BACKEND at the last `dbjobs migrate`. One row.
CREATE TABLE "dbjobs"."queue_backend" (
    "singleton" BOOLEAN NOT NULL DEFAULT true,
    "backend" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT "queue_backend_pkey" PRIMARY KEY ("singleton"),
    CONSTRAINT "queue_backend_one_row" CHECK ("singleton"),
    CONSTRAINT "queue_backend_known" CHECK ("backend" IN ('postgres', 'redis'))
);

-- Redis backend: a job enqueued in an application transaction is a row here,
-- committed or rolled back with the caller's rows. The relay (`dbjobs relay`,
-- src/queues/outbox-relay.ts) adds it to BullMQ with job id "id" (or the
-- caller's own jobId in "opts") and deletes the row. "seq" keeps the relay
-- close to enqueue order; "opts" are BullMQ job options as Job.create built
-- them at enqueue; "enqueued_at_ms" becomes the job's timestamp, so a delay
-- counts from the enqueue, not from the relay.
CREATE TABLE "dbjobs"."job_outbox" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "seq" BIGINT GENERATED ALWAYS AS IDENTITY,
    "queue" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "data" JSONB NOT NULL,
    "opts" JSONB NOT NULL,
    "enqueued_at_ms" BIGINT NOT NULL,
    CONSTRAINT "job_outbox_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "job_outbox_seq_idx" ON "dbjobs"."job_outbox" ("seq");

-- dbjobs.add_to_outbox: takes the queue, the job name, the payload, the job
-- options (as Job.create builds them) and the enqueue time in epoch ms;
-- inserts one outbox row and wakes the relays on channel dbjobs_outbox.
-- Returns the id the job will have: the caller's jobId option, else the row id.
-- The notification is delivered at commit (never on rollback), and identical
-- notifications of one transaction are delivered once.
CREATE FUNCTION "dbjobs"."add_to_outbox"(p_queue TEXT, p_name TEXT, p_data JSONB, p_opts JSONB, p_enqueued_at_ms BIGINT)
RETURNS TEXT
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id UUID;
BEGIN
  INSERT INTO "dbjobs"."job_outbox" ("queue", "name", "data", "opts", "enqueued_at_ms")
  VALUES (p_queue, p_name, p_data, p_opts, p_enqueued_at_ms)
  RETURNING "id" INTO v_id;
  PERFORM pg_notify('dbjobs_outbox', '');
  RETURN COALESCE(p_opts ->> 'jobId', v_id::text);
END;
$$;

-- dbjobs.enqueue: takes a queue name and a payload; enqueues one job in the
-- caller's transaction with the queue's default job options and returns its
-- id. On the PostgreSQL backend it calls BullMQ's own bullmq.add_job (the job
-- appears, and workers are notified, when the transaction commits); on Redis
-- it writes the outbox, which `dbjobs relay` moves to Redis after the commit.
-- The payload is not checked here: the worker checks it against the queue's
-- schema, and a bad one fails at once, without retries, naming the field.
-- An unknown queue raises an error listing the known ones.
CREATE FUNCTION "dbjobs"."enqueue"("queue" TEXT, "payload" JSONB)
RETURNS TEXT
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_opts    JSONB;
  v_backend TEXT;
  v_known   TEXT;
  v_now_ms  BIGINT := (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT;
BEGIN
  IF "queue" IS NULL OR "payload" IS NULL THEN
    RAISE EXCEPTION 'dbjobs.enqueue: % is null', CASE WHEN "queue" IS NULL THEN 'queue' ELSE 'payload' END
      USING ERRCODE = '22004', HINT = 'Pass a queue name and a JSON object, e.g. dbjobs.enqueue(''invoice-totals'', ''{"all": true}''); ''{}'' takes every default.';
  END IF;

  SELECT q."job_options" INTO v_opts FROM "dbjobs"."queues" q WHERE q."name" = enqueue."queue";
  IF NOT FOUND THEN
    SELECT string_agg(q."name", ', ' ORDER BY q."position") INTO v_known FROM "dbjobs"."queues" q;
    RAISE EXCEPTION 'Unknown queue "%". Known queues: %.', "queue", COALESCE(v_known, '(none yet: run dbjobs migrate)')
      USING ERRCODE = '22023';
  END IF;

  SELECT b."backend" INTO v_backend FROM "dbjobs"."queue_backend" b;
  IF v_backend = 'postgres' THEN
    IF to_regnamespace('bullmq') IS NULL THEN
      RAISE EXCEPTION 'dbjobs.enqueue: the queues live in PostgreSQL, but not in this database'
        USING ERRCODE = '3F000', HINT = 'Enqueueing in the application''s transaction needs the queues in the same database: unset QUEUE_DATABASE_URL (or point it at DATABASE_URL) and run dbjobs migrate.';
    END IF;
    -- The arguments PostgresQueueBackend.addJob passes, from the options Job.create built (src/queues/bullmq-job.ts).
    RETURN bullmq.add_job(
      "queue", '', "queue", "payload", v_opts,
      COALESCE((v_opts ->> 'priority')::INTEGER, 0),
      COALESCE((v_opts ->> 'delay')::BIGINT, 0),
      v_now_ms,
      COALESCE((v_opts ->> 'attempts')::INTEGER, 1),
      NULL, NULL, NULL,
      v_opts -> 'deduplication' ->> 'id',
      NULL,
      COALESCE((v_opts ->> 'lifo')::BOOLEAN, false));
  ELSIF v_backend = 'redis' THEN
    RETURN "dbjobs"."add_to_outbox"("queue", "queue", "payload", v_opts, v_now_ms);
  END IF;
  RAISE EXCEPTION 'dbjobs.enqueue: no queue backend recorded in dbjobs.queue_backend'
    USING ERRCODE = '55000', HINT = 'Run dbjobs migrate (it records QUEUE_BACKEND).';
END;
$$;
