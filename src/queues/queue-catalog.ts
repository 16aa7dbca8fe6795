import pg from "pg";
import type { Logger } from "../lib/logger.js";
import type { QueueBackendKind } from "../lib/queue-store.js";
import { defaultStoredOptions } from "./bullmq-job.js";
import { contracts } from "./contracts.js";

/**
 * What the SQL function `dbjobs.enqueue` knows of the queues: their names and
 * default job options, and where the queues live. All of it comes from the
 * contracts and the config, written by `dbjobs migrate` through this module,
 * so nothing about a queue is copied by hand into SQL; a queue added, removed
 * or given new options shows up in SQL at the next `dbjobs migrate`.
 */
export interface QueueCatalogResult {
  queues: string[];
  backend: QueueBackendKind;
}

// Takes $1 names, $2 positions, $3 job options (jsonb[] as text[]). Upserts each queue.
const upsertQueuesSql = `
INSERT INTO "dbjobs"."queues" ("name", "position", "job_options", "updated_at")
SELECT name, position, options::jsonb, now()
  FROM unnest($1::text[], $2::int[], $3::text[]) AS declared(name, position, options)
ON CONFLICT ("name") DO UPDATE
   SET "position" = EXCLUDED."position", "job_options" = EXCLUDED."job_options", "updated_at" = now()
 WHERE ("dbjobs"."queues"."position", "dbjobs"."queues"."job_options") IS DISTINCT FROM (EXCLUDED."position", EXCLUDED."job_options")`;

// Takes $1 the declared names. Removes queues no contract declares any more.
const deleteUndeclaredSql = `DELETE FROM "dbjobs"."queues" WHERE NOT ("name" = ANY($1::text[]))`;

// Takes $1 the backend. Records it in the one-row table.
const upsertBackendSql = `
INSERT INTO "dbjobs"."queue_backend" ("singleton", "backend", "updated_at") VALUES (true, $1, now())
ON CONFLICT ("singleton") DO UPDATE SET "backend" = EXCLUDED."backend", "updated_at" = now()
 WHERE "dbjobs"."queue_backend"."backend" IS DISTINCT FROM EXCLUDED."backend"`;

/** Writes the declared queues and the backend into the application database `url`, in one transaction. */
export async function syncQueueCatalog(options: { url: string; backend: QueueBackendKind; logger?: Logger }): Promise<QueueCatalogResult> {
  const declared = await Promise.all(
    contracts.map(async (contract, position) => ({ name: contract.name, position, options: await defaultStoredOptions(contract.name, contract.jobOptions) })),
  );
  const names = declared.map((queue) => queue.name);
  const client = new pg.Client({ connectionString: options.url, application_name: "dbjobs:migrate" });
  await client.connect();
  try {
    await client.query("BEGIN");
    await client.query(upsertQueuesSql, [names, declared.map((queue) => queue.position), declared.map((queue) => JSON.stringify(queue.options))]);
    await client.query(deleteUndeclaredSql, [names]);
    await client.query(upsertBackendSql, [options.backend]);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
  options.logger?.info({ queues: names.length, backend: options.backend }, "queue catalog up to date (dbjobs.enqueue)");
  return { queues: names, backend: options.backend };
}
