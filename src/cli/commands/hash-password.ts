import type { Command } from "commander";
import { type DashboardRole, dashboardRoles } from "../../lib/dashboard-users.js";
import { hashPassword } from "../../lib/password-hash.js";
import { BadArgumentError } from "../operator-errors.js";

/**
 * `dbjobs hash-password`: reads a password from stdin and prints its scrypt
 * hash for DASHBOARD_USERS (or, with --user, the whole `name:role:hash`
 * entry). The password never appears in arguments, where `ps` and shell
 * history would keep it; at a terminal it is read without echo.
 */
async function readPiped(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8").split(/\r?\n/, 1)[0] ?? "";
}

function readFromTerminal(): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    let password = "";
    process.stderr.write("Password (not shown): ");
    stdin.setRawMode(true);
    stdin.setEncoding("utf8");
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (error) reject(error);
      else resolve(password);
    };
    const onData = (text: string) => {
      for (const char of text) {
        if (char === "\r" || char === "\n") return done();
        if (char === "\u0003") return done(new BadArgumentError("Cancelled; no hash made."));
        if (char === "\u007f" || char === "\b") password = password.slice(0, -1);
        else password += char;
      }
    };
    stdin.on("data", onData);
    stdin.resume();
  });
}

export function registerHashPasswordCommand(program: Command): void {
  program
    .command("hash-password")
    .description("read a password from stdin and print its scrypt hash for DASHBOARD_USERS (with --user: the whole name:role:hash entry)")
    .option("--user <name>", "print a DASHBOARD_USERS entry for this user")
    .option("--role <role>", "the entry's role: viewer or operator", "operator")
    .action(async (options: { user?: string; role: string }) => {
      if (!(dashboardRoles as readonly string[]).includes(options.role)) throw new BadArgumentError(`--role "${options.role}" must be viewer or operator.`);
      if (options.user !== undefined && !/^[A-Za-z0-9_.@-]{1,64}$/.test(options.user)) {
        throw new BadArgumentError(`--user "${options.user}" must be 1-64 letters, digits, '_', '.', '@' or '-'.`);
      }
      const password = process.stdin.isTTY ? await readFromTerminal() : await readPiped();
      if (password.length < 8)
        throw new BadArgumentError('The password must have at least 8 characters; nothing was hashed. Pipe it in: `printf %s "$PW" | dbjobs hash-password`.');
      const hash = await hashPassword(password);
      const role = options.role as DashboardRole;
      console.log(options.user === undefined ? hash : `${options.user}:${role}:${hash}`);
    });
}
