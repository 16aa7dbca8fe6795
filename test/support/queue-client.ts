import type { Config } from "../../src/lib/config.js";
import type { AnyQueueEvents } from "../../src/lib/queue-store.js";
import type { QueueName } from "../../src/queues/contracts.js";
import { Producer } from "../../src/queues/producer.js";

/** What a producer app holds to enqueue jobs on one queue and wait for their results. */
export interface QueueClient {
  producer: Producer;
  events: AnyQueueEvents;
  /** Closes both and removes the queue's jobs from Redis. */
  close(): Promise<void>;
}

export async function openQueueClient(queue: QueueName, config: Config): Promise<QueueClient> {
  const producer = Producer.fromConfig(config);
  const events = await producer.store.queueEvents(queue);
  await events.waitUntilReady();
  return {
    producer,
    events,
    async close() {
      await events.close();
      await (await producer.queue(queue)).obliterate({ force: true });
      await producer.close();
    },
  };
}
