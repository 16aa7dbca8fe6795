import { DbjobsError } from "../../lib/errors.js";

/**
 * The escrow account's `version` moved between our read and our write: the
 * optimistic lock lost. Retryable by design: it carries SQLSTATE 40001, so the
 * conflict-retry helper (isWriteConflict) reruns the whole settlement from a
 * fresh read, exactly as for a serialization failure.
 */
export class EscrowVersionConflictError extends DbjobsError {
  readonly sqlState = "40001";

  constructor(escrowAccountId: string, expectedVersion: number) {
    super(
      "DBJOBS_ESCROW_VERSION_CONFLICT",
      `Escrow account ${escrowAccountId} changed under us (expected version ${expectedVersion}); the settlement is retried from a fresh read.`,
      { retryable: true },
    );
  }
}

/** A FROZEN account takes no settlement for now; the transaction waits for its next attempt. */
export class EscrowAccountFrozenError extends DbjobsError {
  constructor(escrowAccountId: string) {
    super("DBJOBS_ESCROW_FROZEN", `Escrow account ${escrowAccountId} is FROZEN; set it ACTIVE and the transaction settles on its next attempt.`);
  }
}
