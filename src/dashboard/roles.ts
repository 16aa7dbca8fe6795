import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Logger } from "../lib/logger.js";
import { principalOf } from "./auth.js";
import type { DashboardPrincipal } from "./credentials.js";

/**
 * Roles (issue 18): a `viewer` reads, an `operator` may also act. Every
 * request that could change something (any method but GET, HEAD and OPTIONS)
 * from a viewer is refused here, before any route: bull-board's actions, the
 * enqueue route and the console's forms alike, including routes added later.
 */
const readMethods = new Set(["GET", "HEAD", "OPTIONS"]);

export function mayAct(principal: DashboardPrincipal): boolean {
  return principal.role === "operator";
}

function refuse(res: Response, principal: DashboardPrincipal): void {
  res.status(403).json({ error: `user "${principal.name}" has the viewer role, which is read-only; ask an operator, or sign in as one` });
}

export function refuseViewerWrites(logger: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const principal = principalOf(res);
    if (readMethods.has(req.method) || mayAct(principal)) {
      next();
      return;
    }
    logger.warn({ method: req.method, path: req.path, user: principal.name }, "write refused: viewer role");
    refuse(res, principal);
  };
}

/** For a route that acts: the same rule stated where the route is declared. */
export function requireOperator(): RequestHandler {
  return (_req: Request, res: Response, next: NextFunction) => {
    const principal = principalOf(res);
    if (mayAct(principal)) next();
    else refuse(res, principal);
  };
}
