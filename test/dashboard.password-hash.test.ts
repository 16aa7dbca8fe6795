import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/lib/config.js";
import { hashPassword, parsePasswordHash, verifyPassword } from "../src/lib/password-hash.js";
import { packageRoot } from "../src/lib/paths.js";

/**
 * Password hashes for DASHBOARD_USERS: scrypt in a self-describing format,
 * `dbjobs hash-password` reading the password from stdin, and the config
 * check that names the variable, the entry and the format, never the hash.
 * Needs no services.
 */
function hashPasswordCli(input: string, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/index.ts", "hash-password", ...args], {
    cwd: packageRoot,
    env: { ...process.env, LOG_LEVEL: "warn" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += String(chunk);
  });
  child.stderr.on("data", (chunk) => {
    stderr += String(chunk);
  });
  child.stdin.end(input);
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

describe("dashboard password hashes", { timeout: 90_000 }, () => {
  it("verifies the right password and refuses a wrong one, from the parameters written in the hash", async () => {
    const hash = await hashPassword("s3cret-enough", { N: 1024, r: 8, p: 1 });
    expect(hash).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(await verifyPassword("s3cret-enough", hash)).toBe(true);
    expect(await verifyPassword("s3cret-enougH", hash)).toBe(false);
    expect(await hashPassword("s3cret-enough", { N: 1024, r: 8, p: 1 })).not.toBe(hash);
    expect(() => parsePasswordHash("bcrypt$2b$10$abc")).toThrow(/make one with `dbjobs hash-password`/);
  });

  it("`dbjobs hash-password` reads stdin and prints a hash, or a whole DASHBOARD_USERS entry, that verifies", async () => {
    const plain = await hashPasswordCli("a long enough password\n");
    expect(plain.stderr).toBe("");
    expect(plain.code).toBe(0);
    const hash = plain.stdout.trim();
    expect(parsePasswordHash(hash)).toMatchObject({ N: 2 ** 17, r: 8, p: 1 });
    expect(await verifyPassword("a long enough password", hash)).toBe(true);

    const entry = await hashPasswordCli("another password", ["--user", "bob", "--role", "viewer"]);
    expect(entry.code).toBe(0);
    const config = loadConfig({ DASHBOARD_USERS: entry.stdout.trim() });
    expect(config.DASHBOARD_USERS?.[0]).toMatchObject({ name: "bob", role: "viewer" });
    expect(await verifyPassword("another password", config.DASHBOARD_USERS?.[0]?.passwordHash ?? "")).toBe(true);

    const short = await hashPasswordCli("short\n");
    expect(short.code).not.toBe(0);
    expect(short.stderr).toContain("at least 8 characters; nothing was hashed");
    expect(short.stdout).toBe("");
  });

  it("refuses a bad DASHBOARD_USERS at start-up, naming the variable, the entry and the format, never the hash", async () => {
    const good = await hashPassword("s3cret-enough", { N: 1024, r: 8, p: 1 });
    const refuse = (value: string) => () => loadConfig({ DASHBOARD_USERS: value });
    expect(refuse(`alice:admin:${good}`)).toThrow(/DASHBOARD_USERS: entry 1 \(alice\): role "admin" must be viewer or operator; write name:role:hash entries/);
    expect(refuse(`alice:operator:${good},bob`)).toThrow(/DASHBOARD_USERS: entry 2 is not name:role:hash/);
    expect(refuse(`alice:operator:${good},alice:viewer:${good}`)).toThrow(/user "alice" is listed twice/);
    expect(refuse("alice:operator:hunter2")).toThrow(/entry 1 \(alice\): the password hash is not valid \(expected scrypt\$N\$r\$p\$salt\$hash\)/);
    expect(refuse(`al ice:operator:${good}`)).toThrow(/user name "al ice" must be 1-64 letters/);
    let message = "";
    try {
      loadConfig({ DASHBOARD_USERS: `alice:admin:${good}` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toContain(good.split("$")[5] as string);
    expect(loadConfig({ DASHBOARD_USERS: `alice:operator:${good}, bob:viewer:${good}` }).DASHBOARD_USERS?.map((user) => user.role)).toEqual([
      "operator",
      "viewer",
    ]);
  });
});
