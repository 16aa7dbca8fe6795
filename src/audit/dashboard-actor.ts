import type { Request } from "express";

/**
 * Who made an authenticated dashboard request, for the audit log: the basic
 * auth user, "bearer token" for the token (it names no one), or "anonymous"
 * when the dashboard runs without authentication on loopback. Read only after
 * the auth middleware accepted the request; the password is never read.
 */
export function dashboardActor(req: Request): string {
  const roleUser = (req.res?.locals as { principal?: { name?: string } } | undefined)?.principal?.name;
  if (roleUser) return roleUser;
  const header = req.get("authorization") ?? "";
  const space = header.indexOf(" ");
  const scheme = space > 0 ? header.slice(0, space).toLowerCase() : "";
  if (scheme === "basic") {
    const decoded = Buffer.from(header.slice(space + 1).trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon > 0) return decoded.slice(0, colon);
  }
  if (scheme === "bearer") return "bearer token";
  return "anonymous";
}
