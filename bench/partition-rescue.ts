import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { rescueDefaultRows } from "../src/jobs/partition-maintenance/rescue-default-rows.js";
import { quoteIdent } from "../src/lib/db.js";
import { createLogger } from "../src/lib/logger.js";
import { addUtcMonths, monthRange, utcMonthStart } from "../src/partitions/month-bounds.js";
import { benchRun } from "./bench-run.js";
import type { BenchRow, BenchSection } from "./bench-section.js";
import { median } from "./paired-rounds.js";
import { freshBenchDatabase } from "./support.js";

/**
 * partition rescue (issue 21, item 6): moving rows out of the default
 * partition of `transactions` into their months' partitions. Our move
 * (rescueDefaultRows, what partition-maintenance runs first: one transaction
 * per month, the rows copied into a bare table, indexes built by sorting,
 * ATTACH last) against pg_partman's `partition_data_proc`, on the same data:
 *
 *  A. 1,000 backdated rows over 3 past months;
 *  B. 100,000 rows of one month six months ahead.
 *
 * pg_partman is set up as its documentation has a user do it: the migrated
 * table's default partition dropped, `partman.create_parent('public.transactions',
 * 'createdAt', 'native', 'monthly')` (premake 4, its own default partition),
 * then the rows inserted through the parent, so every one sits in the
 * default. `partition_data_proc` runs with `p_wait := 0`: its default sleeps a
 * second between months, a throttle rather than work. Neither side is timed
 * with an ANALYZE (pg_partman leaves it to the user; the job's ANALYZE of the
 * parent comes after its move).
 *
 * Paired rounds: each case's database is built once as a template; every
 * round clones it twice (CREATE DATABASE … TEMPLATE) and times each side on
 * its own fresh, identical copy, the sides' order alternating between rounds.
 * Reported: the median of each side, and min / median / max of the per-round
 * ratios pg_partman ÷ ours (above 1: ours is faster). Each side's result is
 * checked: the default empty, each month's rows in its partition, count and
 * sum(amount) unchanged. Meanwhile a reader looks rows up by id through the
 * parent (a lookup that cannot prune the default) every few milliseconds; its
 * longest wait shows how long each side blocked readers of the default.
 *
 * BENCH_RESCUE_ROUNDS (default 5) sets the rounds. Every database this
 * section creates has a name unique to the run and is dropped at the end.
 */
const rounds = Number(process.env.BENCH_RESCUE_ROUNDS ?? 5);

const say = (message: string) => process.stderr.write(`bench: partition-rescue: ${message}\n`);

interface Case {
  label: string;
  months: { month: Date; rows: number }[];
}

const current = utcMonthStart(new Date());
const cases: Case[] = [
  {
    label: "1,000 backdated rows over 3 months",
    months: [
      { month: addUtcMonths(current, -24), rows: 334 },
      { month: addUtcMonths(current, -23), rows: 333 },
      { month: addUtcMonths(current, -22), rows: 333 },
    ],
  },
  { label: "100,000 rows of one month", months: [{ month: addUtcMonths(current, 6), rows: 100_000 }] },
];

interface SideRun {
  ms: number;
  /** The longest a lookup by id through the parent took while the side ran. */
  readerMaxMs: number;
}

function databaseUrl(name: string): string {
  const url = new URL(benchRun.adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function pgPartmanAvailable(): Promise<boolean> {
  return withClient(benchRun.adminUrl, async (admin) => {
    const { rows } = await admin.query<{ found: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_partman') AS found");
    return rows[0]?.found === true;
  });
}

/** The template of one case: migrated, managed by pg_partman, its rows all in the default partition. */
async function buildTemplate(name: string, benchCase: Case): Promise<string> {
  const url = await freshBenchDatabase(name);
  await withClient(url, async (client) => {
    await client.query(`ALTER TABLE "transactions" DETACH PARTITION "transactions_default"`);
    await client.query(`DROP TABLE "transactions_default"`);
    await client.query("CREATE SCHEMA partman");
    await client.query("CREATE EXTENSION pg_partman SCHEMA partman");
    await client.query(`SELECT partman.create_parent('public.transactions', 'createdAt', 'native', 'monthly')`);
    for (const { month, rows } of benchCase.months) {
      const { start, end } = monthRange(month);
      // Takes the month's bounds and a row count. Spreads the rows over the month.
      await client.query(
        `INSERT INTO "transactions" ("type", "status", "amount", "createdAt", "updatedAt")
         SELECT 'DEPOSIT', 'COMPLETED', (g % 997) + 0.25, ts, ts
           FROM generate_series(1, $3::int) g,
                LATERAL (SELECT $1::timestamptz + (g::float8 / ($3::int + 1)) * ($2::timestamptz - $1::timestamptz) AS ts) t`,
        [start, end, rows],
      );
    }
    const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "transactions_default"`);
    if (rows[0]?.n !== benchCase.months.reduce((sum, month) => sum + month.rows, 0))
      throw new Error(`template ${name}: rows are not all in the default partition`);
    await client.query("VACUUM ANALYZE");
  });
  return new URL(url).pathname.slice(1);
}

async function cloneDatabase(template: string, name: string): Promise<string> {
  await withClient(benchRun.adminUrl, (admin) => admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)} STRATEGY FILE_COPY`));
  return databaseUrl(name);
}

async function dropDatabase(name: string): Promise<void> {
  await withClient(benchRun.adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}

/** Times `move` on a connection of its own while a second connection keeps looking rows up by id. */
async function timed(url: string, move: (client: pg.Client) => Promise<unknown>): Promise<SideRun> {
  return withClient(url, (client) =>
    withClient(url, async (reader) => {
      let running = true;
      let readerMaxMs = 0;
      const probe = (async () => {
        while (running) {
          const started = performance.now();
          // Takes $1 an id. Returns nothing: one index probe per partition, the default included.
          await reader.query(`SELECT 1 FROM "transactions" WHERE "id" = $1`, [randomUUID()]);
          readerMaxMs = Math.max(readerMaxMs, performance.now() - started);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();
      const started = performance.now();
      try {
        await move(client);
        return { ms: performance.now() - started, readerMaxMs };
      } finally {
        running = false;
        await probe;
      }
    }),
  );
}

const ours = (client: pg.Client) => rescueDefaultRows(client, "transactions", { lockTimeoutMs: 5000, log: createLogger({ level: "silent" }) });
const pgPartman = (client: pg.Client) => client.query(`CALL partman.partition_data_proc('public.transactions', p_wait := 0, p_quiet := true)`);

/** Fails the section unless every row sits in its month's partition with count and sum(amount) as loaded. */
async function verify(url: string, benchCase: Case, side: string): Promise<void> {
  await withClient(url, async (client) => {
    for (const { month, rows } of benchCase.months) {
      const { start, end } = monthRange(month);
      // Takes the month's bounds. Returns the partitions holding its rows and their count.
      const { rows: placed } = await client.query<{ partition: string; n: number }>(
        `SELECT tableoid::regclass::text AS partition, count(*)::int AS n FROM "transactions" WHERE "createdAt" >= $1 AND "createdAt" < $2 GROUP BY 1`,
        [start, end],
      );
      if (placed.length !== 1 || placed[0]?.n !== rows || placed[0]?.partition === "transactions_default") {
        throw new Error(`${side} left the month of ${start.toISOString().slice(0, 7)} misplaced: ${JSON.stringify(placed)}`);
      }
    }
    const { rows } = await client.query<{ n: number; amount: string }>(`SELECT count(*)::int AS n, sum("amount")::text AS amount FROM "transactions"`);
    const expected = benchCase.months.reduce((sum, month) => sum + month.rows, 0);
    if (rows[0]?.n !== expected) throw new Error(`${side} changed the row count: ${rows[0]?.n}, expected ${expected}`);
    const { rows: left } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM "transactions_default"`);
    if (left[0]?.n !== 0) throw new Error(`${side} left ${left[0]?.n} rows in the default partition`);
  });
}

async function runCase(benchCase: Case, prefix: string, index: number): Promise<BenchRow[]> {
  const template = await buildTemplate(`${prefix}_${index}`, benchCase);
  const amount = async (name: string) =>
    withClient(
      databaseUrl(name),
      async (client) => (await client.query<{ amount: string }>(`SELECT sum("amount")::text AS amount FROM "transactions"`)).rows[0]?.amount,
    );
  const loadedAmount = await amount(template);
  const created: string[] = [];
  const oursRuns: SideRun[] = [];
  const partmanRuns: SideRun[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const sides = [
        { side: "ours", move: ours, runs: oursRuns },
        { side: "pg_partman", move: pgPartman, runs: partmanRuns },
      ];
      if (round % 2 === 1) sides.reverse();
      for (const { side, move, runs } of sides) {
        const name = `${template}_${round}_${side === "ours" ? "o" : "p"}`;
        created.push(name);
        const url = await cloneDatabase(template, name);
        runs.push(await timed(url, move));
        await verify(url, benchCase, side);
        if ((await amount(name)) !== loadedAmount) throw new Error(`${side} changed sum(amount)`);
        await dropDatabase(name);
      }
      say(
        `${benchCase.label}, round ${round + 1}: ours ${Math.round(oursRuns[round]?.ms ?? 0)} ms (reader waited ≤ ${Math.round(oursRuns[round]?.readerMaxMs ?? 0)} ms), ` +
          `pg_partman ${Math.round(partmanRuns[round]?.ms ?? 0)} ms (reader waited ≤ ${Math.round(partmanRuns[round]?.readerMaxMs ?? 0)} ms)`,
      );
    }
  } finally {
    for (const name of [...created, template]) await dropDatabase(name);
  }

  const ratios = oursRuns.map((run, round) => (partmanRuns[round]?.ms ?? Number.NaN) / run.ms);
  const readerRatios = oursRuns.map((run, round) => (partmanRuns[round]?.readerMaxMs ?? Number.NaN) / run.readerMaxMs);
  const spread = (values: number[]) => `min ${Math.min(...values).toFixed(2)} / median ${median(values).toFixed(2)} / max ${Math.max(...values).toFixed(2)}`;
  return [
    {
      name: `partition rescue, ${benchCase.label}: our move vs pg_partman partition_data_proc (${rounds} paired rounds; ratio pg_partman ÷ ours per round: ${spread(ratios)})`,
      value: median(oursRuns.map((run) => run.ms)),
      unit: "ms",
      baseline: median(partmanRuns.map((run) => run.ms)),
      ratio: median(ratios),
      goal: "> 1 in every round (faster)",
      met: Math.min(...ratios) > 1,
    },
    {
      name: `partition rescue, ${benchCase.label}: longest wait of a lookup by id on transactions during the move (ratio pg_partman ÷ ours per round: ${spread(readerRatios)}; informational)`,
      value: median(oursRuns.map((run) => run.readerMaxMs)),
      unit: "ms",
      baseline: median(partmanRuns.map((run) => run.readerMaxMs)),
      ratio: median(readerRatios),
    },
  ];
}

export const partitionRescueBench: BenchSection = {
  name: "partition-rescue",
  async run() {
    if (!(await pgPartmanAvailable())) {
      say("skipped: pg_partman not installed");
      return [{ name: "partition rescue vs pg_partman partition_data_proc: skipped: pg_partman not installed", value: Number.NaN, unit: "" }];
    }
    const prefix = `rescue_${randomBytes(4).toString("hex")}`;
    const rows: BenchRow[] = [];
    for (const [index, benchCase] of cases.entries()) rows.push(...(await runCase(benchCase, prefix, index)));
    return rows;
  },
};
