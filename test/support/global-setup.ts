import { randomBytes } from "node:crypto";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { migrate } from "../../src/lib/migrate.js";
import { ensurePooledRole, type PrivatePgbouncer, startPgbouncer } from "./pgbouncer.js";
import { type RedisCluster, startRedisCluster } from "./redis-cluster.js";
import { resolveTestServices, withDatabase } from "./services.js";

declare module "vitest" {
  export interface ProvidedContext {
    postgresAdminUrl: string;
    redisUrl: string;
    /** The `redis-cluster` project's throwaway cluster (REDIS_CLUSTER_NODES); "" in the other projects. */
    redisClusterNodes: string;
    templateDatabase: string;
    runId: string;
    /** The port of the `pgbouncer` project's pgbouncer (transaction mode); 0 in the other projects. */
    pgbouncerPort: number;
  }
}

/**
 * Once per `npm test`: find the services, build one migrated template
 * database, and share its name with every test file, which clones it
 * (Graphile Worker's approach): a fresh database per file in milliseconds.
 * For the `pgbouncer` project also a private pgbouncer in transaction mode,
 * through which testConfig and testDb send everything but sessions.
 */
export default async function setup(project: TestProject) {
  const services = await resolveTestServices();
  const runId = randomBytes(4).toString("hex");
  const templateDatabase = `dbjobs_tpl_${runId}`;
  const templateUrl = withDatabase(services.postgresAdminUrl, templateDatabase);
  // The template carries BullMQ's PostgreSQL schema too, so every cloned database can hold queues.
  await migrate({ url: templateUrl, queueDatabaseUrl: templateUrl });

  project.provide("postgresAdminUrl", services.postgresAdminUrl);
  project.provide("redisUrl", services.redisUrl);
  project.provide("templateDatabase", templateDatabase);
  project.provide("runId", runId);
  // Only the project that tests on a cluster pays for starting one.
  const cluster: RedisCluster | undefined = project.name === "redis-cluster" ? await startRedisCluster() : undefined;
  project.provide("redisClusterNodes", cluster?.nodes ?? "");
  let pgbouncer: PrivatePgbouncer | undefined;
  if (project.name === "pgbouncer") {
    await ensurePooledRole(services.postgresAdminUrl);
    pgbouncer = await startPgbouncer(services.postgresAdminUrl);
  }
  project.provide("pgbouncerPort", pgbouncer?.port ?? 0);

  return async () => {
    await pgbouncer?.stop();
    const admin = new pg.Client({ connectionString: services.postgresAdminUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname = $2", [
        `dbjobs_t_${runId}_%`,
        templateDatabase,
      ]);
      for (const row of rows) await admin.query(`DROP DATABASE IF EXISTS "${row.datname}" WITH (FORCE)`);
    } finally {
      await admin.end();
    }
    await cluster?.stop();
    await services.stop();
  };
}
