/**
 * How a cache hears of invalidations made in other processes, and tells them
 * of its own: through Redis (cache-redis-link.ts, with the shared tier) or,
 * without Redis, through PostgreSQL LISTEN/NOTIFY (cache-postgres-link.ts).
 */
export interface InvalidationLink {
  /** "redis" or "postgres", for stats and messages. */
  readonly via: "redis" | "postgres";
  /** Whether invalidations sent by other processes reach this one right now. */
  readonly connected: boolean;
  /** Tells every process (and the shared tier) to drop `keys`; kept and replayed when the link is down. */
  invalidate(keys: string[]): Promise<void>;
  /** Resolves true once the link listens, or false after `timeoutMs` (it keeps trying in the background). */
  ready(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** What a link reports to its cache. Neither callback may throw. */
export interface LinkEvents {
  /** Keys some process invalidated (this one included). */
  onKeys(keys: string[]): void;
  /** The link is back after it was lost: whatever was sent meanwhile never arrived. */
  onResumed(): void;
}

/** Invalidations kept for replay while a link is down; beyond this, TTLs bound staleness. */
export const maxPendingInvalidations = 100_000;

/** Keys to send once the link is back; the set is bounded by maxPendingInvalidations. */
export class PendingInvalidations {
  private readonly keys = new Set<string>();

  get size(): number {
    return this.keys.size;
  }

  add(keys: Iterable<string>): void {
    for (const key of keys) {
      if (this.keys.size >= maxPendingInvalidations) return;
      this.keys.add(key);
    }
  }

  take(): string[] {
    const keys = [...this.keys];
    this.keys.clear();
    return keys;
  }
}

/** Backoff between reconnect attempts: 100 ms doubling to 2 s. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt, 5), 2000);
}
