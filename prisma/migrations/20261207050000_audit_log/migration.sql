-- The audit log (issue 18): one row per operator action, from the CLI or the
-- dashboard (src/audit/record-audit.ts), read by `dbjobs audit`.
--
-- Append-only: a trigger refuses every UPDATE and DELETE, whoever sends it.
-- Rows leave only with a whole partition: partitioned by day on "at" and
-- kept as long as the job history (HISTORY_RETENTION_DAYS), dropped by
-- partition-maintenance. The one exception is partition-maintenance moving a
-- day's rows out of the default partition into that day's new partition
-- (src/partitions/move-out-of-default.ts): it copies them and then deletes
-- the originals in one transaction, and says so with
-- SET LOCAL dbjobs.partition_move = 'on', which this trigger lets through on
-- the default partition only.
CREATE TABLE "dbjobs"."audit_log" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The dashboard user, or on the CLI DBJOBS_ACTOR, else the OS user.
    "actor" TEXT NOT NULL,
    -- "cli" or "dashboard".
    "source" TEXT NOT NULL,
    -- retry, clean, pause, resume, enqueue.
    "action" TEXT NOT NULL,
    -- What it acted on: a queue, "<queue>/<job id>", a fingerprint group.
    "target" TEXT NOT NULL,
    "parameters" JSONB NOT NULL DEFAULT '{}',
    -- Jobs the action affected (retried, removed, enqueued); null when it does not apply.
    "affected" INTEGER,
    -- "ok", or "error: <message>".
    "outcome" TEXT NOT NULL,
    CONSTRAINT "audit_log_pkey" PRIMARY KEY ("id", "at")
) PARTITION BY RANGE ("at");

CREATE TABLE "dbjobs"."audit_log_default" PARTITION OF "dbjobs"."audit_log" DEFAULT;

CREATE INDEX "audit_log_at" ON "dbjobs"."audit_log" ("at" DESC);

CREATE FUNCTION "dbjobs"."audit_log_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_log_default' AND current_setting('dbjobs.partition_move', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'dbjobs.audit_log is append-only: % refused. Rows leave only when partition-maintenance drops a whole day past HISTORY_RETENTION_DAYS.', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER "audit_log_append_only" BEFORE UPDATE OR DELETE ON "dbjobs"."audit_log"
  FOR EACH ROW EXECUTE FUNCTION "dbjobs"."audit_log_append_only"();

CREATE FUNCTION "dbjobs"."audit_log_no_truncate"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'dbjobs.audit_log is append-only: TRUNCATE refused.' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER "audit_log_no_truncate" BEFORE TRUNCATE ON "dbjobs"."audit_log"
  FOR EACH STATEMENT EXECUTE FUNCTION "dbjobs"."audit_log_no_truncate"();

-- Statement triggers are not cloned onto partitions: the default gets its own.
-- (A superuser or the table's owner can still disable triggers; the log
-- guards against code paths and mistakes, not against the database's owner.)
CREATE TRIGGER "audit_log_no_truncate" BEFORE TRUNCATE ON "dbjobs"."audit_log_default"
  FOR EACH STATEMENT EXECUTE FUNCTION "dbjobs"."audit_log_no_truncate"();
