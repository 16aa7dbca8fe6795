import { type Queryable, recordAudit } from "../audit/record-audit.js";
import type { Logger } from "../lib/logger.js";

/**
 * Every operator action (cancel, scale, schedule trigger/pause/resume) goes
 * through here, from the CLI and from HTTP alike, so the audit log has one
 * place to hook into: one structured log line, and a row in the audit log
 * when the caller hands the application database.
 */
export interface OperatorAction {
  action: "cancel" | "scale" | "schedule.trigger" | "schedule.pause" | "schedule.resume";
  /** What it acted on: `<queue>/<jobId>`, a queue name or a schedule id. */
  target: string;
  /** Who: DBJOBS_ACTOR, the dashboard user, or "cli"/"http" when unknown. */
  actor: string;
  /** Where it came from. */
  via: "cli" | "http";
  /** What it did (outcome, new value); never secrets or payloads. */
  detail?: Record<string, unknown>;
}

export async function recordOperatorAction(action: OperatorAction, logger: Logger, audit?: Queryable): Promise<void> {
  logger.info({ operatorAction: action.action, target: action.target, actor: action.actor, via: action.via, ...action.detail }, "operator action");
  if (!audit) return;
  await recordAudit(audit, {
    actor: action.actor,
    source: action.via === "cli" ? "cli" : "dashboard",
    action: action.action,
    target: action.target,
    parameters: action.detail ?? {},
    affected: null,
    outcome: "ok",
  });
}
