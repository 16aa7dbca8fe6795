import { type Request, type Response, Router } from "express";
import { dashboardActor } from "../audit/dashboard-actor.js";
import type { Queryable } from "../audit/record-audit.js";
import { DbjobsError, UnknownQueueError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import type { QueueStore } from "../lib/queue-store.js";
import { cancelJob, JobNotCancellableError, JobNotFoundError } from "../queues/cancel-job.js";

/**
 * Operator actions over HTTP, behind the dashboard's authentication:
 *
 *   POST /queues/<queue>/jobs/<id>/cancel   (optional ?waitMs=, default 10000, at most 60000)
 *     200 {outcome, state, stateBefore, failedReason?, waitedMs}   removed, cancelled, or completed first
 *     202 {outcome: "still-active", …}                            no worker stopped it within waitMs
 *     404 {error, code}                                           unknown queue or job
 *     409 {error, code}                                           the job had already ended
 */
export interface ControlRoutesOptions {
  store: QueueStore;
  logger: Logger;
  connectTimeoutMs: number;
  /** The application database, for the audit log. */
  audit?: Queryable;
}

export function controlRouter(options: ControlRoutesOptions): Router {
  const router = Router();
  router.post("/queues/:queue/jobs/:id/cancel", async (req: Request<{ queue: string; id: string }>, res: Response) => {
    const waitText = typeof req.query.waitMs === "string" ? req.query.waitMs : undefined;
    const waitMs = waitText === undefined ? 10_000 : Number(waitText);
    if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 60_000) {
      res.status(400).json({ error: "waitMs must be a whole number of milliseconds from 0 to 60000", fields: [{ path: "query.waitMs", message: "0..60000" }] });
      return;
    }
    try {
      const outcome = await cancelJob({
        store: options.store,
        connectTimeoutMs: options.connectTimeoutMs,
        logger: options.logger,
        queue: req.params.queue,
        jobId: req.params.id,
        actor: dashboardActor(req),
        via: "http",
        waitMs,
        audit: options.audit,
      });
      res.status(outcome.outcome === "still-active" ? 202 : 200).json(outcome);
    } catch (err) {
      if (err instanceof UnknownQueueError || err instanceof JobNotFoundError) {
        res.status(404).json({ error: err.message, code: err.code });
        return;
      }
      if (err instanceof JobNotCancellableError) {
        res.status(409).json({ error: err.message, code: err.code });
        return;
      }
      options.logger.error({ err, queue: req.params.queue, jobId: req.params.id }, "cancel over HTTP failed");
      const message = err instanceof DbjobsError ? err.message : "could not cancel: the queue store is unavailable; retry later";
      res.status(503).json({ error: message });
    }
  });
  return router;
}
