import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { deadPort } from "./dead-port.js";
import { postgresAnswers } from "./services.js";

/**
 * A private pgbouncer (Debian's package) in transaction mode on a free port,
 * in front of the test PostgreSQL, for every database (`* =`). It logs in to
 * PostgreSQL as `pooledRole`, never as the role of direct connections, so
 * pg_stat_activity.usename says which path a session came through. Clients
 * are not authenticated (auth_type any), as with the trust auth of the tests'
 * PostgreSQL. The `options` startup parameter is not ignored: a pool that
 * sets search_path or timeouts that way fails to connect through it, loudly.
 */
export const pooledRole = "dbjobs_pooled";

export interface PrivatePgbouncer {
  port: number;
  /** `url` with its host and port replaced by pgbouncer's: the same database, pooled. */
  pooledUrl(url: string): string;
  stop(): Promise<void>;
}

/** Creates the role pgbouncer logs in as (a superuser: the suites it carries create partitions and run REINDEX). */
export async function ensurePooledRole(adminUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const { rowCount } = await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [pooledRole]);
    if (!rowCount) {
      await admin.query(`CREATE ROLE ${pooledRole} LOGIN SUPERUSER`).catch((err: { code?: string }) => {
        // 42710: created meanwhile by another run.
        if (err.code !== "42710") throw err;
      });
    }
  } finally {
    await admin.end();
  }
}

export async function startPgbouncer(adminUrl: string, options: { poolSize?: number } = {}): Promise<PrivatePgbouncer> {
  const server = new URL(adminUrl);
  const port = await deadPort();
  const dir = await mkdtemp(join(tmpdir(), "dbjobs-pgbouncer-"));
  // pgbouncer refuses to run as root; under root (CI) it drops to postgres, which must read the directory.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) await chmod(dir, 0o755);
  const ini = join(dir, "pgbouncer.ini");
  const poolSize = options.poolSize ?? 8;
  await writeFile(
    ini,
    [
      "[databases]",
      `* = host=${server.hostname} port=${server.port || 5432} user=${pooledRole}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = any",
      "pool_mode = transaction",
      "max_client_conn = 1000",
      // Per database: each test file has its own, and PostgreSQL's max_connections is shared by every run on the machine.
      `default_pool_size = ${poolSize}`,
      "max_db_connections = 0",
      "server_idle_timeout = 10",
      "",
    ].join("\n"),
  );
  if (asRoot) await chmod(ini, 0o644);

  const output: string[] = [];
  const child: ChildProcess = spawn("pgbouncer", asRoot ? ["-u", "postgres", ini] : [ini], { stdio: ["ignore", "pipe", "pipe"] });
  for (const stream of [child.stdout, child.stderr]) stream?.on("data", (chunk) => output.push(String(chunk)));
  const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
  const pooledUrl = (url: string) => {
    const parsed = new URL(url);
    parsed.hostname = "127.0.0.1";
    parsed.port = String(port);
    return parsed.toString();
  };

  const probe = pooledUrl(adminUrl);
  const deadline = Date.now() + 20_000;
  while (!(await postgresAnswers(probe, 1000))) {
    const failed = await Promise.race([spawnError, sleep(200).then(() => undefined)]);
    if (failed || child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
      const why = failed ? `${failed.message} (is Debian's pgbouncer installed? apt-get install pgbouncer)` : output.join("").slice(-2000);
      throw new Error(`private pgbouncer on port ${port} did not start: ${why}`);
    }
  }

  return {
    port,
    pooledUrl,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await Promise.race([exited, sleep(5000)]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
