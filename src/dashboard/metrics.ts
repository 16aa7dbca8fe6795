import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { MetricsStore } from "../lib/metrics.js";
import type { AnyQueue } from "../lib/queue-store.js";
import { flushedMetricsRegistry } from "./flushed-metrics.js";

/**
 * `/metrics` (SPEC §5): queue depths read from the queue store at scrape time, the
 * counters and histograms every process flushed to the metrics store, schedule misses, and
 * this process's own runtime metrics. Gauges live in a registry built afresh
 * for each scrape, so two concurrent scrapes never see each other's values.
 */
export interface ScheduleMisses {
  id: string;
  queue: string;
  registered: boolean;
  missedFires: number;
}

export interface MetricsSources {
  queues: readonly AnyQueue[];
  /** Where every process flushes its counters. */
  store: MetricsStore;
  /** The queue store's exact oldest-waiting read (PostgreSQL); without it the oldest is taken from the wait list's first 100. */
  oldestWaitingAddedAt?: (queue: string) => Promise<number | undefined>;
  /** Schedule health (src/queues/schedule-health.ts); omitted, no schedule gauges are exported. */
  readScheduleHealth?: () => Promise<ScheduleMisses[]>;
}

export const metricsContentType = Registry.PROMETHEUS_CONTENT_TYPE;

const queueStates = ["waiting", "active", "delayed", "prioritized", "waiting-children", "failed", "completed"] as const;

/** Everything the scrape reads from the queue store, read before any gauge is built so one failure fails the whole scrape. */
async function readQueueSnapshot(queue: AnyQueue, oldestWaitingAddedAt: MetricsSources["oldestWaitingAddedAt"]) {
  const [counts, paused, workers, oldestTimestamp] = await Promise.all([
    queue.getJobCounts(...queueStates),
    queue.isPaused(),
    queue.getWorkersCount(),
    oldestWaitingAddedAt ? oldestWaitingAddedAt(queue.name) : oldestInWaitList(queue),
  ]);
  return { name: queue.name, counts, paused, workers, oldestTimestamp };
}

/** Redis: the wait list holds jobs in the order they were added, so its first 100 hold the oldest. */
async function oldestInWaitList(queue: AnyQueue): Promise<number | undefined> {
  const stamps = (await queue.getJobs(["wait"], 0, 99, true)).map((job) => job.timestamp);
  return stamps.length > 0 ? Math.min(...stamps) : undefined;
}

export function createMetricsRenderer(sources: MetricsSources): () => Promise<string> {
  const processRegistry = new Registry();
  collectDefaultMetrics({ register: processRegistry, prefix: "dbjobs_dashboard_" });

  return async () => {
    const now = Date.now();
    const [snapshots, flushed, schedules] = await Promise.all([
      Promise.all(sources.queues.map((queue) => readQueueSnapshot(queue, sources.oldestWaitingAddedAt))),
      sources.store.read(),
      sources.readScheduleHealth?.() ?? Promise.resolve(undefined),
    ]);

    const scrape = new Registry();
    const jobs = new Gauge({
      name: "dbjobs_queue_jobs",
      help: "Jobs in each state, per queue, read from Redis at scrape time.",
      labelNames: ["queue", "state"],
      registers: [scrape],
    });
    const paused = new Gauge({ name: "dbjobs_queue_paused", help: "1 when the queue is paused.", labelNames: ["queue"], registers: [scrape] });
    const workers = new Gauge({ name: "dbjobs_queue_workers", help: "Worker connections attached to the queue.", labelNames: ["queue"], registers: [scrape] });
    const oldest = new Gauge({
      name: "dbjobs_queue_oldest_waiting_age_seconds",
      help: "Age of the oldest waiting job since it was enqueued; 0 when nothing waits.",
      labelNames: ["queue"],
      registers: [scrape],
    });
    for (const snapshot of snapshots) {
      for (const state of queueStates) jobs.set({ queue: snapshot.name, state }, snapshot.counts[state] ?? 0);
      paused.set({ queue: snapshot.name }, snapshot.paused ? 1 : 0);
      workers.set({ queue: snapshot.name }, snapshot.workers);
      oldest.set({ queue: snapshot.name }, snapshot.oldestTimestamp === undefined ? 0 : Math.max(0, now - snapshot.oldestTimestamp) / 1000);
    }

    if (schedules) {
      const missed = new Gauge({
        name: "dbjobs_schedule_missed_fires",
        help: "Expected cron fire times that produced no job, per schedule.",
        labelNames: ["schedule", "queue"],
        registers: [scrape],
      });
      const registered = new Gauge({
        name: "dbjobs_schedule_registered",
        help: "1 when the declared schedule has a BullMQ job scheduler in Redis.",
        labelNames: ["schedule", "queue"],
        registers: [scrape],
      });
      for (const schedule of schedules) {
        missed.set({ schedule: schedule.id, queue: schedule.queue }, schedule.missedFires);
        registered.set({ schedule: schedule.id, queue: schedule.queue }, schedule.registered ? 1 : 0);
      }
    }

    const declared = flushedMetricsRegistry(
      flushed.samples,
      sources.queues.map((queue) => queue.name),
    );
    return Registry.merge([processRegistry, scrape, declared]).metrics();
  };
}
