import type { AnyQueue, QueueStore } from "../lib/queue-store.js";

export interface WaitingJobs {
  /** Jobs of the queue waiting for a worker: `waiting` and `prioritized`, not delayed, not active. */
  count(): Promise<number>;
  close(): Promise<void>;
}

/**
 * How many jobs wait in a worker's queue, for handlers that give up their
 * slot when someone waits (JobContext.waitingJobs). The Queue handle is
 * opened on first use: most queues never ask.
 */
export function waitingJobs(store: QueueStore, queueName: string): WaitingJobs {
  let queue: Promise<AnyQueue> | undefined;
  return {
    async count() {
      queue ??= store.queue(queueName).catch((err: unknown) => {
        queue = undefined;
        throw err;
      });
      const counts = await (await queue).getJobCounts("waiting", "prioritized");
      return (counts.waiting ?? 0) + (counts.prioritized ?? 0);
    },
    async close() {
      const opened = await queue?.catch(() => undefined);
      await opened?.close();
    },
  };
}
