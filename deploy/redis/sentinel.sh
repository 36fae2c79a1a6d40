#!/bin/sh
# The Sentinel's entrypoint (deploy/docker-compose.ha.yml): it watches the
# primary as "hotplate", the name in the servers' sentinel:// URL, and fails
# over to the replica after SENTINEL_DOWN_AFTER_MS without an answer. Sentinel
# rewrites its configuration as it learns the topology, so the file is a
# writable copy made here. With a single Sentinel the quorum is 1. It
# resolves the compose host names it is given but announces addresses, so that
# a server asking for the primary gets an IP and no name to look up.
set -eu
conf=/tmp/sentinel.conf
cat >"$conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel monitor hotplate ${REDIS_PRIMARY_HOST} 6379 1
sentinel down-after-milliseconds hotplate ${SENTINEL_DOWN_AFTER_MS}
sentinel failover-timeout hotplate 10000
sentinel parallel-syncs hotplate 1
CONF
exec redis-sentinel "$conf"
