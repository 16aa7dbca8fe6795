import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ChunkLanes } from "../src/lib/chunk-lanes.js";

describe("ChunkLanes", () => {
  it("never runs more tasks at once than its width, and runs them all", async () => {
    const lanes = new ChunkLanes(3);
    let running = 0;
    let widest = 0;
    const done: number[] = [];
    for (let index = 0; index < 20; index++) {
      await lanes.start(async () => {
        running++;
        widest = Math.max(widest, running);
        await sleep(index % 4);
        running--;
        done.push(index);
      });
    }
    await lanes.drain();
    expect(widest).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, index) => index));
  });

  it("after a failure, starts nothing new, lets the running tasks finish, then throws the first error", async () => {
    const lanes = new ChunkLanes(2);
    const started: number[] = [];
    const finished: number[] = [];
    const startAll = async () => {
      for (let index = 0; index < 10; index++) {
        await lanes.start(async () => {
          started.push(index);
          await sleep(index === 0 ? 30 : 1);
          if (index === 1) throw new Error("chunk 1 failed");
          if (index === 2) throw new Error("chunk 2 failed");
          finished.push(index);
        });
      }
      await lanes.drain();
    };
    await expect(startAll()).rejects.toThrow("chunk 1 failed");
    // Task 0 was still running when task 1 failed: it finished before the error reached the caller.
    expect(finished).toEqual([0]);
    expect(started).toEqual([0, 1]);
  });

  it("rejects a width that is not a positive integer", () => {
    expect(() => new ChunkLanes(0)).toThrow(/width must be a positive integer/);
  });
});
