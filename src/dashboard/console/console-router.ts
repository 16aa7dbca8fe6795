import express, { type Request, type Response, Router } from "express";
import { audited } from "../../audit/audited.js";
import type { Logger } from "../../lib/logger.js";
import { principalOf } from "../auth.js";
import { csrfTokenFor, requireCsrfToken } from "../csrf.js";
import { mayAct, requireOperator } from "../roles.js";
import { layout } from "./layout.js";
import { type ActionIntent, type ConsoleServices, FormError, type PageRequest, type PageView, type RegisteredPage } from "./page.js";
import { consolePages } from "./pages.js";

/**
 * The console's routes, mounted at `basePath` behind the dashboard's
 * authentication: GET <page.path> for every page, and POST <action.path> for
 * every page action, which only an operator with the form's CSRF token
 * reaches. Pages are sent with a CSP that allows nothing from elsewhere.
 */
export interface ConsoleRouterOptions {
  services: ConsoleServices;
  logger: Logger;
  /** @defaultValue "/console" */
  basePath?: string;
  /** @defaultValue consolePages */
  pages?: RegisteredPage[];
}

const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function pageRequest(query: Request["query"]): PageRequest {
  const request: PageRequest = { query: {}, queryAll: {} };
  for (const [key, value] of Object.entries(query)) {
    const values = (Array.isArray(value) ? value : [value]).filter((item): item is string => typeof item === "string");
    if (values.length === 0) continue;
    request.query[key] = values[0] as string;
    request.queryAll[key] = values;
  }
  return request;
}

export function consoleRouter(options: ConsoleRouterOptions): Router {
  const basePath = options.basePath ?? "/console";
  const pages = options.pages ?? consolePages;
  const nav = pages.map((page) => ({ path: page.path, title: page.title }));
  const router = Router();
  const parseForm = express.urlencoded({ extended: false, limit: "16kb" });

  const viewFor = (res: Response): PageView => {
    const principal = principalOf(res);
    return { principal, mayAct: mayAct(principal), csrfToken: csrfTokenFor(principal), basePath };
  };

  router.get("/", (_req, res) => res.redirect(303, `${basePath}${pages[0]?.path ?? "/"}`));

  for (const page of pages) {
    router.get(page.path, async (req: Request, res: Response) => {
      const view = viewFor(res);
      const request = pageRequest(req.query);
      const body = await page.build(options.services, view, request);
      res
        .status(200)
        .set({ "Content-Security-Policy": contentSecurityPolicy, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" })
        .type("html")
        .send(layout({ title: page.title, nav, currentPath: page.path, view, body }).text);
    });

    for (const action of page.actions) {
      router.post(action.path, parseForm, requireOperator(), requireCsrfToken(options.logger), async (req: Request, res: Response) => {
        const principal = principalOf(res);
        const form = Object.fromEntries(
          Object.entries((req.body ?? {}) as Record<string, unknown>).filter((entry): entry is [string, string] => typeof entry[1] === "string"),
        );
        let intent: ActionIntent;
        try {
          intent = action.intent(options.services, form);
        } catch (err) {
          if (!(err instanceof FormError)) throw err;
          res.status(400).type("text/plain").send(`${err.message}\n`);
          return;
        }
        const result = action.auditsItself
          ? await action.handle(options.services, intent, principal)
          : await audited(options.services.db.pool, { actor: principal.name, source: "dashboard", ...intent }, async () => {
              const done = await action.handle(options.services, intent, principal);
              return { value: done, affected: done.affected };
            });
        options.logger.info({ ...intent, affected: result.affected, user: principal.name, role: principal.role }, "console action done");
        res.redirect(303, `${basePath}${result.redirectTo}`);
      });
    }
  }
  return router;
}
