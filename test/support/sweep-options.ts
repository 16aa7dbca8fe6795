import { transactionRetryPayload } from "../../src/jobs/transaction-retry/contract.js";
import type { SweepOptions } from "../../src/jobs/transaction-retry/handler.js";
import { configSchema } from "../../src/lib/config.js";

/**
 * What a transaction-retry sweep runs with for an empty payload and the
 * default TRANSACTION_MAX_ATTEMPTS, with `overrides` on top: for tests and the
 * bench that call the sweep without a worker.
 */
export function sweepOptions(overrides: Partial<SweepOptions> = {}): SweepOptions {
  return {
    ...transactionRetryPayload.parse({}),
    maxAttempts: configSchema.shape.TRANSACTION_MAX_ATTEMPTS.parse(undefined),
    ...overrides,
  };
}
