import type { MessagingProvider, OutboundMessage, SendOutcome } from "./provider.js";

/** Accepts everything and does nothing: for benchmarks, where only the database work is measured. */
export class NoopProvider implements MessagingProvider {
  readonly name = "noop";

  async send(message: OutboundMessage): Promise<SendOutcome> {
    return { status: "sent", providerMessageId: `noop-${message.idempotencyKey}` };
  }
}
