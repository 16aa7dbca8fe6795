import { QueueEvents } from "bullmq";
import type { Config } from "../../src/lib/config.js";
import type { QueueName } from "../../src/queues/contracts.js";
import { Producer } from "../../src/queues/producer.js";
import { testRedis } from "./test-env.js";

/** What a producer app holds to enqueue jobs on one queue and wait for their results. */
export interface QueueClient {
  producer: Producer;
  events: QueueEvents;
  /** Closes both and removes the queue's jobs from Redis. */
  close(): Promise<void>;
}

export async function openQueueClient(queue: QueueName, config: Config): Promise<QueueClient> {
  const producer = new Producer({ redisUrl: config.REDIS_URL, prefix: config.QUEUE_PREFIX });
  const connection = testRedis();
  const events = new QueueEvents(queue, { connection, prefix: config.QUEUE_PREFIX });
  await events.waitUntilReady();
  return {
    producer,
    events,
    async close() {
      await events.close();
      connection.disconnect();
      await producer.queue(queue).obliterate({ force: true });
      await producer.close();
    },
  };
}
