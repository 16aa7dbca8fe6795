import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Router } from "express";
import type { AnyQueue } from "../lib/queue-store.js";

/**
 * bull-board for every queue, mounted at `basePath`. Operators
 * can retry, promote, clean and pause from it; it is only ever served behind
 * the dashboard's authentication (server.ts).
 */
export function createBoardRouter(queues: readonly AnyQueue[], basePath = "/"): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    // bull-board's adapter is typed for the Redis backend's Queue; it only calls the backend-neutral Queue API.
    queues: queues.map((queue) => new BullMQAdapter(queue as ConstructorParameters<typeof BullMQAdapter>[0])),
    serverAdapter,
    options: { uiConfig: { boardTitle: "dbjobs" } },
  });
  return serverAdapter.getRouter() as Router;
}
