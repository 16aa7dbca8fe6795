import { pino } from "pino";
import { loadConfig } from "../src/lib/config.js";
import { createLogger } from "../src/lib/logger.js";
import { exitOnSignals } from "../src/lib/shutdown.js";
import { startWorker } from "../src/queues/start-worker.js";
import { CONCURRENCY, noopContract, noopHandler, QUEUE } from "./noop-worker.js";

/**
 * One no-op worker process of the scaling bench (bench/scaling.ts): the
 * project's worker runtime, as `dbjobs worker` starts it (config from the
 * environment, SIGTERM drains), running the no-op contract at concurrency 8.
 * Logs at LOG_LEVEL go to /dev/null, asynchronously as the CLI's do.
 *
 * Tells its parent over IPC: `{ ready: true }` once the worker is started,
 * and `{ firstActive: <ms since epoch> }` when its first job starts (the
 * job's processedOn, the clock BullMQ also stamps finishedOn with).
 */
const config = loadConfig();
const logger = createLogger({ level: config.LOG_LEVEL }, pino.destination({ dest: "/dev/null", sync: false }));
const running = await startWorker(QUEUE, { config, logger, concurrency: CONCURRENCY, job: { contract: noopContract, handler: noopHandler } });
running.worker.once("active", (job) => process.send?.({ firstActive: job.processedOn ?? Date.now() }));
exitOnSignals(() => running.close(), { timeoutMs: config.SHUTDOWN_TIMEOUT_MS, logger });
process.send?.({ ready: true });
