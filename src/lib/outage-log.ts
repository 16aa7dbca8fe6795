import type { Logger } from "./logger.js";

/**
 * A dependency's outage as a few structured lines, not one per failed
 * attempt: a client that reconnects every few hundred milliseconds, or a
 * load balancer polling /health, would otherwise flood the log.
 *
 *   warn  "<service> connection error; reconnecting"   when it goes down
 *   warn  "<service> still unreachable; reconnecting"  at most every `repeatMs` while down
 *   info  "<service> connection restored"              when it answers again
 *
 * Lines carry the error code, never a stack (the code is what an operator acts on).
 */
export interface OutageLogOptions {
  /** Without one, nothing is logged (the state is still tracked). */
  logger?: Logger;
  /** "Redis", "PostgreSQL", ... */
  service: string;
  /** Added to every line, e.g. the masked URL and the setting to fix. */
  fields?: Record<string, unknown>;
  /** @defaultValue 30000 */
  repeatMs?: number;
}

export interface OutageLog {
  /** Records a failed attempt; logs when it starts an outage, or `repeatMs` after the last line. */
  down(code: string): void;
  /** Records an answer; logs when it ends an outage. */
  up(): void;
  /** Whether the last attempt failed. */
  readonly isDown: boolean;
}

export const outageRepeatMs = 30_000;

export function createOutageLog(options: OutageLogOptions): OutageLog {
  const repeatMs = options.repeatMs ?? outageRepeatMs;
  let downSince: number | undefined;
  let lastLogged = 0;
  return {
    down(code) {
      const now = Date.now();
      const starting = downSince === undefined;
      downSince ??= now;
      if (!starting && now - lastLogged < repeatMs) return;
      lastLogged = now;
      options.logger?.warn(
        { ...options.fields, service: options.service, code, downForMs: now - downSince },
        starting ? `${options.service} connection error; reconnecting` : `${options.service} still unreachable; reconnecting`,
      );
    },
    up() {
      if (downSince === undefined) return;
      options.logger?.info({ ...options.fields, service: options.service, downForMs: Date.now() - downSince }, `${options.service} connection restored`);
      downSince = undefined;
    },
    get isDown() {
      return downSince !== undefined;
    },
  };
}
