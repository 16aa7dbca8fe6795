-- The provider rate limit every bulk-messaging worker shares when the queues
-- live in PostgreSQL (src/jobs/bulk-messaging/provider-rate-limit.ts):
-- rate-limiter-flexible's RateLimiterPostgres table, with the columns that
-- library creates itself ("key", "points", "expire" in epoch ms), made here so
-- that workers need no CREATE privilege. It holds at most two rows per slot
-- of a second per queue prefix: the slot keys are reused.
CREATE TABLE "dbjobs"."messaging_rate_limit" (
    "key" VARCHAR(255) NOT NULL,
    "points" INTEGER NOT NULL DEFAULT 0,
    "expire" BIGINT,
    CONSTRAINT "messaging_rate_limit_pkey" PRIMARY KEY ("key")
);
