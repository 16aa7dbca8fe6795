import { createProvider } from "../jobs/bulk-messaging/create-provider.js";
import type { MessagingProvider } from "../jobs/bulk-messaging/provider.js";
import type { Config } from "../lib/config.js";
import type { Logger } from "../lib/logger.js";
import type { WorkerServices } from "./job-context.js";

/** The handlers' outside dependencies: those given, else built from the config on first use. */
export function workerServices(config: Config, given: Partial<WorkerServices> = {}): WorkerServices {
  return {
    now: given.now ?? (() => new Date()),
    messaging: given.messaging ?? ((log: Logger): MessagingProvider => createProvider(config, log)),
  };
}
