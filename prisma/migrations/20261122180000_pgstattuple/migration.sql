-- pgstattuple gives db-maintenance an exact measure of btree bloat
-- (pgstatindex). It ships with PostgreSQL's contrib package but is not a
-- trusted extension: creating it needs a superuser (or the extension may be
-- missing on a managed server). Where it cannot be created the migration
-- still succeeds, and db-maintenance falls back to its statistics-based
-- estimate (and says so in its result's "bloatMethod").
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pgstattuple;
EXCEPTION
  WHEN insufficient_privilege OR undefined_file OR feature_not_supported OR object_not_in_prerequisite_state THEN
    RAISE NOTICE 'pgstattuple not installed (%); db-maintenance will estimate index bloat from planner statistics', SQLERRM;
END
$$;
