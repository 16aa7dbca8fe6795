import type { EventEmitter } from "node:events";
import type { Job } from "bullmq";
import type { AnyQueueEvents } from "../lib/queue-store.js";

/** How often the job itself is looked at while its events are awaited. */
const pollMs = 1000;

/** The wait ended without the job's outcome: it ran past the timeout, or it left its queue unseen. */
export class JobWaitError extends Error {
  constructor(
    readonly reason: "timeout" | "gone",
    message: string,
  ) {
    super(message);
    this.name = "JobWaitError";
  }
}

/**
 * Waits until `job` finishes: resolves with its result, or rejects with its
 * failure reason, or with a JobWaitError after `timeoutMs` or once the job
 * has left its queue unseen.
 *
 * BullMQ's `job.waitUntilFinished` trusts the queue's events alone, and on
 * BullMQ's PostgreSQL backend an event can be missed: events are read after
 * the last id seen, and one whose transaction took its id first but committed
 * after a later event was read is never delivered (two jobs finishing at
 * once). So the job's own state is read too, once a second; whichever comes
 * first wins. Subscribe `events` (and await `waitUntilReady`) before the job
 * is added, so that a fast job cannot finish unseen.
 */
export function waitForJob(job: Job, events: AnyQueueEvents, timeoutMs: number): Promise<unknown> {
  const id = job.id;
  if (id === undefined) return Promise.reject(new Error("waitForJob needs an enqueued job (one with an id)"));
  const completedEvent = `completed:${id}`;
  const failedEvent = `failed:${id}`;
  // Per-job event names are not in BullMQ's listener types.
  const emitter = events as unknown as EventEmitter;
  return new Promise((resolve, reject) => {
    let settled = false;
    let goneLooks = 0;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(poll);
      emitter.off(completedEvent, onCompleted);
      emitter.off(failedEvent, onFailed);
      settle();
    };
    const onCompleted = (args: { returnvalue: unknown }) => finish(() => resolve(args.returnvalue));
    const onFailed = (args: { failedReason: string }) => finish(() => reject(new Error(args.failedReason)));
    const check = async () => {
      try {
        const state = await job.getState();
        // Seen gone at two looks a second apart: its completed or failed event, if one is coming, had that second to arrive.
        if (state === "unknown" && ++goneLooks >= 2) {
          const gone = `job ${id} is no longer in its queue (removed after it finished, e.g. by removeOnComplete's count, or by hand), so its outcome cannot be read here; look it up with \`dbjobs search --queue ${job.queueName} --id ${id}\``;
          finish(() => reject(new JobWaitError("gone", gone)));
          return;
        }
        // Finished: BullMQ's own wait reads the result or the failure reason at once.
        if (state === "completed" || state === "failed") {
          const outcome = await job.waitUntilFinished(events, pollMs).then(
            (value: unknown) => () => resolve(value),
            (err: unknown) => () => reject(err),
          );
          finish(outcome);
        }
      } catch {
        // A failed look (a dropped connection) is retried at the next tick; the events and the timeout still stand.
      }
    };
    emitter.on(completedEvent, onCompleted);
    emitter.on(failedEvent, onFailed);
    const timer = setTimeout(() => finish(() => reject(new JobWaitError("timeout", `job ${id} did not finish within ${timeoutMs} ms`))), timeoutMs);
    const poll = setInterval(check, pollMs);
    void check();
  });
}
