import type { CacheOptions } from "../../src/cache/cache.js";
import { type Config, redisTarget } from "../../src/lib/config.js";
import type { Logger } from "../../src/lib/logger.js";

// Free of vitest, so the cache reader's child process can import it too.
/** createCache options as an application builds them from its config. */
export function cacheOptionsFrom(config: Config, logger: Logger, extra: Partial<CacheOptions> = {}): CacheOptions {
  return {
    redis: redisTarget(config),
    databaseUrl: config.DATABASE_URL,
    directDatabaseUrl: config.DIRECT_DATABASE_URL,
    prefix: config.QUEUE_PREFIX,
    config,
    logger,
    ...extra,
  };
}
