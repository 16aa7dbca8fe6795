import type { AddressInfo } from "node:net";
import express, { type Express, type NextFunction, type Request, type Response } from "express";
import type pg from "pg";
import { type Config, queueStoreOptions } from "../lib/config.js";
import { createDb, type Db } from "../lib/db.js";
import type { Logger } from "../lib/logger.js";
import { createOutageLog } from "../lib/outage-log.js";
import { type AnyQueue, createQueueStore, type QueueStore } from "../lib/queue-store.js";
import { queueNames } from "../queues/contracts.js";
import { Producer } from "../queues/producer.js";
import { readScheduleHealth, type ScheduleHealth } from "../queues/schedule-health.js";
import { type DashboardAuth, principalOf, rejectCrossSiteWrites, requireAuth, resolveDashboardAuth } from "./auth.js";
import { createBoardRouter } from "./board.js";
import { consoleRouter } from "./console/console-router.js";
import { consolePages } from "./console/pages.js";
import { controlRouter } from "./control-routes.js";
import { enqueueRouter } from "./enqueue-route.js";
import { checkHealth } from "./health.js";
import { createMetricsRenderer, metricsContentType, type ScheduleMisses } from "./metrics.js";
import { recipientListsRouter } from "./recipient-lists-route.js";
import { mayAct, refuseViewerWrites } from "./roles.js";

/**
 * The `dbjobs dashboard` process: one express app serving
 *   GET  /health                 no auth (health.ts)
 *   GET  /metrics                Prometheus text (metrics.ts)
 *   POST /queues/<queue>/jobs    enqueue over HTTP (enqueue-route.ts)
 *   POST /recipient-lists        stage a campaign's recipients (recipient-lists-route.ts)
 *   POST /queues/<queue>/jobs/<id>/cancel   operator actions (control-routes.ts)
 *   /console/...                 the console's pages (console/)
 *   /                            bull-board (board.ts), read-only for viewers
 * everything but /health behind auth.ts, and every write behind roles.ts.
 */
export interface DashboardOptions {
  config: Config;
  logger: Logger;
  /** @defaultValue config.DASHBOARD_HOST */
  host?: string;
  /** 0 picks a free port. @defaultValue config.DASHBOARD_PORT */
  port?: number;
  /** BullMQ key prefix. @defaultValue config.QUEUE_PREFIX */
  prefix?: string;
  /** Largest body accepted by POST /queues/<queue>/jobs. @defaultValue "1mb" */
  bodyLimit?: string;
  /** Source of the schedule gauges; the default reads the scheduler's health from Redis. */
  readScheduleHealth?: () => Promise<ScheduleMisses[]>;
}

export interface DashboardDependencies {
  /** The console's schedule controls read the declared schedules from it. */
  config: Config;
  /** The application database: the Database page's report. */
  db: Db;
  auth: DashboardAuth;
  logger: Logger;
  producer: Producer;
  store: QueueStore;
  pool: pg.Pool;
  queues: readonly AnyQueue[];
  prefix: string;
  bodyLimit?: string;
  /** RECIPIENT_LIST_RETENTION_DAYS for POST /recipient-lists. @defaultValue 7 */
  recipientListRetentionDays?: number;
  readScheduleHealth?: () => Promise<ScheduleMisses[]>;
  /** How long operator actions wait for the queue store. @defaultValue 3000 */
  connectTimeoutMs?: number;
  /** The Schedules page's rows. */
  readSchedules: () => Promise<ScheduleHealth[]>;
}

export interface RunningDashboard {
  /** Base URL, e.g. http://127.0.0.1:3000 */
  url: string;
  port: number;
  auth: DashboardAuth;
  close(): Promise<void>;
}

export function createDashboardApp(deps: DashboardDependencies): Express {
  const app = express();
  app.disable("x-powered-by");
  const renderMetrics = createMetricsRenderer({
    queues: deps.queues,
    store: deps.store.metrics(),
    oldestWaitingAddedAt: deps.store.oldestWaitingAddedAt,
    readScheduleHealth: deps.readScheduleHealth,
  });

  const postgresOutage = createOutageLog({ logger: deps.logger, service: "PostgreSQL", fields: { setting: "DATABASE_URL" } });
  app.get("/health", async (_req, res) => {
    const report = await checkHealth({ pool: deps.pool, store: deps.store, queues: deps.queues, logger: deps.logger, postgresOutage });
    res
      .status(report.status === "down" ? 503 : 200)
      .set("Cache-Control", "no-store")
      .json(report);
  });

  app.use(requireAuth(deps.auth, deps.logger));
  app.use(refuseViewerWrites(deps.logger));
  app.use(rejectCrossSiteWrites(deps.logger));
  // Before the wait below: the route validates first, then fails fast with its own JSON 503 (the producer waits for the store).
  app.use(enqueueRouter({ producer: deps.producer, logger: deps.logger, bodyLimit: deps.bodyLimit, audit: deps.pool }));
  // Needs only the application's database, not the queue store.
  app.use(recipientListsRouter({ pool: deps.pool, logger: deps.logger, retentionDays: deps.recipientListRetentionDays ?? 7 }));
  // The dashboard listens before Redis answers; a request waits for it (at most QUEUE_CONNECT_TIMEOUT_MS) instead of failing on a connection still being made.
  app.use(async (_req, res, next) => {
    try {
      await deps.producer.ready();
      next();
    } catch (err) {
      res
        .status(503)
        .type("text/plain")
        .send(`${(err as Error).message} See /health.\n`);
    }
  });

  app.get("/metrics", async (_req, res) => {
    try {
      const text = await renderMetrics();
      res.set("Content-Type", metricsContentType).send(text);
    } catch (err) {
      // A failed scrape must look failed to Prometheus (up == 0), not like a queue that emptied.
      deps.logger.warn({ err }, "metrics scrape failed");
      res.status(503).type("text/plain").send("metrics unavailable: Redis did not answer; see /health\n");
    }
  });

  app.use(controlRouter({ store: deps.store, logger: deps.logger, connectTimeoutMs: deps.connectTimeoutMs ?? 3000, audit: deps.pool }));
  app.use(
    "/console",
    consoleRouter({
      services: { queues: deps.queues, db: deps.db, readSchedules: deps.readSchedules, config: deps.config, producer: deps.producer, logger: deps.logger },
      logger: deps.logger,
      basePath: "/console",
    }),
  );
  const links = consolePages.map((page) => ({ text: page.title, url: `/console${page.path}` }));
  const operatorBoard = createBoardRouter(deps.queues, "/", { readOnly: false, links });
  const viewerBoard = createBoardRouter(deps.queues, "/", { readOnly: true, links });
  app.use("/", (req, res, next) => (mayAct(principalOf(res)) ? operatorBoard : viewerBoard)(req, res, next));

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    deps.logger.error({ err, method: req.method, path: req.path }, "dashboard request failed");
    if (!res.headersSent) res.status(500).json({ error: "internal error; see the dashboard's log" });
  });
  return app;
}

/** Starts the dashboard; throws a ConfigError before touching anything when authentication is not configured. */
export async function startDashboard(options: DashboardOptions): Promise<RunningDashboard> {
  const started = performance.now();
  const { config } = options;
  const host = options.host ?? config.DASHBOARD_HOST;
  const port = options.port ?? config.DASHBOARD_PORT;
  const prefix = options.prefix ?? config.QUEUE_PREFIX;
  const logger = options.logger.child({ component: "dashboard" });
  const auth = resolveDashboardAuth(config, host);

  // Producer role: a request made while the queue store is down fails fast
  // instead of hanging the page, the scrape or the health check.
  const store = createQueueStore({ ...queueStoreOptions(config), prefix, role: "producer", poolSize: 4, applicationName: "dbjobs:dashboard", logger });
  const producer = new Producer({ store, connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS, logger });
  const queues = await Promise.all(queueNames.map((name) => producer.queue(name)));
  const db = createDb({
    url: config.DATABASE_URL,
    directUrl: config.DIRECT_DATABASE_URL,
    poolSize: 2,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    slowQueryMs: config.SLOW_QUERY_MS,
    logger,
    applicationName: "dbjobs:dashboard",
  });
  const pool = db.pool;
  const readSchedules = () => readScheduleHealth({ store, config, pool });

  const app = createDashboardApp({
    config,
    auth,
    logger,
    producer,
    store,
    pool,
    db,
    queues,
    prefix,
    bodyLimit: options.bodyLimit,
    recipientListRetentionDays: config.RECIPIENT_LIST_RETENTION_DAYS,
    connectTimeoutMs: config.QUEUE_CONNECT_TIMEOUT_MS,
    readScheduleHealth: options.readScheduleHealth ?? readSchedules,
    readSchedules,
  });
  const server = app.listen(port, host);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
  } catch (err) {
    await producer.close();
    await store.close();
    await db.close().catch(() => undefined);
    throw err;
  }
  const bound = server.address() as AddressInfo;
  const url = `http://${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`;
  if (auth.kind === "none") logger.warn({ url }, "dashboard serving WITHOUT authentication (DASHBOARD_ALLOW_NO_AUTH=true on a loopback address)");
  logger.info(
    {
      url,
      auth: auth.kind === "none" ? "none" : auth.methods,
      queues: queues.map((queue) => queue.name),
      startupMs: Math.round(performance.now() - started),
    },
    "dashboard listening",
  );
  const probe = probeUntilReady(store, config.QUEUE_CONNECT_TIMEOUT_MS);

  let closing: Promise<void> | undefined;
  return {
    url,
    port: bound.port,
    auth,
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Browsers keep idle keep-alive connections open; don't wait for them.
        server.closeIdleConnections();
        const force = setTimeout(() => server.closeAllConnections(), 5000);
        force.unref();
        await closed;
        clearTimeout(force);
        probe.stop();
        await producer.close();
        await store.close();
        await db.close().catch(() => undefined);
        logger.info("dashboard stopped");
      })();
      return closing;
    },
  };
}

/** How often the dashboard asks a queue store that did not answer at start-up again. */
const storeProbeIntervalMs = 5000;

/**
 * The dashboard listens without waiting for the queue store. Until the store
 * first answers, this asks it every few seconds, so an outage at start-up is
 * logged (by the store, once, and every 30 s while it lasts) and its end too,
 * even before any request comes in.
 */
function probeUntilReady(store: QueueStore, timeoutMs: number): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const attempt = () => {
    store.ready(timeoutMs).catch(() => {
      if (!stopped) timer = setTimeout(attempt, storeProbeIntervalMs).unref();
    });
  };
  attempt();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
