// `npm start`: runs every Procfile line as its own process with concurrently,
// each output line prefixed with the process name (as foreman and honcho do).
//
// Signals: the first SIGINT/SIGTERM/SIGHUP is passed to every process exactly
// once, so each drains its in-flight jobs; a second one (later than
// DUPLICATE_WINDOW_MS) is passed on too, which makes them force exit; a third
// kills them. The processes run in their own process group, so a Ctrl-C in the
// terminal reaches them only through this runner (otherwise each would get it
// twice, from the terminal and from here, and take it as "force exit").
//
// Exit: when one process exits on its own (a crash, a bad config), the others
// are stopped gracefully and the runner exits non-zero, like foreman. After a
// signal the runner exits 0 if every process drained cleanly.
//
// The `relay` line runs only when QUEUE_BACKEND=redis (scripts/procfile.mjs).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createConcurrently, LogError, LogExit, Logger, LogOutput } from "concurrently";
import { defaultEntries, readProcfile } from "./procfile.mjs";

/** Signals closer together than this are one signal delivered twice (terminal + npm). */
const DUPLICATE_WINDOW_MS = 750;

const entries = readProcfile(readFileSync(new URL("../Procfile", import.meta.url), "utf8"));
const only = process.env.START_ONLY?.split(",").map((name) => name.trim());
const selected = only ? entries.filter((entry) => only.includes(entry.name)) : defaultEntries(entries, process.env);
if (selected.length === 0) {
  process.stderr.write(`start-all: nothing to run (START_ONLY=${process.env.START_ONLY ?? ""}; Procfile names: ${entries.map((e) => e.name).join(", ")})\n`);
  process.exit(1);
}

let stopSignal; // set once the operator asked everything to stop
let signalsForwarded = 0;
let lastSignalAt = 0;
let crashed = false;

const logger = new Logger({ prefixFormat: "name" });

/** Passes operator signals to every process, once per distinct signal. */
const forwardSignals = {
  handle(commands) {
    const onSignal = (signal) => {
      const now = Date.now();
      if (now - lastSignalAt < DUPLICATE_WINDOW_MS) return;
      lastSignalAt = now;
      stopSignal ??= signal;
      signalsForwarded += 1;
      const running = commands.filter((command) => command.process && command.exited === false);
      if (signalsForwarded >= 3) {
        logger.logGlobalEvent("third signal: killing every process");
        for (const command of running) command.kill("SIGKILL");
        return;
      }
      logger.logGlobalEvent(signalsForwarded === 1 ? `${signal}: stopping every process (they drain in-flight jobs)` : `${signal} again: processes force exit`);
      for (const command of running) command.kill(signal);
    };
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, onSignal);
    return {
      commands,
      onFinish: () => {
        for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.off(signal, onSignal);
      },
    };
  },
};

/** One process exiting on its own stops the rest, gracefully (a single SIGTERM each). */
const stopOthersOnExit = {
  handle(commands) {
    for (const command of commands) {
      command.close.subscribe(({ exitCode }) => {
        if (stopSignal || crashed) return;
        crashed = true;
        stopSignal = "SIGTERM";
        signalsForwarded = 1;
        lastSignalAt = Date.now();
        logger.logGlobalEvent(`${command.name} exited (${exitCode}) on its own: stopping the other processes`);
        for (const other of commands) if (other !== command && other.process && other.exited === false) other.kill("SIGTERM");
      });
    }
    return { commands };
  },
};

/**
 * The dashboard refuses to start without credentials. On a machine where none
 * are configured, `npm start` makes a random password once, keeps it in
 * .dbjobs/dashboard-password (mode 0600, git-ignored) and tells the operator
 * where it is; the password itself is never printed.
 */
function ensureDashboardCredentials() {
  const env = process.env;
  // Any configured credential, a viewer's included, means the operator chose who gets in: add no admin beside them.
  const configured = env.DASHBOARD_USERS || env.DASHBOARD_TOKEN || env.DASHBOARD_VIEWER_TOKEN || (env.DASHBOARD_USER && env.DASHBOARD_PASSWORD);
  if (configured || env.DASHBOARD_ALLOW_NO_AUTH === "true") return;
  const file = new URL("../.dbjobs/dashboard-password", import.meta.url);
  if (!existsSync(file)) {
    mkdirSync(new URL("../.dbjobs/", import.meta.url), { recursive: true });
    writeFileSync(file, `${randomBytes(18).toString("base64url")}\n`, { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  env.DASHBOARD_USER ??= "admin";
  env.DASHBOARD_PASSWORD = readFileSync(file, "utf8").trim();
  const url = `http://${env.DASHBOARD_HOST ?? "127.0.0.1"}:${env.DASHBOARD_PORT ?? "3000"}/`;
  process.stdout.write(
    `start-all: dashboard at ${url} — user "${env.DASHBOARD_USER}", password in .dbjobs/dashboard-password (set DASHBOARD_USERS, DASHBOARD_USER/DASHBOARD_PASSWORD or DASHBOARD_TOKEN to choose your own)\n`,
  );
}

if (selected.some((entry) => entry.name === "dashboard")) ensureDashboardCredentials();

// The processes write to pipes, so on their own they would log JSON; in a terminal, ask them for readable lines.
if (process.stdout.isTTY && !process.env.LOG_FORMAT) process.env.LOG_FORMAT = "pretty";

const { result, commands } = createConcurrently(selected, {
  logger,
  outputStream: process.stdout,
  prefixColors: ["cyan", "magenta", "green", "yellow", "blue", "red", "white"],
  controllers: [new LogError({ logger }), new LogOutput({ logger }), new LogExit({ logger }), forwardSignals, stopOthersOnExit],
  // `exec` so the signal reaches node itself, not an intermediate shell; `detached` for the reason above.
  spawn: (command, options) => spawn("/bin/sh", ["-c", `exec ${command}`], { ...options, detached: true }),
  // The commands are signalled one by one (their process, not the whole tree) so each gets exactly one signal.
  kill: (pid, signal) => {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  },
});

// If the runner itself dies unexpectedly, take the detached processes with it.
process.on("exit", () => {
  for (const command of commands) if (command.pid && command.exited === false) command.kill("SIGKILL");
});

result.then(
  () => process.exit(crashed ? 1 : 0),
  (closeEvents) => {
    const forced = Array.isArray(closeEvents) && closeEvents.some((event) => event.exitCode === 130);
    process.exit(stopSignal && !crashed ? (forced ? 130 : 1) : 1);
  },
);
