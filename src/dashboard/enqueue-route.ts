import express, { type NextFunction, type Request, type Response, Router } from "express";
import type pg from "pg";
import { z } from "zod";
import { AuditNotRecordedError, audited } from "../audit/audited.js";
import { dashboardActor } from "../audit/dashboard-actor.js";
import { PayloadValidationError, QueueBackendUnavailableError, UnknownQueueError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { errorCodes } from "../lib/retry.js";
import { deadlineRange, priorityRange } from "../queues/job-options.js";
import type { Producer } from "../queues/producer.js";

/**
 * `POST /queues/<queue>/jobs` for producer apps not written in TypeScript
 * (SPEC §5). The JSON body is the payload, checked by the producer against
 * the queue's zod schema, so a bad body is rejected before it reaches Redis.
 *
 *   201 {"id","queue"}                      enqueued
 *   400 {"error","fields":[{path,message}]} the body (or a query option) is invalid; nothing enqueued
 *   404 {"error","code"}                    unknown queue
 *   413                                     body larger than bodyLimit
 *   415                                     not application/json
      if (err instanceof AuditNotRecordedError) {
        options.logger.error({ err, queue }, "job enqueued over HTTP but not audited");
        res.status(500).json({ error: err.message, code: err.code });
        return;
      }
 *   503 {"error","code","reason"}           the queue store (Redis, or the queue database) did not answer within
 *                                           QUEUE_CONNECT_TIMEOUT_MS; nothing enqueued; `reason` is a code (ECONNREFUSED...)
 *
 * Optional query parameters, all safe to expose: `jobId` (an idempotency
 * key: enqueueing the same id twice keeps one job, so a client may retry a
 * request whose answer it lost), `delayMs`, `priority` (1 highest to
 * 2097152) and `deadlineMs`. They are query parameters, not body fields,
 * because the body is the payload and its schema owns every field name.
 */
export interface EnqueueRouteOptions {
  producer: Producer;
  logger: Logger;
  /** Largest accepted body, in express's notation. @defaultValue "1mb" */
  bodyLimit?: string;
  /** Where the audit log lives (the dashboard's DATABASE_URL pool). */
  audit: Pick<pg.Pool, "connect">;
}

const enqueueQuery = z
  .object({
    jobId: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,128}$/, { error: "use 1-128 letters, digits, '_', '.' or '-'" })
      .refine((id) => !/^\d+$/.test(id), { error: "must not be only digits (BullMQ reserves those for its own ids)" })
      .optional(),
    delayMs: z.coerce
      .number()
      .int()
      .min(0)
      .max(365 * 24 * 3600 * 1000)
      .optional(),
    priority: z.coerce
      .number()
      .int()
      .min(priorityRange.min, { error: `use ${priorityRange.min} (highest) to ${priorityRange.max}` })
      .max(priorityRange.max, { error: `use ${priorityRange.min} (highest) to ${priorityRange.max}` })
      .optional(),
    deadlineMs: z.coerce
      .number()
      .int()
      .min(deadlineRange.min, { error: `use ${deadlineRange.min} to ${deadlineRange.max} milliseconds` })
      .max(deadlineRange.max, { error: `use ${deadlineRange.min} to ${deadlineRange.max} milliseconds` })
      .optional(),
  })
  .strict();

function fieldsOf(error: z.ZodError, prefix: string) {
  return error.issues.map((issue) => ({ path: [prefix, ...issue.path.map(String)].join("."), message: issue.message }));
}

export function enqueueRouter(options: EnqueueRouteOptions): Router {
  const router = Router();
  const parseJson = express.json({ limit: options.bodyLimit ?? "1mb", strict: false, type: "application/json" });

  router.post("/queues/:queue/jobs", parseJson, async (req: Request<{ queue: string }>, res: Response) => {
    if (!req.is("application/json")) {
      res.status(415).json({ error: "send the payload as JSON with Content-Type: application/json" });
      return;
    }
    const query = enqueueQuery.safeParse(req.query);
    if (!query.success) {
      res.status(400).json({ error: "invalid query parameters; nothing was enqueued", fields: fieldsOf(query.error, "query") });
      return;
    }
    const { queue } = req.params;
    const parameters = { queue, ...query.data };
    try {
      // The payload itself is not audited: it may hold personal data; the job id leads to it.
      const job = await audited(options.audit, { actor: dashboardActor(req), source: "dashboard", action: "enqueue", target: queue, parameters }, async () => {
        const added = await options.producer.enqueueUnknown(queue, req.body, {
          ...(query.data.jobId ? { jobId: query.data.jobId } : {}),
          ...(query.data.delayMs ? { delay: query.data.delayMs } : {}),
          ...(query.data.priority ? { priority: query.data.priority } : {}),
          ...(query.data.deadlineMs ? { deadlineMs: query.data.deadlineMs } : {}),
        });
        return { value: added, affected: 1, parameters: { jobId: added.id } };
      });
      options.logger.info({ queue, jobId: job.id }, "job enqueued over HTTP");
      res.status(201).json({ id: job.id, queue });
    } catch (err) {
      if (err instanceof PayloadValidationError) {
        res.status(400).json({ error: err.message, code: err.code, fields: err.fields });
        return;
      }
      if (err instanceof UnknownQueueError) {
        res.status(404).json({ error: err.message, code: err.code });
        return;
      }
      if (err instanceof AuditNotRecordedError) {
        options.logger.error({ err, queue }, "job enqueued over HTTP but not audited");
        res.status(500).json({ error: err.message, code: err.code });
        return;
      }
      if (err instanceof QueueBackendUnavailableError) {
        // The store logs the outage itself, once; a request per line here would flood the log.
        options.logger.debug({ queue, code: err.reasonCode }, "enqueue over HTTP refused: queue store unreachable");
        res.status(503).json({ error: `${err.message} Retry later.`, code: err.code, reason: err.reasonCode });
        return;
      }
      options.logger.error({ err, queue }, "enqueue over HTTP failed");
      const { service } = options.producer.store;
      res
        .status(503)
        .json({ error: `could not enqueue: ${service} did not take the job (${errorCodes(err)[0] ?? "error"}); retry later`, code: "DBJOBS_ENQUEUE_FAILED" });
    }
  });

  // body-parser's errors (too large, malformed JSON) carry `type` and `status`.
  router.use("/queues/:queue/jobs", (err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const type = (err as { type?: string }).type;
    if (type === "entity.too.large") {
      res.status(413).json({ error: `body larger than ${options.bodyLimit ?? "1mb"}; send a smaller payload (e.g. ids, not rows)` });
      return;
    }
    if (type === "entity.parse.failed") {
      res.status(400).json({ error: "body is not valid JSON; nothing was enqueued" });
      return;
    }
    next(err);
  });
  return router;
}
