import type { Spread } from "./paired-rounds.js";

/**
 * One section of `npm run bench`. A section measures the project against a
 * baseline in the same rounds (bench/paired-rounds.ts) and reports the
 * spread of the per-round ratios, never a quotient of two separate medians.
 */
export interface BenchRow {
  /** What was measured, e.g. "no-op job: project worker vs raw BullMQ". */
  name: string;
  /** The project's figure, e.g. jobs/s: the median over rounds where there are rounds. */
  value: number;
  unit: string;
  /** The baseline's figure in the same unit (median over rounds), when the row is a comparison. */
  baseline?: number;
  /**
   * The figure of merit: the median of the per-round ratios for paired rounds
   * (not value / baseline, which are medians of different rounds). The row's
   * name says which way round it is.
   */
  ratio?: number;
  /** Paired rounds: the lowest and highest per-round ratio, and how many rounds. */
  ratioRange?: { min: number; max: number; rounds: number };
  /** Repeated runs of a figure with no baseline: the lowest and highest value (`value` is the median). */
  valueRange?: { min: number; max: number; runs: number };
  /** The target in words, e.g. ">= 0.90". */
  goal?: string;
  /** Whether the goal was met. */
  met?: boolean;
}

export interface BenchSection {
  name: string;
  run(): Promise<BenchRow[]>;
}

/** The ratio fields of a row from the spread of its per-round ratios. */
export function pairedRatio(ratios: Spread, rounds: number): Pick<BenchRow, "ratio" | "ratioRange"> {
  return { ratio: ratios.median, ratioRange: { min: ratios.min, max: ratios.max, rounds } };
}
