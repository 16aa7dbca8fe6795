import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, PayloadValidationError } from "../src/lib/errors.js";
import { NotInTransactionError } from "../src/queues/transactional-enqueue.js";
import { testConfig, testQueueBackend, useTestDb } from "./support/test-env.js";
import { openTransactionalQueues, storedOptions, type TransactionalQueues } from "./support/transactional-queues.js";

/**
 * producer.enqueue(queue, payload, { tx }): the job commits and rolls back
 * with the caller's rows, on a Prisma interactive transaction and on a plain
 * pg client. On Redis the job goes through the outbox and the relay.
 */
describe(`enqueue in the application's transaction (${testQueueBackend()} backend)`, () => {
  const testDatabase = useTestDb();
  let queues: TransactionalQueues;

  const campaign = (campaignId: string) => ({
    campaignId,
    channel: "sms" as const,
    body: "Hi {{firstName}}",
    patientIds: [randomUUID()],
  });
  const jobsOf = async (campaignId: string) => (await queues.jobs("bulk-messaging")).filter((job) => job.data.campaignId === campaignId);
  const patientsNamed = async (lastName: string) =>
    (await testDatabase.db.pool.query(`SELECT 1 FROM "patients" WHERE "lastName" = $1`, [lastName])).rowCount ?? 0;

  beforeAll(async () => {
    queues = await openTransactionalQueues(testConfig(testDatabase.url), testDatabase.db.pool);
  });

  afterAll(async () => {
    await queues?.close();
  });

  it("a Prisma transaction that commits gives exactly one job, with the id enqueue returned", async () => {
    const campaignId = `commit-${randomUUID()}`;
    const payload = campaign(campaignId);
    const enqueued = await testDatabase.db.prisma.$transaction(async (tx) => {
      await tx.patient.create({ data: { firstName: "Ada", lastName: campaignId } });
      return queues.producer.enqueue("bulk-messaging", payload, { tx });
    });
    await queues.settled();

    const jobs = await jobsOf(campaignId);
    expect(jobs.map((job) => job.id)).toEqual([enqueued.id]);
    expect(jobs[0]?.data).toEqual(payload);
    expect(await patientsNamed(campaignId)).toBe(1);
  });

  it("a Prisma transaction that rolls back gives no job", async () => {
    const campaignId = `rollback-${randomUUID()}`;
    await expect(
      testDatabase.db.prisma.$transaction(async (tx) => {
        await tx.patient.create({ data: { firstName: "Ada", lastName: campaignId } });
        await queues.producer.enqueue("bulk-messaging", campaign(campaignId), { tx });
        throw new Error("the application changes its mind");
      }),
    ).rejects.toThrow("the application changes its mind");
    // A job committed after the rolled-back one has been relayed, so the relay had every chance to add it.
    const after = `after-${randomUUID()}`;
    await testDatabase.db.prisma.$transaction(async (tx) => queues.producer.enqueue("bulk-messaging", campaign(after), { tx }));
    await queues.settled();

    expect(await jobsOf(after)).toHaveLength(1);
    expect(await jobsOf(campaignId)).toEqual([]);
    expect(await patientsNamed(campaignId)).toBe(0);
  });

  it("a pg client: COMMIT gives exactly one job, ROLLBACK none", async () => {
    const committed = `pg-commit-${randomUUID()}`;
    const rolledBack = `pg-rollback-${randomUUID()}`;
    const client = await testDatabase.db.pool.connect();
    try {
      await client.query("BEGIN");
      const enqueued = await queues.producer.enqueue("bulk-messaging", campaign(committed), { tx: client });
      await client.query("COMMIT");
      await client.query("BEGIN");
      await queues.producer.enqueueUnknown("bulk-messaging", campaign(rolledBack), { tx: client });
      await client.query("ROLLBACK");
      await queues.settled();

      expect((await jobsOf(committed)).map((job) => job.id)).toEqual([enqueued.id]);
      expect(await jobsOf(rolledBack)).toEqual([]);
    } finally {
      client.release();
    }
  });

  it("a bad payload throws inside the transaction, naming the field, and nothing is written; the caller's rows roll back", async () => {
    const campaignId = `bad-${randomUUID()}`;
    const outboxBefore = await queues.outboxRows();
    const failure = await testDatabase.db.prisma
      .$transaction(async (tx) => {
        await tx.patient.create({ data: { firstName: "Ada", lastName: campaignId } });
        await queues.producer.enqueueUnknown("bulk-messaging", { ...campaign(campaignId), channel: "fax" }, { tx });
      })
      .catch((err: unknown) => err);

    expect(failure).toBeInstanceOf(PayloadValidationError);
    expect((failure as PayloadValidationError).fields.map((field) => field.path)).toEqual(["channel"]);
    expect(await patientsNamed(campaignId)).toBe(0);
    expect(await queues.outboxRows()).toBe(outboxBefore);
    await queues.settled();
    expect(await jobsOf(campaignId)).toEqual([]);

    // On a pg client the transaction is still usable after the throw: nothing reached the server.
    const client = await testDatabase.db.pool.connect();
    try {
      await client.query("BEGIN");
      await client.query(`INSERT INTO "patients" ("firstName", "lastName") VALUES ('Ada', $1)`, [campaignId]);
      await expect(queues.producer.enqueueUnknown("bulk-messaging", { ...campaign(campaignId), patientIds: [] }, { tx: client })).rejects.toThrow(/patientIds/);
      expect(client.getTransactionStatus()).toBe("T");
      await client.query("ROLLBACK");
    } finally {
      client.release();
    }
    expect(await patientsNamed(campaignId)).toBe(0);
  });

  it("a caller's jobId is the job's id, and enqueueing it again in another transaction keeps one job", async () => {
    const campaignId = `keyed-${randomUUID()}`;
    const jobId = `order-${randomUUID()}`;
    const first = await testDatabase.db.prisma.$transaction(async (tx) => queues.producer.enqueue("bulk-messaging", campaign(campaignId), { tx, jobId }));
    const second = await testDatabase.db.prisma.$transaction(async (tx) => queues.producer.enqueue("bulk-messaging", campaign(campaignId), { tx, jobId }));
    await queues.settled();

    expect([first.id, second.id]).toEqual([jobId, jobId]);
    expect((await jobsOf(campaignId)).map((job) => job.id)).toEqual([jobId]);
    // BullMQ's own option checks apply before anything is written.
    await expect(
      testDatabase.db.prisma.$transaction(async (tx) => queues.producer.enqueue("bulk-messaging", campaign(campaignId), { tx, jobId: "42" })),
    ).rejects.toThrow("Custom Id cannot be integers");
  });

  it("refuses a client outside a transaction, saying what to pass, and writes nothing", async () => {
    const campaignId = `refused-${randomUUID()}`;
    const payload = campaign(campaignId);
    await expect(queues.producer.enqueue("bulk-messaging", payload, { tx: testDatabase.db.prisma })).rejects.toThrow(/prisma\.\$transaction/);
    await expect(queues.producer.enqueue("bulk-messaging", payload, { tx: testDatabase.db.pool })).rejects.toThrow(/not a pg\.Pool/);
    const client = await testDatabase.db.pool.connect();
    try {
      await expect(queues.producer.enqueue("bulk-messaging", payload, { tx: client })).rejects.toBeInstanceOf(NotInTransactionError);
    } finally {
      client.release();
    }
    await queues.settled();
    expect(await jobsOf(campaignId)).toEqual([]);
  });

  it("a job enqueued in a transaction carries exactly the options Queue.add gives it (contract defaults, the call's options, deduplication)", async () => {
    const invoiceId = randomUUID();
    const viaTransaction = await testDatabase.db.prisma.$transaction(async (tx) =>
      queues.producer.enqueue("invoice-totals", { invoiceIds: [invoiceId] }, { tx, priority: 7 }),
    );
    const otherInvoice = randomUUID();
    const viaAdd = await queues.producer.enqueue("invoice-totals", { invoiceIds: [otherInvoice] }, { priority: 7 });
    await queues.settled();

    const jobs = await queues.jobs("invoice-totals");
    const stored = jobs.find((job) => job.id === viaTransaction.id);
    const added = jobs.find((job) => job.id === viaAdd.id);
    expect(stored && added).toBeTruthy();
    const withoutDedupId = (options: Record<string, unknown>) => ({ ...options, deduplication: { ...(options.deduplication as object), id: "…" } });
    expect(withoutDedupId(storedOptions(stored!))).toEqual(withoutDedupId(storedOptions(added!)));
    expect(storedOptions(stored!)).toMatchObject({
      attempts: 5,
      priority: 7,
      delay: 500,
      deduplication: { id: `invoice:${invoiceId}`, keepLastIfActive: true },
    });
    expect(stored!.priority).toBe(7);
    expect(stored!.deduplicationId).toBe(`invoice:${invoiceId}`);
  });

  it("a database without what `dbjobs migrate` creates gets an error saying so (this test runs last: it drops it)", async () => {
    await testDatabase.db.pool.query(
      testQueueBackend() === "postgres" ? "DROP SCHEMA bullmq CASCADE" : "DROP FUNCTION dbjobs.add_to_outbox(text, text, jsonb, jsonb, bigint)",
    );
    const failure = await testDatabase.db.prisma
      .$transaction(async (tx) => queues.producer.enqueue("bulk-messaging", campaign(`unmigrated-${randomUUID()}`), { tx }))
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toMatch(/run `dbjobs migrate`/i);
  });
});
