import { describe, expect, it } from "vitest";
import { tenantLimit } from "../src/jobs/bulk-messaging/tenant-slots.js";
import { loadConfig } from "../src/lib/config.js";

/** The fairness settings of bulk-messaging: validated at start-up, each error naming the variable and the form it takes. Needs no services. */
describe("MESSAGING_TENANT_CONCURRENCY, MESSAGING_TENANT_LIMITS and MESSAGING_FAIR_SLICE_BATCHES", () => {
  it("default to one campaign per tenant at a time, no exceptions, and turns every 5 batches", () => {
    const config = loadConfig({});
    expect(config.MESSAGING_TENANT_CONCURRENCY).toBe(1);
    expect(config.MESSAGING_TENANT_LIMITS).toBeUndefined();
    expect(config.MESSAGING_FAIR_SLICE_BATCHES).toBe(5);
    expect(tenantLimit(config, "clinic-a")).toBe(1);
  });

  it("give each tenant its own limit, else the default", () => {
    const config = loadConfig({ MESSAGING_TENANT_CONCURRENCY: "2", MESSAGING_TENANT_LIMITS: "clinic-a=3, clinic b =1,__proto__=4" });
    expect(Object.entries(config.MESSAGING_TENANT_LIMITS ?? {})).toEqual([
      ["clinic-a", 3],
      ["clinic b", 1],
      ["__proto__", 4],
    ]);
    expect(tenantLimit(config, "clinic-a")).toBe(3);
    expect(tenantLimit(config, "clinic b")).toBe(1);
    expect(tenantLimit(config, "__proto__")).toBe(4);
    expect(tenantLimit(config, "clinic-c")).toBe(2);
    // Inherited names are not entries.
    expect(tenantLimit(config, "toString")).toBe(2);
  });

  it("refuse a typo, naming the variable and the form", () => {
    const form = /MESSAGING_TENANT_LIMITS: must be tenant=limit pairs separated by commas, each limit 1-100, e.g. clinic-a=3,clinic-b=1/;
    for (const bad of ["clinic-a:3", "clinic-a=3,", "clinic-a=0", "clinic-a=101", "=3", "clinic-a=three", "clinic-a=3;clinic-b=1"]) {
      expect(() => loadConfig({ MESSAGING_TENANT_LIMITS: bad }), bad).toThrow(form);
    }
    expect(() => loadConfig({ MESSAGING_TENANT_LIMITS: "clinic-a=3,clinic-a=1" })).toThrow(/MESSAGING_TENANT_LIMITS: .*\("clinic-a" is given twice\)/);
    expect(() => loadConfig({ MESSAGING_TENANT_LIMITS: "clinic-a=3;clinic-b=1" })).toThrow(/got "clinic-a=3;clinic-b=1"/);
    for (const bad of ["0", "101", "two"]) expect(() => loadConfig({ MESSAGING_TENANT_CONCURRENCY: bad }), bad).toThrow(/MESSAGING_TENANT_CONCURRENCY/);
    for (const bad of ["0", "1.5"]) expect(() => loadConfig({ MESSAGING_FAIR_SLICE_BATCHES: bad }), bad).toThrow(/MESSAGING_FAIR_SLICE_BATCHES/);
  });
});
