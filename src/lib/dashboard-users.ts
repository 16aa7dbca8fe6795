import { z } from "zod";
import { passwordHashProblem } from "./password-hash.js";

/**
 * DASHBOARD_USERS: the dashboard's users, each with a role and a password
 * hash, as `name:role:hash` entries separated by commas, e.g.
 *   alice:operator:scrypt$131072$8$1$…,bob:viewer:scrypt$131072$8$1$…
 * The hash never appears in an error message.
 */
export const dashboardRoles = ["viewer", "operator"] as const;
export type DashboardRole = (typeof dashboardRoles)[number];

export interface DashboardUserEntry {
  name: string;
  role: DashboardRole;
  passwordHash: string;
}

const format = "write name:role:hash entries separated by commas (role viewer or operator; hash from `dbjobs hash-password`)";
const namePattern = /^[A-Za-z0-9_.@-]{1,64}$/;

/** The entries, or a message naming the first bad one and the format. */
export function parseDashboardUsers(text: string): DashboardUserEntry[] | string {
  const entries: DashboardUserEntry[] = [];
  const raw = text.split(",").map((entry) => entry.trim());
  for (const [index, entry] of raw.entries()) {
    const position = `entry ${index + 1}`;
    const first = entry.indexOf(":");
    const second = entry.indexOf(":", first + 1);
    if (first < 0 || second < 0) return `${position} is not name:role:hash; ${format}`;
    const name = entry.slice(0, first);
    const role = entry.slice(first + 1, second);
    const passwordHash = entry.slice(second + 1);
    if (!namePattern.test(name)) return `${position}: user name "${name.slice(0, 64)}" must be 1-64 letters, digits, '_', '.', '@' or '-'; ${format}`;
    if (!(dashboardRoles as readonly string[]).includes(role)) return `${position} (${name}): role "${role}" must be viewer or operator; ${format}`;
    const problem = passwordHashProblem(passwordHash);
    if (problem) return `${position} (${name}): the password hash is not valid (${problem}); ${format}`;
    if (entries.some((other) => other.name === name)) return `user "${name}" is listed twice; give each user one entry`;
    entries.push({ name, role: role as DashboardRole, passwordHash });
  }
  return entries;
}

export const dashboardUsersFromEnv = z.string().transform((text, ctx) => {
  const parsed = parseDashboardUsers(text);
  if (typeof parsed === "string") {
    ctx.issues.push({ code: "custom", message: parsed, input: "[redacted]" });
    return z.NEVER;
  }
  return parsed;
});
