import type { Config } from "../../lib/config.js";
import type { Logger } from "../../lib/logger.js";
import { HttpProvider } from "./http-provider.js";
import { LogProvider } from "./log-provider.js";
import { MessagingConfigError } from "./messaging-errors.js";
import { NoopProvider } from "./noop-provider.js";
import type { MessagingProvider } from "./provider.js";
import type { ProviderRateLimit } from "./provider-rate-limit.js";

/**
 * The provider MESSAGING_PROVIDER names, configured from MESSAGING_HTTP_*.
 * The batch takes a token of `rateLimit` before each first attempt; the
 * `http` provider takes one before each retry.
 */
export function createProvider(config: Config, log: Logger, rateLimit?: ProviderRateLimit): MessagingProvider {
  switch (config.MESSAGING_PROVIDER) {
    case "noop":
      return new NoopProvider();
    case "log":
      return new LogProvider(log);
    case "http": {
      const missing = (["MESSAGING_HTTP_BASE_URL", "MESSAGING_HTTP_ACCOUNT_SID", "MESSAGING_HTTP_AUTH_TOKEN"] as const).filter((name) => !config[name]);
      if (missing.length > 0) {
        throw new MessagingConfigError(`MESSAGING_PROVIDER=http needs ${missing.join(", ")}; set them or use MESSAGING_PROVIDER=log.`);
      }
      return new HttpProvider({
        baseUrl: config.MESSAGING_HTTP_BASE_URL as string,
        accountSid: config.MESSAGING_HTTP_ACCOUNT_SID as string,
        authToken: config.MESSAGING_HTTP_AUTH_TOKEN as string,
        from: config.MESSAGING_HTTP_FROM,
        timeoutMs: config.MESSAGING_HTTP_TIMEOUT_MS,
        beforeRetry: rateLimit ? () => rateLimit.take() : undefined,
      });
    }
  }
}
