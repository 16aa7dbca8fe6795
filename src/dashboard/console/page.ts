import type { Config } from "../../lib/config.js";
import type { Db } from "../../lib/db.js";
import type { Logger } from "../../lib/logger.js";
import type { AnyQueue } from "../../lib/queue-store.js";
import type { Producer } from "../../queues/producer.js";
import type { ScheduleHealth } from "../../queues/schedule-health.js";
import type { DashboardPrincipal } from "../credentials.js";
import type { Html } from "./html.js";

/**
 * A console page is a module that loads rows and renders them: `load` reads
 * (queues, the database), `render` turns what it read into HTML inside the
 * shared layout. A page that acts declares `actions`; the router serves each
 * one as a POST that only an operator with the form's CSRF token reaches.
 * Adding a page is one module and one line in pages.ts.
 */
export interface ConsoleServices {
  queues: readonly AnyQueue[];
  db: Db;
  readSchedules(): Promise<ScheduleHealth[]>;
  /** For the control actions: schedule lookup (findSchedule) and QUEUE_CONNECT_TIMEOUT_MS. */
  config: Config;
  /** Its queue store carries a cancel to the worker running the job; it enqueues a schedule's triggered run. */
  producer: Producer;
  logger: Logger;
}

export interface PageRequest {
  /** Query string values; repeated keys keep their first value. */
  query: Record<string, string>;
  /** Every value of each key, for repeatable parameters (a search's several `field=` filters). */
  queryAll: Record<string, string[]>;
}

export interface PageView {
  principal: DashboardPrincipal;
  /** False for a viewer: render no button that would only meet a 403. */
  mayAct: boolean;
  /** For the hidden `_csrf` field of every form. */
  csrfToken: string;
  /** Where the console is mounted, e.g. "/console". */
  basePath: string;
}

/** What a form asks for, read and checked before anything runs: the audit entry's what, target and parameters. */
export interface ActionIntent {
  action: string;
  target: string;
  parameters: Record<string, string>;
}

export interface ActionResult {
  /** Path under the console to send the browser back to (303). */
  redirectTo: string;
  /** Jobs the action changed. */
  affected: number;
}

/**
 * A form's POST. `intent` checks the fields (FormError, answered 400, when
 * they are wrong) before `handle` acts; the router logs both with the user,
 * in the shape the audit log records.
 */
export interface ConsoleAction<Intent extends ActionIntent = ActionIntent> {
  /** e.g. "/failures/retry". */
  path: string;
  /**
   * True when `handle` calls code that writes its own audit row (cancel and
   * schedule controls, the same row their CLI verb and HTTP route write), so
   * the router writes none and an action is never recorded twice.
   */
  auditsItself?: boolean;
  intent(services: ConsoleServices, form: Record<string, string>): Intent;
  handle(services: ConsoleServices, intent: Intent, principal: DashboardPrincipal): Promise<ActionResult>;
}

export interface ConsolePage<Data = unknown> {
  /** e.g. "/failures". */
  path: string;
  title: string;
  load(services: ConsoleServices, request: PageRequest): Promise<Data>;
  render(data: Data, view: PageView, request: PageRequest): Html;
  actions?: ConsoleAction[];
}

/** A page as the router serves it: loaded and rendered in one step, whatever its data. */
export interface RegisteredPage {
  path: string;
  title: string;
  actions: ConsoleAction[];
  build(services: ConsoleServices, view: PageView, request: PageRequest): Promise<Html>;
}

export function definePage<Data>(page: ConsolePage<Data>): RegisteredPage {
  return {
    path: page.path,
    title: page.title,
    actions: page.actions ?? [],
    async build(services, view, request) {
      return page.render(await page.load(services, request), view, request);
    },
  };
}

/** A form whose fields are wrong: the router answers 400 with the message. */
export class FormError extends Error {
  override readonly name = "FormError";
}
