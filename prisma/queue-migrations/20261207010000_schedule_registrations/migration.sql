-- Which cron schedule `dbjobs scheduler` registered when (src/queues/schedule-registrations.ts),
-- when the queues live in PostgreSQL; on Redis the same lives in the hash <prefix>:dbjobs:schedules.
-- Schedule health counts missed fires from "registered_at" on, so it changes only when the
-- schedule's queue or cron does, never when a scheduler re-registers an unchanged schedule.
CREATE TABLE "dbjobs"."schedule_registrations" (
    "schedule_id" TEXT NOT NULL,
    "queue" TEXT NOT NULL,
    "cron" TEXT NOT NULL,
    "registered_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "schedule_registrations_pkey" PRIMARY KEY ("schedule_id")
);
