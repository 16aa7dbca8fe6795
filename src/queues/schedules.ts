import type { Config } from "../lib/config.js";
import type { QueueName } from "./contracts.js";

/**
 * The default cron schedules (SPEC §4), all in UTC. Each can be overridden by
 * its config variable; the scheduler registers them with BullMQ's
 * upsertJobScheduler and removes schedulers that are no longer declared.
 */
export interface ScheduleDefinition {
  /** Stable id: the BullMQ job scheduler id. */
  id: string;
  queue: QueueName;
  /** Five-field cron pattern, evaluated in UTC. */
  cron: string;
  payload: Record<string, unknown>;
  /** The variable that overrides `cron`. */
  overrideVariable: keyof Config;
}

export function declaredSchedules(config: Config): ScheduleDefinition[] {
  return [
    {
      id: "partition-maintenance-daily",
      queue: "partition-maintenance",
      cron: config.SCHEDULE_PARTITION_MAINTENANCE ?? "15 0 * * *",
      payload: {},
      overrideVariable: "SCHEDULE_PARTITION_MAINTENANCE",
    },
    // The job history and the audit log: days ahead, and days past HISTORY_RETENTION_DAYS dropped.
    {
      id: "job-history-partitions-daily",
      queue: "partition-maintenance",
      cron: config.SCHEDULE_PARTITION_MAINTENANCE ?? "15 0 * * *",
      payload: { table: "dbjobs.job_history" },
      overrideVariable: "SCHEDULE_PARTITION_MAINTENANCE",
    },
    {
      id: "audit-log-partitions-daily",
      queue: "partition-maintenance",
      cron: config.SCHEDULE_PARTITION_MAINTENANCE ?? "15 0 * * *",
      payload: { table: "dbjobs.audit_log" },
      overrideVariable: "SCHEDULE_PARTITION_MAINTENANCE",
    },
    {
      id: "transaction-retry-every-minute",
      queue: "transaction-retry",
      cron: config.SCHEDULE_TRANSACTION_RETRY ?? "* * * * *",
      payload: {},
      overrideVariable: "SCHEDULE_TRANSACTION_RETRY",
    },
    {
      id: "cache-prefetch-every-5-minutes",
      queue: "cache-prefetch",
      cron: config.SCHEDULE_CACHE_PREFETCH ?? "*/5 * * * *",
      payload: {},
      overrideVariable: "SCHEDULE_CACHE_PREFETCH",
    },
    {
      id: "analyze-nightly",
      queue: "db-maintenance",
      cron: config.SCHEDULE_ANALYZE ?? "30 2 * * *",
      payload: { analyze: true, reindex: false },
      overrideVariable: "SCHEDULE_ANALYZE",
    },
    {
      id: "reindex-weekly",
      queue: "db-maintenance",
      cron: config.SCHEDULE_REINDEX ?? "0 3 * * 0",
      payload: { analyze: false, reindex: true },
      overrideVariable: "SCHEDULE_REINDEX",
    },
    { id: "archiving-monthly", queue: "archiving", cron: config.SCHEDULE_ARCHIVING ?? "0 4 1 * *", payload: {}, overrideVariable: "SCHEDULE_ARCHIVING" },
  ];
}
