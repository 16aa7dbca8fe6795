import { incrementCounter, JOB_DURATION_BUCKETS_SECONDS } from "../lib/metrics.js";

/**
 * A worker's per-job counters, kept as plain numbers and handed to metrics.ts
 * in one go just before each flush. Building the label-keyed series for every
 * job (13 series keys for the duration histogram alone) cost more CPU than a
 * short job itself; the series and values that reach Redis are the same as
 * counting each job into a Prometheus histogram (_bucket, _sum, _count) one
 * incrementCounter call at a time.
 */
export class WorkerCounters {
  private readonly durationBuckets = JOB_DURATION_BUCKETS_SECONDS.map(() => 0);
  private durationSum = 0;
  private completed = 0;
  private failed = 0;
  private stalled = 0;

  constructor(private readonly queue: string) {}

  jobCompleted(seconds: number): void {
    for (let index = 0; index < JOB_DURATION_BUCKETS_SECONDS.length; index++) {
      if (seconds <= (JOB_DURATION_BUCKETS_SECONDS[index] as number)) this.durationBuckets[index] = (this.durationBuckets[index] as number) + 1;
    }
    this.durationSum += seconds;
    this.completed += 1;
  }

  jobFailed(): void {
    this.failed += 1;
  }

  jobStalled(): void {
    this.stalled += 1;
  }

  /** Moves everything counted since the last call into metrics.ts's pending increments, and returns those counts. */
  moveToPending(): { completed: number; failed: number; stalled: number } {
    const counted = { completed: this.completed, failed: this.failed, stalled: this.stalled };
    const labels = { queue: this.queue };
    if (this.completed > 0) {
      JOB_DURATION_BUCKETS_SECONDS.forEach((le, index) => {
        const count = this.durationBuckets[index] as number;
        if (count > 0) incrementCounter("dbjobs_job_duration_seconds_bucket", { ...labels, le: String(le) }, count);
        this.durationBuckets[index] = 0;
      });
      incrementCounter("dbjobs_job_duration_seconds_bucket", { ...labels, le: "+Inf" }, this.completed);
      incrementCounter("dbjobs_job_duration_seconds_sum", labels, this.durationSum);
      incrementCounter("dbjobs_job_duration_seconds_count", labels, this.completed);
      incrementCounter("dbjobs_jobs_completed_total", labels, this.completed);
    }
    if (this.failed > 0) incrementCounter("dbjobs_jobs_failed_total", labels, this.failed);
    if (this.stalled > 0) incrementCounter("dbjobs_jobs_stalled_total", labels, this.stalled);
    this.durationSum = 0;
    this.completed = 0;
    this.failed = 0;
    this.stalled = 0;
    return counted;
  }
}
