#!/bin/bash
# Run once by the postgres image on an empty data directory of the primary
# (deploy/docker-compose.ha.yml mounts it into /docker-entrypoint-initdb.d):
# the replication role the standby connects as, a pg_hba.conf line that lets
# it in from the compose network, and the physical replication slot that keeps
# the WAL the standby has not received yet.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<SQL
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${REPLICATION_PASSWORD}';
SELECT pg_create_physical_replication_slot('hotplate_standby');
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
