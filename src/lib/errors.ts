/**
 * Error classes with a stable `code` and `name`. Messages say how to fix the problem.
 */
export class DbjobsError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class ConfigError extends DbjobsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("DBJOBS_CONFIG", message, options);
  }
}

/** A payload that does not match its queue's schema. `fields` lists each bad field path. */
export class PayloadValidationError extends DbjobsError {
  readonly queue: string;
  readonly fields: { path: string; message: string }[];

  constructor(queue: string, fields: { path: string; message: string }[]) {
    const list = fields.map((field) => `${field.path || "(payload)"}: ${field.message}`).join("; ");
    super("DBJOBS_INVALID_PAYLOAD", `Invalid payload for queue "${queue}": ${list}. Fix these fields and enqueue again.`);
    this.queue = queue;
    this.fields = fields;
  }
}

export class UnknownQueueError extends DbjobsError {
  constructor(queue: string, known: readonly string[]) {
    super("DBJOBS_UNKNOWN_QUEUE", `Unknown queue "${queue}". Known queues: ${known.join(", ")}.`);
  }
}

export class MigrationError extends DbjobsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("DBJOBS_MIGRATION", message, options);
  }
}

/** The conflict-retry helper gave up; `cause` is the last conflict. */
export class RetryExhaustedError extends DbjobsError {
  readonly attempts: number;

  constructor(attempts: number, cause: unknown) {
    super(
      "DBJOBS_RETRY_EXHAUSTED",
      `Gave up after ${attempts} attempts on write conflicts (SQLSTATE 40001/40P01, Prisma P2034); lower contention or raise maxAttempts.`,
      { cause },
    );
    this.attempts = attempts;
  }
}
