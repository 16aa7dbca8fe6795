// Runs every Procfile line as its own process, with its name as a prefix,
// forwarding SIGINT/SIGTERM so each process drains gracefully.
import { readFileSync } from "node:fs";
import concurrently from "concurrently";

const entries = readFileSync(new URL("../Procfile", import.meta.url), "utf8")
  .split("\n")
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith("#"))
  .map((line) => {
    const separator = line.indexOf(":");
    return { name: line.slice(0, separator).trim(), command: line.slice(separator + 1).trim() };
  });

const { result } = concurrently(entries, {
  prefix: "name",
  killOthersOn: ["failure"],
  killSignal: "SIGTERM",
  handleInput: false,
});
result.then(
  () => process.exit(0),
  () => process.exit(1),
);
