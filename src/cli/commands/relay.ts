import type { Command } from "commander";
import { queueStoreOptions, sessionDatabaseUrl } from "../../lib/config.js";
import { createQueueStore } from "../../lib/queue-store.js";
import { exitOnSignals } from "../../lib/shutdown.js";
import { startOutboxRelay } from "../../queues/outbox-relay.js";
import { createCliContext } from "../context.js";
import { BadArgumentError } from "../operator-errors.js";

function wholeNumber(option: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min || parsed > max)
      throw new BadArgumentError(`${option} must be a whole number from ${min} to ${max}, got "${value}".`);
    return parsed;
  };
}

export function registerRelayCommand(program: Command): void {
  program
    .command("relay")
    .description(
      "move jobs enqueued in application transactions (producer.enqueue with { tx }, dbjobs.enqueue in SQL) from the outbox to the queues, until SIGTERM; needed with QUEUE_BACKEND=redis, several may run",
    )
    .option("--batch-size <n>", "outbox rows moved per transaction", wholeNumber("--batch-size", 1, 10_000), 500)
    .option("--poll-ms <ms>", "how often the outbox is read without a notification", wholeNumber("--poll-ms", 50, 600_000), 1000)
    .action(async (options: { batchSize: number; pollMs: number }) => {
      const context = createCliContext();
      const { config } = context;
      const logger = context.logger.child({ component: "relay" });
      if (config.QUEUE_BACKEND === "postgres") {
        logger.info("the queues live in PostgreSQL, where transactional enqueues need no relay; this one only moves rows left in the outbox");
      }
      // The "worker" role waits through Redis outages instead of failing each add; the rows wait in the outbox meanwhile.
      const store = createQueueStore({ ...queueStoreOptions(config), role: "worker", poolSize: 2, applicationName: "dbjobs:relay", logger });
      // Its LISTEN, and the idle_in_transaction_session_timeout set for its sessions, need sessions of their own.
      const starting = startOutboxRelay({
        databaseUrl: sessionDatabaseUrl(config),
        store,
        logger,
        batchSize: options.batchSize,
        pollIntervalMs: options.pollMs,
      });
      // Signals are handled from the start, so a SIGTERM while it connects also ends it cleanly.
      exitOnSignals(
        async () => {
          const relay = await starting.catch(() => undefined);
          await relay?.close();
          await store.close();
        },
        { timeoutMs: config.SHUTDOWN_TIMEOUT_MS, logger },
      );
      await starting;
    });
}
