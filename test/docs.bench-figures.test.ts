import { describe, expect, it } from "vitest";
import { documentedFigures, renderedFigures } from "../bench/figures-block.js";

/** Issue 21: the figures the docs state are the ones the committed bench run reported, word for word. */
describe("docs/benchmarks.md figures", () => {
  it("match the committed bench/results.json (run `npm run bench`, or commit both together)", () => {
    expect(documentedFigures()).toBe(renderedFigures());
  });
});
