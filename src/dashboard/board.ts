import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Queue } from "bullmq";
import type { Router } from "express";

/**
 * bull-board for every queue, mounted at `basePath`. Operators
 * can retry, promote, clean and pause from it; it is only ever served behind
 * the dashboard's authentication (server.ts).
 */
export function createBoardRouter(queues: readonly Queue[], basePath = "/"): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    queues: queues.map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: "dbjobs" } },
  });
  return serverAdapter.getRouter() as Router;
}
