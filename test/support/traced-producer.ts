/**
 * A producer application in its own process, for the tracing test: it starts
 * tracing the way an app would (`startTracing()` from `dbjobs`, before
 * anything loads pg), enqueues one invoice-totals job, either with
 * `producer.enqueue` or (argument `tx`) in its own pg transaction, prints
 * `ENQUEUED <json>` and exits, having exported its spans.
 * Run: node --import tsx test/support/traced-producer.ts [plain|tx]
 */
import { loadConfig, Producer, startTracing } from "../../src/index.js";

const mode = process.argv[2] === "tx" ? "tx" : "plain";
const tracing = await startTracing({ serviceName: "test-producer-app" });
const config = loadConfig();
const producer = Producer.fromConfig(config);
try {
  let id: string | undefined;
  if (mode === "plain") {
    id = (await producer.enqueue("invoice-totals", { all: true })).id;
  } else {
    const { default: pg } = await import("pg");
    const client = new pg.Client({ connectionString: config.DATABASE_URL });
    await client.connect();
    try {
      await client.query("BEGIN");
      id = (await producer.enqueue("invoice-totals", { all: true }, { tx: client })).id;
      await client.query("COMMIT");
    } finally {
      await client.end();
    }
  }
  process.stdout.write(`ENQUEUED ${JSON.stringify({ id, mode, tracing: tracing.enabled, serviceName: tracing.serviceName })}\n`);
} finally {
  await producer.close();
  await tracing.shutdown();
}
