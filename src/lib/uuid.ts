const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `value` is a uuid in its canonical 36-character form (either case). */
export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}
