import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { textArray, timestamptzArray, uuidArray } from "../src/lib/pg-binary-array.js";
import { useTestDb } from "./support/test-env.js";

/** Binary array parameters must reach PostgreSQL as exactly the values a text parameter would. */
describe("binary array parameters", () => {
  const testDatabase = useTestDb();

  it("sends uuid[] with NULLs, upper- or lower-case, as PostgreSQL prints them back", async () => {
    const ids = [randomUUID(), null, randomUUID().toUpperCase(), "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"];
    const { rows } = await testDatabase.db.pool.query(`SELECT u::text AS "value" FROM unnest($1::uuid[]) WITH ORDINALITY AS t(u, n) ORDER BY n`, [
      uuidArray(ids),
    ]);
    expect(rows.map((row) => row.value)).toEqual(ids.map((id) => id?.toLowerCase() ?? null));
  });

  it("sends text[] with NULLs, empty strings, quotes, braces, backslashes and non-ASCII text unchanged", async () => {
    const values = ["plain", "", null, `quote " brace { } comma , backslash \\ NULL`, "Zoë 🎉 ünïcode", "x".repeat(1600)];
    const { rows } = await testDatabase.db.pool.query(`SELECT s AS "value" FROM unnest($1::text[]) WITH ORDINALITY AS t(s, n) ORDER BY n`, [textArray(values)]);
    expect(rows.map((row) => row.value)).toEqual(values);
  });

  it("sends timestamptz[] from epoch milliseconds, before and after 2000, with NULLs", async () => {
    const times = [Date.UTC(2026, 10, 22, 23, 59, 59, 123), null, Date.UTC(1999, 11, 31, 23, 59, 59, 999), 0];
    const { rows } = await testDatabase.db.pool.query(
      `SELECT (extract(epoch FROM t) * 1000)::bigint::text AS "value" FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n) ORDER BY n`,
      [timestamptzArray(times)],
    );
    expect(rows.map((row) => (row.value === null ? null : Number(row.value)))).toEqual(times);
  });

  it("sends empty arrays", async () => {
    const { rows } = await testDatabase.db.pool.query(
      `SELECT cardinality($1::uuid[]) AS "u", cardinality($2::text[]) AS "t", cardinality($3::timestamptz[]) AS "ts"`,
      [uuidArray([]), textArray([]), timestamptzArray([])],
    );
    expect(rows[0]).toEqual({ u: 0, t: 0, ts: 0 });
  });

  it("refuses what it cannot encode, naming the value", () => {
    expect(() => uuidArray(["not-a-uuid"])).toThrow(/"not-a-uuid" is not a uuid/);
    expect(() => uuidArray(["{00000000-0000-0000-0000-000000000000}"])).toThrow(/is not a uuid/);
    const valid = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    // One bad character at each kind of place: a hex digit, a dash, past ASCII (U+0661, an Arabic-Indic digit; U+FF10, a full-width 0).
    for (const bad of [
      "0a1b2c3g-4e5f-6789-abcd-ef0123456789",
      "0a1b2c3d04e5f-6789-abcd-ef0123456789",
      "0a1b2c3d-4e5f-6789-abcd-ef012345678\u0661",
      "\uff10a1b2c3d-4e5f-6789-abcd-ef0123456789",
      `${valid}0`,
      valid.slice(1),
    ]) {
      expect(() => uuidArray([valid, bad]), bad).toThrow(/is not a uuid/);
    }
    expect(() => uuidArray([valid.toUpperCase()])).not.toThrow();
    expect(() => timestamptzArray([1.5])).toThrow(/1.5 is not a whole number of milliseconds/);
  });
});
