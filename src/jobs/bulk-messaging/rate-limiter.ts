import { setTimeout as sleep } from "node:timers/promises";

/**
 * Spaces calls evenly at `ratePerSecond` (a leaky bucket with no burst), shared
 * by all concurrent senders of one job: each `acquire()` reserves the next free
 * slot and waits for it. Without a rate, `acquire()` returns at once.
 */
export class RateLimiter {
  private nextSlotAt = 0;
  private readonly intervalMs: number;

  constructor(ratePerSecond: number | undefined) {
    this.intervalMs = ratePerSecond ? 1000 / ratePerSecond : 0;
  }

  /** Whether `acquire()` can wait at all; callers sending without a rate skip it. */
  get limited(): boolean {
    return this.intervalMs > 0;
  }

  async acquire(): Promise<void> {
    if (this.intervalMs === 0) return;
    const now = performance.now();
    const slot = Math.max(now, this.nextSlotAt);
    this.nextSlotAt = slot + this.intervalMs;
    if (slot > now) await sleep(slot - now);
  }
}
