import type { z } from "zod";
import { PayloadValidationError } from "../lib/errors.js";

/** Parses a payload with its queue's schema; the error names each bad field. */
export function validatePayload<S extends z.ZodType>(queue: string, schema: S, payload: unknown): z.output<S> {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return parsed.data;
  throw new PayloadValidationError(queue, parsed.error.issues.flatMap(describeIssue));
}

function describeIssue(issue: z.core.$ZodIssue): { path: string; message: string }[] {
  const path = issue.path.map(String);
  // zod reports unknown keys once, at the object's path; name each key as its own field.
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({ path: [...path, key].join("."), message: "unknown field; remove it" }));
  }
  return [{ path: path.join("."), message: issue.message }];
}
