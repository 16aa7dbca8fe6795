import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Config } from "../lib/config.js";
import { ConfigError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { anonymousPrincipal, CredentialChecker, credentialsFromConfig, type DashboardPrincipal } from "./credentials.js";

/**
 * Who may use the dashboard (SPEC §5, issue 18): users with a role from
 * DASHBOARD_USERS, the single DASHBOARD_USER/DASHBOARD_PASSWORD pair, the
 * bearer tokens DASHBOARD_TOKEN (operator) and DASHBOARD_VIEWER_TOKEN
 * (viewer), in any combination. Without any of them the dashboard refuses to
 * start, unless DASHBOARD_ALLOW_NO_AUTH=true and it binds to a loopback
 * address, where only this machine can reach it.
 */
export type DashboardAuth =
  | { kind: "credentials"; checker: CredentialChecker; methods: ("basic" | "bearer")[] }
  | { kind: "none"; reason: "explicitly allowed on loopback"; principal: DashboardPrincipal };

const loopbackHosts = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function isLoopbackHost(host: string): boolean {
  return loopbackHosts.has(host.toLowerCase());
}

/** Reads the dashboard's credentials from config; throws a ConfigError that says how to fix a missing or half-set one. */
export function resolveDashboardAuth(config: Config, host: string = config.DASHBOARD_HOST): DashboardAuth {
  const { DASHBOARD_USER: user, DASHBOARD_PASSWORD: password } = config;
  if ((user === undefined) !== (password === undefined)) {
    throw new ConfigError("Set both DASHBOARD_USER and DASHBOARD_PASSWORD for basic auth (only one of them is set).");
  }
  if (user !== undefined && config.DASHBOARD_USERS?.some((entry) => entry.name === user)) {
    throw new ConfigError(`User "${user}" is both DASHBOARD_USER and an entry of DASHBOARD_USERS; keep one of them.`);
  }
  const list = credentialsFromConfig(config);
  if (list.users.length > 0 || list.tokens.length > 0) {
    const checker = new CredentialChecker(list);
    const methods = [checker.hasBasic ? ("basic" as const) : undefined, checker.hasBearer ? ("bearer" as const) : undefined].filter((m) => m !== undefined);
    return { kind: "credentials", checker, methods };
  }
  if (config.DASHBOARD_ALLOW_NO_AUTH && isLoopbackHost(host))
    return { kind: "none", reason: "explicitly allowed on loopback", principal: anonymousPrincipal() };
  if (config.DASHBOARD_ALLOW_NO_AUTH) {
    throw new ConfigError(
      `DASHBOARD_ALLOW_NO_AUTH=true is only honoured when DASHBOARD_HOST is 127.0.0.1, localhost or ::1 (it is "${host}"). Set DASHBOARD_USER and DASHBOARD_PASSWORD, or DASHBOARD_TOKEN.`,
    );
  }
  throw new ConfigError(
    "The dashboard needs credentials: set DASHBOARD_USER and DASHBOARD_PASSWORD (basic auth) or DASHBOARD_TOKEN (bearer, 16+ characters), " +
      "or DASHBOARD_USERS for several users with roles (see `dbjobs hash-password`). " +
      "To run it without authentication on this machine only, set DASHBOARD_HOST=127.0.0.1 and DASHBOARD_ALLOW_NO_AUTH=true.",
  );
}

/** The user an Authorization header value proves, or undefined. */
export async function authenticate(header: string | undefined, auth: DashboardAuth): Promise<DashboardPrincipal | undefined> {
  if (auth.kind === "none") return auth.principal;
  return auth.checker.check(header);
}

/** The user requireAuth let in. */
export function principalOf(res: Response): DashboardPrincipal {
  const principal = res.locals.principal as DashboardPrincipal | undefined;
  if (!principal) throw new Error("principalOf() called on a route not behind requireAuth");
  return principal;
}

/**
 * Express middleware: 401 with WWW-Authenticate (so browsers show their login
 * prompt) unless the request carries valid credentials; the user is then in
 * `res.locals.principal`.
 */
export function requireAuth(auth: DashboardAuth, logger: Logger): RequestHandler {
  const challenges: string[] = [];
  if (auth.kind === "credentials") {
    if (auth.methods.includes("basic")) challenges.push('Basic realm="dbjobs", charset="UTF-8"');
    if (auth.methods.includes("bearer")) challenges.push('Bearer realm="dbjobs"');
  }
  return async (req: Request, res: Response, next: NextFunction) => {
    const principal = await authenticate(req.get("authorization"), auth);
    if (principal) {
      res.locals.principal = principal;
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
