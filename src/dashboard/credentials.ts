import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { Config } from "../lib/config.js";
import type { DashboardRole } from "../lib/dashboard-users.js";
import { verifyPassword } from "../lib/password-hash.js";

/**
 * Who may use the dashboard, and as what. Every credential names a user and a
 * role: the DASHBOARD_USERS entries (scrypt hashes), the single
 * DASHBOARD_USER/DASHBOARD_PASSWORD pair and DASHBOARD_TOKEN (both operator,
 * as before roles existed), and DASHBOARD_VIEWER_TOKEN (viewer).
 */
export interface DashboardPrincipal {
  name: string;
  role: DashboardRole;
  /** Signs this user's CSRF tokens; derived from the user's own secret, so every dashboard process agrees on it. */
  csrfKey: Buffer;
}

interface PasswordUser {
  name: string;
  role: DashboardRole;
  /** Plain (DASHBOARD_PASSWORD) or scrypt hash (DASHBOARD_USERS). */
  secret: { plain: string } | { hash: string };
}

interface TokenCredential {
  name: string;
  role: DashboardRole;
  token: string;
}

export interface CredentialList {
  users: PasswordUser[];
  tokens: TokenCredential[];
}

export function credentialsFromConfig(config: Config): CredentialList {
  const users: PasswordUser[] = (config.DASHBOARD_USERS ?? []).map((entry) => ({ name: entry.name, role: entry.role, secret: { hash: entry.passwordHash } }));
  if (config.DASHBOARD_USER !== undefined && config.DASHBOARD_PASSWORD !== undefined) {
    users.push({ name: config.DASHBOARD_USER, role: "operator", secret: { plain: config.DASHBOARD_PASSWORD } });
  }
  const tokens: TokenCredential[] = [];
  if (config.DASHBOARD_TOKEN) tokens.push({ name: "token", role: "operator", token: config.DASHBOARD_TOKEN });
  if (config.DASHBOARD_VIEWER_TOKEN) tokens.push({ name: "viewer-token", role: "viewer", token: config.DASHBOARD_VIEWER_TOKEN });
  return { users, tokens };
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest();

// Hashing first gives both sides the same length, so timingSafeEqual never
// throws and the comparison time does not depend on where the strings differ
// or on the secret's length.
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

const csrfKeyOf = (material: string) => createHash("sha256").update("dbjobs-csrf-v1\0").update(material, "utf8").digest();

/** The principal of a dashboard served without authentication (loopback only); its CSRF key lives as long as the process. */
export function anonymousPrincipal(): DashboardPrincipal {
  return { name: "anonymous", role: "operator", csrfKey: randomBytes(32) };
}

/**
 * Checks Authorization header values. A scrypt check costs a few hundred
 * milliseconds by design, and basic auth resends the password with every
 * request (bull-board polls), so a successful check is remembered for five
 * minutes under the SHA-256 of the header; concurrent requests share one
 * check. Failures are never remembered: each wrong guess pays full price.
 */
export class CredentialChecker {
  private readonly verified = new LRUCache<string, Promise<DashboardPrincipal | undefined>>({ max: 1000, ttl: 5 * 60_000 });

  constructor(private readonly list: CredentialList) {}

  get hasBasic(): boolean {
    return this.list.users.length > 0;
  }

  get hasBearer(): boolean {
    return this.list.tokens.length > 0;
  }

  async check(header: string | undefined): Promise<DashboardPrincipal | undefined> {
    if (!header) return undefined;
    const key = sha256(header).toString("base64");
    const cached = this.verified.get(key);
    if (cached) return cached;
    const pending = this.checkUncached(header);
    this.verified.set(key, pending);
    const principal = await pending.catch(() => undefined);
    if (!principal) this.verified.delete(key);
    return principal;
  }

  private async checkUncached(header: string): Promise<DashboardPrincipal | undefined> {
    const space = header.indexOf(" ");
    if (space <= 0) return undefined;
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (scheme === "bearer") return principalForToken(this.list, value);
    if (scheme !== "basic") return undefined;
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) return undefined;
    return principalForPassword(this.list, decoded.slice(0, colon), decoded.slice(colon + 1));
  }
}

/** The token's principal, or undefined. Shared by the dashboard's bearer auth and the CLI's DBJOBS_TOKEN. */
export function principalForToken(list: CredentialList, given: string): DashboardPrincipal | undefined {
  // Every token is compared, so the time taken does not say which one nearly matched.
  const matches = list.tokens.filter((token) => sameSecret(given, token.token));
  const token = matches[0];
  return token ? { name: token.name, role: token.role, csrfKey: csrfKeyOf(token.token) } : undefined;
}

/** The user's principal when `password` is theirs, else undefined. Shared by the dashboard's basic auth and the CLI's DBJOBS_ACTOR + DBJOBS_PASSWORD. */
export async function principalForPassword(list: CredentialList, name: string, password: string): Promise<DashboardPrincipal | undefined> {
  const nameMatches = list.users.map((user) => sameSecret(name, user.name));
  const user = list.users[nameMatches.indexOf(true)];
  if (!user) {
    // Pay for a scrypt check anyway, so a quick answer does not tell that the name is unknown.
    const anyHash = list.users.find((candidate) => "hash" in candidate.secret)?.secret;
    if (anyHash && "hash" in anyHash) await verifyPassword(password, anyHash.hash);
    return undefined;
  }
  if ("plain" in user.secret) {
    return sameSecret(password, user.secret.plain) ? { name: user.name, role: user.role, csrfKey: csrfKeyOf(user.secret.plain) } : undefined;
  }
  return (await verifyPassword(password, user.secret.hash)) ? { name: user.name, role: user.role, csrfKey: csrfKeyOf(user.secret.hash) } : undefined;
}
