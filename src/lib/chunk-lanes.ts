/**
 * Runs at most `width` async tasks at once. `start` waits for a free lane, so a
 * producer loop never runs ahead of the work. After the first failure no task
 * starts: the next `start`, or `drain`, waits for the tasks still running and
 * then throws that failure, so nothing is left running behind the caller.
 */
export class ChunkLanes {
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(private readonly width: number) {
    if (!Number.isInteger(width) || width < 1) throw new RangeError(`width must be a positive integer, got ${width}`);
  }

  async start(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.width && !this.failure) await Promise.race(this.running);
    if (this.failure) return this.drain();
    const run: Promise<void> = task()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.running.delete(run));
    this.running.add(run);
  }

  /** Waits for every started task; throws the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
    if (this.failure) throw this.failure.error;
  }
}
