// Usage: node --import ./test/support/record-imports.mjs --import tsx <entry>
// On exit, prints one line "LOADED <json array of module URLs>" to stdout.
import { register } from "node:module";
import { MessageChannel } from "node:worker_threads";

const { port1, port2 } = new MessageChannel();
const loaded = [];
port1.on("message", (url) => loaded.push(url));
port1.unref();
register("./record-imports-hooks.mjs", { parentURL: import.meta.url, data: { port: port2 }, transferList: [port2] });

globalThis.reportLoadedModules = async () => {
  // Messages from the hooks thread may still be in flight.
  await new Promise((resolve) => setTimeout(resolve, 50));
  process.stdout.write(`LOADED ${JSON.stringify(loaded)}\n`);
};
