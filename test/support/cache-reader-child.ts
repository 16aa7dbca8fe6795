import { createInterface } from "node:readline";
import { createCache } from "../../src/cache/cache.js";
import { cacheKeys } from "../../src/cache/cache-keys.js";
import { loadEscrowBalance } from "../../src/jobs/cache-prefetch/cache-entities.js";
import { loadConfig } from "../../src/lib/config.js";
import { createDb } from "../../src/lib/db.js";
import { createLogger } from "../../src/lib/logger.js";
import { cacheOptionsFrom } from "./cache-options.js";

/**
 * "Process B" of the cross-process invalidation test: its own cache,
 * connections (Redis when REDIS_URL or REDIS_CLUSTER_NODES is set, else its LISTEN connection) and
 * database pool. Reads escrow balances on request, one JSON line in
 * ({"id": "..."}), one JSON line out ({"currentBalance", "stats"}).
 */
const config = loadConfig();
const logger = createLogger({ level: "warn" }, process.stderr);
const db = createDb({ url: config.DATABASE_URL, directUrl: config.DIRECT_DATABASE_URL, poolSize: 2, logger });
const cache = await createCache(cacheOptionsFrom(config, logger));

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  const { id } = JSON.parse(line) as { id: string };
  const balance = await cache.getOrLoad(cacheKeys.escrowBalance(id), () => loadEscrowBalance(db, id), { kind: "balance" });
  const stats = cache.stats();
  process.stdout.write(`${JSON.stringify({ currentBalance: balance?.currentBalance.toFixed(2), stats: stats.kinds.balance, via: stats.invalidation.via })}\n`);
});
lines.on("close", async () => {
  await cache.close();
  await db.close();
});
process.stdout.write("ready\n");
