import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, redactUrl } from "../src/lib/logger.js";

const SECRET = "s3cr3t-Pa55word";

/** Everything the logger wrote, raw, so a secret cannot hide in a field the test did not think to look at. */
function capture(level = "trace") {
  let output = "";
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      output += String(chunk);
      callback();
    },
  });
  const logger = createLogger({ level }, stream);
  return {
    logger,
    output: () => output,
    lines: () =>
      output
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe("logs never print passwords or tokens", () => {
  it.each([
    { label: "a password field", log: (l: ReturnType<typeof capture>["logger"]) => l.info({ password: SECRET }, "login") },
    { label: "a token field", log: (l: ReturnType<typeof capture>["logger"]) => l.info({ token: SECRET }, "auth") },
    { label: "a nested password", log: (l: ReturnType<typeof capture>["logger"]) => l.info({ user: { password: SECRET } }, "user") },
    {
      label: "an Authorization header",
      log: (l: ReturnType<typeof capture>["logger"]) => l.info({ req: { headers: { authorization: `Bearer ${SECRET}` } } }, "request"),
    },
    { label: "a cookie header", log: (l: ReturnType<typeof capture>["logger"]) => l.info({ req: { headers: { cookie: `session=${SECRET}` } } }, "request") },
    {
      label: "the config object",
      log: (l: ReturnType<typeof capture>["logger"]) =>
        l.info({ config: { DASHBOARD_PASSWORD: SECRET, DASHBOARD_TOKEN: SECRET, MESSAGING_HTTP_AUTH_TOKEN: SECRET } }, "config"),
    },
    {
      label: "the database URLs of the config (DIRECT_DATABASE_URL too)",
      log: (l: ReturnType<typeof capture>["logger"]) =>
        l.info(
          {
            config: {
              DATABASE_URL: `postgresql://app:${SECRET}@pgbouncer:6432/dbjobs`,
              DIRECT_DATABASE_URL: `postgresql://app:${SECRET}@db.internal:5432/dbjobs`,
            },
          },
          "config",
        ),
    },
    { label: "a provider auth token", log: (l: ReturnType<typeof capture>["logger"]) => l.warn({ provider: { authToken: SECRET } }, "provider") },
    { label: "a child logger's bindings", log: (l: ReturnType<typeof capture>["logger"]) => l.child({ password: SECRET }).info("child") },
    {
      label: "a URL with credentials in the message",
      log: (l: ReturnType<typeof capture>["logger"]) => l.info(`connecting to postgresql://app:${SECRET}@db.internal:5432/dbjobs`),
    },
    {
      label: "a URL with credentials in a field",
      log: (l: ReturnType<typeof capture>["logger"]) => l.info({ url: `postgresql://app:${SECRET}@db.internal:5432/dbjobs` }, "connecting"),
    },
    {
      label: "a Redis URL with only a password",
      log: (l: ReturnType<typeof capture>["logger"]) => l.info({ redis: `redis://:${SECRET}@cache.internal:6379/0` }, "connecting"),
    },
    {
      label: "a URL with credentials in an error message and stack",
      log: (l: ReturnType<typeof capture>["logger"]) =>
        l.error({ err: new Error(`connect ECONNREFUSED rediss://default:${SECRET}@cache.internal:6380`) }, "failed"),
    },
    {
      label: "a URL in a printf-style argument",
      log: (l: ReturnType<typeof capture>["logger"]) => l.info("connecting to %s", `amqp://guest:${SECRET}@mq.internal`),
    },
  ])("hides $label", ({ log }) => {
    const { logger, output, lines } = capture();
    log(logger);
    expect(lines()).toHaveLength(1); // still one valid JSON line
    expect(output()).not.toContain(SECRET);
  });

  it("keeps what operators need: the rest of the line, the host of a URL, and text that merely looks like a URL", () => {
    const { logger, lines } = capture();
    logger.info({ url: `postgresql://app:${SECRET}@db.internal:5432/dbjobs`, queue: "invoice-totals", jobId: "42" }, "connecting");
    logger.info({ endpoint: "http://api.internal:8080/v1", contact: "ops@example.test" }, "provider at http://api.internal:8080/v1");
    const [first, second] = lines();
    expect(first).toMatchObject({ queue: "invoice-totals", jobId: "42", msg: "connecting" });
    expect(first?.url).toMatch(/^postgresql:\/\/app:[^@]*@db\.internal:5432\/dbjobs$/);
    expect(second).toMatchObject({ endpoint: "http://api.internal:8080/v1", contact: "ops@example.test", msg: "provider at http://api.internal:8080/v1" });
  });

  it("redactUrl removes the password but keeps user, host, port and database", () => {
    expect(redactUrl(`postgresql://app:${SECRET}@db.internal:5432/dbjobs?sslmode=require`)).toBe(
      "postgresql://app:***@db.internal:5432/dbjobs?sslmode=require",
    );
    expect(redactUrl(`redis://:${SECRET}@cache.internal:6379`)).not.toContain(SECRET);
    expect(redactUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
    expect(redactUrl(`not a url ${SECRET}`)).not.toContain(SECRET);
  });
});
