import { type Config, queueStoreOptions, sessionDatabaseUrl } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { type MigrateResult, migrate } from "../lib/migrate.js";
import { type QueueCatalogResult, syncQueueCatalog } from "./queue-catalog.js";

/**
 * Everything `dbjobs migrate` does for a configuration: the application's SQL
 * migrations (schema public and dbjobs), BullMQ's PostgreSQL schema when the
 * queues live there, and the queue catalog the SQL function dbjobs.enqueue
 * reads. Programs that migrate from code call this, not lib/migrate.ts alone.
 * DDL and the migrator's advisory lock need a session: DIRECT_DATABASE_URL.
 */
export async function migrateForConfig(config: Config, logger?: Logger): Promise<MigrateResult & { queueCatalog: QueueCatalogResult }> {
  const url = sessionDatabaseUrl(config);
  const queues = queueStoreOptions(config);
  const result = await migrate({ url, logger, queueDatabaseUrl: queues.kind === "postgres" ? queues.databaseUrl : undefined });
  const queueCatalog = await syncQueueCatalog({ url, backend: config.QUEUE_BACKEND, logger });
  return { ...result, queueCatalog };
}
