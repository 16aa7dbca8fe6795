import type { Logger } from "../../lib/logger.js";
import type { MessagingProvider, OutboundMessage, SendOutcome } from "./provider.js";

/**
 * The development default: writes each send to the log and accepts it. It
 * remembers the keys it accepted (per process, bounded), so a replay with the
 * same idempotency key is logged as a replay and answered with the first id,
 * as a real provider would.
 */
export class LogProvider implements MessagingProvider {
  readonly name = "log";
  private readonly accepted = new Map<string, string>();

  constructor(
    private readonly log: Logger,
    /** Keys remembered for replay detection. @defaultValue 200000 */
    private readonly maxRemembered = 200_000,
  ) {}

  async send(message: OutboundMessage): Promise<SendOutcome> {
    const previous = this.accepted.get(message.idempotencyKey);
    if (previous) {
      this.log.info({ idempotencyKey: message.idempotencyKey, providerMessageId: previous }, "log provider: replay of an accepted message, not sent again");
      return { status: "sent", providerMessageId: previous };
    }
    const providerMessageId = `log-${message.idempotencyKey}`;
    if (this.accepted.size >= this.maxRemembered) {
      const oldest = this.accepted.keys().next().value;
      if (oldest !== undefined) this.accepted.delete(oldest);
    }
    this.accepted.set(message.idempotencyKey, providerMessageId);
    this.log.info({ channel: message.channel, to: message.to, body: message.body, idempotencyKey: message.idempotencyKey }, "log provider: message sent");
    return { status: "sent", providerMessageId };
  }
}
