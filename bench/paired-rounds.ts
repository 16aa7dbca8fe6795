/**
 * Paired rounds: the one way the bench compares the project with a baseline.
 *
 * On a shared two-core machine the speed drifts by tens of percent from one
 * few-second stretch to the next, so a median of one side's runs divided by
 * a median of the other's compares different stretches of time (rounds
 * paired in time ranged from 0.73 to 1.46 while the medians' quotient looked
 * steady). Here each round runs the baseline and the subject back to back,
 * alternating which goes first, computes that round's ratio, and the result
 * is the lowest, median and highest of those per-round ratios. More sides
 * (`others`, e.g. other backends) join the same rounds, the order rotating
 * through all of them, and are compared with the same baseline.
 */

/** The lowest, median and highest of a set of figures. */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

/** The middle value; for an even count, the mean of the two middle values. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? (sorted[Math.floor(middle)] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export function spread(values: number[]): Spread {
  if (values.length === 0) throw new Error("spread of no values");
  return { min: Math.min(...values), median: median(values), max: Math.max(...values) };
}

/** One side of a round: gets the round's prepared value and the round's number (0-based; warm-up rounds are negative). */
export type Side<Prepared, Figures> = (prepared: Prepared, round: number) => Promise<Figures>;

export interface PairedRoundsOptions<Prepared, Baseline, Subject> {
  /** Shown in progress lines on stderr. */
  label: string;
  /** Measured rounds. */
  rounds: number;
  /** Rounds run first and discarded (JIT warm-up, first connections). @defaultValue 0 */
  warmUpRounds?: number;
  /** Untimed set-up for each round (fresh data); its value reaches every side of that round. */
  prepare?: (round: number) => Promise<Prepared>;
  /** Runs after each round's sides, also when one of them threw. */
  release?: (prepared: Prepared) => Promise<void>;
  baseline: Side<Prepared, Baseline>;
  subject: Side<Prepared, Subject>;
  /** More sides run in the same rounds and compared with the baseline by `ratio`. */
  others?: Record<string, Side<Prepared, Subject>>;
  /** The round's figure of merit, e.g. subject jobs/s ÷ baseline jobs/s, or baseline time ÷ subject time. */
  ratio: (baseline: Baseline, subject: Subject) => number;
  /** One line about a side's figures, for the progress line. */
  show?: (figures: Baseline | Subject) => string;
}

export interface PairedRound<Baseline, Subject> {
  /** The sides in the order they ran. */
  order: string[];
  baseline: Baseline;
  subject: Subject;
  others: Record<string, Subject>;
  ratio: number;
}

export interface PairedResult<Baseline, Subject> {
  rounds: PairedRound<Baseline, Subject>[];
  /** Spread of the per-round `ratio`. */
  ratio: Spread;
  /** Spread of each other side's per-round ratio to the baseline. */
  others: Record<string, Spread>;
  /** Spread of any per-round figure, e.g. a second ratio or one side's rate. */
  spreadOf(figure: (round: PairedRound<Baseline, Subject>) => number): Spread;
}

export async function pairedRounds<Prepared = undefined, Baseline = unknown, Subject = unknown>(
  options: PairedRoundsOptions<Prepared, Baseline, Subject>,
): Promise<PairedResult<Baseline, Subject>> {
  const warmUp = options.warmUpRounds ?? 0;
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new Error(`${options.label}: rounds must be a whole number ≥ 1, got ${options.rounds}`);
  const sides: [string, Side<Prepared, Baseline | Subject>][] = [
    ["baseline", options.baseline],
    ["subject", options.subject],
    ...Object.entries(options.others ?? {}),
  ];
  const rounds: PairedRound<Baseline, Subject>[] = [];
  for (let index = -warmUp; index < options.rounds; index++) {
    const prepared = options.prepare ? await options.prepare(index) : (undefined as Prepared);
    const figures = new Map<string, Baseline | Subject>();
    // Rotate the order: with two sides each goes first in every other round.
    const shift = (((index + warmUp) % sides.length) + sides.length) % sides.length;
    const order = [...sides.slice(shift), ...sides.slice(0, shift)];
    try {
      for (const [name, side] of order) figures.set(name, await side(prepared, index));
    } finally {
      if (options.release) await options.release(prepared);
    }
    const baseline = figures.get("baseline") as Baseline;
    const subject = figures.get("subject") as Subject;
    const others = Object.fromEntries(Object.keys(options.others ?? {}).map((name) => [name, figures.get(name) as Subject]));
    const ratio = options.ratio(baseline, subject);
    const what = index < 0 ? "warm-up" : `round ${index + 1}/${options.rounds}`;
    const details = options.show ? `: ${order.map(([name]) => `${name} ${options.show?.(figures.get(name) as Baseline | Subject)}`).join("; ")}` : "";
    process.stderr.write(`bench: ${options.label} ${what} (${order.map(([name]) => name).join(" → ")}), ratio ${ratio.toFixed(3)}${details}\n`);
    if (index >= 0) rounds.push({ order: order.map(([name]) => name), baseline, subject, others, ratio });
  }
  const spreadOf = (figure: (round: PairedRound<Baseline, Subject>) => number) => spread(rounds.map(figure));
  return {
    rounds,
    ratio: spreadOf((round) => round.ratio),
    others: Object.fromEntries(
      Object.keys(options.others ?? {}).map((name) => [name, spreadOf((round) => options.ratio(round.baseline, round.others[name] as Subject))]),
    ),
    spreadOf,
  };
}
