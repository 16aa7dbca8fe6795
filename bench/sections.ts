import type { BenchSection } from "./bench-section.js";

/** Every section of `npm run bench`, in order. Add one line per section. */
export const benchSections: BenchSection[] = [];
