import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";

/**
 * Password hashes for the dashboard's users, made with node's built-in
 * scrypt and written in a self-describing format, so a hash made today still
 * verifies after the defaults change:
 *
 *   scrypt$<N>$<r>$<p>$<salt, base64url>$<hash, base64url>
 *
 * The defaults are OWASP's minimum for scrypt (N=2^17, r=8, p=1: 128 MiB and
 * a few hundred milliseconds per check), which is why the dashboard caches a
 * successful check instead of repeating it on every request.
 */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. @defaultValue 131072 */
  N: number;
  /** Block size. @defaultValue 8 */
  r: number;
  /** Parallelism. @defaultValue 1 */
  p: number;
}

export const defaultScryptParams: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
const base64url = /^[A-Za-z0-9_-]+$/;

export interface ParsedPasswordHash extends ScryptParams {
  salt: Buffer;
  hash: Buffer;
}

/** Why `encoded` is not a hash this module made, or undefined when it is one. */
export function passwordHashProblem(encoded: string): string | undefined {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return "expected scrypt$N$r$p$salt$hash";
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (!Number.isInteger(N) || N < 2 || N > 2 ** 24 || (N & (N - 1)) !== 0) return "N must be a power of two from 2 to 2^24";
  if (!Number.isInteger(r) || r < 1 || r > 64) return "r must be a whole number from 1 to 64";
  if (!Number.isInteger(p) || p < 1 || p > 16) return "p must be a whole number from 1 to 16";
  if (!base64url.test(parts[4] ?? "") || !base64url.test(parts[5] ?? "")) return "salt and hash must be base64url";
  if (Buffer.from(parts[5] ?? "", "base64url").length < 16) return "the hash part is too short";
  return undefined;
}

export function parsePasswordHash(encoded: string): ParsedPasswordHash {
  const problem = passwordHashProblem(encoded);
  if (problem) throw new Error(`Not a dbjobs password hash (${problem}); make one with \`dbjobs hash-password\`.`);
  const parts = encoded.split("$");
  return {
    N: Number(parts[1]),
    r: Number(parts[2]),
    p: Number(parts[3]),
    salt: Buffer.from(parts[4] as string, "base64url"),
    hash: Buffer.from(parts[5] as string, "base64url"),
  };
}

function derive(password: string, salt: Buffer, keyBytes: number, params: ScryptParams): Promise<Buffer> {
  // scrypt needs 128·N·r bytes; node's default ceiling (32 MiB) is below OWASP's N=2^17.
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, keyBytes, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string, params: ScryptParams = defaultScryptParams): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, KEY_BYTES, params);
  return ["scrypt", params.N, params.r, params.p, salt.toString("base64url"), hash.toString("base64url")].join("$");
}

/** True when `password` hashes to `encoded`; the comparison takes the same time wherever the hashes differ. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parsePasswordHash(encoded);
  const hash = await derive(password, parsed.salt, parsed.hash.length, parsed);
  return timingSafeEqual(hash, parsed.hash);
}
