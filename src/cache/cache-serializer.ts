import { Prisma } from "../lib/db.js";

/**
 * The cache's wire format: JSON in which Prisma's Decimal, Date and BigInt
 * keep their type. Plain JSON would turn a balance into a string and a date
 * into a string, so a value read from Redis would differ from the one the
 * loader returned; callers could not tell which tier answered.
 *
 * Tagged values look like `{"$t":"Decimal","v":"12.30"}`; a Date's `v` is an
 * ISO string (or epoch milliseconds, as the prefetch's SQL writes it). An object of the
 * caller's that itself has a `$t` key is escaped as its entry list, so no
 * caller value can be mistaken for a tag.
 */
const TAG = "$t";

type Tagged = { [TAG]: "Decimal" | "Date" | "BigInt" | "Object"; v: unknown };

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // JSON.stringify has already called toJSON (Date, Decimal); the original is on the holder.
  const raw = this[key];
  if (raw instanceof Date) return { [TAG]: "Date", v: Number.isNaN(raw.getTime()) ? null : raw.toISOString() };
  if (Prisma.Decimal.isDecimal(raw)) return { [TAG]: "Decimal", v: (raw as Prisma.Decimal).toString() };
  if (typeof raw === "bigint") return { [TAG]: "BigInt", v: raw.toString() };
  if (raw !== null && typeof raw === "object" && !Array.isArray(raw) && Object.hasOwn(raw, TAG)) {
    return { [TAG]: "Object", v: Object.entries(raw) };
  }
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== "object" || !Object.hasOwn(value, TAG)) return value;
  const tagged = value as Tagged;
  switch (tagged[TAG]) {
    case "Decimal":
      return new Prisma.Decimal(tagged.v as string);
    case "Date":
      return new Date(tagged.v === null ? Number.NaN : (tagged.v as string | number));
    case "BigInt":
      return BigInt(tagged.v as string);
    case "Object":
      return Object.fromEntries(tagged.v as [string, unknown][]);
    default:
      return value;
  }
}

/** Encodes a value for Redis. `undefined` has no encoding; callers do not cache it. */
export function serializeCacheValue(value: unknown): string {
  const text = JSON.stringify({ v: value }, replacer);
  return text;
}

export function deserializeCacheValue<T = unknown>(text: string): T {
  return (JSON.parse(text, reviver) as { v: T }).v;
}
