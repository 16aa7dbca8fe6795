import { type IQueueBackend, type Job, Worker } from "bullmq";

/**
 * A BullMQ Worker that takes no job once close() has begun, and says when its
 * last claim has settled, on either queue backend.
 *
 * BullMQ 6.7's close() wakes the worker's blocking wait, and on the PostgreSQL
 * backend that wait then returns "check now", so the worker makes one more
 * claim (shown in test/closing-worker.postgres-claims.test.ts). A job added
 * just after SIGTERM could thus still be started by a worker that is shutting
 * down, and nothing said when that last claim was over. Here every
 * claim that starts after close() is refused (the job stays waiting for the
 * next worker), and whenClaimsSettled() resolves once the claims started
 * before it are done: from then on this worker takes nothing.
 *
 * Claims go through moveToActive, and through a finish that fetches the next
 * job (handleCompleted/handleFailed, which BullMQ tells not to fetch once
 * closing, but one already running when close() begins may still do so).
 * Loaded only by the queue store's worker(), so importing the store loads no bullmq.
 */
// biome-ignore lint/suspicious/noExplicitAny: as AnyWorker in queue-store.ts
export class ClosingWorker extends Worker<any, any, string, IQueueBackend, any, any> {
  private stopTaking = false;
  private readonly claims = new Set<Promise<unknown>>();

  // biome-ignore lint/suspicious/noExplicitAny: BullMQ's own signature
  protected override async moveToActive(token: string, name?: string): Promise<Job<any, any, string>> {
    // Returning no job is what BullMQ's own claim returns when nothing waits.
    // biome-ignore lint/suspicious/noExplicitAny: as above
    if (this.stopTaking) return undefined as unknown as Job<any, any, string>;
    return this.track(super.moveToActive(token, name));
  }

  protected override handleCompleted(...args: Parameters<Worker["handleCompleted"]>): ReturnType<Worker["handleCompleted"]> {
    return this.stopTaking ? super.handleCompleted(...args) : this.track(super.handleCompleted(...args));
  }

  protected override handleFailed(...args: Parameters<Worker["handleFailed"]>): ReturnType<Worker["handleFailed"]> {
    return this.stopTaking ? super.handleFailed(...args) : this.track(super.handleFailed(...args));
  }

  override close(force = false): Promise<void> {
    this.stopTaking = true;
    return super.close(force);
  }

  /** After close() has begun: resolves once no claim is in flight, so the worker will take no other job. */
  async whenClaimsSettled(): Promise<void> {
    while (this.claims.size > 0) await Promise.allSettled([...this.claims]);
  }

  private track<T>(claim: Promise<T>): Promise<T> {
    this.claims.add(claim);
    const forget = () => this.claims.delete(claim);
    claim.then(forget, forget);
    return claim;
  }
}
