import { userInfo } from "node:os";
import type { Command } from "commander";
import { recordAudit } from "../audit/record-audit.js";
import { credentialsFromConfig, principalForPassword, principalForToken } from "../dashboard/credentials.js";
import type { Config } from "../lib/config.js";
import { coerceError, DbjobsError } from "../lib/errors.js";
import type { CliContext } from "./context.js";

/**
 * Who runs the CLI, and whether they may change queue state (issue 18: every
 * mutating CLI verb checks the role).
 *
 * Roles are in use once DASHBOARD_USERS is set. Then a mutating verb needs an
 * operator's credential, checked by the dashboard's own code
 * (src/dashboard/credentials.ts):
 *   - DBJOBS_ACTOR naming a user plus DBJOBS_PASSWORD, that user's password; or
 *   - DBJOBS_TOKEN equal to DASHBOARD_TOKEN.
 * Anything else is refused before the verb touches a queue, with one line
 * naming the variables, and the refusal is written to the audit log. Without
 * DASHBOARD_USERS every verb runs as before (operator). Read-only verbs and
 * the long-running processes (workers, scheduler, relay, dashboard) and
 * deployment steps (migrate, seed-demo) are never checked.
 */

/** The CLI's operator for the audit log: DBJOBS_ACTOR, else the OS user. */
export function cliActor(config: Pick<Config, "DBJOBS_ACTOR">): string {
  if (config.DBJOBS_ACTOR) return config.DBJOBS_ACTOR;
  try {
    return userInfo().username || "cli";
  } catch {
    return `uid ${process.getuid?.() ?? "unknown"}`;
  }
}

export type VerbKind = "mutating" | "read-only" | "process";

/** Every verb by its full name. A verb missing here counts as mutating, and test/cli.operator-role.test.ts fails until it is listed. */
export const verbKinds: Record<string, VerbKind> = {
  enqueue: "mutating",
  retry: "mutating",
  clean: "mutating",
  pause: "mutating",
  resume: "mutating",
  cancel: "mutating",
  scale: "mutating",
  "schedules trigger": "mutating",
  "schedules pause": "mutating",
  "schedules resume": "mutating",
  "recipients stage": "mutating",
  status: "read-only",
  jobs: "read-only",
  job: "read-only",
  failed: "read-only",
  search: "read-only",
  audit: "read-only",
  schedules: "read-only",
  "db report": "read-only",
  "hash-password": "read-only",
  // Groups: alone they print their help.
  db: "read-only",
  recipients: "read-only",
  migrate: "process",
  "seed-demo": "process",
  worker: "process",
  scheduler: "process",
  relay: "process",
  dashboard: "process",
};

/** `schedules trigger` for the trigger subcommand. */
export function verbName(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(" ");
}

export function isMutatingVerb(command: Command): boolean {
  return (verbKinds[verbName(command)] ?? "mutating") === "mutating";
}

export class OperatorRequiredError extends DbjobsError {
  constructor(verb: string, why: string) {
    super("DBJOBS_OPERATOR_REQUIRED", `\`dbjobs ${verb}\` changes queue state and needs the operator role (DASHBOARD_USERS is set): ${why}`, {
      retryable: false,
    });
  }
}

const howTo = "set DBJOBS_ACTOR to an operator's user name and DBJOBS_PASSWORD to their password, or DBJOBS_TOKEN to the value of DASHBOARD_TOKEN";

/** Why this configuration may not act, or undefined when it may (an operator's credential, or no roles in use). */
export async function operatorRefusal(config: Config): Promise<string | undefined> {
  if (!config.DASHBOARD_USERS?.length) return undefined;
  const list = credentialsFromConfig(config);
  if (config.DBJOBS_TOKEN !== undefined) {
    const principal = principalForToken(list, config.DBJOBS_TOKEN);
    if (!principal) return `DBJOBS_TOKEN matches no dashboard token; ${howTo}.`;
    if (principal.role !== "operator") return `DBJOBS_TOKEN is the viewer token, which is read-only; ${howTo}.`;
    return undefined;
  }
  if (config.DBJOBS_PASSWORD !== undefined && config.DBJOBS_ACTOR !== undefined) {
    const principal = await principalForPassword(list, config.DBJOBS_ACTOR, config.DBJOBS_PASSWORD);
    if (!principal)
      return `DBJOBS_ACTOR "${config.DBJOBS_ACTOR}" with DBJOBS_PASSWORD matches no user of DASHBOARD_USERS; fix the name or the password, or ${howTo}.`;
    if (principal.role !== "operator") return `user "${principal.name}" has the viewer role, which is read-only; ask an operator, or ${howTo}.`;
    return undefined;
  }
  return `no credential given; ${howTo}.`;
}

/**
 * Refuses a mutating verb without an operator's credential (see above),
 * recording the refusal in the audit log; the refusal stands even when the
 * log cannot be written (it then says so).
 */
export async function requireCliOperator(command: Command, context: Pick<CliContext, "config" | "db">): Promise<void> {
  const verb = verbName(command);
  if (!isMutatingVerb(command)) return;
  const refusal = await operatorRefusal(context.config);
  if (refusal === undefined) return;
  const [first, second] = command.args;
  let unaudited = "";
  try {
    await recordAudit(context.db().pool, {
      actor: cliActor(context.config),
      source: "cli",
      // Named as the verb's own audit rows name it: `schedule.pause`, `retry`, and `<queue>/<id>` for one job.
      action: verb.replace(/^schedules /, "schedule.").replace(" ", "."),
      target: first === undefined ? verb : (verb === "retry" || verb === "cancel") && second !== undefined ? `${first}/${second}` : first,
      parameters: { args: command.args },
      affected: null,
      outcome: `refused: ${refusal}`,
    });
  } catch (err) {
    unaudited = ` (The refusal could not be written to the audit log: ${coerceError(err).message}.)`;
  }
  throw new OperatorRequiredError(verb, refusal + unaudited);
}
