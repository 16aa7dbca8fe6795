/**
 * Error classes with a stable `code` and `name`. Messages say how to fix the problem.
 * `retryable: false` marks a failure that retrying cannot fix (a bad payload, a
 * failed verification): the worker runtime fails such a job at once, keeping
 * this error's code and cause (see src/queues/job-failure.ts).
 */
export interface DbjobsErrorOptions {
  cause?: unknown;
  /** @defaultValue true */
  retryable?: boolean;
}

export class DbjobsError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: DbjobsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
    this.retryable = options.retryable ?? true;
  }
}

/** Anything thrown, as an Error: a non-Error value becomes its string form, kept as the cause. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === "string" ? thrown : (JSON.stringify(thrown) ?? String(thrown)), { cause: thrown });
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
    super("DBJOBS_INVALID_PAYLOAD", `Invalid payload for queue "${queue}": ${list}. Fix these fields and enqueue again.`, { retryable: false });
    this.queue = queue;
    this.fields = fields;
  }
}

export class UnknownQueueError extends DbjobsError {
  constructor(queue: string, known: readonly string[]) {
    super("DBJOBS_UNKNOWN_QUEUE", `Unknown queue "${queue}". Known queues: ${known.join(", ")}.`, { retryable: false });
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

/** The PostgreSQL connection a job held for its whole run failed (a killed backend, a failover). Retrying on a fresh connection is safe. */
export class SessionLostError extends DbjobsError {
  constructor(cause: unknown) {
    super(
      "DBJOBS_SESSION_LOST",
      `The PostgreSQL connection this work held was lost (${coerceError(cause).message}); the work is retried on a fresh connection.`,
      { cause },
    );
  }
}

/** The queue store (Redis, or PostgreSQL on that backend) did not answer in time; nothing was enqueued or changed. */
export class QueueBackendUnavailableError extends DbjobsError {
  /** Why, as a code safe to show anywhere: the connection's errno (ECONNREFUSED, ENOTFOUND, ...), a SQLSTATE, or "timeout". */
  readonly reasonCode: string;

  constructor(service: string, redactedUrl: string, setting: string, reason: string, options: { cause?: unknown; reasonCode?: string } = {}) {
    super(
      "DBJOBS_QUEUE_UNAVAILABLE",
      `Cannot reach ${service} at ${redactedUrl} (${reason}); nothing was changed. Start ${service} or set ${setting}.`,
      options,
    );
    this.reasonCode = options.reasonCode ?? "timeout";
  }
}
