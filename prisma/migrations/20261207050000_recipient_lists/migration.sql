-- Recipient lists for bulk-messaging campaigns (issue #22): a campaign of up
-- to 100,000 patients names its recipients by reference ("recipientListId")
-- instead of carrying every id in its payload. Staged by Producer.stageRecipients,
-- `dbjobs recipients stage` or `POST /recipient-lists`
-- (src/jobs/bulk-messaging/recipient-lists.ts), in one transaction each.

-- "id": derived from the content ('rl-' and the first 32 hex digits of
-- "content_sha256") or given by the client. "content_sha256": of the sorted,
-- distinct, lower-case ids joined by newlines; a client-given id staged again
-- with other ids is refused by comparing it. "count": distinct patient ids.
-- "last_used_at": set at every staging and when a campaign starts on the list;
-- lists unused for RECIPIENT_LIST_RETENTION_DAYS are deleted at the next staging.
CREATE TABLE "dbjobs"."recipient_lists" (
    "id" TEXT NOT NULL,
    "content_sha256" TEXT NOT NULL,
    "count" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "last_used_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT "recipient_lists_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "recipient_lists_last_used_at_idx" ON "dbjobs"."recipient_lists" ("last_used_at");

-- The members, read by the campaign in patient_id order (keyset pages over the primary key).
CREATE TABLE "dbjobs"."recipient_list_members" (
    "list_id" TEXT NOT NULL,
    "patient_id" UUID NOT NULL,
    CONSTRAINT "recipient_list_members_pkey" PRIMARY KEY ("list_id", "patient_id"),
    CONSTRAINT "recipient_list_members_list_id_fkey" FOREIGN KEY ("list_id") REFERENCES "dbjobs"."recipient_lists" ("id") ON DELETE CASCADE
);
