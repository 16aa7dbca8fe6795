import type { Config } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { type MigrateResult, migrate } from "../lib/migrate.js";
import { type QueueCatalogResult, syncQueueCatalog } from "./queue-catalog.js";

/**
 * Everything `dbjobs migrate` does for a configuration: the application's SQL
 * migrations (schema public and dbjobs), BullMQ's PostgreSQL schema when the
 * queues live there, and the queue catalog the SQL function dbjobs.enqueue
 * reads. Programs that migrate from code call this, not lib/migrate.ts alone.
 */
export async function migrateForConfig(config: Config, logger?: Logger): Promise<MigrateResult & { queueCatalog: QueueCatalogResult }> {
  const result = await migrate({
    url: config.DATABASE_URL,
    logger,
    queueDatabaseUrl: config.QUEUE_BACKEND === "postgres" ? (config.QUEUE_DATABASE_URL ?? config.DATABASE_URL) : undefined,
  });
  const queueCatalog = await syncQueueCatalog({ url: config.DATABASE_URL, backend: config.QUEUE_BACKEND, logger });
  return { ...result, queueCatalog };
}
