import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import type { Config } from "../../src/lib/config.js";
import type { Producer } from "../../src/queues/producer.js";
import { type CliRun, spawnCli } from "./spawn-cli.js";

/**
 * `dbjobs relay` as a real process (through tsx), for the tests that kill it
 * or run several, and the transactional enqueues that feed it.
 */
export function spawnRelay(config: Config, args: string[] = [], env: Record<string, string> = {}): CliRun {
  return spawnCli(["relay", ...args], {
    DATABASE_URL: config.DATABASE_URL,
    QUEUE_BACKEND: config.QUEUE_BACKEND,
    REDIS_URL: config.REDIS_URL ?? "",
    QUEUE_PREFIX: config.QUEUE_PREFIX,
    LOG_LEVEL: "info",
    SHUTDOWN_TIMEOUT_MS: "20000",
    ...env,
  });
}

/** Spawns a relay and resolves once it is connected and claiming. */
export async function startRelay(config: Config, args: string[] = [], env: Record<string, string> = {}): Promise<CliRun> {
  const relay = spawnRelay(config, args, env);
  await relay.waitForOutput(/outbox relay started/, 60_000);
  return relay;
}

/** The `relayed` total a relay logged when it stopped. */
export function relayedTotal(relay: CliRun): number {
  // The CLI logs to stderr.
  const line = `${relay.stdout()}\n${relay.stderr()}`
    .split("\n")
    .filter((text) => text.includes('"outbox relay stopped"'))
    .map((text) => JSON.parse(text) as { relayed: number })[0];
  if (!line) throw new Error(`the relay logged no "outbox relay stopped" line:\n${relay.stdout()}\n${relay.stderr()}`);
  return line.relayed;
}

/** A bulk-messaging payload whose campaignId tells the jobs apart. */
export function campaignPayload(campaignId: string) {
  return { campaignId, channel: "sms" as const, body: "Hi {{firstName}}", patientIds: [randomUUID()] };
}

/**
 * Enqueues `count` bulk-messaging jobs, one per transaction (BEGIN, an
 * application row, enqueue with { tx }, COMMIT), on `concurrency` connections
 * at once, at most `ratePerSecond` transactions a second when given.
 * Resolves with every campaignId enqueued.
 */
export async function enqueueInTransactions(
  producer: Producer,
  pool: pg.Pool,
  count: number,
  options: { concurrency?: number; prefix?: string; ratePerSecond?: number } = {},
) {
  const prefix = options.prefix ?? randomUUID().slice(0, 8);
  const campaignIds = Array.from({ length: count }, (_, index) => `${prefix}-${index}`);
  const started = Date.now();
  let next = 0;
  const lane = async () => {
    const client = await pool.connect();
    try {
      for (let index = next++; index < count; index = next++) {
        const campaignId = campaignIds[index] as string;
        const due = options.ratePerSecond ? started + (index / options.ratePerSecond) * 1000 : 0;
        if (due > Date.now()) await sleep(due - Date.now());
        await client.query("BEGIN");
        await client.query(`INSERT INTO "patients" ("firstName", "lastName") VALUES ('Relay', $1)`, [campaignId]);
        await producer.enqueue("bulk-messaging", campaignPayload(campaignId), { tx: client });
        await client.query("COMMIT");
      }
    } finally {
      client.release();
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, lane));
  return campaignIds;
}
