import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Router } from "express";
import type { AnyQueue } from "../lib/queue-store.js";

/**
 * bull-board for every queue, mounted at `basePath`, behind the dashboard's
 * authentication (server.ts). Built twice: for operators, who can retry,
 * promote, clean and pause, and read-only for viewers (bull-board hides its
 * action buttons and its API refuses them; roles.ts refuses them first).
 */
export interface BoardOptions {
  readOnly: boolean;
  /** Extra links in bull-board's header menu: the console's pages. */
  links?: { text: string; url: string }[];
}

type RenderCallback = (err: Error | null, html?: string) => void;
type ViewEngine = (path: string, options: object, callback: RenderCallback) => void;

/**
 * bull-board's page asks fonts.googleapis.com for IBM Plex, which fails (and
 * stalls) offline and tells a third party who opens the dashboard. Its CSS
 * falls back to the system's sans-serif and monospace fonts, so the link is
 * dropped from the rendered page rather than the fonts served.
 */
const outsideFontLink = /<link[^>]+href="https:\/\/fonts\.(?:googleapis|gstatic)\.com[^>]*>\s*/g;

function stripOutsideFonts(app: Router & { engines?: Record<string, ViewEngine>; engine?: (ext: string, fn: ViewEngine) => unknown }): void {
  const render = app.engines?.[".ejs"];
  if (!render || !app.engine) throw new Error("bull-board no longer renders its page with ejs; check board.ts's font stripping");
  app.engine("ejs", (path, options, callback) => render(path, options, (err, page) => callback(err, page?.replace(outsideFontLink, ""))));
}

export function createBoardRouter(queues: readonly AnyQueue[], basePath = "/", options: BoardOptions = { readOnly: false }): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    // bull-board's adapter is typed for the Redis backend's Queue; it only calls the backend-neutral Queue API.
    queues: queues.map(
      (queue) =>
        new BullMQAdapter(queue as ConstructorParameters<typeof BullMQAdapter>[0], { readOnlyMode: options.readOnly, allowRetries: !options.readOnly }),
    ),
    serverAdapter,
    options: { uiConfig: { boardTitle: options.readOnly ? "dbjobs (read-only)" : "dbjobs", hideDocsLink: true, miscLinks: options.links ?? [] } },
  });
  const router = serverAdapter.getRouter() as Router;
  stripOutsideFonts(router);
  return router;
}
