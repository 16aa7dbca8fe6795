import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Job, QueueEvents } from "bullmq";
import { from as copyFrom } from "pg-copy-streams";
import { bulkMessagingPayload } from "../src/jobs/bulk-messaging/contract.js";
import { handleBulkMessaging } from "../src/jobs/bulk-messaging/handler.js";
import { NoopProvider } from "../src/jobs/bulk-messaging/noop-provider.js";
import { loadConfig } from "../src/lib/config.js";
import { createDb, type Db, type PrismaClient } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import { createRedis } from "../src/lib/redis.js";
import type { JobContext } from "../src/queues/job-context.js";
import { Producer } from "../src/queues/producer.js";
import { workerServices } from "../src/queues/worker-services.js";
import { countingDb } from "../test/support/counting-pool.js";
import { benchRun } from "./bench-run.js";
import { type BenchRow, type BenchSection, pairedRatio } from "./bench-section.js";
import { cpuBetween, hostCpu, postgresPidsOf, processCpuMs } from "./host-cpu.js";
import { pairedRounds } from "./paired-rounds.js";
import { applicationPrisma, benchPrefix, benchRedisUrl, freshBenchDatabase, timeMs } from "./support.js";
import { spawnCliWorker } from "./worker-process.js";

/**
 * bulk-messaging, SPEC §6: 100k-recipient campaigns (half the patients already
 * have a conversation) through a real `dbjobs worker bulk-messaging` process
 * with the no-op provider, against two baselines in the same paired rounds:
 *   - seed 004's per-recipient loop (six queries each), warmed up and then
 *     timed on 200 recipients;
 *   - a raw COPY of 100k finished message rows of the same shape (rendered
 *     body, provider id, sent time) into the same table, for recipients of
 *     its own that all have a conversation already, so it needs nothing the
 *     campaign writes and can run before it as well as after;
 * plus the statements per batch at batch sizes 100, 1000 and 5000 (counted at
 * the pg pool and from Prisma's query events) and the worker's peak RSS (VmHWM of its process).
 *
 * Each round has a fresh database (copied from the run's migrated template,
 * untimed) and runs the baselines (half the loop sample, the COPY, the other
 * half: both centred on the same moment) and the campaign back to back,
 * alternating which goes first; the ratios are the per-round ones' lowest,
 * median and highest. On this 2-core VM the machine's speed drifts by ±15%
 * from one few-second stretch to the next, which is what the pairing absorbs.
 */
const recipients = Number(process.env.BENCH_BULK_RECIPIENTS ?? 100_000);
/** Paired rounds, each with its own campaign, COPY and loop sample on a fresh database. */
const rounds = Number(process.env.BENCH_BULK_ROUNDS ?? 5);
/** Loop recipients timed per round (half either side of the COPY), after an untimed warm-up. */
const loopSample = 200;
const loopWarmup = 100;
const body = "Hi {{firstName}} {{lastName}}, your spring offer is here: 20% off any treatment this month.";

// Takes $1 count. Inserts that many patients, numbered; returns nothing.
const insertPatientsSql = `
INSERT INTO "patients" ("firstName", "lastName", "email", "phone")
SELECT 'First' || g, 'Last' || g, 'p' || g || '@example.test', '+1555' || lpad(g::text, 7, '0') FROM generate_series(1, $1::int) g`;

function silentLogger() {
  return createLogger({ level: "error" });
}

/** Seed 004's loop, verbatim in spirit: six queries per recipient. */
async function naiveLoop(prisma: PrismaClient, patientIds: string[]): Promise<void> {
  const provider = new NoopProvider();
  for (const patientId of patientIds) {
    let conversation = await prisma.conversation.findFirst({ where: { patientId, channel: "email" } });
    if (!conversation) conversation = await prisma.conversation.create({ data: { patientId, channel: "email" } });
    const message = await prisma.messagingMessage.create({
      data: { conversationId: conversation.id, patientId, campaignId: "naive", channel: "email", body, status: "queued" },
    });
    await prisma.messagingMessage.update({ where: { id: message.id }, data: { status: "sending" } });
    const sent = await provider.send({ idempotencyKey: message.id, channel: "email", to: "x", body });
    const sentAt = new Date();
    await prisma.messagingMessage.update({
      where: { id: message.id },
      data: { status: "sent", providerMessageId: sent.status === "sent" ? sent.providerMessageId : null, sentAt },
    });
    await prisma.conversation.update({ where: { id: conversation.id }, data: { lastMessageAt: sentAt, lastMessageDirection: "outbound" } });
  }
}

/**
 * Runs the job in this process on `patientIds` (a whole number of batches) and
 * returns its statements per batch, counted from both ways a job reaches the
 * database: the pg pool (countingDb) and Prisma's query events. Batches run
 * two at a time, so the count is taken per job and divided.
 */
async function statementsPerBatch(url: string, patientIds: string[], batchSize: number): Promise<number> {
  const db = createDb({ url, poolSize: 4, logger: silentLogger() });
  let prismaStatements = 0;
  // createDb already listens for slow queries; Prisma calls every listener.
  (db.prisma as unknown as { $on(event: "query", listener: () => void): void }).$on("query", () => {
    prismaStatements++;
  });
  // Half of them already have an email conversation, as in the main run.
  await db.pool.query(`INSERT INTO "conversations" ("patientId", "channel") SELECT id, 'email' FROM unnest($1::uuid[]) AS t(id) ON CONFLICT DO NOTHING`, [
    patientIds.filter((_, index) => index % 2 === 0),
  ]);
  await new Promise((resolve) => setImmediate(resolve));
  prismaStatements = 0;
  const counted = countingDb(db);
  const config = loadConfig({ DATABASE_URL: url, MESSAGING_PROVIDER: "noop" });
  // Not test/support's directJobContext: that module needs vitest, which the built bench does not run under.
  // Typed, not cast: a field the runtime adds to JobContext must be added here too.
  const context: JobContext = {
    job: { id: "bench", progress: 0 } as Job,
    log: silentLogger(),
    db: counted.db,
    signal: new AbortController().signal,
    redis: undefined,
    config,
    prefix: "bench",
    services: workerServices(config, { messaging: () => new NoopProvider() }),
    invalidateCache: async () => undefined,
    reportProgress: async () => undefined,
    postpone: async () => {
      throw new Error("not in a worker");
    },
    waitingJobs: async () => 0,
  };
  const payload = bulkMessagingPayload.parse({ campaignId: `statements-${batchSize}`, channel: "email", body, patientIds, batchSize });
  await handleBulkMessaging(payload, context);
  await new Promise((resolve) => setImmediate(resolve));
  await db.close();
  return (counted.statements.length + prismaStatements) / Math.ceil(patientIds.length / batchSize);
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

// Takes $1 uuid[] patient ids, $2 the body template, $3 campaign id. Returns one
// COPY text line per patient: a finished message in its sms conversation, as the
// campaign leaves it (body rendered, provider id, sent time).
const copyLinesSql = `
SELECT concat_ws(E'\\t', c."id", p."id", $3::text, 'sms', 'outbound',
                 replace(replace($2::text, '{{firstName}}', p."firstName"), '{{lastName}}', p."lastName"),
                 'sent', 'noop-' || gen_random_uuid(), to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS line
  FROM unnest($1::uuid[]) AS b("id")
  JOIN "patients" p ON p."id" = b."id"
  JOIN "conversations" c ON c."patientId" = p."id" AND c."channel" = 'sms'`;

/**
 * A fresh database for one round: the campaign's patients, half with an SMS
 * conversation; the COPY's, each with one; the loop's, half with an email one.
 * The COPY's text is built here, untimed, and the loop is warmed up.
 */
async function prepareRound(round: number) {
  const url = await freshBenchDatabase(`bulk_messaging_round_${round + 1}`);
  const db = createDb({ url, poolSize: 4, logger: silentLogger() });
  const appPrisma = applicationPrisma(url);
  try {
    await db.prisma.$executeRawUnsafe(insertPatientsSql, 2 * recipients + loopWarmup + loopSample);
    const allIds = (await db.prisma.$queryRawUnsafe<{ id: string }[]>(`SELECT "id"::text AS id FROM "patients" ORDER BY "phone"`)).map((row) => row.id);
    const campaignIds = allIds.slice(0, recipients);
    const copyIds = allIds.slice(recipients, 2 * recipients);
    const loopIds = allIds.slice(2 * recipients);
    const conversations = `INSERT INTO "conversations" ("patientId", "channel") SELECT id, $2::"MessageChannel" FROM unnest($1::uuid[]) AS t(id)`;
    await db.pool.query(conversations, [campaignIds.filter((_, index) => index % 2 === 0), "sms"]);
    await db.pool.query(conversations, [copyIds, "sms"]);
    await db.pool.query(conversations, [loopIds.filter((_, index) => index % 2 === 0), "email"]);
    await db.pool.query(`VACUUM ANALYZE "patients", "conversations"`);
    const { rows } = await db.pool.query<{ line: string }>(copyLinesSql, [copyIds, body, `copy-${round}`]);
    const copyText = `${rows.map((row) => row.line).join("\n")}\n`;
    // The loop runs untimed on a few recipients first: Prisma's query path
    // is compiled by V8 on first use, and a cold loop is 20–30% slower
    // than the same loop a few hundred queries later.
    await naiveLoop(appPrisma, loopIds.slice(0, loopWarmup));
    return { url, db, appPrisma, campaignIds, copyText, copyRows: rows.length, sampleIds: loopIds.slice(loopWarmup) };
  } catch (err) {
    await releaseRound({ url, db, appPrisma });
    throw err;
  }
}

type PreparedRound = Awaited<ReturnType<typeof prepareRound>>;

async function releaseRound(round: Pick<PreparedRound, "url" | "db" | "appPrisma">): Promise<void> {
  await round.appPrisma.$disconnect();
  await round.db.close();
  await benchRun.dropDatabase(round.url);
}

/** Statements per batch at batch sizes 100, 1000 and 5000, on a database of their own. */
async function statementRows(): Promise<BenchRow[]> {
  const sets = [
    { batchSize: 100, patients: 1000 },
    { batchSize: 1000, patients: 5000 },
    { batchSize: 5000, patients: 10_000 },
  ];
  const url = await freshBenchDatabase("bulk_messaging_statements");
  const db = createDb({ url, poolSize: 4, logger: silentLogger() });
  const rows: BenchRow[] = [];
  try {
    await db.prisma.$executeRawUnsafe(
      insertPatientsSql,
      sets.reduce((sum, set) => sum + set.patients, 0),
    );
    const ids = (await db.prisma.$queryRawUnsafe<{ id: string }[]>(`SELECT "id"::text AS id FROM "patients" ORDER BY "phone"`)).map((row) => row.id);
    let start = 0;
    for (const set of sets) {
      const perBatch = await statementsPerBatch(url, ids.slice(start, start + set.patients), set.batchSize);
      start += set.patients;
      rows.push({ name: `statements per batch at batchSize ${set.batchSize}`, value: perBatch, unit: "statements", goal: "<= 6", met: perBatch <= 6 });
    }
  } finally {
    await db.close();
    await benchRun.dropDatabase(url);
  }
  return rows;
}

interface CampaignFigures {
  /** Messages per second, from the job's processedOn to its finishedOn. */
  jobRate: number;
  /** CPU of the worker process per message, µs. */
  workerUsPerMessage: number;
  /** Machine CPU use and PostgreSQL's CPU while the job ran; null where /proc cannot tell. */
  cpu: ReturnType<typeof cpuBetween>;
  rssMb: number;
}

/** Runs one campaign to `patientIds` through a new `dbjobs worker bulk-messaging` process on `url`. */
async function runCampaign(url: string, db: Db, patientIds: string[]): Promise<CampaignFigures> {
  const prefix = benchPrefix();
  const campaignId = `bench-${randomUUID()}`;
  const worker = spawnCliWorker("bulk-messaging", {
    QUEUE_BACKEND: "redis",
    DATABASE_URL: url,
    REDIS_URL: benchRedisUrl,
    QUEUE_PREFIX: prefix,
    MESSAGING_PROVIDER: "noop",
    LOG_LEVEL: "warn",
  });
  const producer = new Producer({ redisUrl: benchRedisUrl, prefix });
  const eventsConnection = createRedis(benchRedisUrl, "worker");
  const events = new QueueEvents("bulk-messaging", { connection: eventsConnection, prefix });
  try {
    await events.waitUntilReady();
    // Wait for the worker to be up, so that its start-up is not counted in the CPU figures.
    for (let waited = 0; (await (await producer.queue("bulk-messaging")).getWorkersCount()) === 0; waited += 100) {
      if (waited > 60_000) throw new Error("the worker did not start within 60 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const cpuBefore = hostCpu();
    const workerCpuBefore = processCpuMs(worker.pid);
    const job = await producer.enqueue("bulk-messaging", { campaignId, channel: "sms", body, patientIds });
    const result = (await job.waitUntilFinished(events, 600_000)) as { sent: number };
    const cpuAfter = hostCpu();
    // Taken while the worker's connections are still open.
    const cpu = cpuBetween(cpuBefore, cpuAfter, await postgresPidsOf(db.pool));
    const workerCpuMs = processCpuMs(worker.pid) - workerCpuBefore;
    if (result.sent !== patientIds.length) throw new Error(`the job sent ${result.sent} of ${patientIds.length} messages`);
    const finished = await (await producer.queue("bulk-messaging")).getJob(job.id as string);
    const seconds = ((finished?.finishedOn ?? 0) - (finished?.processedOn ?? 0)) / 1000;
    return {
      jobRate: patientIds.length / seconds,
      workerUsPerMessage: (workerCpuMs * 1000) / patientIds.length,
      cpu,
      rssMb: peakRssMb(worker.pid),
    };
  } catch (err) {
    throw new Error(`worker run failed: ${(err as Error).message}\n${worker.stderr().slice(-2000)}`);
  } finally {
    await worker.stop();
    await events.close();
    eventsConnection.disconnect();
    await producer.close();
    await benchRun.removeKeys(prefix);
  }
}

/** COPYs the round's prepared finished message rows; returns rows per second and PostgreSQL's CPU meanwhile. */
async function copyRows(db: Db, copyText: string, rows: number) {
  const client = await db.pool.connect();
  try {
    const cpuBefore = hostCpu();
    const copyMs = await timeMs(() =>
      pipeline(
        Readable.from([copyText]),
        client.query(
          copyFrom(
            `COPY "messaging_messages" ("conversationId", "patientId", "campaignId", "channel", "direction", "body", "status", "providerMessageId", "sentAt") FROM STDIN`,
          ),
        ),
      ),
    );
    const cpuAfter = hostCpu();
    return { rate: rows / (copyMs / 1000), cpu: cpuBetween(cpuBefore, cpuAfter, await postgresPidsOf(db.pool)) };
  } finally {
    client.release();
  }
}

interface BaselineFigures {
  loopRate: number;
  copyRate: number;
  /** PostgreSQL CPU per COPY row, µs; NaN where /proc cannot tell. */
  copyPostgresUs: number;
}

export const bulkMessagingBench: BenchSection = {
  name: "bulk-messaging",
  async run(): Promise<BenchRow[]> {
    const paired = await pairedRounds({
      label: "bulk-messaging",
      rounds,
      prepare: prepareRound,
      release: releaseRound,
      baseline: async (round): Promise<BaselineFigures> => {
        const half = round.sampleIds.length / 2;
        let loopMs = await timeMs(() => naiveLoop(round.appPrisma, round.sampleIds.slice(0, half)));
        const copy = await copyRows(round.db, round.copyText, round.copyRows);
        loopMs += await timeMs(() => naiveLoop(round.appPrisma, round.sampleIds.slice(half)));
        return {
          loopRate: round.sampleIds.length / (loopMs / 1000),
          copyRate: copy.rate,
          copyPostgresUs: copy.cpu ? (copy.cpu.postgresMs * 1000) / round.copyRows : Number.NaN,
        };
      },
      subject: (round) => runCampaign(round.url, round.db, round.campaignIds),
      ratio: (baseline, campaign) => campaign.jobRate / baseline.copyRate,
      show: (figures) =>
        "jobRate" in figures
          ? `job ${Math.round(figures.jobRate)} msg/s (worker ${figures.workerUsPerMessage.toFixed(1)} µs cpu/msg)`
          : `COPY ${Math.round(figures.copyRate)} rows/s, loop ${figures.loopRate.toFixed(1)} msg/s`,
    });
    const count = paired.rounds.length;
    const workerUs = paired.spreadOf((round) => round.subject.workerUsPerMessage);
    const jobRate = paired.spreadOf((round) => round.subject.jobRate).median;
    const loopRatio = paired.spreadOf((round) => round.subject.jobRate / round.baseline.loopRate);
    const rssMb = Math.max(...paired.rounds.map((round) => round.subject.rssMb));
    const cpuKnown = paired.rounds.every((round) => round.subject.cpu && !Number.isNaN(round.baseline.copyPostgresUs));
    const postgresUs = (round: (typeof paired.rounds)[number]) => ((round.subject.cpu?.postgresMs ?? Number.NaN) * 1000) / recipients;
    return [
      {
        name: `messages/s, ${recipients} recipients vs a raw COPY of as many finished message rows (${count} paired rounds; ratio = job / COPY per round)`,
        value: jobRate,
        unit: "msg/s",
        baseline: paired.spreadOf((round) => round.baseline.copyRate).median,
        ...pairedRatio(paired.ratio, count),
        goal: ">= 0.40",
        met: paired.ratio.median >= 0.4,
      },
      {
        name: `messages/s vs seed 004 loop (same rounds; loop warmed up, timed on ${loopSample} recipients per round; ratio = job / loop per round)`,
        value: jobRate,
        unit: "msg/s",
        baseline: paired.spreadOf((round) => round.baseline.loopRate).median,
        ...pairedRatio(loopRatio, count),
        goal: ">= 100",
        met: loopRatio.median >= 100,
      },
      ...(await statementRows()),
      {
        name: "campaign: worker process CPU per message (informational)",
        value: workerUs.median,
        unit: "µs",
        valueRange: { min: workerUs.min, max: workerUs.max, runs: count },
      },
      ...(cpuKnown
        ? [
            {
              name: "campaign: machine CPU busy (informational: near 100% means bound by CPU)",
              value: paired.spreadOf((round) => (round.subject.cpu?.busyShare ?? Number.NaN) * 100).median,
              unit: "%",
            },
            {
              name: "campaign: PostgreSQL CPU per message vs per row of the raw COPY (informational: the round database's backends and the server's background processes; ratio = COPY / job per round)",
              value: paired.spreadOf(postgresUs).median,
              unit: "µs",
              baseline: paired.spreadOf((round) => round.baseline.copyPostgresUs).median,
              ...pairedRatio(
                paired.spreadOf((round) => round.baseline.copyPostgresUs / postgresUs(round)),
                count,
              ),
            },
          ]
        : []),
      { name: `worker peak RSS, ${recipients} recipients (highest round)`, value: rssMb, unit: "MB", goal: "< 300", met: rssMb < 300 },
    ];
  },
};
