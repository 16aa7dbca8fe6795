import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { advisoryLock, advisoryUnlock, lockNames } from "./advisory-locks.js";
import { MigrationError } from "./errors.js";
import type { Logger } from "./logger.js";
import { packageRoot } from "./paths.js";
import { queueSchema } from "./queue-store.js";

/**
 * Applies prisma/migrations/<name>/migration.sql in name order, recording each
 * in `_prisma_migrations` exactly as `prisma migrate deploy` does (same table,
 * same sha256 checksum of the file), so either tool can take over. We need our
 * own runner because Prisma 7's migrate needs a native schema engine that
 * cannot be downloaded on air-gapped machines.
 */
export const defaultMigrationsDir = join(packageRoot, "prisma", "migrations");
/** The queue database's bookkeeping (schema dbjobs beside bullmq), applied wherever the queues live. */
export const queueMigrationsDir = join(packageRoot, "prisma", "queue-migrations");

export interface MigrateResult {
  createdDatabase: boolean;
  applied: string[];
  alreadyApplied: string[];
  /** BullMQ's PostgreSQL backend schema version after the run, when the queues live in PostgreSQL. */
  queueSchemaVersion?: number;
  /** prisma/queue-migrations applied to the queue database by this run. */
  queueMigrationsApplied?: string[];
}

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

// Prisma's own DDL for its bookkeeping table (migration-engine, postgres flavour).
const createMigrationsTable = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export function migrationChecksum(sql: string): string {
  return createHash("sha256").update(sql).digest("hex");
}

export async function readMigrations(dir: string = defaultMigrationsDir): Promise<MigrationFile[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: migrationChecksum(sql) };
    }),
  );
}

/** Creates the database named in `url` when it does not exist yet. Returns true if it created it. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const database = decodeURIComponent(target.pathname.replace(/^\//, ""));
  if (!database) throw new MigrationError(`DATABASE_URL "${target.host}" names no database; add one, e.g. /dbjobs.`);
  const probe = new pg.Client({ connectionString: url });
  try {
    await probe.connect();
    return false;
  } catch (err) {
    if ((err as { code?: string }).code !== "3D000") throw new MigrationError(`Cannot connect to PostgreSQL: ${(err as Error).message}`, { cause: err });
  } finally {
    await probe.end().catch(() => undefined);
  }
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === "42P04") return false; // created concurrently
    throw new MigrationError(`Cannot create database "${database}": ${(err as Error).message}. Create it by hand or grant CREATEDB.`, { cause: err });
  } finally {
    await client.end();
  }
}

export interface MigrateOptions {
  url: string;
  logger?: Logger;
  migrationsDir?: string;
  /** Also create or upgrade BullMQ's PostgreSQL backend (schema bullmq) in this database. @defaultValue none */
  queueDatabaseUrl?: string;
}

export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const result = await migrateApplication(options);
  if (!options.queueDatabaseUrl) return result;
  return { ...result, ...(await migrateQueueDatabase(options.queueDatabaseUrl, options.logger)) };
}

// The queue database's ledger: like _prisma_migrations, but ours alone, since
// the queue database may be the application's (where Prisma owns that table).
const createQueueLedger = `
CREATE SCHEMA IF NOT EXISTS "dbjobs";
CREATE TABLE IF NOT EXISTS "dbjobs"."queue_migrations" (
    "name" TEXT PRIMARY KEY,
    "checksum" TEXT NOT NULL,
    "applied_at" TIMESTAMPTZ NOT NULL DEFAULT now()
)`;

/**
 * The database the queues live in: BullMQ's own migrations for its PostgreSQL
 * backend (transactional, serialised by its own advisory lock), then ours for
 * its bookkeeping (prisma/queue-migrations), each in a transaction, under the
 * migration lock.
 */
export async function migrateQueueDatabase(url: string, logger?: Logger): Promise<{ queueSchemaVersion: number; queueMigrationsApplied: string[] }> {
  await ensureDatabase(url);
  const { runMigrations } = await import("bullmq");
  const migrations = await readMigrations(queueMigrationsDir);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const queueSchemaVersion = await runMigrations(client, queueSchema);
    logger?.info({ schema: queueSchema, version: queueSchemaVersion }, "queue schema up to date");
    await advisoryLock(client, lockNames.migrate());
    await client.query(createQueueLedger);
    const { rows } = await client.query<{ name: string; checksum: string }>(`SELECT "name", "checksum" FROM "dbjobs"."queue_migrations"`);
    const recorded = new Map(rows.map((row) => [row.name, row.checksum]));
    const queueMigrationsApplied: string[] = [];
    for (const migration of migrations) {
      const checksum = recorded.get(migration.name);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new MigrationError(
            `Queue migration "${migration.name}" was edited after it was applied. Restore the original file and put the change in a new migration.`,
          );
        }
        continue;
      }
      await client.query("BEGIN");
      try {
        await client.query(migration.sql);
        await client.query(`INSERT INTO "dbjobs"."queue_migrations" ("name", "checksum") VALUES ($1, $2)`, [migration.name, migration.checksum]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw new MigrationError(`Queue migration "${migration.name}" failed and was rolled back: ${(err as Error).message}`, { cause: err });
      }
      logger?.info({ migration: migration.name }, "queue migration applied");
      queueMigrationsApplied.push(migration.name);
    }
    return { queueSchemaVersion, queueMigrationsApplied };
  } finally {
    await advisoryUnlock(client, lockNames.migrate());
    await client.end();
  }
}

async function migrateApplication(options: MigrateOptions): Promise<MigrateResult> {
  const createdDatabase = await ensureDatabase(options.url);
  const migrations = await readMigrations(options.migrationsDir);
  const client = new pg.Client({ connectionString: options.url });
  await client.connect();
  try {
    await advisoryLock(client, lockNames.migrate());
    await client.query(createMigrationsTable);
    const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null }>(
      `SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`,
    );
    const recorded = new Map(rows.map((row) => [row.migration_name, row]));
    const applied: string[] = [];
    const alreadyApplied: string[] = [];

    for (const migration of migrations) {
      const previous = recorded.get(migration.name);
      if (previous?.finished_at) {
        if (previous.checksum !== migration.checksum) {
          throw new MigrationError(
            `Migration "${migration.name}" was edited after it was applied (checksum ${previous.checksum.slice(0, 12)}… in the database, ${migration.checksum.slice(0, 12)}… on disk). Restore the original file and put the change in a new migration.`,
          );
        }
        alreadyApplied.push(migration.name);
        continue;
      }
      if (previous) {
        throw new MigrationError(
          `Migration "${migration.name}" started earlier and did not finish. Inspect the database, then mark it rolled back (prisma migrate resolve --rolled-back ${migration.name}) and run migrate again.`,
        );
      }
      await applyOne(client, migration);
      options.logger?.info({ migration: migration.name }, "migration applied");
      applied.push(migration.name);
    }
    return { createdDatabase, applied, alreadyApplied };
  } finally {
    await advisoryUnlock(client, lockNames.migrate());
    await client.end();
  }
}

async function applyOne(client: pg.Client, migration: MigrationFile): Promise<void> {
  const id = randomUUID();
  await client.query("BEGIN");
  try {
    await client.query(`INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) VALUES ($1, $2, $3, now(), 0)`, [
      id,
      migration.checksum,
      migration.name,
    ]);
    await client.query(migration.sql);
    await client.query(`UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1`, [id]);
    await client.query("COMMIT");
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw new MigrationError(`Migration "${migration.name}" failed and was rolled back: ${(err as Error).message}`, { cause: err });
  }
}
