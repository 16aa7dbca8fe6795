import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { packageRoot } from "../src/lib/paths.js";

/**
 * Producer apps import `dbjobs` for the contracts and the producer; the
 * workers' Prisma client, pg and every handler belong to `dbjobs/worker`.
 * Each entry is imported in a fresh node process that records every module
 * its loader loads (test/support/record-imports.mjs).
 */
const run = promisify(execFile);

async function modulesLoadedBy(entry: string): Promise<string[]> {
  const script = `await import(${JSON.stringify(entry)}); await globalThis.reportLoadedModules();`;
  const { stdout } = await run(process.execPath, ["--import", "./test/support/record-imports.mjs", "--import", "tsx", "--input-type=module", "-e", script], {
    cwd: packageRoot,
  });
  const line = stdout.split("\n").find((text) => text.startsWith("LOADED "));
  if (!line) throw new Error(`no LOADED line in: ${stdout}`);
  return JSON.parse(line.slice("LOADED ".length)) as string[];
}

const workerSide = [
  { what: "@prisma/client", pattern: /node_modules\/@prisma\/client\// },
  { what: "the generated Prisma client", pattern: /src\/generated\/prisma\// },
  { what: "pg", pattern: /node_modules\/pg\// },
  { what: "the handler map", pattern: /src\/queues\/handlers\.ts$/ },
  { what: "a job handler", pattern: /src\/jobs\/[^/]+\/handler\.ts$|src\/jobs\/[^/]+\.ts$/ },
];

// The queue store loads its client when a producer first needs it.
const loadedOnFirstEnqueue = [{ what: "bullmq", pattern: /node_modules\/bullmq\// }];

describe("package entries", () => {
  it("`dbjobs` loads the contracts and the producer, and no Prisma, pg or handler", async () => {
    const loaded = await modulesLoadedBy("./src/index.ts");
    expect(loaded.some((url) => url.endsWith("src/queues/contracts.ts"))).toBe(true);
    expect(loaded.some((url) => url.endsWith("src/queues/producer.ts"))).toBe(true);
    for (const { what, pattern } of [...workerSide, ...loadedOnFirstEnqueue])
      expect(
        loaded.filter((url) => pattern.test(url)),
        what,
      ).toEqual([]);
  }, 60_000);

  it("`dbjobs/worker` does load them (so the check above can see them)", async () => {
    const loaded = await modulesLoadedBy("./src/worker.ts");
    for (const { what, pattern } of workerSide)
      expect(
        loaded.some((url) => pattern.test(url)),
        what,
      ).toBe(true);
  }, 60_000);
});
