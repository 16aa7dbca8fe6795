/**
 * One section of `npm run bench`. A section measures the project against a
 * baseline in the same run and reports ratios, never absolute timings alone.
 */
export interface BenchRow {
  /** What was measured, e.g. "no-op job: project worker vs raw BullMQ". */
  name: string;
  /** The project's figure, e.g. jobs/s. */
  value: number;
  unit: string;
  /** The baseline's figure in the same unit, when the row is a comparison. */
  baseline?: number;
  /** value / baseline (or the inverse where lower is better; say so in `goal`). */
  ratio?: number;
  /** The target in words, e.g. ">= 0.90". */
  goal?: string;
  /** Whether the goal was met. */
  met?: boolean;
}

export interface BenchSection {
  name: string;
  run(): Promise<BenchRow[]>;
}
