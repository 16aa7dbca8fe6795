-- A payload search for failed or cancelled jobs (`dbjobs search campaignId=… --state failed`)
-- reads this index of the few rows that did not complete, instead of every
-- row with that payload in the whole index. The search sends its values as
-- parameters of an unnamed statement, so PostgreSQL plans with them and sees
-- that `state = 'failed'` falls under this index's condition.
CREATE INDEX "job_history_payload_unfinished" ON "dbjobs"."job_history" USING GIN ("payload" jsonb_path_ops) WHERE "state" <> 'completed';
