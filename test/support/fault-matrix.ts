import { setTimeout as sleep } from "node:timers/promises";
import type { Job } from "bullmq";
import { describe, expect, it } from "vitest";
import type { Config } from "../../src/lib/config.js";
import type { Db } from "../../src/lib/db.js";
import type { QueueName } from "../../src/queues/contracts.js";
import { Producer } from "../../src/queues/producer.js";
import { type PrivateRedis, startPrivateRedis } from "./private-redis.js";
import { type CliRun, cliEnv, spawnCli } from "./spawn-cli.js";
import { createTestDatabase, type TestDatabase, testConfig, testDb, testQueueBackend } from "./test-env.js";
import { waitFor } from "./wait-for.js";

/**
 * The fault matrix (issue 22): one queue's job, run by a real worker process
 * on data large enough that the fault lands mid-work, under each fault in
 * turn. Every fault gets a world of its own (database, queue prefix and, for
 * the Redis fault, a redis-server of its own), so the three run at once.
 *
 * After each fault the job completes with no operator, the worker is still
 * alive (after SIGKILL, its replacement finished the job), and the queue's
 * domain check passes.
 */
export type Fault = "postgres-backends-killed-twice" | "redis-restarted" | "worker-sigkilled";

export interface FaultWorld {
  readonly fault: Fault;
  readonly database: TestDatabase;
  readonly db: Db;
  readonly config: Config;
  readonly producer: Producer;
}

export interface QueueUnderFaults<State> {
  queue: QueueName;
  /** Seeds the world's database; what it returns is handed to the other steps. */
  prepare(world: FaultWorld): Promise<State>;
  /** Extra environment for the worker process (a fake provider's address, say). */
  workerEnv?(world: FaultWorld, state: State): Record<string, string>;
  /** Enqueues the job the fault is aimed at. */
  enqueue(world: FaultWorld, state: State): Promise<Job>;
  /**
   * True once the job is far enough into its work for the `nth` fault (the
   * second PostgreSQL kill comes once the retried job is at work again).
   */
  midWork(world: FaultWorld, state: State, nth: 1 | 2): Promise<boolean>;
  /** Lets the job go on once every fault has landed (a row lock the test held to keep it mid-work, say). */
  afterFaults?(world: FaultWorld, state: State): Promise<void>;
  /** Releases what `prepare` holds open, whether or not the fault ran to the end. */
  release?(state: State): Promise<void>;
  /** The domain check, with expect(), once the job has completed. */
  verify(world: FaultWorld, state: State, job: Job): Promise<void>;
  /** How long the job may take to complete after the fault. @defaultValue 240000 */
  completionTimeoutMs?: number;
}

const faults: Fault[] = ["postgres-backends-killed-twice", "redis-restarted", "worker-sigkilled"];

/** Redis is in a worker's path only on the Redis backend; on PostgreSQL the first fault is the queue store's outage too. */
const applies = (fault: Fault) => fault !== "redis-restarted" || testQueueBackend() === "redis";

export function faultMatrix<State>(scenario: QueueUnderFaults<State>): void {
  describe.concurrent(`fault matrix: ${scenario.queue}`, () => {
    for (const fault of faults.filter(applies)) {
      it(`${fault}: the job completes, the worker lives, and the data is right`, { timeout: 420_000 }, async () => {
        await withWorld(fault, (world, redis) => runFault(scenario, world, redis));
      });
    }
  });
}

async function withWorld(fault: Fault, body: (world: FaultWorld, redis?: PrivateRedis) => Promise<void>): Promise<void> {
  const database = await createTestDatabase();
  const redis = fault === "redis-restarted" ? await startPrivateRedis() : undefined;
  const config = testConfig(database.url, redis ? { REDIS_URL: redis.url } : {});
  const db = testDb(database.url);
  const producer = Producer.fromConfig(config);
  try {
    await body({ fault, database, db, config, producer }, redis);
  } finally {
    await producer.close().catch(() => undefined);
    await db.close();
    await redis?.stop();
    await database.drop();
  }
}

async function runFault<State>(scenario: QueueUnderFaults<State>, world: FaultWorld, redis: PrivateRedis | undefined): Promise<void> {
  const state = await scenario.prepare(world);
  const workers: CliRun[] = [];
  const startWorker = async () => {
    const worker = spawnCli(["worker", scenario.queue], cliEnv(world.config, scenario.workerEnv?.(world, state) ?? {}));
    workers.push(worker);
    await worker.waitForOutput(/worker started/, 90_000);
    return worker;
  };
  try {
    const first = await startWorker();
    const job = await scenario.enqueue(world, state);
    const jobId = String(job.id);
    let lastState = "";
    const untilMidWork = (nth: 1 | 2) =>
      waitFor(
        `the ${scenario.queue} job to be mid-work (fault ${nth})`,
        async () => {
          lastState = await stateOf(world, scenario.queue, jobId);
          return lastState === "active" && scenario.midWork(world, state, nth);
        },
        120_000,
        25,
      ).catch((err: Error) => {
        err.message += ` (the job was last seen ${lastState})`;
        throw err;
      });

    await untilMidWork(1);
    let survivor = first;
    if (world.fault === "postgres-backends-killed-twice") {
      expect(await killBackends(world, scenario.queue)).toBeGreaterThan(0);
      await untilMidWork(2);
      expect(await killBackends(world, scenario.queue)).toBeGreaterThan(0);
    } else if (world.fault === "redis-restarted") {
      await redis?.kill();
      await sleep(2000);
      await redis?.start();
    } else {
      first.child.kill("SIGKILL");
      expect((await first.exited).signal).toBe("SIGKILL");
      survivor = await startWorker();
    }
    await scenario.afterFaults?.(world, state);

    await waitFor(
      `the ${scenario.queue} job to complete after ${world.fault}`,
      async () => {
        // A dead worker leaves the job active with no one to finish it: fail now, not at the timeout.
        if (survivor.child.exitCode !== null || survivor.child.signalCode !== null) throw new Error(`the worker exited after ${world.fault}`);
        const now = await stateOf(world, scenario.queue, jobId);
        if (now === "failed") throw new Error(`the job failed after ${world.fault}: ${(await jobOf(world, scenario.queue, jobId))?.failedReason}`);
        return now === "completed";
      },
      scenario.completionTimeoutMs ?? 240_000,
      100,
    );
    expect(survivor.child.exitCode, `worker output:\n${survivor.stderr().slice(-3000)}`).toBeNull();
    expect(survivor.child.signalCode).toBeNull();
    await scenario.verify(world, state, (await jobOf(world, scenario.queue, jobId)) as Job);
  } catch (err) {
    // What the workers printed is the first thing to read when a fault goes wrong in CI.
    const output = workers.map((worker, index) => `--- worker ${index + 1} stderr (tail):\n${worker.stderr().slice(-4000)}`).join("\n");
    if (err instanceof Error) err.message = `${err.message}\n${output}`;
    throw err;
  } finally {
    for (const worker of workers) if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.exited));
    await scenario.release?.(state);
    await (await world.producer.queue(scenario.queue)).obliterate({ force: true }).catch(() => undefined);
  }
}

async function jobOf(world: FaultWorld, queue: QueueName, id: string): Promise<Job | undefined> {
  return (await (await world.producer.queue(queue)).getJob(id)) ?? undefined;
}

/** The job's state; "unreachable" while the test's own queue connection is still reconnecting after a fault. */
async function stateOf(world: FaultWorld, queue: QueueName, id: string): Promise<string> {
  try {
    return (await (await jobOf(world, queue, id))?.getState()) ?? "missing";
  } catch {
    return "unreachable";
  }
}

/** Terminates the queue's worker sessions in this world's database (on the PostgreSQL backend, its queue store's too). */
async function killBackends(world: FaultWorld, queue: QueueName): Promise<number> {
  const { rows } = await world.db.pool.query<{ killed: number }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS killed
       FROM pg_stat_activity WHERE datname = $1 AND application_name = $2`,
    [world.database.name, `dbjobs:${queue}`],
  );
  return rows[0]?.killed ?? 0;
}
