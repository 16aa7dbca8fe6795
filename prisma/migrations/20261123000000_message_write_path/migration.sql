-- bulk-messaging writes every message twice (created as `sending`, then its
-- outcome), and each write touches every index of messaging_messages and runs
-- its foreign-key checks. This migration keeps what the queries need and drops
-- what they do not:
--
-- 1. (patientId, campaignId, channel) replaces the unique (campaignId,
--    patientId, channel): the same rule, and leading with patientId it also
--    serves "a patient's messages", so the separate (patientId) index goes.
-- 2. (scheduledAt) of queued messages replaces (status, scheduledAt): it serves
--    "queued messages now due" and holds no sent or failed message.
-- 3. One foreign key on (conversationId, patientId) to conversations replaces
--    the two to conversations and to patients: it proves the conversation
--    exists and is this patient's, with one lookup per row instead of two.
--    Deleting a patient still deletes their messages, through conversations.
--    Added NOT VALID and validated after, so existing rows are checked without
--    blocking writes; a message filed under another patient's conversation
--    fails the validation and names the constraint.
--
-- The whole file runs in one transaction (dbjobs migrate).

CREATE UNIQUE INDEX "messaging_messages_patientId_campaignId_channel_key" ON "messaging_messages"("patientId", "campaignId", "channel");
DROP INDEX "messaging_messages_campaignId_patientId_channel_key";
DROP INDEX "messaging_messages_patientId_idx";

CREATE INDEX "messaging_messages_queued_scheduledAt_idx" ON "messaging_messages"("scheduledAt") WHERE status = 'queued';
DROP INDEX "messaging_messages_status_scheduledAt_idx";

CREATE UNIQUE INDEX "conversations_id_patientId_key" ON "conversations"("id", "patientId");
ALTER TABLE "messaging_messages" ADD CONSTRAINT "messaging_messages_conversationId_patientId_fkey"
  FOREIGN KEY ("conversationId", "patientId") REFERENCES "conversations"("id", "patientId") ON DELETE CASCADE ON UPDATE CASCADE NOT VALID;
ALTER TABLE "messaging_messages" VALIDATE CONSTRAINT "messaging_messages_conversationId_patientId_fkey";
ALTER TABLE "messaging_messages" DROP CONSTRAINT "messaging_messages_conversationId_fkey";
ALTER TABLE "messaging_messages" DROP CONSTRAINT "messaging_messages_patientId_fkey";
