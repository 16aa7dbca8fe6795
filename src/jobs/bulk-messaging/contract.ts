import { z } from "zod";
import { defineContract } from "../../queues/contract.js";
import { recipientListIdPattern } from "./recipient-lists.js";

export interface BulkMessagingResult {
  /** Patient ids handled so far (all of them when the job completes). */
  processed: number;
  total: number;
  /** Messages of this campaign in state sent, including those sent by an earlier attempt. */
  sent: number;
  /** Messages the provider refused for good (or patients without an address). */
  failed: number;
  /** Ids that are not uuids or name no patient. */
  skipped: number;
}

export const bulkMessagingPayload = z
  .object({
    campaignId: z.string().min(1).max(100),
    channel: z.enum(["sms", "email"]),
    /** `{{firstName}}` and `{{lastName}}` are filled in per patient. */
    body: z.string().min(1).max(1600),
    /** The recipients, in the payload: fine for thousands; for more, stage a list and give `recipientListId`. */
    patientIds: z
      .array(z.string().min(1).max(100))
      .min(1)
      .max(100_000)
      .superRefine((ids, ctx) => {
        const seen = new Set<string>();
        const repeated = new Set<string>();
        for (const id of ids) (seen.has(id) ? repeated : seen).add(id);
        if (repeated.size > 0) {
          const sample = [...repeated].slice(0, 3).join(", ");
          ctx.addIssue({ code: "custom", message: `must be unique; repeated: ${sample}${repeated.size > 3 ? ` and ${repeated.size - 3} more` : ""}` });
        }
      })
      .optional(),
    /** A recipient list staged with Producer.stageRecipients, `dbjobs recipients stage` or `POST /recipient-lists`. */
    recipientListId: z.string().regex(recipientListIdPattern, { error: "use the id that staging the recipients returned" }).optional(),
    /**
     * Whose campaign this is (a clinic): campaigns of one tenant share its
     * MESSAGING_TENANT_CONCURRENCY slots, and take turns with other tenants'.
     * Campaigns without one are held to no tenant's slots. Not personal data.
     */
    tenantId: z.string().min(1).max(100).optional(),
    /** Patients per batch (a fixed number of statements each). @defaultValue 1000 */
    batchSize: z.number().int().min(1).max(5000).default(1000),
    /** Provider calls per second across the job. @defaultValue unlimited */
    sendRatePerSecond: z.number().positive().max(100_000).optional(),
    /** Provider calls in flight at once. @defaultValue 16 */
    sendConcurrency: z.number().int().min(1).max(256).default(16),
  })
  .strict()
  .superRefine((payload, ctx) => {
    const given = [payload.patientIds, payload.recipientListId].filter((value) => value !== undefined).length;
    if (given === 1) return;
    ctx.addIssue({
      code: "custom",
      path: [given === 0 ? "patientIds" : "recipientListId"],
      message:
        given === 0
          ? "give the recipients: patientIds (an array of patient ids) or recipientListId (a staged list, for large campaigns)"
          : "give patientIds or recipientListId, not both",
    });
  });

export type BulkMessagingPayload = z.output<typeof bulkMessagingPayload>;

export const bulkMessagingContract = defineContract<BulkMessagingResult>()({
  name: "bulk-messaging",
  payload: bulkMessagingPayload,
  // The message text may name a patient's condition; the recipients are patients.
  history: { redact: ["body", "patientIds"] },
  worker: { concurrency: 2, lockDurationMs: 30_000 },
  jobOptions: { attempts: 8 },
});
