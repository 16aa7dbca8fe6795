import pg from "pg";
import { loadConfig } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import { migrateQueueDatabase } from "../src/lib/migrate.js";
import { cancelJob } from "../src/queues/cancel-job.js";
import { Producer } from "../src/queues/producer.js";
import { startWorker } from "../src/queues/start-worker.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { pairedRounds } from "./paired-rounds.js";
import { benchPrefix, freshBenchDatabase } from "./support.js";

/**
 * Fair shares per clinic (issue 20 item 4): how long clinic B's small
 * campaign takes while clinic A's 100,000-recipient campaign runs, against
 * the same campaign alone. One worker with one slot (the hard case: B gets
 * in only when A gives up its turn), the default settings (batches of 1,000,
 * a turn every MESSAGING_FAIR_SLICE_BATCHES = 5 batches), the noop provider,
 * the default PostgreSQL queue backend.
 *
 * Each round times B alone, and B enqueued once A has sent its first batch,
 * in alternating order; each with a campaign id of its own, so every message
 * is really sent. A is cancelled once B is done: only its first turns matter.
 * The ratio is per round: B's time with A ÷ B's time alone.
 */
const bigRecipients = Number(process.env.BENCH_FAIRNESS_BIG ?? 100_000);
const smallRecipients = Number(process.env.BENCH_FAIRNESS_SMALL ?? 1000);
const rounds = Number(process.env.BENCH_FAIRNESS_ROUNDS ?? 5);
const sliceBatches = 5;
const batchSize = 1000;
/** B's batches, plus a turn of A's in the worst case, plus one for the hand-over: A's batches are as big as B's. */
const goalRatio = Math.ceil(smallRecipients / batchSize) + sliceBatches + 1;

// Takes $1 count. Inserts that many patients; returns their ids.
const insertPatientsSql = `
INSERT INTO "patients" ("firstName", "lastName", "phone")
SELECT 'First' || g, 'Last' || g, '+1555' || lpad(g::text, 7, '0') FROM generate_series(1, $1::int) g RETURNING "id"::text`;

export const fairnessBench: BenchSection = {
  name: "fairness",
  async run(): Promise<BenchRow[]> {
    const url = await freshBenchDatabase("fairness");
    await migrateQueueDatabase(url);
    const config = loadConfig({
      DATABASE_URL: url,
      QUEUE_BACKEND: "postgres",
      QUEUE_PREFIX: benchPrefix(),
      MESSAGING_PROVIDER: "noop",
      MESSAGING_FAIR_SLICE_BATCHES: String(sliceBatches),
      LOG_LEVEL: "error",
    });
    const logger = createLogger({ level: "error" });
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    const producer = Producer.fromConfig(config);
    const worker = await startWorker("bulk-messaging", { config, logger, concurrency: 1 });
    const events = await producer.store.queueEvents("bulk-messaging");
    try {
      await events.waitUntilReady();
      const { rows } = await pool.query<{ id: string }>(insertPatientsSql, [bigRecipients]);
      const ids = rows.map((row) => row.id);
      const bigList = await producer.stageRecipients(ids);
      const smallIds = ids.slice(0, smallRecipients);
      const queue = await producer.queue("bulk-messaging");

      /** Enqueues clinic B's campaign and returns the milliseconds until it completes. */
      const timeSmall = async (campaignId: string) => {
        const started = performance.now();
        const job = await producer.enqueue("bulk-messaging", {
          campaignId,
          tenantId: "clinic-b",
          channel: "sms",
          body: "Hi {{firstName}}, your reminder.",
          patientIds: smallIds,
          batchSize,
        });
        const result = (await job.waitUntilFinished(events, 120_000)) as { sent: number };
        if (result.sent !== smallIds.length) throw new Error(`fairness: ${campaignId} sent ${result.sent} of ${smallIds.length}`);
        return performance.now() - started;
      };

      const result = await pairedRounds({
        label: "fairness",
        rounds,
        warmUpRounds: 1,
        baseline: (_prepared, round) => timeSmall(`b-alone-${round}`),
        subject: async (_prepared, round) => {
          const big = await producer.enqueue("bulk-messaging", {
            campaignId: `a-big-${round}`,
            tenantId: "clinic-a",
            channel: "sms",
            body: "Hi {{firstName}}, spring offers are here.",
            recipientListId: bigList.id,
            batchSize,
          });
          // B arrives while A is sending, somewhere in A's first turn.
          for (;;) {
            const progress = (await queue.getJob(String(big.id)))?.progress as { processed?: number } | undefined;
            if ((progress?.processed ?? 0) >= batchSize) break;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          const ms = await timeSmall(`b-with-a-${round}`);
          await cancelJob({
            store: producer.store,
            connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS,
            logger,
            queue: "bulk-messaging",
            jobId: String(big.id),
            actor: "bench",
            via: "cli",
          });
          return ms;
        },
        ratio: (alone, withBig) => withBig / alone,
        show: (ms) => `${Math.round(ms)} ms`,
      });
      return [
        {
          name: `fairness: clinic B's ${smallRecipients}-message campaign, time to finish with clinic A's ${bigRecipients}-message campaign running vs alone (one worker slot, batches of ${batchSize}, a turn every ${sliceBatches} batches, PostgreSQL backend, ${rounds} paired rounds; ratio = with A / alone per round)`,
          value: result.spreadOf((round) => round.subject).median,
          baseline: result.spreadOf((round) => round.baseline).median,
          unit: "ms",
          ...pairedRatio(result.ratio, rounds),
          goal: `<= ${goalRatio} (B's batches + one turn of A's + 1)`,
          met: result.ratio.median <= goalRatio,
        },
      ];
    } finally {
      await events.close();
      await worker.close();
      await producer.close();
      await pool.end();
    }
  },
};
