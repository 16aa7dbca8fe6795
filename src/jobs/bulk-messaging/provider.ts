/**
 * The one small interface every messaging provider implements. The job hands
 * each message to `send` with the message's database id as its idempotency
 * key: a provider that sees the same key twice must not deliver twice (the
 * `http` provider forwards it as the `Idempotency-Key` header). That is what
 * makes a crash between "provider accepted" and "outcome recorded" harmless:
 * the rerun sends again with the same key and gets the original answer back.
 */
export type MessageChannel = "sms" | "email";

export interface OutboundMessage {
  /** The messaging_messages id; also the idempotency key. */
  idempotencyKey: string;
  channel: MessageChannel;
  /** Phone number for sms, address for email. */
  to: string;
  body: string;
}

/**
 * `sent`: the provider accepted the message.
 * `failed`: the provider refused this one message for good (bad number); retrying cannot help.
 * `unavailable`: the provider kept failing (429/5xx/timeouts) after every retry; the
 * message is not written, and the job is retried later with the same idempotency key.
 */
export type SendOutcome = { status: "sent"; providerMessageId: string } | { status: "failed"; error: string } | { status: "unavailable"; error: string };

export interface MessagingProvider {
  readonly name: string;
  /** `signal` aborts the call when the job is cancelled; the provider then throws its reason. */
  send(message: OutboundMessage, options?: { signal?: AbortSignal }): Promise<SendOutcome>;
}
