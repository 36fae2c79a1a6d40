#!/bin/bash
# The standby's entrypoint (deploy/docker-compose.ha.yml). On first start its
# data directory is empty: it takes a base backup of the primary through the
# slot the primary's init script made (pg_basebackup -R writes
# primary_conninfo and standby.signal), names itself hotplate_standby, which
# is what the primary's synchronous_standby_names waits for, and then runs
# as a hot standby. Later starts find the data and just run.
set -euo pipefail
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    until gosu postgres pg_isready -h "$PRIMARY_HOST" -U replicator -d postgres; do sleep 1; done
    export PGPASSWORD="$REPLICATION_PASSWORD"
    gosu postgres pg_basebackup -h "$PRIMARY_HOST" -U replicator -D "$PGDATA" -S hotplate_standby -X stream -R
    echo "primary_conninfo = 'host=$PRIMARY_HOST user=replicator password=$REPLICATION_PASSWORD application_name=hotplate_standby'" \
        >>"$PGDATA/postgresql.auto.conf"
fi
# Promoted, it must commit without a standby of its own; hot_standby lets it serve reads meanwhile.
exec gosu postgres postgres -c hot_standby=on -c synchronous_standby_names= \
    -c shared_preload_libraries=pg_stat_statements,auto_explain -c compute_query_id=on -c max_connections=200
