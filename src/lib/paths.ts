import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package's root directory, the same whether running from src/ (tsx) or dist/src/ (built). */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) || !existsSync(join(dir, "prisma"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the dbjobs package root (package.json next to prisma/)");
    dir = parent;
  }
  return dir;
})();
