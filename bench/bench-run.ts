import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { z } from "zod";
import { configSchema } from "../src/lib/config.js";
import { migrate } from "../src/lib/migrate.js";

/**
 * What one `npm run bench` owns, and the guarantee that it leaves nothing
 * behind. Every name carries a run id, so two runs against the same servers
 * never touch each other's databases or keys:
 *   - databases `<BENCH_DATABASE_PREFIX>_<run id>_<n>_<label>` on the server
 *     of BENCH_DATABASE_URL, else DATABASE_URL (created and dropped through
 *     that server's `postgres` database);
 *   - Redis keys under `<QUEUE_PREFIX>-bench-<run id>-<n>` on BENCH_REDIS_URL,
 *     else REDIS_URL;
 *   - child processes started through `trackChild`.
 * A database is dropped only if this run created it (never by a name alone),
 * and `cleanUp` removes all three kinds, also after a section throws or the
 * run is interrupted (see bench/index.ts). `leftovers` counts what is still
 * there afterwards, by the run id.
 */
const settingsSchema = z.object({
  databaseUrl: configSchema.shape.DATABASE_URL,
  redisUrl: z.url().default("redis://127.0.0.1:6379"),
  queuePrefix: configSchema.shape.QUEUE_PREFIX,
  /**
   * Start of every database name this run creates; lower case, so that names need no quoting.
   * @defaultValue dbjobs_bench
   */
  databasePrefix: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,29}$/, "use at most 30 lower-case letters, digits and underscores, not starting with a digit")
    .default("dbjobs_bench"),
});

const settings = settingsSchema.parse({
  databaseUrl: process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL,
  redisUrl: process.env.BENCH_REDIS_URL ?? process.env.REDIS_URL,
  queuePrefix: process.env.QUEUE_PREFIX,
  databasePrefix: process.env.BENCH_DATABASE_PREFIX,
});

/** A URL to `database` on the bench's PostgreSQL server. */
function databaseUrl(database: string): string {
  const url = new URL(settings.databaseUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Escapes Redis glob characters, so a prefix matches only itself in SCAN … MATCH. */
function globLiteral(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

const postgresIdentifierMax = 63;

class BenchRun {
  /** Eight hex digits, in every name this run creates. */
  readonly id = randomBytes(4).toString("hex");
  readonly redisUrl = settings.redisUrl;
  /** The server's maintenance database: where databases are created and dropped. */
  readonly adminUrl = databaseUrl("postgres");
  private readonly databaseStem = `${settings.databasePrefix}_${this.id}_`;
  private readonly queuePrefixStem = `${settings.queuePrefix}-bench-${this.id}-`;
  private sequence = 0;
  private readonly databases = new Set<string>();
  private readonly children = new Set<ChildProcess>();
  private template: Promise<string> | undefined;
  /** Set once cleanUp starts: nothing new is created after it. */
  private stopping = false;
  /** CREATE DATABASE statements in flight, which cleanUp waits for so that it sees their databases. */
  private readonly creating = new Set<Promise<unknown>>();

  /** What a reader needs to find this run's traces by hand. */
  describe(): string {
    return `run ${this.id}: databases ${this.databaseStem}*, Redis keys ${this.queuePrefixStem}*`;
  }

  /** A BullMQ/cache key prefix that no other run or section uses. */
  queuePrefix(): string {
    if (this.stopping) throw new Error("bench: the run is being cleaned up; no new key prefixes");
    return `${this.queuePrefixStem}${++this.sequence}`;
  }

  /**
   * A new migrated database, cloned from this run's migrated template (made
   * on first use); returns its URL. `label` is for the reader of pg_database.
   */
  async freshDatabase(label: string): Promise<string> {
    this.template ??= this.createDatabase("template").then(async (name) => {
      await migrate({ url: databaseUrl(name) });
      return name;
    });
    return databaseUrl(await this.createDatabase(label, await this.template));
  }

  /** A copy of `source` (a database of this run, with no open connection); returns its name. */
  async copyDatabase(source: string, label: string): Promise<string> {
    if (!this.databases.has(source)) throw new Error(`bench: ${source} is not a database of this run; copy only what this run created`);
    // FILE_COPY copies the files as they are: faster than WAL_LOG for the large databases copied here.
    return this.createDatabase(label, source, "FILE_COPY");
  }

  /** Drops a database this run created; refuses any other name. */
  async dropDatabase(nameOrUrl: string): Promise<void> {
    const name = nameOrUrl.includes("://") ? decodeURIComponent(new URL(nameOrUrl).pathname.slice(1)) : nameOrUrl;
    if (!this.databases.has(name)) throw new Error(`bench: refusing to drop ${name}: this run did not create it`);
    await this.withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    this.databases.delete(name);
  }

  /** Deletes every Redis key under `prefix` (one of this run's prefixes). */
  async removeKeys(prefix: string, redis?: Redis): Promise<number> {
    if (!prefix.startsWith(this.queuePrefixStem)) throw new Error(`bench: refusing to delete keys under ${prefix}: not a prefix of this run`);
    return this.withRedis(redis, (client) => deleteMatching(client, `${globLiteral(prefix)}:*`));
  }

  /** Ends `child` with the run if it is still alive then (and on any exit of this process). */
  trackChild(child: ChildProcess): ChildProcess {
    // Started while cleaning up: it would outlive the clean-up.
    if (this.stopping) child.kill("SIGKILL");
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  /**
   * Removes everything this run created: child processes (SIGTERM, then
   * SIGKILL after 5 s), databases, Redis keys under this run's prefixes.
   * Never throws; returns what it could not remove, in words.
   */
  async cleanUp(): Promise<string[]> {
    this.stopping = true;
    const problems: string[] = [];
    await Promise.allSettled([...this.creating]);
    await Promise.all(
      [...this.children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
            child.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill("SIGTERM");
          }),
      ),
    );
    // Clones first: the template cannot be dropped while a copy is being made from it.
    for (const name of [...this.databases].reverse()) {
      await this.dropDatabase(name).catch((err: unknown) => problems.push(`database ${name}: ${(err as Error).message}`));
    }
    await this.withRedis(undefined, (client) => deleteMatching(client, `${globLiteral(this.queuePrefixStem)}*`)).catch((err: unknown) =>
      problems.push(`Redis keys ${this.queuePrefixStem}*: ${(err as Error).message}`),
    );
    return problems;
  }

  /** Kills this run's child processes at once: for process exit, where nothing asynchronous runs. */
  killChildren(): void {
    for (const child of this.children) child.kill("SIGKILL");
  }

  /** What this run left behind, found by its run id rather than by its own bookkeeping. */
  async leftovers(): Promise<{ databases: string[]; redisKeys: number; childProcesses: number }> {
    const { rows } = await this.withAdmin((admin) =>
      admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname", [this.databaseStem]),
    );
    const redisKeys = await this.withRedis(undefined, async (client) => (await scanAll(client, `${globLiteral(this.queuePrefixStem)}*`)).length);
    const childProcesses = [...this.children].filter((child) => child.exitCode === null && child.signalCode === null).length;
    return { databases: rows.map((row) => row.datname), redisKeys, childProcesses };
  }

  private async createDatabase(label: string, template?: string, strategy?: "FILE_COPY"): Promise<string> {
    if (this.stopping) throw new Error("bench: the run is being cleaned up; no new databases");
    const name = `${this.databaseStem}${++this.sequence}_${label.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`.slice(0, postgresIdentifierMax);
    // No IF NOT EXISTS and no DROP first: a name that exists belongs to someone else, and CREATE fails on it.
    await this.withAdmin((admin) =>
      admin.query(`CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}"` : ""}${strategy ? ` STRATEGY ${strategy}` : ""}`),
    );
    this.databases.add(name);
    return name;
  }

  private async withAdmin<T>(work: (admin: pg.Client) => Promise<T>): Promise<T> {
    const admin = new pg.Client({ connectionString: this.adminUrl });
    await admin.connect();
    try {
      return await work(admin);
    } finally {
      await admin.end().catch(() => undefined);
    }
  }

  private async withRedis<T>(redis: Redis | undefined, work: (redis: Redis) => Promise<T>): Promise<T> {
    if (redis) return work(redis);
    const client = new Redis(this.redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    try {
      return await work(client);
    } finally {
      client.disconnect();
    }
  }
}

async function scanAll(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  return keys;
}

async function deleteMatching(redis: Redis, pattern: string): Promise<number> {
  const keys = await scanAll(redis, pattern);
  for (let start = 0; start < keys.length; start += 1000) await redis.unlink(...keys.slice(start, start + 1000));
  return keys.length;
}

/** The one run of this process. */
export const benchRun = new BenchRun();
