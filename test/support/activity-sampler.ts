import pg from "pg";

/** One backend of the watched database, as one sample saw it. */
export interface BackendSample {
  pid: number;
  usename: string;
  applicationName: string;
  state: string | null;
  waitEventType: string | null;
  /** The statement running, or the last one run when idle. */
  query: string;
  /** Advisory locks granted to it, any key. */
  advisoryLocks: number;
  /** Which of the watched lock names (lockNames in src/lib/advisory-locks.ts) it holds. */
  lockNames: string[];
}

// Takes $1 database name, $2 text[] advisory lock names. Returns every other backend of that database, with the advisory
// locks it holds; a bigint key is its high half in classid and its low half in objid (objsubid 1), as advisory-locks.ts reads it.
const sampleSql = `
SELECT a.pid, a.usename, a.application_name AS "applicationName", a.state, a.wait_event_type AS "waitEventType", left(a.query, 300) AS query,
       (SELECT count(*)::int FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted) AS "advisoryLocks",
       array(SELECT n.name FROM unnest($2::text[]) AS n(name)
              WHERE EXISTS (SELECT 1 FROM pg_locks l
                             WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                               AND l.classid = ((hashtextextended(n.name, 0) >> 32) & 4294967295)::oid
                               AND l.objid = (hashtextextended(n.name, 0) & 4294967295)::oid)) AS "lockNames"
  FROM pg_stat_activity a
 WHERE a.datname = $1 AND a.pid <> pg_backend_pid()`;

/**
 * Reads pg_stat_activity and pg_locks of one database every `intervalMs`
 * from a connection of its own, keeping every row, for tests that ask which
 * role (which connection path) ran a kind of work.
 */
export interface ActivitySampler {
  samples(): BackendSample[];
  /** Resolves with the first row `match` accepts, from samples taken from now on. */
  waitFor(what: string, match: (row: BackendSample) => boolean, timeoutMs?: number): Promise<BackendSample>;
  stop(): Promise<BackendSample[]>;
}

export async function startActivitySampler(url: string, lockNames: string[], intervalMs = 20): Promise<ActivitySampler> {
  const client = new pg.Client({ connectionString: url, application_name: "test:sampler" });
  await client.connect();
  const database = new URL(url).pathname.slice(1);
  const rows: BackendSample[] = [];
  const waiters = new Set<{ match: (row: BackendSample) => boolean; resolve: (row: BackendSample) => void }>();
  let stopped = false;
  let failure: unknown;
  const loop = (async () => {
    while (!stopped) {
      try {
        const { rows: sample } = await client.query<BackendSample>(sampleSql, [database, lockNames]);
        rows.push(...sample);
        for (const waiter of [...waiters]) {
          const found = sample.find(waiter.match);
          if (found) {
            waiters.delete(waiter);
            waiter.resolve(found);
          }
        }
      } catch (err) {
        failure = err;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    samples: () => [...rows],
    waitFor(what, match, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} in pg_stat_activity${failure ? ` (sampler failed: ${String(failure)})` : ""}`));
        }, timeoutMs);
        const waiter = {
          match,
          resolve: (row: BackendSample) => {
            clearTimeout(timer);
            resolve(row);
          },
        };
        waiters.add(waiter);
      });
    },
    async stop() {
      stopped = true;
      await loop;
      await client.end().catch(() => undefined);
      if (failure) throw failure;
      return [...rows];
    },
  };
}
