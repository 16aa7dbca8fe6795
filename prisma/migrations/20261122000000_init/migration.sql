-- dbjobs initial schema (SPEC §2). Applied by `dbjobs migrate` or `prisma migrate deploy`.

-- ─── Enums ──────────────────────────────────────────────────────────────────
CREATE TYPE "MessageChannel" AS ENUM ('sms', 'email');
CREATE TYPE "MessageDirection" AS ENUM ('inbound', 'outbound');
CREATE TYPE "MessageStatus" AS ENUM ('queued', 'sending', 'sent', 'delivered', 'failed');
CREATE TYPE "ConversationStatus" AS ENUM ('open', 'closed', 'archived');
CREATE TYPE "InvoiceStatus" AS ENUM ('draft', 'issued', 'partially_paid', 'paid', 'overdue', 'void');
CREATE TYPE "TransactionType" AS ENUM ('DEPOSIT', 'WITHDRAWAL', 'DISTRIBUTION', 'FEE', 'REFUND');
CREATE TYPE "TransactionStatus" AS ENUM ('PENDING', 'RETRYING', 'COMPLETED', 'FAILED', 'CANCELLED');
CREATE TYPE "EscrowAccountStatus" AS ENUM ('ACTIVE', 'FROZEN', 'CLOSED');

-- ─── Messaging (seed 004) ───────────────────────────────────────────────────
CREATE TABLE "patients" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "firstName" TEXT NOT NULL,
    "lastName" TEXT NOT NULL,
    "email" TEXT,
    "phone" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "patients_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "patients_firstName_lastName_idx" ON "patients"("firstName", "lastName");
CREATE INDEX "patients_phone_idx" ON "patients"("phone");
CREATE INDEX "patients_email_idx" ON "patients"("email");

CREATE TABLE "conversations" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "patientId" UUID NOT NULL,
    "channel" "MessageChannel" NOT NULL,
    "status" "ConversationStatus" NOT NULL DEFAULT 'open',
    "lastMessageAt" TIMESTAMPTZ(3),
    "lastMessageDirection" "MessageDirection",
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "conversations_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "conversations_patientId_fkey" FOREIGN KEY ("patientId") REFERENCES "patients"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "conversations_patientId_channel_key" ON "conversations"("patientId", "channel");
CREATE INDEX "conversations_status_lastMessageAt_idx" ON "conversations"("status", "lastMessageAt");

CREATE TABLE "messaging_messages" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "conversationId" UUID NOT NULL,
    "patientId" UUID NOT NULL,
    "campaignId" TEXT,
    "channel" "MessageChannel" NOT NULL,
    "direction" "MessageDirection" NOT NULL DEFAULT 'outbound',
    "body" TEXT NOT NULL,
    "status" "MessageStatus" NOT NULL DEFAULT 'queued',
    "providerMessageId" TEXT,
    "error" TEXT,
    "scheduledAt" TIMESTAMPTZ(3),
    "sentAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "messaging_messages_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "messaging_messages_conversationId_fkey" FOREIGN KEY ("conversationId") REFERENCES "conversations"("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messaging_messages_patientId_fkey" FOREIGN KEY ("patientId") REFERENCES "patients"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "messaging_messages_campaignId_patientId_channel_key" ON "messaging_messages"("campaignId", "patientId", "channel");
CREATE INDEX "messaging_messages_conversationId_createdAt_idx" ON "messaging_messages"("conversationId", "createdAt");
CREATE INDEX "messaging_messages_patientId_idx" ON "messaging_messages"("patientId");
CREATE INDEX "messaging_messages_status_scheduledAt_idx" ON "messaging_messages"("status", "scheduledAt");

-- ─── Invoices (seed 004) ────────────────────────────────────────────────────
CREATE TABLE "invoices" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "invoiceNumber" TEXT NOT NULL,
    "patientId" UUID NOT NULL,
    "status" "InvoiceStatus" NOT NULL DEFAULT 'draft',
    "invoiceDate" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "subtotal" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "discountTotal" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "taxTotal" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "total" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "amountPaid" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "balanceDue" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "voidedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "invoices_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "invoices_patientId_fkey" FOREIGN KEY ("patientId") REFERENCES "patients"("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "invoices_invoiceNumber_key" ON "invoices"("invoiceNumber");
CREATE INDEX "invoices_patientId_voidedAt_idx" ON "invoices"("patientId", "voidedAt");
CREATE INDEX "invoices_status_invoiceDate_idx" ON "invoices"("status", "invoiceDate");
CREATE INDEX "invoices_updatedAt_idx" ON "invoices"("updatedAt");

CREATE TABLE "invoice_line_items" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "invoiceId" UUID NOT NULL,
    "description" TEXT NOT NULL,
    "quantity" DECIMAL(12,3) NOT NULL DEFAULT 1,
    "unitPrice" DECIMAL(14,2) NOT NULL,
    "discountAmount" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "taxAmount" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "lineTotal" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "invoice_line_items_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "invoice_line_items_invoiceId_fkey" FOREIGN KEY ("invoiceId") REFERENCES "invoices"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "invoice_line_items_invoiceId_idx" ON "invoice_line_items"("invoiceId");
CREATE INDEX "invoice_line_items_updatedAt_idx" ON "invoice_line_items"("updatedAt");

-- ─── Finance (seed 000) ─────────────────────────────────────────────────────
CREATE TABLE "users" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "email" TEXT NOT NULL,
    "name" TEXT,
    "lastActiveAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");
CREATE INDEX "users_lastActiveAt_idx" ON "users"("lastActiveAt");

CREATE TABLE "escrow_accounts" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "accountNumber" TEXT NOT NULL,
    "status" "EscrowAccountStatus" NOT NULL DEFAULT 'ACTIVE',
    "currentBalance" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "availableBalance" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "pendingBalance" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "heldBalance" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "version" INTEGER NOT NULL DEFAULT 0,
    "lastReconciledAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "escrow_accounts_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "escrow_accounts_accountNumber_key" ON "escrow_accounts"("accountNumber");
CREATE INDEX "escrow_accounts_status_idx" ON "escrow_accounts"("status");
CREATE INDEX "escrow_accounts_lastReconciledAt_idx" ON "escrow_accounts"("lastReconciledAt");

-- transactions: RANGE-partitioned by month on "createdAt". The partition key must
-- be part of every unique index, so the primary key is ("id", "createdAt").
-- Monthly partitions (transactions_YYYY_MM) are created ahead of time by the
-- partition-maintenance job; rows for a month without a partition land in the
-- default partition and are moved out by that job.
CREATE TABLE "transactions" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "type" "TransactionType" NOT NULL,
    "status" "TransactionStatus" NOT NULL DEFAULT 'PENDING',
    "amount" DECIMAL(14,2) NOT NULL,
    "feeAmount" DECIMAL(14,2) NOT NULL DEFAULT 0,
    "fromUserId" UUID,
    "toUserId" UUID,
    "escrowAccountId" UUID,
    "idempotencyKey" TEXT,
    "retryCount" INTEGER NOT NULL DEFAULT 0,
    "nextRetryAt" TIMESTAMPTZ(3),
    "lastError" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "transactions_pkey" PRIMARY KEY ("id", "createdAt"),
    CONSTRAINT "transactions_fromUserId_fkey" FOREIGN KEY ("fromUserId") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "transactions_toUserId_fkey" FOREIGN KEY ("toUserId") REFERENCES "users"("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "transactions_escrowAccountId_fkey" FOREIGN KEY ("escrowAccountId") REFERENCES "escrow_accounts"("id") ON DELETE SET NULL ON UPDATE CASCADE
) PARTITION BY RANGE ("createdAt");
CREATE TABLE "transactions_default" PARTITION OF "transactions" DEFAULT;
CREATE INDEX "transactions_type_idx" ON "transactions"("type");
CREATE INDEX "transactions_status_idx" ON "transactions"("status");
CREATE INDEX "transactions_createdAt_idx" ON "transactions"("createdAt");
CREATE INDEX "transactions_fromUserId_idx" ON "transactions"("fromUserId");
CREATE INDEX "transactions_toUserId_idx" ON "transactions"("toUserId");
CREATE INDEX "transactions_escrowAccountId_idx" ON "transactions"("escrowAccountId");
CREATE INDEX "transactions_status_nextRetryAt_idx" ON "transactions"("status", "nextRetryAt");
CREATE INDEX "transactions_idempotencyKey_idx" ON "transactions"("idempotencyKey");

-- transactions_archive: same columns in the same order, partitioned the same
-- way, so a whole month can move with DETACH/ATTACH PARTITION in constant time.
CREATE TABLE "transactions_archive" (LIKE "transactions" INCLUDING DEFAULTS)
    PARTITION BY RANGE ("createdAt");
ALTER TABLE "transactions_archive" ADD CONSTRAINT "transactions_archive_pkey" PRIMARY KEY ("id", "createdAt");
CREATE TABLE "transactions_archive_default" PARTITION OF "transactions_archive" DEFAULT;
CREATE INDEX "transactions_archive_createdAt_idx" ON "transactions_archive"("createdAt");

-- Idempotency keys unique across every partition and the archive. A unique
-- index on a partitioned table must contain the partition key, which would
-- make keys unique per month only; this table makes them unique for good.
-- Keys are never removed, so an archived transaction keeps its key reserved.
CREATE TABLE "transaction_idempotency_keys" (
    "idempotencyKey" TEXT NOT NULL,
    "transactionId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "transaction_idempotency_keys_pkey" PRIMARY KEY ("idempotencyKey")
);

-- Trigger: takes NEW row of "transactions"; reserves its idempotency key.
-- Raises unique_violation (23505) naming "transactions_idempotencyKey_key" when
-- the key is already taken by another transaction. Re-inserting the same
-- transaction id (a move between partitions) is allowed.
CREATE FUNCTION "reserve_transaction_idempotency_key"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW."idempotencyKey" IS NULL THEN
        RETURN NEW;
    END IF;
    INSERT INTO "transaction_idempotency_keys" ("idempotencyKey", "transactionId")
    VALUES (NEW."idempotencyKey", NEW."id")
    ON CONFLICT ("idempotencyKey") DO NOTHING;
    IF NOT FOUND AND NOT EXISTS (
        SELECT 1 FROM "transaction_idempotency_keys"
        WHERE "idempotencyKey" = NEW."idempotencyKey" AND "transactionId" = NEW."id"
    ) THEN
        RAISE EXCEPTION 'duplicate idempotencyKey "%"', NEW."idempotencyKey"
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'transactions_idempotencyKey_key';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER "transactions_reserve_idempotency_key"
    BEFORE INSERT OR UPDATE OF "idempotencyKey" ON "transactions"
    FOR EACH ROW EXECUTE FUNCTION "reserve_transaction_idempotency_key"();

CREATE TABLE "escrow_ledger_entries" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "entryNumber" BIGSERIAL NOT NULL,
    "escrowAccountId" UUID NOT NULL,
    "transactionId" UUID NOT NULL,
    "amount" DECIMAL(14,2) NOT NULL,
    "balanceBefore" DECIMAL(14,2) NOT NULL,
    "balanceAfter" DECIMAL(14,2) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "escrow_ledger_entries_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "escrow_ledger_entries_escrowAccountId_fkey" FOREIGN KEY ("escrowAccountId") REFERENCES "escrow_accounts"("id") ON DELETE RESTRICT ON UPDATE CASCADE
);
-- One ledger entry per transaction: the database itself refuses a second settlement.
CREATE UNIQUE INDEX "escrow_ledger_entries_transactionId_key" ON "escrow_ledger_entries"("transactionId");
CREATE INDEX "escrow_ledger_entries_escrowAccountId_idx" ON "escrow_ledger_entries"("escrowAccountId");
CREATE INDEX "escrow_ledger_entries_escrowAccountId_createdAt_idx" ON "escrow_ledger_entries"("escrowAccountId", "createdAt");
CREATE INDEX "escrow_ledger_entries_createdAt_idx" ON "escrow_ledger_entries"("createdAt");
