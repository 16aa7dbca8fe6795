import { DbjobsError } from "../../lib/errors.js";

export class MessagingConfigError extends DbjobsError {
  constructor(message: string) {
    super("DBJOBS_MESSAGING_CONFIG", message);
  }
}

/** Some messages could not be handed to the provider after every retry; the job is retried and sends them under the same keys. */
export class ProviderUnavailableError extends DbjobsError {
  readonly unsent: number;

  constructor(unsent: number, lastError: string) {
    super(
      "DBJOBS_PROVIDER_UNAVAILABLE",
      `${unsent} message(s) could not be handed to the messaging provider (${lastError}); they are sent with the same idempotency key when the job is retried. Check the provider's status and MESSAGING_HTTP_* settings.`,
    );
    this.unsent = unsent;
  }
}
