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
const noQueue = [
  "test/chunk-lanes.test.ts",
  "test/docs.*.test.ts",
  "test/logger.redaction.test.ts",
  "test/messaging.schema-rules.test.ts",
  "test/migrate.message-write-path.test.ts",
  "test/package-entry.*.test.ts",
  "test/pg-binary-array.test.ts",
  "test/retry.conflict.test.ts",
  "test/uuid.test.ts",
  "test/db.slow-query-log.test.ts",
  "test/start-all.relay-line.test.ts",
  "test/migrate.test.ts",
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
        test: { name: "redis", include: ["test/**/*.test.ts"], exclude: postgresOnly, env: { TEST_QUEUE_BACKEND: "redis" } },
      },
      {
        extends: true,
        test: { name: "postgres", include: ["test/**/*.test.ts"], exclude: [...redisOnly, ...noQueue], env: { TEST_QUEUE_BACKEND: "postgres" } },
      },
    ],
  },
});
