import { createHash } from "node:crypto";

/**
 * Groups failures that are "the same error": the error class plus its message
 * with the parts that differ per job (ids, numbers, quoted values, times)
 * replaced by placeholders. `invoice 8c1e… not found (attempt 3)` and
 * `invoice 2f9a… not found (attempt 1)` share one fingerprint.
 */
const replacements: [RegExp, string][] = [
  [/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<uuid>"],
  [/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?/g, "<time>"],
  [/"(?:[^"\\]|\\.)*"/g, "<value>"],
  [/'(?:[^'\\]|\\.)*'/g, "<value>"],
  [/`(?:[^`\\]|\\.)*`/g, "<value>"],
  [/\b0x[0-9a-f]+\b/gi, "<hex>"],
  [/\b[0-9a-f]{16,}\b/gi, "<hex>"],
  [/-?\d+(\.\d+)?/g, "<n>"],
];

export function normaliseErrorMessage(message: string): string {
  let result = message.trim();
  for (const [pattern, placeholder] of replacements) result = result.replace(pattern, placeholder);
  return result.replace(/\s+/g, " ");
}

/** The class named on the first line of a stack (`TypeError: …`), else `Error`. */
export function errorClassFromStack(stack: string | undefined): string {
  const firstLine = stack?.split("\n", 1)[0] ?? "";
  const match = /^([A-Za-z_$][\w$.]*)(?: \[[^\]]*\])?:/.exec(firstLine);
  return match?.[1] ?? "Error";
}

export interface ErrorFingerprint {
  /** 12 hex characters, stable across processes and releases: what `--fingerprint` takes. */
  fingerprint: string;
  errorClass: string;
  normalisedMessage: string;
}

/** Fingerprint of a failed BullMQ job from its `failedReason` and the last entry of its `stacktrace`. */
export function fingerprintFailure(failedReason: string | undefined, stacktrace: readonly string[] | null | undefined): ErrorFingerprint {
  const lastStack = stacktrace?.length ? stacktrace[stacktrace.length - 1] : undefined;
  const errorClass = errorClassFromStack(lastStack);
  const normalisedMessage = normaliseErrorMessage(failedReason ?? "");
  const fingerprint = createHash("sha256").update(`${errorClass}\n${normalisedMessage}`).digest("hex").slice(0, 12);
  return { fingerprint, errorClass, normalisedMessage };
}
