import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configSchema, loadConfig } from "../src/lib/config.js";
import { packageRoot } from "../src/lib/paths.js";
import { contracts } from "../src/queues/contracts.js";
import { declaredSchedules } from "../src/queues/schedules.js";

/**
 * The reference text states what the code declares: every environment
 * variable of src/lib/config.ts with its default (docs/configuration.md),
 * every payload field of each queue's contract with its default, and each
 * queue's worker settings (docs/jobs.md). Needs no services.
 */
const read = (path: string) => readFileSync(join(packageRoot, path), "utf8");

/** The rows of every table whose header starts with `firstHeader`: cells trimmed, the first cell's backticks removed. */
function tableRows(markdown: string, firstHeader: string): string[][] {
  const rows: string[][] = [];
  let inTable = false;
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("|")) {
      inTable = false;
      continue;
    }
    const cells = line
      .slice(1, line.trimEnd().endsWith("|") ? line.trimEnd().length - 1 : undefined)
      .split(/(?<!\\)\|/)
      .map((cell) => cell.trim());
    if (cells[0] === firstHeader) inTable = true;
    else if (inTable && !/^-+$/.test(cells[0] ?? "")) rows.push([(cells[0] ?? "").replace(/^`(.*)`$/, "$1"), ...cells.slice(1)]);
  }
  return rows;
}

/** `## heading` → the text up to the next `## `. */
function sections(markdown: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const part of markdown.split(/^## /m).slice(1)) result.set(part.slice(0, part.indexOf("\n")).trim(), part);
  return result;
}

describe("docs/configuration.md", () => {
  const configuration = read("docs/configuration.md");
  const schemaPart = configuration.slice(0, configuration.indexOf("## Read outside the config schema"));
  const documented = new Map(tableRows(schemaPart, "variable").map(([name, defaultCell]) => [name as string, defaultCell as string]));
  const variables = Object.keys(configSchema.shape);

  it("lists every variable of the config schema, and none that is not in it", () => {
    expect([...documented.keys()].sort()).toEqual([...variables].sort());
  });

  it("states each variable's default as the schema does", () => {
    const defaults = loadConfig({});
    const schedules = new Map(declaredSchedules(defaults).map((schedule) => [schedule.overrideVariable as string, schedule.cron]));
    for (const name of variables) {
      const value = schedules.get(name) ?? defaults[name as keyof typeof defaults];
      if (value === undefined) expect(documented.get(name), name).not.toMatch(/^`/);
      else expect(documented.get(name), name).toBe(`\`${String(value)}\``);
    }
  });
});

describe("docs/jobs.md", () => {
  const jobs = sections(read("docs/jobs.md"));
  // The smallest payload each schema accepts; every other field then takes its default.
  const minimal: Record<string, Record<string, unknown>> = {
    "bulk-messaging": { campaignId: "c", channel: "sms", body: "b", patientIds: ["p"] },
    "invoice-totals": { all: true },
  };

  it.each(contracts.map((contract) => [contract.name, contract]))("%s: every payload field with its default", (name, contract) => {
    const section = jobs.get(name);
    expect(section, `a "## ${name}" section`).toBeDefined();
    const documented = new Map(tableRows(section ?? "", "field").map(([field, defaultCell]) => [field as string, defaultCell as string]));
    expect([...documented.keys()].sort()).toEqual(Object.keys(contract.payload.shape).sort());
    const given = minimal[name] ?? {};
    const resolved = contract.payload.parse(given) as Record<string, unknown>;
    for (const [field, value] of Object.entries(resolved)) {
      if (field in given) continue;
      expect(documented.get(field), `${name}.${field}`).toBe(`\`${JSON.stringify(value)}\``);
    }
  });

  it("states each queue's concurrency, attempts and job lock as its contract does", () => {
    const settings = new Map(tableRows(jobs.get("What every job shares") ?? "", "queue").map(([queue, ...cells]) => [queue as string, cells]));
    expect([...settings.keys()].sort()).toEqual(contracts.map((contract) => contract.name).sort());
    for (const contract of contracts) {
      expect(settings.get(contract.name)?.slice(0, 3), contract.name).toEqual([
        String(contract.worker.concurrency),
        String(contract.jobOptions.attempts),
        `${(contract.worker.lockDurationMs ?? 30_000) / 1000} s`,
      ]);
    }
  });
});
