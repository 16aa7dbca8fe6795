-- The queue database's own bookkeeping (src/lib/migrate.ts applies this folder
-- to the database the queues live in, which is the application's unless
-- QUEUE_DATABASE_URL names another). Schema dbjobs, beside BullMQ's bullmq.
CREATE SCHEMA IF NOT EXISTS "dbjobs";

-- Counters every process flushes (src/lib/metrics.ts) when the queues live in
-- PostgreSQL: one row per series, summed across processes and restarts.
CREATE TABLE "dbjobs"."metric_samples" (
    "sample" TEXT NOT NULL,
    "labels" JSONB NOT NULL,
    "metric" TEXT NOT NULL,
    "value" DOUBLE PRECISION NOT NULL,
    CONSTRAINT "metric_samples_pkey" PRIMARY KEY ("sample", "labels")
);
