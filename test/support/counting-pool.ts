import type pg from "pg";
import type { Db } from "../../src/lib/db.js";

/**
 * A view of `db` whose pool records the text of every statement sent through
 * `pool.query`, for the test and the benchmark that count statements per
 * batch. Everything else (connect, end, events) goes to the real pool, so the
 * statements still run against the real database; statements sent on a
 * client taken with `pool.connect()` (session work such as advisory locks)
 * are not recorded.
 */
export function countingDb(db: Db): { db: Db; statements: string[] } {
  const statements: string[] = [];
  const pool = new Proxy(db.pool, {
    get(target, property, receiver) {
      if (property === "query") {
        return (text: unknown, ...rest: unknown[]) => {
          statements.push(typeof text === "string" ? text : String((text as { text?: string }).text));
          return (target.query as (...args: unknown[]) => unknown).call(target, text, ...rest);
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as pg.Pool;
  return { db: { ...db, pool }, statements };
}
