import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultEntries, readProcfile } from "../scripts/procfile.mjs";
import { packageRoot } from "../src/lib/paths.js";

/** `npm start` runs the outbox relay only where the outbox is used: with the queues in Redis. */
describe("the Procfile's relay line", () => {
  const entries = readProcfile(readFileSync(join(packageRoot, "Procfile"), "utf8"));

  it("runs `dbjobs relay`", () => {
    expect(entries.find((entry) => entry.name === "relay")?.command).toBe("node dist/src/cli/index.js relay");
  });

  it("is started by npm start only when QUEUE_BACKEND=redis", () => {
    const names = (env: Record<string, string | undefined>) => defaultEntries(entries, env).map((entry) => entry.name);
    expect(names({ QUEUE_BACKEND: "redis" })).toEqual(entries.map((entry) => entry.name));
    expect(names({ QUEUE_BACKEND: "postgres" })).toEqual(entries.map((entry) => entry.name).filter((name) => name !== "relay"));
    expect(names({})).not.toContain("relay");
  });
});
