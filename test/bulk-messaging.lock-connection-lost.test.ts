import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { MessagingProvider, OutboundMessage, SendOutcome } from "../src/jobs/bulk-messaging/provider.js";
import { SessionLostError } from "../src/lib/errors.js";
import { directJobContext, runHandler } from "./support/direct-job-context.js";
import { testConfig, useTestDb } from "./support/test-env.js";
import { waitFor } from "./support/wait-for.js";

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** Accepts every message; while `gate` is set, each send waits for it to open. */
class GatedProvider implements MessagingProvider {
  readonly name = "gated";
  readonly sends: string[] = [];
  gate: Promise<void> | undefined;
  readonly firstSend = deferred();

  async send(message: OutboundMessage): Promise<SendOutcome> {
    this.sends.push(message.idempotencyKey);
    this.firstSend.resolve();
    await this.gate;
    return { status: "sent", providerMessageId: `gated-${message.idempotencyKey}` };
  }
}

/**
 * The campaign's advisory lock lives on a connection of its own. When that
 * connection is killed mid-campaign, the lock is gone: the job must start no
 * further batch and fail with an error the worker retries (never crash the
 * process, never carry on unlocked), and the retry must finish the campaign,
 * sending each message once.
 */
describe("bulk-messaging when its lock connection is killed", () => {
  const testDatabase = useTestDb();

  it("stops starting batches, fails retryably, and the rerun finishes the campaign", async () => {
    const { db, url } = testDatabase;
    const config = testConfig(url);
    const patients = await db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "patients" ("firstName", "lastName", "phone") SELECT 'P', 'Q' || g, '+1777' || lpad(g::text, 4, '0') FROM generate_series(1, 40) g RETURNING "id"::text`,
    );
    // Four batches of ten; two run at once, so the third waits for a free lane.
    const payload = { campaignId: "lock-lost", channel: "sms" as const, body: "Hi", patientIds: patients.map((p) => p.id), batchSize: 10 };
    const provider = new GatedProvider();
    const opened = deferred();
    provider.gate = opened.promise;

    const { context } = directJobContext(db, config, { services: { messaging: () => provider } });
    const run = runHandler("bulk-messaging", payload, context);
    const settled = run.then(
      () => undefined,
      (err: unknown) => err,
    );

    await provider.firstSend.promise;
    const { rows } = await db.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(rows).toHaveLength(1);
    const lockPid = rows[0]?.pid as number;
    await db.pool.query("SELECT pg_terminate_backend($1)", [lockPid]);
    await waitFor("the lock connection to end", async () => {
      const { rows: left } = await db.pool.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [lockPid]);
      return left.length === 0;
    });
    // Lets the client see its socket close before the batches in flight finish.
    await sleep(200);
    opened.resolve();

    const failure = await settled;
    expect(failure).toBeInstanceOf(SessionLostError);
    expect((failure as SessionLostError).retryable).toBe(true);
    // The two batches in flight finished; the other two never started.
    expect(await db.prisma.messagingMessage.count({ where: { campaignId: "lock-lost" } })).toBe(20);
    expect(await db.prisma.messagingMessage.count({ where: { campaignId: "lock-lost", status: "sent" } })).toBe(20);

    provider.gate = undefined;
    const result = await runHandler("bulk-messaging", payload, directJobContext(db, config, { services: { messaging: () => provider } }).context);
    expect(result).toEqual({ processed: 40, total: 40, sent: 40, failed: 0, skipped: 0 });
    expect(provider.sends).toHaveLength(40);
    expect(new Set(provider.sends).size).toBe(40);
  });
});
