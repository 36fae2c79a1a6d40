-- Run once by the postgres image on an empty data directory
-- (deploy/docker-compose.yml mounts it into /docker-entrypoint-initdb.d).
-- The same extension and grants as the local stack (deploy/stack.sh
-- bootstrap_pg): the profiling endpoints and postgres_exporter read
-- pg_stat_statements, and reset it between measurements.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT pg_monitor TO hotplate;
