import type { Command } from "commander";
import { startDashboard } from "../../dashboard/server.js";
import { exitOnSignals } from "../../lib/shutdown.js";
import { createCliContext } from "../context.js";

export function registerDashboardCommand(program: Command): void {
  program
    .command("dashboard")
    .description("serve bull-board, /metrics, /health and POST /queues/<queue>/jobs until SIGTERM (needs DASHBOARD_USER+DASHBOARD_PASSWORD or DASHBOARD_TOKEN)")
    .option("--host <host>", "address to bind (default DASHBOARD_HOST, 127.0.0.1)")
    .option("--port <port>", "port to listen on (default DASHBOARD_PORT, 3000)", (value) => Number.parseInt(value, 10))
    .action(async (options: { host?: string; port?: number }) => {
      const context = createCliContext();
      const dashboard = await startDashboard({ config: context.config, logger: context.logger, host: options.host, port: options.port });
      exitOnSignals(() => dashboard.close(), { timeoutMs: context.config.SHUTDOWN_TIMEOUT_MS, logger: context.logger.child({ component: "dashboard" }) });
    });
}
