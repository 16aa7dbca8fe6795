import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PayloadValidationError } from "../src/lib/errors.js";
import { Producer } from "../src/queues/producer.js";
import { testPrefix, testRedisUrl } from "./support/test-env.js";

const valid = () => ({ campaignId: "spring", channel: "sms", body: "Hi {{firstName}}", patientIds: [randomUUID(), randomUUID()] });

describe("bulk-messaging rejects bad payloads before they reach Redis, naming each field", () => {
  let producer: Producer;

  beforeAll(() => {
    producer = new Producer({ redisUrl: testRedisUrl(), prefix: testPrefix() });
  });
  afterAll(async () => {
    await producer.close();
  });

  async function rejection(payload: unknown): Promise<PayloadValidationError> {
    const error = await producer.enqueueUnknown("bulk-messaging", payload).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(PayloadValidationError);
    return error as PayloadValidationError;
  }

  it("an empty recipient list", async () => {
    const error = await rejection({ ...valid(), patientIds: [] });
    expect(error.fields.map((field) => field.path)).toEqual(["patientIds"]);
    expect(error.message).toMatch(/patientIds: .*>=1/);
  });

  it("100,001 recipients", async () => {
    const patientIds = Array.from({ length: 100_001 }, () => randomUUID());
    const error = await rejection({ ...valid(), patientIds });
    expect(error.fields.map((field) => field.path)).toEqual(["patientIds"]);
    expect(error.message).toMatch(/patientIds: .*100000/);
  });

  it("duplicate recipients, listing them", async () => {
    const twice = randomUUID();
    const error = await rejection({ ...valid(), patientIds: [twice, randomUUID(), twice] });
    expect(error.fields).toEqual([{ path: "patientIds", message: `must be unique; repeated: ${twice}` }]);
  });

  it("a body over 1600 characters", async () => {
    const error = await rejection({ ...valid(), body: "x".repeat(1601) });
    expect(error.fields.map((field) => field.path)).toEqual(["body"]);
    expect(error.message).toMatch(/body: .*1600/);
  });

  it("several bad fields at once, each named", async () => {
    const error = await rejection({ campaignId: "", channel: "fax", body: "", patientIds: [randomUUID()], batchSize: 5001, sendRatePerSecond: 0 });
    expect(error.fields.map((field) => field.path).sort()).toEqual(["batchSize", "body", "campaignId", "channel", "sendRatePerSecond"]);
  });

  it("accepts the largest valid campaign and nothing bad reached the queue", async () => {
    const queue = await producer.queue("bulk-messaging");
    expect(await queue.count()).toBe(0);
    const job = await producer.enqueueUnknown("bulk-messaging", {
      ...valid(),
      patientIds: Array.from({ length: 100_000 }, () => randomUUID()),
      batchSize: 5000,
    });
    expect(job.id).toBeDefined();
    expect(await queue.count()).toBe(1);
    await queue.obliterate({ force: true });
  });
});
