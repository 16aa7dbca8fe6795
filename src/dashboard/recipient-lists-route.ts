import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { type Request, type Response, Router } from "express";
import type pg from "pg";
import { z } from "zod";
import { readRecipientIdLines } from "../jobs/bulk-messaging/recipient-id-lines.js";
import { RecipientListError, recipientListIdPattern, stageRecipientList } from "../jobs/bulk-messaging/recipient-lists.js";
import type { Logger } from "../lib/logger.js";

/**
 * `POST /recipient-lists`: stages a bulk-messaging campaign's recipients for
 * producers not written in TypeScript. The body is text, one patient uuid per
 * line, read as a stream (`Content-Encoding: gzip` accepted: 100,000 ids are
 * 3.7 MB as text, about 1.9 MB gzipped); the answer's id goes into the
 * campaign's payload as `recipientListId`.
 *
 *   201 {"id","count","created":true}    staged
 *   200 {"id","count","created":false}   the same list was already staged
 *   400 {"error","code"}                 a bad id (named by line), no ids, or a bad ?id; nothing staged
 *   409 {"error","code"}                 ?id is taken by a list of other recipients
 *   413 {"error","code"}                 more than 100,000 ids
 *   415 {"error"}                        not text/plain, or an encoding other than gzip
 *
 * Optional query parameter `id`: stage under this id (a client's idempotency
 * key) instead of one derived from the content.
 */
export interface RecipientListsRouteOptions {
  /** The application's database (DATABASE_URL). */
  pool: pg.Pool;
  logger: Logger;
  retentionDays: number;
}

const stageQuery = z.object({ id: z.string().regex(recipientListIdPattern, { error: "use 1-128 letters, digits, '_', '.' or '-'" }).optional() }).strict();

const statusByCode: Record<string, number> = { DBJOBS_RECIPIENT_LIST_CONFLICT: 409, DBJOBS_TOO_MANY_RECIPIENTS: 413 };

function bodyStream(req: Request): Readable | undefined {
  const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
  if (encoding === "identity") return req;
  if (encoding === "gzip" || encoding === "x-gzip") return req.pipe(createGunzip());
  return undefined;
}

export function recipientListsRouter(options: RecipientListsRouteOptions): Router {
  const router = Router();
  router.post("/recipient-lists", async (req: Request, res: Response) => {
    if (!req.is("text/plain")) {
      res.status(415).json({ error: "send the patient ids as text/plain, one uuid per line (gzip with Content-Encoding: gzip)" });
      return;
    }
    const query = stageQuery.safeParse(req.query);
    if (!query.success) {
      res.status(400).json({
        error: `invalid query parameters: ${query.error.issues.map((issue) => `${issue.path.join(".") || "query"}: ${issue.message}`).join("; ")}; nothing was staged`,
      });
      return;
    }
    const body = bodyStream(req);
    if (!body) {
      res.status(415).json({ error: `Content-Encoding ${req.headers["content-encoding"]} is not supported; send the body as is or gzip it` });
      return;
    }
    try {
      const ids = await readRecipientIdLines(body, "body");
      const staged = await stageRecipientList(options.pool, ids, { listId: query.data.id, retentionDays: options.retentionDays });
      options.logger.info({ listId: staged.id, count: staged.count, created: staged.created }, "recipient list staged over HTTP");
      res.status(staged.created ? 201 : 200).json(staged);
    } catch (err) {
      if (err instanceof RecipientListError) {
        const status = statusByCode[err.code] ?? 400;
        res.status(status).set("Connection", "close").json({ error: err.message, code: err.code });
        return;
      }
      if ((err as { code?: string }).code === "Z_DATA_ERROR") {
        res.status(400).set("Connection", "close").json({ error: "the body is not valid gzip; nothing was staged", code: "DBJOBS_BAD_RECIPIENTS" });
        return;
      }
      options.logger.error({ err }, "staging a recipient list over HTTP failed");
      res.status(503).json({ error: "could not stage the list: PostgreSQL is unavailable; retry later" });
    }
  });
  return router;
}
