import { hashPassword } from "../../src/lib/password-hash.js";

/** The two users the console and role tests sign in as: one per role. */
export const operatorUser = { username: "olga", password: "olga-operator-password" };
export const viewerUser = { username: "victor", password: "victor-viewer-password" };

/** DASHBOARD_USERS for them, hashed with cheap scrypt parameters: tests need the format, not the cost. */
export async function consoleUsersSetting(): Promise<string> {
  const cheap = { N: 1024, r: 8, p: 1 };
  return [
    `${operatorUser.username}:operator:${await hashPassword(operatorUser.password, cheap)}`,
    `${viewerUser.username}:viewer:${await hashPassword(viewerUser.password, cheap)}`,
  ].join(",");
}
