import { connect, createServer, type Server, type Socket } from "node:net";

/** A port nothing listens on: taken from the OS, then released. */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface TcpForward {
  close(): Promise<void>;
}

/**
 * Brings a dead port to life: forwards every connection made to
 * 127.0.0.1:`port` to `target` (a real PostgreSQL or Redis), as a service
 * coming back would. For checking that nothing a client was refused reaches
 * the service once it answers.
 */
export async function forwardPort(port: number, target: { host: string; port: number }): Promise<TcpForward> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined);
      socket.on("close", () => sockets.delete(socket));
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return {
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** host and port of a redis:// or postgresql:// URL. */
export function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || defaultPort) };
}
