import { startTcpProxy } from "./tcp-proxy.js";

/**
 * A TCP proxy in front of a real Redis that can hold one client's commands in
 * flight, as a slow network link would: for tests that must land a write
 * between what a job read and what it then writes to Redis, without a hook in
 * the job. Replies and every other command pass straight through.
 */
export interface HeldCommand {
  /** Resolves once a client sent the command; from then on the proxy holds what that client sends. */
  held: Promise<void>;
  /** Forwards what was held, in order, and everything after it. */
  release(): void;
}

export interface RedisProxy {
  url: string;
  /** Holds the next command named `command` (e.g. "evalsha") that any client sends. */
  holdNext(command: string): HeldCommand;
  close(): Promise<void>;
}

interface Trap {
  /** The command name as RESP sends it: a bulk string of its own. */
  needle: string;
  hit(flush: () => void): void;
}

export async function startRedisProxy(targetUrl: string): Promise<RedisProxy> {
  let trap: Trap | undefined;

  const proxy = await startTcpProxy(targetUrl, (client, upstream) => {
    upstream.pipe(client);
    let held: Buffer[] | undefined;
    // The end of the previous chunk, so a command name split across two chunks is still seen.
    let tail = "";
    client.on("data", (chunk: Buffer) => {
      if (held) {
        held.push(chunk);
        return;
      }
      const text = tail + chunk.toString("latin1").toLowerCase();
      const current = trap;
      // Only a match that ends in this chunk: one wholly in the tail was already forwarded.
      if (current && text.indexOf(current.needle, Math.max(0, tail.length - current.needle.length + 1)) >= 0) {
        trap = undefined;
        const buffered = [chunk];
        held = buffered;
        current.hit(() => {
          held = undefined;
          upstream.write(Buffer.concat(buffered));
        });
        return;
      }
      tail = text.slice(-32);
      upstream.write(chunk);
    });
  });

  return {
    url: proxy.url,
    holdNext(command) {
      let flush: (() => void) | undefined;
      let released = false;
      let markHeld!: () => void;
      const held = new Promise<void>((resolve) => {
        markHeld = resolve;
      });
      const own: Trap = {
        needle: `\r\n${command.toLowerCase()}\r\n`,
        hit(release) {
          flush = release;
          markHeld();
          if (released) release();
        },
      };
      trap = own;
      return {
        held,
        release() {
          if (released) return;
          released = true;
          if (trap === own) trap = undefined;
          flush?.();
        },
      };
    },
    close: () => proxy.close(),
  };
}
