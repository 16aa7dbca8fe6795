import { createHash, timingSafeEqual } from "node:crypto";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Config } from "../lib/config.js";
import { ConfigError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";

/**
 * Who may use the dashboard (SPEC §5): HTTP basic auth with DASHBOARD_USER and
 * DASHBOARD_PASSWORD, a bearer token DASHBOARD_TOKEN, or both. Without any of
 * them the dashboard refuses to start, unless DASHBOARD_ALLOW_NO_AUTH=true and
 * it binds to a loopback address, where only this machine can reach it.
 */
export type DashboardAuth =
  | { kind: "credentials"; basic?: { user: string; password: string }; token?: string }
  | { kind: "none"; reason: "explicitly allowed on loopback" };

const loopbackHosts = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function isLoopbackHost(host: string): boolean {
  return loopbackHosts.has(host.toLowerCase());
}

/** Reads the dashboard's credentials from config; throws a ConfigError that says how to fix a missing or half-set one. */
export function resolveDashboardAuth(config: Config, host: string = config.DASHBOARD_HOST): DashboardAuth {
  const { DASHBOARD_USER: user, DASHBOARD_PASSWORD: password, DASHBOARD_TOKEN: token } = config;
  if ((user === undefined) !== (password === undefined)) {
    throw new ConfigError("Set both DASHBOARD_USER and DASHBOARD_PASSWORD for basic auth (only one of them is set).");
  }
  const basic = user !== undefined && password !== undefined ? { user, password } : undefined;
  if (basic || token) return { kind: "credentials", ...(basic ? { basic } : {}), ...(token ? { token } : {}) };
  if (config.DASHBOARD_ALLOW_NO_AUTH && isLoopbackHost(host)) return { kind: "none", reason: "explicitly allowed on loopback" };
  if (config.DASHBOARD_ALLOW_NO_AUTH) {
    throw new ConfigError(
      `DASHBOARD_ALLOW_NO_AUTH=true is only honoured when DASHBOARD_HOST is 127.0.0.1, localhost or ::1 (it is "${host}"). Set DASHBOARD_USER and DASHBOARD_PASSWORD, or DASHBOARD_TOKEN.`,
    );
  }
  throw new ConfigError(
    "The dashboard needs credentials: set DASHBOARD_USER and DASHBOARD_PASSWORD (basic auth) or DASHBOARD_TOKEN (bearer, 16+ characters). " +
      "To run it without authentication on this machine only, set DASHBOARD_HOST=127.0.0.1 and DASHBOARD_ALLOW_NO_AUTH=true.",
  );
}

// Hashing first gives both sides the same length, so timingSafeEqual never
// throws and the comparison time does not depend on where the strings differ
// or on the secret's length.
function sameSecret(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}

/** Checks an Authorization header value against the configured credentials. */
export function isAuthorized(header: string | undefined, auth: DashboardAuth): boolean {
  if (auth.kind === "none") return true;
  if (!header) return false;
  const space = header.indexOf(" ");
  if (space <= 0) return false;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (scheme === "bearer" && auth.token) return sameSecret(value, auth.token);
  if (scheme === "basic" && auth.basic) {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return false;
    // Both comparisons always run: no early exit tells an attacker the user name was right.
    const userOk = sameSecret(decoded.slice(0, colon), auth.basic.user);
    const passwordOk = sameSecret(decoded.slice(colon + 1), auth.basic.password);
    return userOk && passwordOk;
  }
  return false;
}

/** Express middleware: 401 with WWW-Authenticate (so browsers show their login prompt) unless the request carries valid credentials. */
export function requireAuth(auth: DashboardAuth, logger: Logger): RequestHandler {
  const challenges: string[] = [];
  if (auth.kind === "credentials") {
    if (auth.basic) challenges.push('Basic realm="dbjobs", charset="UTF-8"');
    if (auth.token) challenges.push('Bearer realm="dbjobs"');
  }
  return (req: Request, res: Response, next: NextFunction) => {
    if (isAuthorized(req.get("authorization"), auth)) {
      next();
      return;
    }
    // Never log the header itself: it holds the (wrong, but maybe nearly right) secret.
    // Browsers send each first request without credentials and retry after the
    // challenge, so only wrong credentials are worth a warning.
    const hadCredentials = Boolean(req.get("authorization"));
    logger[hadCredentials ? "warn" : "debug"](
      { method: req.method, path: req.path, ip: req.ip, hadCredentials },
      "dashboard request refused: bad or missing credentials",
    );
    res.set("WWW-Authenticate", challenges);
    res.status(401).json({ error: "authentication required: use HTTP basic auth or a bearer token" });
  };
}

/**
 * Browsers attach cached basic-auth credentials to any request to this host,
 * including a form another site submits (CSRF). Writes whose Origin is a
 * different host are refused; scripts and curl send no Origin and pass.
 */
export function rejectCrossSiteWrites(logger: Logger): RequestHandler {
  const safeMethods = new Set(["GET", "HEAD", "OPTIONS"]);
  return (req: Request, res: Response, next: NextFunction) => {
    const origin = req.get("origin");
    if (safeMethods.has(req.method) || !origin) {
      next();
      return;
    }
    let originHost: string | undefined;
    try {
      originHost = new URL(origin).host;
    } catch {
      originHost = undefined;
    }
    if (originHost !== undefined && originHost === req.get("host")) {
      next();
      return;
    }
    logger.warn({ method: req.method, path: req.path, origin }, "cross-site write refused");
    res.status(403).json({ error: "cross-site request refused: send it from the dashboard's own origin or without an Origin header" });
  };
}
