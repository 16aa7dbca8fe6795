import { connect, createServer, type Socket } from "node:net";

/**
 * A TCP proxy in front of a real Redis that can hold Redis's replies while
 * passing commands through: a client's commands run, but the client does not
 * hear back, as over a link that went quiet. For tests that must kill a
 * process after Redis executed its write and before the process acted on the
 * reply, without a hook in that process.
 */
export interface RedisReplyHoldProxy {
  url: string;
  /** From now on, replies to every connection are held. */
  holdReplies(): void;
  /** Delivers what was held, and lets replies through again. */
  releaseReplies(): void;
  close(): Promise<void>;
}

export async function startRedisReplyHoldProxy(targetUrl: string): Promise<RedisReplyHoldProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const flushes = new Set<() => void>();
  let holding = false;

  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => sockets.delete(socket));
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);

    const held: Buffer[] = [];
    const flush = () => {
      if (held.length > 0 && !client.destroyed) client.write(Buffer.concat(held.splice(0)));
    };
    flushes.add(flush);
    client.on("close", () => flushes.delete(flush));
    upstream.on("data", (chunk: Buffer) => {
      if (holding) held.push(chunk);
      else client.write(chunk);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    url: `redis://127.0.0.1:${port}`,
    holdReplies() {
      holding = true;
    },
    releaseReplies() {
      holding = false;
      for (const flush of flushes) flush();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
