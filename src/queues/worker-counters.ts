import { metrics } from "../lib/metrics.js";

/**
 * A worker's per-job counts, kept as plain numbers and handed to the metric
 * writers in one go just before each flush. Counting each job into the
 * label-keyed series (13 for the duration histogram alone) cost more CPU than
 * a short job itself; the totals that reach the store are the same.
 */
export class WorkerCounters {
  private readonly buckets = metrics.jobDuration.declaration.buckets;
  private readonly bucketCounts = this.buckets.map(() => 0);
  private durationSum = 0;
  private completed = 0;
  private failed = 0;
  private stalled = 0;

  constructor(private readonly queue: string) {}

  jobCompleted(seconds: number): void {
    for (let index = 0; index < this.buckets.length; index++) {
      if (seconds <= (this.buckets[index] as number)) this.bucketCounts[index] = (this.bucketCounts[index] as number) + 1;
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

  /** Hands everything counted since the last call to the metric writers, and returns those counts. */
  moveToPending(): { completed: number; failed: number; stalled: number } {
    const counted = { completed: this.completed, failed: this.failed, stalled: this.stalled };
    const labels = { queue: this.queue };
    if (this.completed > 0) {
      metrics.jobDuration.addCounts(labels, { bucketCounts: this.bucketCounts, sum: this.durationSum, count: this.completed });
      metrics.jobsCompleted.inc(labels, this.completed);
    }
    if (this.failed > 0) metrics.jobsFailed.inc(labels, this.failed);
    if (this.stalled > 0) metrics.jobsStalled.inc(labels, this.stalled);
    this.bucketCounts.fill(0);
    this.durationSum = 0;
    this.completed = 0;
    this.failed = 0;
    this.stalled = 0;
    return counted;
  }
}
