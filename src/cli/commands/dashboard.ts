import { type Command, InvalidArgumentError } from "commander";
import { startDashboard } from "../../dashboard/server.js";
import { exitOnSignals } from "../../lib/shutdown.js";
import { createCliContext } from "../context.js";

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new InvalidArgumentError("use a port number from 0 to 65535 (0 picks a free one)");
  return port;
}

export function registerDashboardCommand(program: Command): void {
  program
    .command("dashboard")
    .description(
      "serve bull-board, the console (/console), /metrics, /health and POST /queues/<queue>/jobs until SIGTERM (needs DASHBOARD_USERS, DASHBOARD_USER+DASHBOARD_PASSWORD or DASHBOARD_TOKEN)",
    )
    .option("--host <host>", "address to bind (default DASHBOARD_HOST, 127.0.0.1)")
    .option("--port <port>", "port to listen on (default DASHBOARD_PORT, 3000)", parsePort)
    .action(async (options: { host?: string; port?: number }) => {
      const context = createCliContext();
      const dashboard = startDashboard({ config: context.config, logger: context.logger, host: options.host, port: options.port });
      // Installed before start-up finishes: the server answers while the queue store is still being reached,
      // and a SIGTERM in that window must drain, not kill.
      exitOnSignals(async () => (await dashboard).close(), {
        timeoutMs: context.config.SHUTDOWN_TIMEOUT_MS,
        logger: context.logger.child({ component: "dashboard" }),
      });
      await dashboard;
    });
}
