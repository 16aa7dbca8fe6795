import { defineConfig } from "vitest/config";

/**
 * `npm test` runs the suite once per queue backend, as two projects. A file
 * about one backend only (its name says so, or it needs Redis itself) runs in
 * that backend's project; a file that touches no queue runs once, in `redis`.
 */
const redisOnly = [
  "test/resilience.redis-restart.test.ts",
  "test/cache.redis-outage.test.ts",
  "test/outbox-relay.*.test.ts",
  "test/scheduler-lock.keep-extended.test.ts",
];
const postgresOnly = [
  "test/closing-worker.postgres-claims.test.ts",
  "test/scheduler.postgres-leader-lock.test.ts",
  "test/cache.listen-connection-lost.test.ts",
  "test/cache-prefetch.no-shared-tier.test.ts",
];
/** The suites the `redis-cluster` project runs on a three-master Redis Cluster (REDIS_CLUSTER_NODES). */
const onRedisCluster = [
  "test/redis-cluster.key-slots.test.ts",
  "test/bulk-messaging.correctness.test.ts",
  "test/bulk-messaging.idempotency.test.ts",
  "test/bulk-messaging.shared-rate-limit.test.ts",
  "test/bulk-messaging.tenant-fairness.test.ts",
  "test/cache-prefetch.cli.test.ts",
  "test/cache.job-invalidation.test.ts",
  "test/dashboard.metrics.test.ts",
  "test/invoice-totals.correctness.test.ts",
  "test/scheduler.single-registration.test.ts",
  "test/cache.round-trip.test.ts",
  "test/cache.cross-process-invalidation.test.ts",
];
/** Files that need the cluster itself. */
const clusterOnly = "test/redis-cluster.*.test.ts";
const noQueue = [
  "test/chunk-lanes.test.ts",
  "test/docs.*.test.ts",
  "test/logger.redaction.test.ts",
  "test/messaging.schema-rules.test.ts",
  "test/migrate.message-write-path.test.ts",
  "test/migrate.job-history-batches.test.ts",
  "test/package-entry.*.test.ts",
  "test/pg-binary-array.test.ts",
  "test/retry.conflict.test.ts",
  "test/uuid.test.ts",
  "test/bulk-messaging.message-id.test.ts",
  "test/db.slow-query-log.test.ts",
  "test/start-all.relay-line.test.ts",
  "test/migrate.test.ts",
  "test/config.*.test.ts",
];

/**
 * The `pgbouncer` project: each queue's main correctness files once more, on
 * the PostgreSQL backend, with DATABASE_URL through a private pgbouncer in
 * transaction mode and DIRECT_DATABASE_URL straight to PostgreSQL
 * (global-setup.ts, test-env.ts), plus the test that session work never goes
 * through the pooled URL. A few files, to keep it to minutes.
 */
const throughPgbouncer = [
  "test/pgbouncer.session-routing.test.ts",
  "test/invoice-totals.correctness.test.ts",
  "test/bulk-messaging.correctness.test.ts",
  "test/bulk-messaging.tenant-fairness.test.ts",
  "test/archiving.eligible-rows.test.ts",
  "test/transaction-retry.settlement-outcomes.test.ts",
  "test/partition-maintenance.default-rescue.test.ts",
  "test/db-maintenance.reindex.test.ts",
  "test/cache-prefetch.payload.test.ts",
  "test/cache.cross-process-invalidation.test.ts",
];

export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    // Two cores: two files at a time; each file has its own database and queue prefix.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default"],
    projects: [
      {
        extends: true,
        test: {
          name: "redis",
          include: ["test/**/*.test.ts"],
          exclude: [...postgresOnly, clusterOnly, "test/pgbouncer.*.test.ts"],
          env: { TEST_QUEUE_BACKEND: "redis" },
        },
      },
      {
        extends: true,
        test: {
          name: "postgres",
          include: ["test/**/*.test.ts"],
          exclude: [...redisOnly, ...noQueue, clusterOnly, "test/pgbouncer.*.test.ts"],
          env: { TEST_QUEUE_BACKEND: "postgres" },
        },
      },
      {
        extends: true,
        test: { name: "redis-cluster", include: onRedisCluster, env: { TEST_QUEUE_BACKEND: "redis", TEST_REDIS_CLUSTER: "1" } },
      },
      {
        extends: true,
        test: { name: "pgbouncer", include: throughPgbouncer, env: { TEST_QUEUE_BACKEND: "postgres" } },
      },
    ],
  },
});
