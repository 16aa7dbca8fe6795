import { v5 as uuidV5 } from "uuid";
import type { MessageChannel } from "./provider.js";

/** The namespace of campaign message ids (a random uuid, fixed forever: changing it would send every unfinished campaign's messages again). */
const namespace = "3f0c8e9a-6d2b-4f57-9a61-2b8f4a7d1c35";

/**
 * The id of a campaign's message to one patient on one channel, and so the
 * provider's idempotency key: the same in every run of the campaign (a name-
 * based uuid, RFC 9562 version 5), so a message sent but not yet written is
 * sent again under the key the provider already knows.
 */
export function campaignMessageId(campaignId: string, patientId: string, channel: MessageChannel): string {
  return uuidV5(`${channel}\n${campaignId}\n${patientId}`, namespace);
}
