import { createProvider } from "../jobs/bulk-messaging/create-provider.js";
import type { MessagingProvider } from "../jobs/bulk-messaging/provider.js";
import { createProviderRateLimit, type ProviderRateLimit } from "../jobs/bulk-messaging/provider-rate-limit.js";
import { type Config, messagingRateBurst } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import { type QueueStore, queueDatabasePool } from "../lib/queue-store.js";
import type { WorkerServices } from "./job-context.js";

/**
 * The handlers' outside dependencies: those given, else built from the config
 * on first use. The provider rate limit keeps its counters in `store`, the
 * queue backend every worker of this deployment shares.
 */
export function workerServices(config: Config, given: Partial<WorkerServices> = {}, store?: QueueStore): WorkerServices {
  let rateLimit: ProviderRateLimit | undefined;
  const messagingRateLimit =
    given.messagingRateLimit ??
    (() => {
      const ratePerSecond = config.MESSAGING_RATE_PER_SECOND;
      if (ratePerSecond === undefined || !store) return undefined;
      rateLimit ??= createProviderRateLimit({
        ratePerSecond,
        burst: messagingRateBurst(ratePerSecond, config.MESSAGING_RATE_BURST),
        keyPrefix: `${store.prefix}:messaging-rate`,
        store: async () =>
          store.redis ? { kind: "redis", redis: store.redis } : { kind: "postgres", pool: await queueDatabasePool(store, config.QUEUE_CONNECT_TIMEOUT_MS) },
      });
      return rateLimit;
    });
  return {
    now: given.now ?? (() => new Date()),
    messaging: given.messaging ?? ((log: Logger): MessagingProvider => createProvider(config, log, messagingRateLimit())),
    messagingRateLimit,
  };
}
