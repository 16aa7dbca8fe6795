import type { Logger } from "../lib/logger.js";

/**
 * Every operator action (cancel, scale, schedule trigger/pause/resume) goes
 * through here, from the CLI and from HTTP alike, so the audit log has one
 * place to hook into. For now it writes one structured log line.
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

export async function recordOperatorAction(action: OperatorAction, logger: Logger): Promise<void> {
  logger.info({ operatorAction: action.action, target: action.target, actor: action.actor, via: action.via, ...action.detail }, "operator action");
}
