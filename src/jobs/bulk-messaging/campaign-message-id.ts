import { createHash } from "node:crypto";
import { writeUuidBytes } from "../../lib/uuid.js";
import type { MessageChannel } from "./provider.js";

let cachedFor = "";
let cachedKey = new Uint8Array(16);
const bytes = Buffer.alloc(16);

/** 16 bytes fixed by the campaign and channel: the first half of a SHA-1 over both, taken once per campaign. */
function campaignKey(campaignId: string, channel: MessageChannel): Uint8Array {
  const name = `dbjobs campaign message\n${channel}\n${campaignId}`;
  if (name !== cachedFor) {
    cachedKey = createHash("sha1").update(name).digest().subarray(0, 16);
    cachedFor = name;
  }
  return cachedKey;
}

/**
 * The id of a campaign's message to one patient on one channel, and so the
 * provider's idempotency key: the same in every run of the campaign, so a
 * message sent but not yet written is sent again under the key the provider
 * already knows.
 *
 * The patient's uuid XOR a key of the campaign and channel, marked as an RFC
 * 9562 version-8 uuid. Within a campaign it is one-to-one (patient uuids of
 * one version share the bits the mark overwrites); two campaigns' ids meet
 * only by a 122-bit chance. A name-based (version 5) uuid per message cost a
 * SHA-1 each: a sixth of the worker's CPU in a campaign
 * (bench/bulk-messaging.ts).
 */
export function campaignMessageId(campaignId: string, patientId: string, channel: MessageChannel): string {
  if (!writeUuidBytes(patientId, bytes, 0)) throw new TypeError(`patientId must be a uuid, got ${JSON.stringify(patientId)}`);
  const key = campaignKey(campaignId, channel);
  for (let i = 0; i < 16; i++) bytes[i] = (bytes[i] as number) ^ (key[i] as number);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x80;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
