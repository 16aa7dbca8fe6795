import { type Logger, pino } from "pino";

export type { Logger } from "pino";

/** Paths pino blanks out wherever they appear in a log line. */
export const redactedPaths = [
  "password",
  "*.password",
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "req.headers.cookie",
  "*.authToken",
  "*.DASHBOARD_PASSWORD",
  "*.DASHBOARD_TOKEN",
  "*.MESSAGING_HTTP_AUTH_TOKEN",
  "DASHBOARD_PASSWORD",
  "DASHBOARD_TOKEN",
  "MESSAGING_HTTP_AUTH_TOKEN",
];

/** Removes the password from a connection URL so it can be logged. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "[unparseable url]";
  }
}

export function createLogger(options: { level?: string; name?: string } = {}, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      name: options.name ?? "dbjobs",
      level: options.level ?? "info",
      redact: { paths: redactedPaths, censor: "[redacted]" },
      // URLs in error messages may carry credentials (postgres://user:pass@host).
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((arg) => (typeof arg === "string" ? arg.replace(/(\w+:\/\/[^:/\s]+:)[^@\s]+@/g, "$1***@") : arg)) as Parameters<typeof method>,
          );
        },
      },
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}
