#!/usr/bin/env node
import { ConfigError } from "../lib/errors.js";
import { startTracing } from "../lib/tracing.js";

// Processes that enqueue or run jobs trace them when OTEL_EXPORTER_OTLP_ENDPOINT is set; the commands are
// loaded only after, because pg is instrumented as it is loaded.
const tracedVerbs = new Set(["worker", "scheduler", "dashboard", "relay", "enqueue"]);
const verb = process.argv.slice(2).find((arg) => !arg.startsWith("-"));
if (verb && tracedVerbs.has(verb)) {
  try {
    await startTracing({ serviceName: `dbjobs-${verb}` });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`dbjobs: ${err.message}\n`);
    process.exit(2);
  }
}

const [{ buildProgram }, { runCli }] = await Promise.all([import("./program.js"), import("./run-cli.js")]);
await runCli(buildProgram(), process.argv);
