import type pg from "pg";
import { advisoryUnlock, lockNames, tryAdvisoryLock } from "../../lib/advisory-locks.js";
import type { Config } from "../../lib/config.js";

/**
 * A tenant's (a clinic's) share of the bulk-messaging workers: at most its
 * limit of its campaigns send at once, over every worker process together.
 * Each slot is an advisory lock, `tenant-slot "<tenant>" <i>` for i below the
 * limit, tried without waiting on the campaign's own session, so a worker
 * that dies frees its slot with its connection. A campaign that finds every
 * slot taken does not wait in a worker slot: the handler postpones its job.
 */
export interface TenantSlot {
  readonly index: number;
  release(): Promise<void>;
}

/** The tenant's limit: its entry in MESSAGING_TENANT_LIMITS, else MESSAGING_TENANT_CONCURRENCY. */
export function tenantLimit(config: Pick<Config, "MESSAGING_TENANT_CONCURRENCY" | "MESSAGING_TENANT_LIMITS">, tenantId: string): number {
  return config.MESSAGING_TENANT_LIMITS?.[tenantId] ?? config.MESSAGING_TENANT_CONCURRENCY;
}

/** Takes a free slot of the tenant on `session`; undefined when all `limit` are held. */
export async function takeTenantSlot(session: Pick<pg.ClientBase, "query">, tenantId: string, limit: number): Promise<TenantSlot | undefined> {
  for (let index = 0; index < limit; index++) {
    const name = lockNames.tenantSlot(tenantId, index);
    if (await tryAdvisoryLock(session, name)) return { index, release: () => advisoryUnlock(session, name) };
  }
  return undefined;
}
