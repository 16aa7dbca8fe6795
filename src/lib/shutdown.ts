import type { Logger } from "./logger.js";
import { shutdownTracing } from "./tracing.js";

/**
 * Graceful shutdown for every long-running process (Graphile's signals.ts,
 * pg-boss's stop({ graceful, timeout })): the first SIGTERM/SIGINT runs
 * `close` and exits 0 when it finishes, or 1 if it takes longer than
 * `timeoutMs`; a second signal exits at once with 130.
 */
export function exitOnSignals(close: () => Promise<void>, options: { timeoutMs: number; logger: Logger; exit?: (code: number) => void }): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      options.logger.warn({ signal }, "second signal: forcing exit");
      exit(130);
      return;
    }
    stopping = true;
    options.logger.info({ signal, timeoutMs: options.timeoutMs }, "shutting down: draining in-flight work");
    const timer = setTimeout(() => {
      options.logger.error({ timeoutMs: options.timeoutMs }, "drain timed out: forcing exit");
      exit(1);
    }, options.timeoutMs);
    timer.unref();
    // Tracing stops last, so the spans of the jobs drained meanwhile are exported too.
    const closeAll = async () => {
      try {
        await close();
      } finally {
        await shutdownTracing().catch((err: unknown) => options.logger.warn({ err }, "could not export the last spans"));
      }
    };
    closeAll().then(
      () => {
        clearTimeout(timer);
        options.logger.info("shutdown complete");
        exit(0);
      },
      (err: unknown) => {
        clearTimeout(timer);
        options.logger.error({ err }, "shutdown failed");
        exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return () => {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  };
}
