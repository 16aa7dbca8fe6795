// The Procfile, read for `npm start` (scripts/start-all.mjs).

/** Parses Procfile text into `{ name, command }` entries, in file order. */
export function readProcfile(text) {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => {
      const separator = line.indexOf(":");
      if (separator <= 0) throw new Error(`Procfile line "${line}" is not "name: command"`);
      return { name: line.slice(0, separator).trim(), command: line.slice(separator + 1).trim() };
    });
}

/**
 * The entries `npm start` runs when START_ONLY does not choose. `relay` moves
 * jobs enqueued in application transactions from the outbox to Redis; with
 * the queues in PostgreSQL (QUEUE_BACKEND unset or "postgres") those jobs are
 * written natively and nothing uses the outbox, so it is left out
 * (START_ONLY=relay still runs it, e.g. to drain rows left from a time on Redis).
 */
export function defaultEntries(entries, env) {
  return env.QUEUE_BACKEND === "redis" ? entries : entries.filter((entry) => entry.name !== "relay");
}
