import { type Config, loadConfig } from "../lib/config.js";
import { createDb, type Db } from "../lib/db.js";
import { createLogger, type Logger, logDestination } from "../lib/logger.js";
import { Producer } from "../queues/producer.js";

/** What every CLI verb needs, created lazily so `--help` touches nothing. Logs go to stderr; stdout is for results. */
export interface CliContext {
  config: Config;
  logger: Logger;
  producer(): Producer;
  db(): Db;
  close(): Promise<void>;
}

export interface CliContextOptions {
  /** Log warnings only (verbs whose stdout is a result). */
  quiet?: boolean;
  /** Log this verb's slow queries at debug: its statements are long by design (seed-demo). @defaultValue false */
  expectSlowQueries?: boolean;
}

export function createCliContext(options: CliContextOptions = {}): CliContext {
  const config = loadConfig();
  const logger = createLogger({ level: options.quiet ? atMostWarn(config.LOG_LEVEL) : config.LOG_LEVEL }, logDestination(config.LOG_FORMAT, 2));
  let producer: Producer | undefined;
  let db: Db | undefined;
  return {
    config,
    logger,
    producer() {
      // A quiet verb reports an unreachable queue store in its one error line, not in log lines too.
      producer ??= Producer.fromConfig(config, options.quiet ? undefined : logger);
      return producer;
    },
    db() {
      db ??= createDb({
        url: config.DATABASE_URL,
        directUrl: config.DIRECT_DATABASE_URL,
        poolSize: 2,
        connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
        slowQueryMs: config.SLOW_QUERY_MS,
        slowQueryLevel: options.expectSlowQueries ? "debug" : "warn",
        logger,
      });
      return db;
    },
    async close() {
      await producer?.close();
      await db?.close();
    },
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? item.toString() : item), 2)}\n`);
}

/** Quiet verbs log warnings at most: LOG_LEVEL=error (or quieter) still holds for them. */
function atMostWarn(level: string): string {
  return ["error", "fatal", "silent"].includes(level) ? level : "warn";
}
