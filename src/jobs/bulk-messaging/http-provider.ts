import { setTimeout as sleep } from "node:timers/promises";
import { backoffDelayMs } from "../../lib/retry.js";
import type { MessagingProvider, OutboundMessage, SendOutcome } from "./provider.js";

/**
 * A client for a Twilio-style REST API:
 * `POST {baseUrl}/2010-04-01/Accounts/{accountSid}/Messages.json`, HTTP basic
 * auth (account sid : auth token), form body `To`, `From`, `Body`, answering
 * JSON `{ "sid": "SM…" }`. The message id goes in the `Idempotency-Key` header
 * so that a retried request (after a timeout, a dropped connection or a
 * crashed worker) is answered with the first result instead of a second SMS.
 *
 * 429, 408, 409 and 5xx answers, timeouts and dropped connections are retried
 * with exponential backoff and jitter, waiting at least what `Retry-After`
 * asks for. Any other 4xx (a bad number, say) fails that one message.
 */
export interface HttpProviderOptions {
  baseUrl: string;
  accountSid: string;
  authToken: string;
  /** Sender id or number. */
  from: string;
  /** Per request. @defaultValue 10000 */
  timeoutMs?: number;
  /** Requests per message, the first included. @defaultValue 5 */
  maxAttempts?: number;
  /** @defaultValue 250 */
  baseDelayMs?: number;
  /** Cap of our own backoff between attempts. @defaultValue 8000 */
  maxDelayMs?: number;
  /** Cap of a `Retry-After` the server asks for; longer waits give up on the message for now. @defaultValue 60000 */
  maxRetryAfterMs?: number;
  /** Awaited before each retry, after the backoff: the shared provider rate limit counts retries too. @defaultValue none */
  beforeRetry?: () => Promise<void>;
}

const retryableStatuses = new Set([408, 409, 425, 429]);

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

async function errorText(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const json = JSON.parse(text) as { message?: unknown; code?: unknown };
    if (typeof json.message === "string") return json.code === undefined ? json.message : `${json.message} (code ${String(json.code)})`;
  } catch {
    // not JSON: use the text as it is
  }
  return text.slice(0, 300) || response.statusText;
}

export class HttpProvider implements MessagingProvider {
  readonly name = "http";
  private readonly url: string;
  private readonly authorization: string;

  constructor(private readonly options: HttpProviderOptions) {
    const base = options.baseUrl.replace(/\/+$/, "");
    this.url = `${base}/2010-04-01/Accounts/${encodeURIComponent(options.accountSid)}/Messages.json`;
    this.authorization = `Basic ${Buffer.from(`${options.accountSid}:${options.authToken}`).toString("base64")}`;
  }

  async send(message: OutboundMessage, options: { signal?: AbortSignal } = {}): Promise<SendOutcome> {
    const { signal } = options;
    const maxAttempts = this.options.maxAttempts ?? 5;
    const body = new URLSearchParams({ To: message.to, From: this.options.from, Body: message.body }).toString();
    let lastError = "";
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      signal?.throwIfAborted();
      let retryAfterMs: number | undefined;
      try {
        const response = await fetch(this.url, {
          method: "POST",
          headers: {
            authorization: this.authorization,
            "content-type": "application/x-www-form-urlencoded",
            accept: "application/json",
            "idempotency-key": message.idempotencyKey,
          },
          body,
          signal: signal
            ? AbortSignal.any([signal, AbortSignal.timeout(this.options.timeoutMs ?? 10_000)])
            : AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
        });
        if (response.ok) {
          const json = (await response.json().catch(() => ({}))) as { sid?: unknown };
          return { status: "sent", providerMessageId: typeof json.sid === "string" ? json.sid : `http-${message.idempotencyKey}` };
        }
        const text = await errorText(response);
        if (!retryableStatuses.has(response.status) && response.status < 500) {
          return { status: "failed", error: `provider refused the message: HTTP ${response.status}: ${text}` };
        }
        lastError = `HTTP ${response.status}: ${text}`;
        retryAfterMs = parseRetryAfterMs(response.headers.get("retry-after"));
      } catch (err) {
        // A cancelled job's request is not a provider failure: stop, and let the job end.
        signal?.throwIfAborted();
        const error = err as Error & { cause?: { message?: string } };
        lastError =
          error.name === "TimeoutError"
            ? `no answer within ${this.options.timeoutMs ?? 10_000} ms`
            : `${error.message}${error.cause?.message ? `: ${error.cause.message}` : ""}`;
      }
      if (attempt === maxAttempts) break;
      if (retryAfterMs !== undefined && retryAfterMs > (this.options.maxRetryAfterMs ?? 60_000)) {
        lastError += ` (Retry-After ${retryAfterMs} ms is longer than we wait)`;
        break;
      }
      const backoff = backoffDelayMs(attempt, { baseDelayMs: this.options.baseDelayMs ?? 250, maxDelayMs: this.options.maxDelayMs ?? 8000 });
      await sleep(Math.max(backoff, retryAfterMs ?? 0), undefined, { signal });
      await this.options.beforeRetry?.();
    }
    return { status: "unavailable", error: `provider unavailable after ${maxAttempts} attempts: ${lastError}` };
  }
}
