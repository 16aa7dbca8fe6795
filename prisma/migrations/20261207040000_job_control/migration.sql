-- Job control (issue #19): operator decisions that must outlive a restart.

-- `dbjobs scale <queue> <n>`: the concurrency every worker of the queue runs
-- with. A worker reads it when it starts; running ones get it on the control
-- channel. No row: the configured concurrency.
CREATE TABLE "dbjobs"."queue_settings" (
    "queue" TEXT NOT NULL,
    "concurrency" INTEGER NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "updated_by" TEXT NOT NULL,
    CONSTRAINT "queue_settings_pkey" PRIMARY KEY ("queue"),
    CONSTRAINT "queue_settings_concurrency_range" CHECK ("concurrency" BETWEEN 1 AND 1000)
);

-- `dbjobs schedules pause|resume <id>`: a paused schedule's fires are skipped
-- by the worker and not counted as missed. "resumed_at" is when it last
-- resumed: misses are counted from then on.
CREATE TABLE "dbjobs"."schedule_controls" (
    "schedule_id" TEXT NOT NULL,
    "paused" BOOLEAN NOT NULL,
    "changed_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "changed_by" TEXT NOT NULL,
    "resumed_at" TIMESTAMPTZ,
    CONSTRAINT "schedule_controls_pkey" PRIMARY KEY ("schedule_id")
);
