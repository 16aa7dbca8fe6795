import { connect, createServer, type Socket } from "node:net";

/**
 * The plumbing of the Redis proxies: a local TCP server whose every client
 * gets its own upstream connection to `targetUrl`'s host and port, closed
 * together. `wire` decides what flows each way (a pipe, or bytes held).
 */
export interface TcpProxy {
  /** `redis://127.0.0.1:<port>`. */
  url: string;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string, wire: (client: Socket, upstream: Socket) => void): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => sockets.delete(socket));
    }
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    wire(client, upstream);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
