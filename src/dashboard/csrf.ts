import { createHmac, timingSafeEqual } from "node:crypto";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { Logger } from "../lib/logger.js";
import { principalOf } from "./auth.js";
import type { DashboardPrincipal } from "./credentials.js";

/**
 * CSRF tokens for the console's forms. Basic auth has no session, so the
 * token is signed per user: an HMAC of the user's name under a key derived
 * from that user's own secret (credentials.ts). Another site cannot read the
 * console's pages, so it cannot learn the token, and a form it makes the
 * browser submit arrives without one. Every dashboard process computes the
 * same token, so it survives restarts and load balancers; changing the
 * user's password changes it.
 */
export const csrfField = "_csrf";

export function csrfTokenFor(principal: DashboardPrincipal): string {
  return createHmac("sha256", principal.csrfKey).update(`csrf:${principal.name}`).digest("base64url");
}

function sameToken(given: unknown, expected: string): boolean {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** 403 unless the form field `_csrf` (or the header X-CSRF-Token) holds the user's token; needs a body parser before it. */
export function requireCsrfToken(logger: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const principal = principalOf(res);
    const given = (req.body as Record<string, unknown> | undefined)?.[csrfField] ?? req.get("x-csrf-token");
    if (sameToken(given, csrfTokenFor(principal))) {
      next();
      return;
    }
    logger.warn({ method: req.method, path: req.path, user: principal.name, hadToken: given !== undefined }, "form refused: missing or wrong CSRF token");
    res.status(403).type("text/plain").send("Forbidden: the form's CSRF token is missing or wrong. Reload the page and submit it again.\n");
  };
}
