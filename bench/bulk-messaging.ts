import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { QueueEvents } from "bullmq";
import { from as copyFrom } from "pg-copy-streams";
import { bulkMessagingJob, setBulkMessagingProvider } from "../src/jobs/bulk-messaging.js";
import { loadConfig } from "../src/lib/config.js";
import { countingDb } from "../src/lib/counting-pool.js";
import { createDb, type Db } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import { NoopProvider } from "../src/lib/messaging/noop-provider.js";
import { packageRoot } from "../src/lib/paths.js";
import { createRedis } from "../src/lib/redis.js";
import type { JobContext } from "../src/queues/job-definition.js";
import { Producer } from "../src/queues/producer.js";
import type { BenchRow, BenchSection } from "./bench-section.js";
import { cpuBetween, hostCpu, processCpuMs } from "./host-cpu.js";
import { benchPrefix, benchRedisUrl, freshBenchDatabase, timeMs } from "./support.js";

/**
 * bulk-messaging, SPEC §6: a 100k-recipient campaign (half the patients already
 * have a conversation) through a real `dbjobs worker bulk-messaging` process
 * with the no-op provider, against, in the same run:
 *   - seed 004's per-recipient loop (six queries each), on a 300-recipient sample
 *     (half measured before the campaign, half after);
 *   - a raw COPY of the same 100k finished message rows;
 * plus the statements per batch at batch sizes 100, 1000 and 5000 (counted at
 * the pg pool and from Prisma's query events) and the worker's peak RSS (VmHWM of its process).
 */
const recipients = Number(process.env.BENCH_BULK_RECIPIENTS ?? 100_000);
const naiveSample = 300;
const body = "Hi {{firstName}} {{lastName}}, your spring offer is here: 20% off any treatment this month.";

// Takes $1 count. Inserts that many patients, numbered; returns nothing.
const insertPatientsSql = `
INSERT INTO "patients" ("firstName", "lastName", "email", "phone")
SELECT 'First' || g, 'Last' || g, 'p' || g || '@example.test', '+1555' || lpad(g::text, 7, '0') FROM generate_series(1, $1::int) g`;

function silentLogger() {
  return createLogger({ level: "error" });
}

/** Seed 004's loop, verbatim in spirit: six queries per recipient. */
async function naiveLoop(db: Db, patientIds: string[]): Promise<void> {
  const provider = new NoopProvider();
  for (const patientId of patientIds) {
    let conversation = await db.prisma.conversation.findFirst({ where: { patientId, channel: "email" } });
    if (!conversation) conversation = await db.prisma.conversation.create({ data: { patientId, channel: "email" } });
    const message = await db.prisma.messagingMessage.create({
      data: { conversationId: conversation.id, patientId, campaignId: "naive", channel: "email", body, status: "queued" },
    });
    await db.prisma.messagingMessage.update({ where: { id: message.id }, data: { status: "sending" } });
    const sent = await provider.send({ idempotencyKey: message.id, channel: "email", to: "x", body });
    const sentAt = new Date();
    await db.prisma.messagingMessage.update({
      where: { id: message.id },
      data: { status: "sent", providerMessageId: sent.status === "sent" ? sent.providerMessageId : null, sentAt },
    });
    await db.prisma.conversation.update({ where: { id: conversation.id }, data: { lastMessageAt: sentAt, lastMessageDirection: "outbound" } });
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
  const context = {
    job: { id: "bench" },
    log: silentLogger(),
    db: counted.db,
    config,
    prefix: "bench",
    invalidateCache: async () => undefined,
    reportProgress: async () => undefined,
  } as unknown as JobContext;
  await bulkMessagingJob.handle({ campaignId: `statements-${batchSize}`, channel: "email", body, patientIds, batchSize }, context);
  await new Promise((resolve) => setImmediate(resolve));
  await db.close();
  return (counted.statements.length + prismaStatements) / Math.ceil(patientIds.length / batchSize);
}

/**
 * Node flags of the Procfile's worker-bulk-messaging line, so the bench measures
 * the worker as it is deployed: a heap cap (--max-old-space-size) keeps V8 from
 * letting garbage pile up to several times the live data before a full GC.
 */
function procfileNodeFlags(): string[] {
  const line = readFileSync(`${packageRoot}/Procfile`, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("worker-bulk-messaging:"));
  return (line?.split(/\s+/) ?? []).filter((token) => token.startsWith("--"));
}

/** Starts `dbjobs worker bulk-messaging` as a child process, built or from source. */
function spawnWorker(env: Record<string, string>) {
  // Built (npm run bench): the compiled CLI next to this file; from source: the TypeScript CLI through tsx.
  const built = import.meta.url.endsWith(".js");
  const cli = fileURLToPath(new URL(built ? "../src/cli/index.js" : "../src/cli/index.ts", import.meta.url));
  const flags = procfileNodeFlags();
  const args = built ? [...flags, cli, "worker", "bulk-messaging"] : [...flags, "--import", "tsx", cli, "worker", "bulk-messaging"];
  const child = spawn(process.execPath, args, { cwd: packageRoot, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += String(chunk);
  });
  return { child, stderr: () => stderr };
}

/**
 * Informational: where the campaign's CPU went (PostgreSQL on this machine and
 * the worker process), per message, next to PostgreSQL's CPU per row for the
 * COPY. Empty where /proc cannot tell.
 */
function cpuRows(campaign: ReturnType<typeof cpuBetween>, workerCpuMs: number, copy: ReturnType<typeof cpuBetween>, copiedRows: number): BenchRow[] {
  if (!campaign || !copy) return [];
  const postgresUs = (campaign.postgresMs * 1000) / recipients;
  const copyUs = (copy.postgresMs * 1000) / copiedRows;
  return [
    { name: "campaign: machine CPU busy (informational: near 100% means bound by CPU)", value: campaign.busyShare * 100, unit: "%" },
    {
      name: "campaign: PostgreSQL CPU per message vs per row of the raw COPY (informational; ratio = COPY / job)",
      value: postgresUs,
      unit: "µs",
      baseline: copyUs,
      ratio: copyUs / postgresUs,
    },
    { name: "campaign: worker process CPU per message (informational)", value: (workerCpuMs * 1000) / recipients, unit: "µs" },
  ];
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

export const bulkMessagingBench: BenchSection = {
  name: "bulk-messaging",
  async run(): Promise<BenchRow[]> {
    const url = await freshBenchDatabase("bulk_messaging");
    const db = createDb({ url, poolSize: 4, logger: silentLogger() });
    const extra = naiveSample + 1000 + 5000 + 10_000;
    await db.prisma.$executeRawUnsafe(insertPatientsSql, recipients + extra);
    const allIds = (await db.prisma.$queryRawUnsafe<{ id: string }[]>(`SELECT "id"::text AS id FROM "patients" ORDER BY "phone"`)).map((row) => row.id);
    const campaignIds = allIds.slice(0, recipients);
    const naiveIds = allIds.slice(recipients, recipients + naiveSample);
    const statementSets = [
      { batchSize: 100, ids: allIds.slice(recipients + naiveSample, recipients + naiveSample + 1000) },
      { batchSize: 1000, ids: allIds.slice(recipients + naiveSample + 1000, recipients + naiveSample + 6000) },
      { batchSize: 5000, ids: allIds.slice(recipients + naiveSample + 6000, recipients + extra) },
    ];
    // Half the campaign's patients already have an SMS conversation, half of the naive sample an email one.
    await db.prisma.$executeRawUnsafe(
      `INSERT INTO "conversations" ("patientId", "channel") SELECT id, 'sms' FROM unnest($1::uuid[]) AS t(id)`,
      campaignIds.filter((_, index) => index % 2 === 0),
    );
    await db.prisma.$executeRawUnsafe(
      `INSERT INTO "conversations" ("patientId", "channel") SELECT id, 'email' FROM unnest($1::uuid[]) AS t(id)`,
      naiveIds.filter((_, index) => index % 2 === 0),
    );
    await db.prisma.$executeRawUnsafe(`VACUUM ANALYZE "patients"`);
    await db.prisma.$executeRawUnsafe(`VACUUM ANALYZE "conversations"`);

    // Baseline 1: seed 004's loop on a sample, scaled per recipient. Half runs
    // before the campaign and half after, so a change in machine load during
    // the run weighs on both sides alike.
    const naiveHalf = naiveSample / 2;
    let naiveMs = await timeMs(() => naiveLoop(db, naiveIds.slice(0, naiveHalf)));

    // Statements per batch, counted, at three batch sizes.
    setBulkMessagingProvider(new NoopProvider());
    const statementRows: BenchRow[] = [];
    try {
      for (const set of statementSets) {
        const perBatch = await statementsPerBatch(url, set.ids, set.batchSize);
        statementRows.push({
          name: `statements per batch at batchSize ${set.batchSize}`,
          value: perBatch,
          unit: "statements",
          goal: "<= 6",
          met: perBatch <= 6,
        });
      }
    } finally {
      setBulkMessagingProvider(undefined);
    }

    // The project: a real worker process, 100k recipients, no-op provider.
    const prefix = benchPrefix();
    const campaignId = `bench-${randomUUID()}`;
    const worker = spawnWorker({ DATABASE_URL: url, REDIS_URL: benchRedisUrl, QUEUE_PREFIX: prefix, MESSAGING_PROVIDER: "noop", LOG_LEVEL: "warn" });
    const producer = new Producer({ redisUrl: benchRedisUrl, prefix });
    const eventsConnection = createRedis(benchRedisUrl, "worker");
    const events = new QueueEvents("bulk-messaging", { connection: eventsConnection, prefix });
    let jobRate: number;
    let rssMb: number;
    let result: unknown;
    let campaignCpu: ReturnType<typeof cpuBetween> = null;
    let workerCpuMs = Number.NaN;
    try {
      await events.waitUntilReady();
      // Wait for the worker to be up, so that its start-up is not counted in the CPU figures.
      for (let waited = 0; (await producer.queue("bulk-messaging").getWorkersCount()) === 0; waited += 100) {
        if (waited > 60_000) throw new Error("the worker did not start within 60 s");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const cpuBefore = hostCpu();
      const workerCpuBefore = processCpuMs(worker.child.pid as number);
      const job = await producer.enqueue("bulk-messaging", { campaignId, channel: "sms", body, patientIds: campaignIds });
      result = await job.waitUntilFinished(events, 600_000);
      campaignCpu = cpuBetween(cpuBefore, hostCpu());
      workerCpuMs = processCpuMs(worker.child.pid as number) - workerCpuBefore;
      const finished = await producer.queue("bulk-messaging").getJob(job.id as string);
      const seconds = ((finished?.finishedOn ?? 0) - (finished?.processedOn ?? 0)) / 1000;
      jobRate = recipients / seconds;
      rssMb = peakRssMb(worker.child.pid as number);
    } catch (err) {
      throw new Error(`worker run failed: ${(err as Error).message}\n${worker.stderr().slice(-2000)}`);
    } finally {
      worker.child.kill("SIGTERM");
      await new Promise((resolve) => worker.child.once("exit", resolve));
      await events.close();
      eventsConnection.disconnect();
      await producer.close();
    }
    const counts = result as { sent: number };
    if (counts.sent !== recipients) throw new Error(`the job sent ${counts.sent} of ${recipients} messages`);

    naiveMs += await timeMs(() => naiveLoop(db, naiveIds.slice(naiveHalf)));
    const naiveRate = naiveSample / (naiveMs / 1000);

    // Baseline 2: COPY of the same finished rows (the job's, under another campaign id).
    const rows = await db.prisma.$queryRawUnsafe<{ line: string }[]>(
      `SELECT concat_ws(E'\\t', m."conversationId", m."patientId", 'copy-baseline', m."channel", m."direction", m."body", m."status", m."providerMessageId", to_char(m."sentAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS line
         FROM "messaging_messages" m WHERE m."campaignId" = $1`,
      campaignId,
    );
    const copyText = `${rows.map((row) => row.line).join("\n")}\n`;
    const client = await db.pool.connect();
    let copyMs: number;
    const copyCpuBefore = hostCpu();
    let copyCpu: ReturnType<typeof cpuBetween> = null;
    try {
      copyMs = await timeMs(() =>
        pipeline(
          Readable.from([copyText]),
          client.query(
            copyFrom(
              `COPY "messaging_messages" ("conversationId", "patientId", "campaignId", "channel", "direction", "body", "status", "providerMessageId", "sentAt") FROM STDIN`,
            ),
          ),
        ),
      );
      copyCpu = cpuBetween(copyCpuBefore, hostCpu());
    } finally {
      client.release();
    }
    const copyRate = rows.length / (copyMs / 1000);
    await db.close();

    return [
      {
        name: `messages/s, ${recipients} recipients vs seed 004 loop (${naiveSample} sampled)`,
        value: jobRate,
        unit: "msg/s",
        baseline: naiveRate,
        ratio: jobRate / naiveRate,
        goal: ">= 100",
        met: jobRate / naiveRate >= 100,
      },
      {
        name: "messages/s vs raw COPY of the same rows",
        value: jobRate,
        unit: "msg/s",
        baseline: copyRate,
        ratio: jobRate / copyRate,
        goal: ">= 0.33",
        met: jobRate / copyRate >= 1 / 3,
      },
      ...statementRows,
      ...cpuRows(campaignCpu, workerCpuMs, copyCpu, rows.length),
      { name: `worker peak RSS, ${recipients} recipients`, value: rssMb, unit: "MB", goal: "< 300", met: rssMb < 300 },
    ];
  },
};
