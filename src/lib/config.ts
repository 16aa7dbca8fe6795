import { z } from "zod";
import { dashboardUsersFromEnv } from "./dashboard-users.js";
import { ConfigError } from "./errors.js";
import type { RedisClusterNode, RedisTarget } from "./redis.js";

/**
 * Everything dbjobs reads from the environment, validated once by zod.
 * Nothing here does I/O; call `loadConfig()` at start-up and pass the result down.
 */
const booleanFromEnv = z.enum(["true", "false", "1", "0", "yes", "no"]).transform((value) => value === "true" || value === "1" || value === "yes");

const intFromEnv = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const clusterNodesFormat = "must be a comma-separated list of host:port, e.g. 10.0.0.1:7000,10.0.0.2:7000";

/** `host:port,host:port,...` into nodes; a bad entry fails with the format. */
const clusterNodesFromEnv = z.string().transform((text, ctx): RedisClusterNode[] => {
  const nodes: RedisClusterNode[] = [];
  for (const entry of text.split(",").map((part) => part.trim())) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match?.[1] || port < 1 || port > 65_535) {
      ctx.addIssue({ code: "custom", message: `${clusterNodesFormat} (got "${entry}")` });
      return z.NEVER;
    }
    nodes.push({ host: match[1].replace(/^\[|\]$/g, ""), port });
  }
  return nodes;
});

/** Slots are advisory locks tried one by one, so a limit stays small. */
const maxTenantConcurrency = 100;

const tenantLimitsFormat = `must be tenant=limit pairs separated by commas, each limit 1-${maxTenantConcurrency}, e.g. clinic-a=3,clinic-b=1`;

/** `tenant=limit,...` into a map; a bad or repeated entry fails with the format. */
const tenantLimitsFromEnv = z.string().transform((text, ctx): Record<string, number> => {
  // No prototype: a tenant may be called anything, "__proto__" included.
  const limits: Record<string, number> = Object.create(null);
  for (const entry of text.split(",").map((part) => part.trim())) {
    const match = /^([^=,\s][^=,]{0,99})=(\d{1,3})$/.exec(entry);
    const tenant = match?.[1]?.trim();
    const limit = Number(match?.[2]);
    if (!tenant || limit < 1 || limit > maxTenantConcurrency || Object.hasOwn(limits, tenant)) {
      const problem = tenant && Object.hasOwn(limits, tenant) ? `"${tenant}" is given twice` : `got "${entry}"`;
      ctx.addIssue({ code: "custom", message: `${tenantLimitsFormat} (${problem})` });
      return z.NEVER;
    }
    limits[tenant] = limit;
  }
  return limits;
});

export const configSchema = z
  .object({
    /** @defaultValue postgresql://postgres@127.0.0.1:5432/dbjobs */
    DATABASE_URL: z.url().default("postgresql://postgres@127.0.0.1:5432/dbjobs"),
    /**
     * The same database reached without a transaction-pooling PgBouncer, for
     * work that needs a session of its own (advisory locks, LISTEN, REINDEX
     * CONCURRENTLY, partition DETACH/ATTACH, session settings, migrations).
     * @defaultValue DATABASE_URL
     */
    DIRECT_DATABASE_URL: z
      .url({ protocol: /^postgres(ql)?$/, error: "must be a postgresql:// URL to the same database as DATABASE_URL, not through PgBouncer" })
      .optional(),
    /**
     * Where the queues live: `postgres` (BullMQ's PostgreSQL backend, schema
     * bullmq, no Redis needed) or `redis`. @defaultValue postgres
     */
    QUEUE_BACKEND: z.enum(["postgres", "redis"], { error: 'must be "postgres" or "redis"' }).default("postgres"),
    /** The database the queues live in when QUEUE_BACKEND=postgres (BullMQ's backend LISTENs and takes advisory locks). @defaultValue DIRECT_DATABASE_URL, else DATABASE_URL */
    QUEUE_DATABASE_URL: z.url().optional(),
    /**
     * Redis: the queues when QUEUE_BACKEND=redis (then it defaults to
     * redis://127.0.0.1:6379), and the cache's shared tier whenever it is set.
     */
    REDIS_URL: z.url().optional(),
    /**
     * Redis Cluster instead of one Redis: its seed nodes, `host:port,...`.
     * Needs QUEUE_BACKEND=redis and excludes REDIS_URL; queues, scheduler
     * lease, cache and metrics then all go through the cluster.
     */
    REDIS_CLUSTER_NODES: clusterNodesFromEnv.optional(),
    /** How long a producer, the CLI or the HTTP route waits for the queue store before failing. @defaultValue 3000 */
    QUEUE_CONNECT_TIMEOUT_MS: intFromEnv(100, 120_000).default(3000),
    /** Prefix of every BullMQ key in Redis. @defaultValue dbjobs */
    QUEUE_PREFIX: z.string().min(1).max(64).default("dbjobs"),
    /**
     * `pretty`: readable lines (pino-pretty); `json`: one JSON object per line,
     * for log shippers; `auto`: pretty when the output is a terminal, else JSON.
     * @defaultValue auto
     */
    LOG_FORMAT: z.enum(["auto", "pretty", "json"], { error: 'must be "auto", "pretty" or "json"' }).default("auto"),
    /** @defaultValue info */
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** PostgreSQL connections per process. @defaultValue 10 */
    DB_POOL_SIZE: intFromEnv(1, 500).default(10),
    /** @defaultValue 5000 */
    DB_CONNECT_TIMEOUT_MS: intFromEnv(100, 120_000).default(5000),
    /** Queries slower than this are logged and counted. @defaultValue 100 */
    SLOW_QUERY_MS: intFromEnv(1, 600_000).default(100),
    /** How long SIGTERM waits for in-flight jobs before forcing exit. @defaultValue 30000 */
    SHUTDOWN_TIMEOUT_MS: intFromEnv(100, 3_600_000).default(30_000),
    /** Overrides the registry's concurrency for `dbjobs worker`. */
    WORKER_CONCURRENCY: intFromEnv(1, 1000).optional(),

    /** Dashboard (SPEC §5). @defaultValue 127.0.0.1 */
    DASHBOARD_HOST: z.string().min(1).default("127.0.0.1"),
    /** @defaultValue 3000 */
    DASHBOARD_PORT: intFromEnv(0, 65_535).default(3000),
    DASHBOARD_USER: z.string().min(1).optional(),
    DASHBOARD_PASSWORD: z.string().min(1).optional(),
    DASHBOARD_TOKEN: z.string().min(16, "use at least 16 characters").optional(),
    /** Several users, each with a role: `name:role:hash,...` (role viewer or operator, hash from `dbjobs hash-password`). */
    DASHBOARD_USERS: dashboardUsersFromEnv.optional(),
    /** A bearer token that may only read (role viewer). */
    DASHBOARD_VIEWER_TOKEN: z.string().min(16, "use at least 16 characters").optional(),
    /** Serve the dashboard without credentials; only honoured on 127.0.0.1. @defaultValue false */
    DASHBOARD_ALLOW_NO_AUTH: booleanFromEnv.default(false),

    /** Cache TTLs per kind of data (seed 002 tiers). */
    CACHE_TTL_REFERENCE_MS: intFromEnv(1, 86_400_000).default(300_000),
    CACHE_TTL_BALANCE_MS: intFromEnv(1, 86_400_000).default(10_000),
    CACHE_TTL_AGGREGATE_MS: intFromEnv(1, 86_400_000).default(60_000),
    /** Entries kept in each process's in-memory tier. @defaultValue 10000 */
    CACHE_L1_MAX_ENTRIES: intFromEnv(1, 10_000_000).default(10_000),

    /** SMS/email provider for bulk messaging. @defaultValue log */
    MESSAGING_PROVIDER: z.enum(["log", "http", "noop"]).default("log"),
    MESSAGING_HTTP_BASE_URL: z.url().optional(),
    MESSAGING_HTTP_ACCOUNT_SID: z.string().min(1).optional(),
    MESSAGING_HTTP_AUTH_TOKEN: z.string().min(1).optional(),
    MESSAGING_HTTP_FROM: z.string().min(1).default("dbjobs"),
    /** @defaultValue 10000 */
    MESSAGING_HTTP_TIMEOUT_MS: intFromEnv(100, 120_000).default(10_000),
    /** Provider calls per second, for every bulk-messaging worker together. @defaultValue no limit */
    MESSAGING_RATE_PER_SECOND: intFromEnv(1, 100_000).optional(),
    /** Calls any one second may carry above the rate. @defaultValue a tenth of the rate, at least 2 */
    MESSAGING_RATE_BURST: intFromEnv(2, 1_000_000).optional(),
    /** Campaigns of one tenant (a clinic: the payload's `tenantId`) sending at once, over all workers together. @defaultValue 1 */
    MESSAGING_TENANT_CONCURRENCY: intFromEnv(1, maxTenantConcurrency).default(1),
    /** Per-tenant exceptions to MESSAGING_TENANT_CONCURRENCY: `tenant=limit,...`, e.g. `clinic-a=3,clinic-b=1`. */
    MESSAGING_TENANT_LIMITS: tenantLimitsFromEnv.optional(),
    /** Batches a campaign sends before it lets a waiting campaign have its worker slot. @defaultValue 5 */
    MESSAGING_FAIR_SLICE_BATCHES: intFromEnv(1, 1_000_000).default(5),
    /** Staged recipient lists unused this long are deleted at the next staging. @defaultValue 7 */
    RECIPIENT_LIST_RETENTION_DAYS: intFromEnv(1, 3650).default(7),

    /** Settlement attempts before a transaction is FAILED for good. @defaultValue 8 */
    TRANSACTION_MAX_ATTEMPTS: intFromEnv(1, 100).default(8),

    /** Record every finished job in dbjobs.job_history (searched by `dbjobs search`). @defaultValue true */
    HISTORY_ENABLED: booleanFromEnv.default(true),
    /** Days of job history, and of the audit log, kept; older days are dropped whole. @defaultValue 30 */
    HISTORY_RETENTION_DAYS: intFromEnv(1, 3650).default(30),
    /** The history writer flushes at least this often; a crash loses at most this long of finished jobs. @defaultValue 1000 */
    HISTORY_FLUSH_MS: intFromEnv(10, 600_000).default(1000),
    /** The history writer flushes as soon as this many rows wait, in one INSERT. @defaultValue 500 */
    HISTORY_BATCH_SIZE: intFromEnv(1, 50_000).default(500),

    /** Who the CLI's operator actions are recorded as in the audit log. @defaultValue the OS user */
    DBJOBS_ACTOR: z.string().min(1).max(200).optional(),
    /** With DASHBOARD_USERS set: the password of the DASHBOARD_USERS operator DBJOBS_ACTOR names, for the CLI's mutating verbs. */
    DBJOBS_PASSWORD: z.string().min(1).optional(),
    /** With DASHBOARD_USERS set: DASHBOARD_TOKEN's value, letting the CLI's mutating verbs act as operator. */
    DBJOBS_TOKEN: z.string().min(16, "use at least 16 characters (it must equal DASHBOARD_TOKEN)").optional(),

    /** Cron overrides for the default schedules (SPEC §4), e.g. SCHEDULE_ARCHIVING="0 3 1 * *". */
    SCHEDULE_PARTITION_MAINTENANCE: z.string().min(1).optional(),
    SCHEDULE_TRANSACTION_RETRY: z.string().min(1).optional(),
    SCHEDULE_CACHE_PREFETCH: z.string().min(1).optional(),
    SCHEDULE_ANALYZE: z.string().min(1).optional(),
    SCHEDULE_REINDEX: z.string().min(1).optional(),
    SCHEDULE_ARCHIVING: z.string().min(1).optional(),
    /** Scheduler lease: a standby takes over this long after the holder dies. @defaultValue 15000 */
    SCHEDULER_LEASE_MS: intFromEnv(1000, 600_000).default(15_000),

    /**
     * OpenTelemetry: where traces go over OTLP/HTTP (JSON), e.g. http://127.0.0.1:4318
     * (spans to <endpoint>/v1/traces). Unset: no tracing, no OTel module loaded (src/lib/tracing.ts).
     */
    OTEL_EXPORTER_OTLP_ENDPOINT: z
      .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL of an OTLP/HTTP receiver, e.g. http://127.0.0.1:4318" })
      .optional(),
    /** service.name of this process's spans. @defaultValue dbjobs-<verb> for the CLI, dbjobs for startTracing() */
    OTEL_SERVICE_NAME: z.string().min(1).max(200).optional(),
    /** Longest a finished span waits before it is exported (ms). @defaultValue 5000 */
    OTEL_BSP_SCHEDULE_DELAY: intFromEnv(1, 600_000).default(5000),
  })
  .superRefine((config, ctx) => {
    if (config.REDIS_CLUSTER_NODES !== undefined) {
      if (config.QUEUE_BACKEND !== "redis") {
        ctx.addIssue({ code: "custom", path: ["REDIS_CLUSTER_NODES"], message: "needs QUEUE_BACKEND=redis; set it, or unset REDIS_CLUSTER_NODES" });
      }
      if (config.REDIS_URL !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["REDIS_CLUSTER_NODES"],
          message: "conflicts with REDIS_URL; set one: REDIS_CLUSTER_NODES for a cluster, REDIS_URL for one Redis",
        });
      }
    }
    if (config.DBJOBS_PASSWORD !== undefined && config.DBJOBS_ACTOR === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["DBJOBS_PASSWORD"],
        message: "needs DBJOBS_ACTOR naming the DASHBOARD_USERS user it belongs to; set it, or unset the password",
      });
    }
    const rate = config.MESSAGING_RATE_PER_SECOND;
    if (rate === undefined) {
      if (config.MESSAGING_RATE_BURST !== undefined) {
        ctx.addIssue({ code: "custom", path: ["MESSAGING_RATE_BURST"], message: "needs MESSAGING_RATE_PER_SECOND; set the rate too, or unset the burst" });
      }
      return;
    }
    // The shared limiter cuts each second into slots holding half the burst each (provider-rate-limit.ts); shorter than 20 ms they would cost more store calls than sends.
    const burst = messagingRateBurst(rate, config.MESSAGING_RATE_BURST);
    if (rate / Math.floor(burst / 2) > 50) {
      ctx.addIssue({
        code: "custom",
        path: ["MESSAGING_RATE_BURST"],
        message: `must be at least ${2 * Math.ceil(rate / 50)} for MESSAGING_RATE_PER_SECOND=${rate} (about a 25th of the rate); raise it or leave it unset`,
      });
    }
  });

/** The burst in use: MESSAGING_RATE_BURST, else a tenth of the rate, at least 2. */
export function messagingRateBurst(ratePerSecond: number, burst: number | undefined): number {
  return burst ?? Math.max(2, Math.ceil(ratePerSecond / 10));
}

export type Config = z.infer<typeof configSchema>;

/** Parses the environment; throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(`Invalid environment: ${problems.join("; ")}. Fix these variables and start again.`);
  }
  const config = parsed.data;
  if (config.QUEUE_BACKEND === "redis" && !config.REDIS_CLUSTER_NODES) config.REDIS_URL ??= "redis://127.0.0.1:6379";
  return config;
}

/** The Redis this configuration uses: the cluster's nodes, else REDIS_URL; undefined without Redis. */
export function redisTarget(config: Pick<Config, "REDIS_URL" | "REDIS_CLUSTER_NODES">): RedisTarget | undefined {
  return config.REDIS_CLUSTER_NODES ? { clusterNodes: config.REDIS_CLUSTER_NODES } : config.REDIS_URL;
}

/** Where work that needs a session of its own connects: DIRECT_DATABASE_URL, else DATABASE_URL. */
export function sessionDatabaseUrl(config: Pick<Config, "DATABASE_URL" | "DIRECT_DATABASE_URL">): string {
  return config.DIRECT_DATABASE_URL ?? config.DATABASE_URL;
}

/** The queue store a process of this configuration uses. */
export function queueStoreOptions(config: Config) {
  return config.QUEUE_BACKEND === "redis"
    ? ({ kind: "redis", redisUrl: config.REDIS_URL, redisClusterNodes: config.REDIS_CLUSTER_NODES, prefix: config.QUEUE_PREFIX } as const)
    : ({ kind: "postgres", databaseUrl: config.QUEUE_DATABASE_URL ?? sessionDatabaseUrl(config), prefix: config.QUEUE_PREFIX } as const);
}
