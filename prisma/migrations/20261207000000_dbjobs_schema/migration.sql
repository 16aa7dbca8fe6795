-- dbjobs' own objects in the application's database live in schema dbjobs,
-- apart from the application's tables (public) and BullMQ's PostgreSQL backend
-- (schema bullmq). The queue database's bookkeeping (metrics, schedule
-- registrations) is in prisma/queue-migrations.
CREATE SCHEMA IF NOT EXISTS "dbjobs";
