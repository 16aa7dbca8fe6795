import { startTcpProxy } from "./tcp-proxy.js";

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
  const flushes = new Set<() => void>();
  let holding = false;

  const proxy = await startTcpProxy(targetUrl, (client, upstream) => {
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

  return {
    url: proxy.url,
    holdReplies() {
      holding = true;
    },
    releaseReplies() {
      holding = false;
      for (const flush of flushes) flush();
    },
    close: () => proxy.close(),
  };
}
