import { type Logger, pino } from "pino";
import { PinoPretty } from "pino-pretty";

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
  "*.DASHBOARD_VIEWER_TOKEN",
  "*.DASHBOARD_USERS",
  "*.MESSAGING_HTTP_AUTH_TOKEN",
  "*.DBJOBS_PASSWORD",
  "*.DBJOBS_TOKEN",
  "DASHBOARD_PASSWORD",
  "DASHBOARD_TOKEN",
  "DASHBOARD_VIEWER_TOKEN",
  "DASHBOARD_USERS",
  "MESSAGING_HTTP_AUTH_TOKEN",
  "DBJOBS_PASSWORD",
  "DBJOBS_TOKEN",
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

// scheme://user:password@ with the user possibly empty (redis://:password@host).
// The password may not contain what RFC 3986 forbids raw in userinfo (/ ? # @),
// quotes or whitespace, so a match never runs across two JSON fields.
const credentialsInUrl = /(\b[a-z][a-z0-9+.-]*:\/\/[^:@/\s"]*:)[^@/?#\s"]+@/gi;

/** Replaces the password of every URL in `text` with ***. */
export function scrubCredentials(text: string): string {
  return text.includes("://") ? text.replace(credentialsInUrl, "$1***@") : text;
}

/**
 * Scrubs each finished line rather than each argument: a URL with credentials
 * can sit in the message, in any field, in an error's message or stack, or in
 * a child logger's bindings, and only the finished line has them all.
 */
function scrubbing(destination: pino.DestinationStream): pino.DestinationStream {
  return new Proxy(destination, {
    get(target, property) {
      if (property === "write") return (line: string) => target.write(scrubCredentials(line));
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

export type LogFormat = "auto" | "pretty" | "json";

/** Readable lines for a terminal: time, level, message, then the fields; still scrubbed (the JSON is scrubbed before it is prettified). */
function prettyStream(fd: 1 | 2): pino.DestinationStream {
  return PinoPretty({
    destination: fd,
    colorize: Boolean((fd === 1 ? process.stdout : process.stderr).isTTY),
    translateTime: "SYS:HH:MM:ss.l",
    ignore: "pid,hostname",
    sync: true,
  });
}

/** Where a process's log lines go: `fd` as JSON, or prettified when `format` asks for it (or `auto` and `fd` is a terminal). */
export function logDestination(format: LogFormat, fd: 1 | 2 = 1): pino.DestinationStream {
  const tty = (fd === 1 ? process.stdout : process.stderr).isTTY;
  return format === "pretty" || (format === "auto" && tty) ? prettyStream(fd) : pino.destination(fd);
}

export function createLogger(options: { level?: string; name?: string } = {}, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      name: options.name ?? "dbjobs",
      level: options.level ?? "info",
      redact: { paths: redactedPaths, censor: "[redacted]" },
      serializers: { err: pino.stdSerializers.err },
    },
    scrubbing(destination ?? pino.destination(1)),
  );
}
