import type { z } from "zod";
import { PayloadValidationError } from "../lib/errors.js";

/** Parses a payload with its queue's schema; the error names each bad field. */
export function validatePayload<S extends z.ZodType>(queue: string, schema: S, payload: unknown): z.output<S> {
  const parsed = schema.safeParse(payload);
  if (parsed.success) return parsed.data;
  throw new PayloadValidationError(
    queue,
    parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message })),
  );
}
