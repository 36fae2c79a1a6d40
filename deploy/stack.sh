#!/usr/bin/env bash
# Starts and stops a private PostgreSQL 15 cluster and a private Redis for one
# hotplate checkout, entirely under one directory (the "home", .hotplate by
# default), so that development and tests never depend on or disturb the
# machine's own database services.
#
#   deploy/stack.sh up|down|status|env|destroy [--home DIR]
#
#   up       create the cluster on first use, start both servers, wait until
#            they answer, and write DIR/env; a no-op apart from refreshing
#            DIR/env when both already run.
#   down     stop both servers; a no-op when they are already stopped.
#   status   print the state; exit 0 when both run and 3 otherwise.
#   env      print DIR/env (source it to get HOTPLATE_PG_URL and friends).
#   destroy  down, then delete the cluster, the Redis directory and DIR/env.
#
# Fault injection on a running stack (tests/faults uses these on a stack of
# its own; they never touch another home):
#   pg-stop      stop PostgreSQL only (fast shutdown: clients are cut off)
#   pg-start     start PostgreSQL again on its recorded port
#   redis-kill   SIGKILL Redis (no shutdown, no goodbye to its clients)
#   redis-start  start Redis again
#   failover     HA stacks: SIGKILL the PostgreSQL primary and promote the
#                standby (pg_ctl promote), as an operator would; the next
#                `up` rebuilds the dead node as the new primary's standby
#   redis-kill-primary  HA stacks: SIGKILL whichever Redis Sentinel names the
#                primary, and wait until Sentinel has promoted the replica
#
# High availability (HA=1 in the environment of `up`, recorded in stack.conf
# so every later command keeps the topology): PostgreSQL runs a primary and a
# streaming-replication standby made with pg_basebackup, fed through a
# physical replication slot, and the primary's synchronous_standby_names names
# the standby, so a commit is acknowledged only once the standby has its WAL.
# Redis runs a primary and a replica on 127.0.0.1 TCP ports, watched by one
# redis-sentinel (Debian's binary, started here; the package's own service is
# stopped by deploy/deps.sh). DIR/env then gives hotplate libpq's multi-host
# URL with target_session_attrs=read-write, and a sentinel:// URL for Redis.
# docs/RELIABILITY.md describes failing over and the production alternative.
#
# Several homes can run side by side (make up uses .hotplate, make test uses
# .hotplate/test): each gets its own socket directories, and PostgreSQL's TCP
# port on 127.0.0.1 is chosen free at start and recorded in DIR/stack.conf.
# Redis listens on its unix socket only, so it needs no port at all.
#
# PostgreSQL refuses to run as root. When this script runs as root it creates
# an unprivileged system user (hotplate) and runs initdb and pg_ctl as that
# user with runuser. That user must be able to reach its data directory, which
# it cannot when an ancestor of DIR is closed to others (a checkout under
# /root, say) or when DIR is so deep that a socket path would exceed the
# 107-byte unix socket limit. In those cases the servers' files live under
# /var/tmp/hotplate-<checksum of DIR> instead, DIR/pg and DIR/redis are
# symlinks to them, and DIR/stack.conf records the real location.
set -euo pipefail

# Directories this script creates must be traversable by the PostgreSQL user
# even when the caller's umask is strict.
umask 022
# useradd and runuser live in /usr/sbin, which a non-login root shell (or a
# trimmed CI environment) may not have on its PATH.
PATH="$PATH:/usr/sbin:/sbin"

readonly PGBIN=/usr/lib/postgresql/15/bin
readonly PG_SYSTEM_USER=hotplate
readonly WAIT_SECONDS=60

usage() {
    echo "usage: $0 up|down|status|env|destroy|pg-stop|pg-start|redis-kill|redis-start|failover|redis-kill-primary [--home DIR]" >&2
    exit 2
}

die() {
    echo "stack: $*" >&2
    exit 1
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cmd=${1:-}
[[ -n "$cmd" ]] || usage
shift
home="$repo_root/.hotplate"
while [[ $# -gt 0 ]]; do
    case "$1" in
    --home) [[ $# -ge 2 ]] || usage; home=$2; shift 2 ;;
    --home=*) home=${1#--home=}; shift ;;
    *) usage ;;
    esac
done
case "$cmd" in up | down | status | env | destroy | pg-stop | pg-start | redis-kill | redis-start | failover | redis-kill-primary) ;; *) usage ;; esac

[[ -x "$PGBIN/initdb" ]] || die "$PGBIN/initdb not found; run deploy/deps.sh"

# Only `up` may create the home; the other commands work on what exists.
if [[ "$cmd" == up ]]; then
    mkdir -p "$home"
fi
if [[ -d "$home" ]]; then
    home=$(cd "$home" && pwd -P)
else
    home=$(realpath -m "$home")
fi

is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs a command as the owner of the cluster. The subshell changes to / first
# because the PostgreSQL tools complain when they cannot read the current
# directory, which the unprivileged user often cannot.
as_pg() {
    if is_root; then
        (cd / && runuser -u "$PG_SYSTEM_USER" -- "$@")
    else
        "$@"
    fi
}

# State recorded by `up`: where the files really live and which port
# PostgreSQL uses. Sourced as shell, written with printf %q.
conf_file="$home/stack.conf"
RUN_ROOT=""
PG_PORT=""
# HA stacks only: the topology. PG_PRIMARY_DIR and PG_STANDBY_DIR name the
# nodes' data directories under pg/ (a failover swaps them, and PG_PORT
# always belongs to the primary), FAILOVERS counts `failover` runs.
HA_CONF=0
PG_PRIMARY_DIR=data
PG_STANDBY_DIR="data-b"
PG_STANDBY_PORT=""
REDIS_PORT=""
REDIS_REPLICA_PORT=""
SENTINEL_PORT=""
FAILOVERS=0
if [[ -f "$conf_file" ]]; then
    # shellcheck source=/dev/null
    . "$conf_file"
fi
# HA=1 on `up` turns a stack into an HA one; it stays one until destroy.
if [[ "$cmd" == up && "${HA:-0}" == 1 ]]; then
    HA_CONF=1
fi
ha() { [[ "$HA_CONF" == 1 ]]; }
readonly SLOT=hotplate_standby
readonly SENTINEL_MASTER=hotplate

save_conf() {
    local tmp="$conf_file.tmp"
    {
        echo "# Written by deploy/stack.sh; records where this stack's files live."
        printf 'RUN_ROOT=%q\n' "$RUN_ROOT"
        printf 'PG_PORT=%q\n' "$PG_PORT"
        if ha; then
            printf 'HA_CONF=1\n'
            printf 'PG_PRIMARY_DIR=%q\n' "$PG_PRIMARY_DIR"
            printf 'PG_STANDBY_DIR=%q\n' "$PG_STANDBY_DIR"
            printf 'PG_STANDBY_PORT=%q\n' "$PG_STANDBY_PORT"
            printf 'REDIS_PORT=%q\n' "$REDIS_PORT"
            printf 'REDIS_REPLICA_PORT=%q\n' "$REDIS_REPLICA_PORT"
            printf 'SENTINEL_PORT=%q\n' "$SENTINEL_PORT"
            printf 'FAILOVERS=%q\n' "$FAILOVERS"
        fi
    } >"$tmp"
    mv "$tmp" "$conf_file"
}

# Paths derived from RUN_ROOT; set_paths runs again once RUN_ROOT is known.
set_paths() {
    pg_root="$RUN_ROOT/pg"
    pg_data="$pg_root/$PG_PRIMARY_DIR"
    pg_standby_data="$pg_root/$PG_STANDBY_DIR"
    pg_sock="$pg_root/sock"
    pg_log_dir="$pg_root/log"
    redis_dir="$RUN_ROOT/redis"
    redis_sock="$redis_dir/redis.sock"
    redis_pidfile="$redis_dir/redis.pid"
    redis_b_dir="$RUN_ROOT/redis-b"
    sentinel_dir="$RUN_ROOT/sentinel"
    env_file="$home/env"
}
[[ -n "$RUN_ROOT" ]] || RUN_ROOT="$home"
set_paths

# ---------------------------------------------------------------- PostgreSQL

ensure_pg_system_user() {
    is_root || return 0
    id -u "$PG_SYSTEM_USER" >/dev/null 2>&1 && return 0
    # Two stacks starting at once on a fresh machine may both get here; the
    # loser's useradd fails, which is fine as long as the user now exists.
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --comment "hotplate private PostgreSQL" "$PG_SYSTEM_USER" ||
        id -u "$PG_SYSTEM_USER" >/dev/null 2>&1 || die "could not create user $PG_SYSTEM_USER"
    echo "stack: created system user $PG_SYSTEM_USER to run PostgreSQL (it refuses to run as root)"
}

# Decides where the servers' files live for a new stack; see the header for
# why this is not always DIR itself.
choose_run_root() {
    local fallback
    fallback="/var/tmp/hotplate-$(printf '%s' "$home" | cksum | cut -d' ' -f1)"
    RUN_ROOT="$home"
    # The longest socket path is $RUN_ROOT/pg/sock/.s.PGSQL.NNNNN.
    if [[ $((${#home} + 24)) -gt 107 ]]; then
        RUN_ROOT="$fallback"
    elif is_root; then
        # DIR is ours, so opening it for traversal is harmless; its ancestors
        # are not ours to change, so only test them.
        chmod go+x "$home"
        if ! (cd / && runuser -u "$PG_SYSTEM_USER" -- test -x "$home"); then
            RUN_ROOT="$fallback"
        fi
    fi
    if [[ "$RUN_ROOT" != "$home" ]]; then
        echo "stack: $home cannot hold the server files (closed to $PG_SYSTEM_USER, or too long for a socket path); data lives in $RUN_ROOT"
        # A fallback directory left by an earlier home at the same path holds
        # a stale cluster; start from scratch, as a new home would.
        if [[ -d "$RUN_ROOT/pg/data" ]]; then
            set_paths
            stop_pg || true
            stop_redis || true
        fi
        rm -rf "$RUN_ROOT"
        mkdir -p "$RUN_ROOT"
        ln -sfn "$RUN_ROOT/pg" "$home/pg"
        ln -sfn "$RUN_ROOT/redis" "$home/redis"
    fi
    set_paths
}

pg_running() {
    [[ -f "$pg_data/PG_VERSION" ]] || return 1
    as_pg "$PGBIN/pg_ctl" -D "$pg_data" status >/dev/null 2>&1
}

# Succeeds when something accepts TCP connections on 127.0.0.1:$1. Bash's
# /dev/tcp is used so the check needs no extra tools; on loopback a closed
# port is refused at once, so this never hangs.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Picks a free port, starting from one derived from DIR so that different
# homes start their search in different places and rarely even probe the same
# ports. The range stays below Linux's ephemeral ports (32768 and up), where
# outgoing connections could take a port between our probe and our bind.
pick_port() {
    local var=${1:-PG_PORT} base i port taken
    base=$((15000 + $(printf '%s' "$home" | cksum | cut -d' ' -f1) % 15000))
    # The other ports this stack recorded are taken even while stopped.
    taken=" $PG_PORT $PG_STANDBY_PORT $REDIS_PORT $REDIS_REPLICA_PORT $SENTINEL_PORT "
    for ((i = 0; i < 500; i++)); do
        port=$((15000 + (base - 15000 + i) % 15000))
        if [[ "$taken" != *" $port "* ]] && ! port_in_use "$port"; then
            printf -v "$var" '%s' "$port"
            return 0
        fi
    done
    die "no free TCP port found in 15000-29999"
}

init_pg() {
    echo "stack: initialising PostgreSQL cluster in $pg_data"
    mkdir -p "$pg_root" "$pg_sock" "$pg_log_dir"
    # The log directory is made here, readable by all, because PostgreSQL
    # would create it mode 0700 and the hotplate server (which may run as
    # another user) reads the slow-query log from it.
    chmod 0755 "$pg_root" "$pg_sock" "$pg_log_dir"
    if is_root; then
        chown "$PG_SYSTEM_USER:" "$pg_root" "$pg_sock" "$pg_log_dir"
    fi
    # C.UTF-8 exists on every Debian system, unlike the caller's locale,
    # which in containers is often unset or not generated.
    as_pg "$PGBIN/initdb" -D "$pg_data" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=trust >"$pg_root/initdb.log" 2>&1 ||
        { cat "$pg_root/initdb.log" >&2; die "initdb failed"; }
    # Our settings live in a file regenerated at every start (write_pg_conf),
    # so a change to this script takes effect on the next `up`.
    echo "include_if_exists = 'hotplate.conf'" >>"$pg_data/postgresql.conf"
    # A new cluster holds no data, so an old seed marker is wrong now.
    rm -f "$home/seeded-scale"
}

# write_pg_conf [DATA PORT ROLE]: ROLE is primary (the default) or standby.
write_pg_conf() {
    local data=${1:-$pg_data} port=${2:-$PG_PORT} role=${3:-primary}
    local f="$data/hotplate.conf" log_name=postgresql.log
    [[ "$role" == standby ]] && log_name=postgresql-standby.log
    cat >"$f" <<EOF
# Generated by deploy/stack.sh at every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pg_sock'
max_connections = 200

# Query statistics and plans of slow queries, for the profiling endpoints.
shared_preload_libraries = 'pg_stat_statements,auto_explain'
compute_query_id = on
pg_stat_statements.track = all
# Timing a block read costs about 20 ns here (pg_test_timing), and it fills
# the I/O time columns of pg_stat_statements.
track_io_timing = on
log_min_duration_statement = 100ms
auto_explain.log_min_duration = 100ms
auto_explain.log_format = json
# A session that waits for a lock longer than deadlock_timeout logs "still
# waiting for ShareLock on transaction ...", naming the holder: the evidence
# of the checkout_txn=long lab (docs/labs/05-checkout-txn.md).
log_lock_waits = on
deadlock_timeout = 100ms

# One log file at a fixed path that the hotplate server can open and read.
logging_collector = on
log_directory = '$pg_log_dir'
log_filename = '$log_name'
log_file_mode = 0644
log_rotation_age = 0
log_rotation_size = 0
log_line_prefix = '%m [%p] %q%u@%d '

# Durability stays on: tests must see the same commit costs as production.
fsync = on
synchronous_commit = on
EOF
    if ha; then
        # Replication. A primary waits for the standby's flush of every commit
        # once the standby exists (before that, a commit would wait forever);
        # a standby streams from the primary's slot and keeps
        # synchronous_standby_names empty, so that once promoted with no
        # standby of its own it still commits.
        local sync_names=""
        if [[ "$role" == primary && -f "$pg_standby_data/PG_VERSION" ]]; then
            sync_names=$SLOT
        fi
        cat >>"$f" <<EOF

# High availability (HA=1): see deploy/stack.sh and docs/RELIABILITY.md.
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
synchronous_standby_names = '$sync_names'
cluster_name = 'hotplate_$role'
EOF
        if [[ "$role" == standby ]]; then
            cat >>"$f" <<EOF
primary_conninfo = 'host=$pg_sock port=$PG_PORT user=postgres application_name=$SLOT'
primary_slot_name = '$SLOT'
EOF
        fi
    fi
    if is_root; then
        chown "$PG_SYSTEM_USER:" "$f"
    fi
}

pg_admin_conninfo() {
    echo "host=$pg_sock port=$PG_PORT user=postgres dbname=${1:-postgres}"
}

psql_admin() {
    local db=$1
    shift
    PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$(pg_admin_conninfo "$db")" "$@"
}

# Creates the application role and database and the extension. Every step is
# idempotent, so it runs on every start and repairs a half-finished first run.
bootstrap_pg() {
    psql_admin postgres <<'EOF'
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hotplate') THEN
        CREATE ROLE hotplate LOGIN CREATEDB;
    END IF;
END
$$;
-- pg_monitor lets the application read every setting (SHOW
-- shared_preload_libraries) and other sessions' query text in
-- pg_stat_statements and pg_stat_activity, without being a superuser.
GRANT pg_monitor TO hotplate;
EOF
    if [[ -z "$(psql_admin postgres -c "SELECT 1 FROM pg_database WHERE datname = 'hotplate'")" ]]; then
        psql_admin postgres -c "CREATE DATABASE hotplate OWNER hotplate"
    fi
    psql_admin hotplate <<'EOF'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
-- hypopg (postgresql-15-hypopg): hypothetical indexes, with which the doctor
-- (GET /debug/doctor) checks a CREATE INDEX it proposes before anyone builds
-- it. Creating an extension needs a superuser, so it is done here; a server
-- without the package still runs (the proposal is then marked unchecked).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'hypopg') THEN
        CREATE EXTENSION IF NOT EXISTS hypopg;
    END IF;
END
$$;
-- The profiling endpoints reset the statistics between measurements.
GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO hotplate;
EOF
}

start_pg() {
    local attempt
    if pg_running; then
        return 0
    fi
    [[ -f "$pg_data/PG_VERSION" ]] || init_pg
    # The recorded port may have been taken while the stack was down; then
    # pick another. A race with another process binding it between probe and
    # start is retried a few times.
    for attempt in 1 2 3; do
        if [[ -z "$PG_PORT" ]] || port_in_use "$PG_PORT"; then
            pick_port
        fi
        save_conf
        write_pg_conf
        # 9>&- keeps the lock descriptor out of the postmaster, which would
        # otherwise hold the lock for as long as it runs.
        if as_pg "$PGBIN/pg_ctl" -D "$pg_data" -l "$pg_root/startup.log" -w -t "$WAIT_SECONDS" -s start 9>&-; then
            return 0
        fi
        if ! port_in_use "$PG_PORT"; then
            break
        fi
        echo "stack: port $PG_PORT was taken during start (attempt $attempt); retrying" >&2
        PG_PORT=""
    done
    echo "stack: PostgreSQL failed to start; last lines of its logs:" >&2
    tail -n 20 "$pg_root/startup.log" "$pg_log_dir/postgresql.log" >&2 2>/dev/null || true
    die "PostgreSQL did not start"
}

wait_pg_ready() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$PGBIN/pg_isready" -q -h "$pg_sock" -p "$PG_PORT" -d postgres; do
        [[ $SECONDS -lt $deadline ]] || die "PostgreSQL not ready after ${WAIT_SECONDS}s"
        sleep 0.2
    done
}

stop_pg() {
    pg_running || return 0
    # Fast shutdown rolls back open transactions and disconnects clients,
    # then checkpoints, so nothing committed is lost.
    if ! as_pg "$PGBIN/pg_ctl" -D "$pg_data" -m fast -w -t "$WAIT_SECONDS" -s stop; then
        echo "stack: fast shutdown timed out; using immediate" >&2
        as_pg "$PGBIN/pg_ctl" -D "$pg_data" -m immediate -w -t "$WAIT_SECONDS" -s stop
    fi
}

# ------------------------------------------------- PostgreSQL standby (HA=1)

node_running() {
    [[ -f "$1/PG_VERSION" ]] || return 1
    as_pg "$PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

# Makes the standby on first use (a base backup of the running primary, which
# also creates the replication slot), starts it, then turns on the primary's
# synchronous_standby_names and waits until the standby streams as sync.
start_standby() {
    local deadline state
    if ! node_running "$pg_standby_data"; then
        if [[ -z "$PG_STANDBY_PORT" ]] || port_in_use "$PG_STANDBY_PORT"; then
            pick_port PG_STANDBY_PORT
        fi
        save_conf
        if [[ ! -f "$pg_standby_data/PG_VERSION" ]]; then
            echo "stack: making the standby in $pg_standby_data (pg_basebackup from port $PG_PORT, slot $SLOT)"
            rm -rf "$pg_standby_data"
            # A slot left by an earlier standby would hold WAL for nobody.
            psql_admin postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$SLOT'" >/dev/null
            as_pg "$PGBIN/pg_basebackup" -D "$pg_standby_data" -h "$pg_sock" -p "$PG_PORT" -U postgres \
                -X stream -C -S "$SLOT" -c fast >"$pg_root/basebackup.log" 2>&1 ||
                { cat "$pg_root/basebackup.log" >&2; die "pg_basebackup failed"; }
            as_pg touch "$pg_standby_data/standby.signal"
        fi
        write_pg_conf "$pg_standby_data" "$PG_STANDBY_PORT" standby
        as_pg "$PGBIN/pg_ctl" -D "$pg_standby_data" -l "$pg_root/startup-standby.log" -w -t "$WAIT_SECONDS" -s start 9>&- || {
            tail -n 20 "$pg_root/startup-standby.log" >&2 || true
            die "the PostgreSQL standby did not start"
        }
    fi
    # Only now may the primary wait for the standby (see write_pg_conf).
    write_pg_conf
    as_pg "$PGBIN/pg_ctl" -D "$pg_data" -s reload
    deadline=$((SECONDS + WAIT_SECONDS))
    while :; do
        state=$(psql_admin postgres -c "SELECT state || '/' || sync_state FROM pg_stat_replication WHERE application_name = '$SLOT'")
        [[ "$state" == streaming/sync ]] && break
        [[ $SECONDS -lt $deadline ]] || die "the standby is not a streaming sync standby after ${WAIT_SECONDS}s (${state:-absent})"
        sleep 0.2
    done
}

stop_standby() {
    node_running "$pg_standby_data" || return 0
    as_pg "$PGBIN/pg_ctl" -D "$pg_standby_data" -m fast -w -t "$WAIT_SECONDS" -s stop ||
        as_pg "$PGBIN/pg_ctl" -D "$pg_standby_data" -m immediate -w -t "$WAIT_SECONDS" -s stop
}

# SIGKILLs a postmaster and every process it started, as losing its machine
# would: the children are listed first, because once their parent is gone
# they are no longer recognisable as its children.
kill_postmaster() {
    local data=$1 pid kids deadline
    pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
    if [[ -z "$pid" ]] || [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != postgres ]]; then
        die "no postmaster runs in $data"
    fi
    kids=$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ')
    # shellcheck disable=SC2086
    kill -KILL "$pid" $kids 2>/dev/null || true
    deadline=$((SECONDS + WAIT_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        [[ $SECONDS -lt $deadline ]] || die "postmaster $pid survived SIGKILL"
        sleep 0.05
    done
    echo "$pid"
}

# --------------------------------------------------------------------- Redis

redis_running() {
    [[ -S "$redis_sock" ]] && [[ "$(redis-cli -s "$redis_sock" ping 2>/dev/null)" == PONG ]]
}

# HA stacks: Redis is up when Sentinel names a primary that answers.
redis_up() {
    local port
    port=$(sentinel_master_port)
    [[ -n "$port" ]] && [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]
}

start_redis() {
    local deadline
    redis_running && return 0
    mkdir -p "$redis_dir"
    # Redis is a cache here: nothing is persisted, and it listens on its unix
    # socket only (port 0), so it needs no free port. The socket is closed to
    # other users because Redis has no authentication configured.
    cat >"$redis_dir/redis.conf" <<EOF
# Generated by deploy/stack.sh at every start; edit the script, not this file.
daemonize yes
pidfile $redis_pidfile
logfile $redis_dir/redis.log
dir $redis_dir
port 0
unixsocket $redis_sock
unixsocketperm 700
save ""
appendonly no
EOF
    # As with the postmaster, the daemon must not inherit the lock.
    redis-server "$redis_dir/redis.conf" 9>&-
    deadline=$((SECONDS + WAIT_SECONDS))
    until redis_running; do
        if [[ $SECONDS -ge $deadline ]]; then
            tail -n 20 "$redis_dir/redis.log" >&2 || true
            die "Redis not ready after ${WAIT_SECONDS}s"
        fi
        sleep 0.1
    done
}

stop_redis() {
    if redis_running; then
        # The connection drops as Redis exits, so redis-cli's error is expected.
        redis-cli -s "$redis_sock" shutdown nosave >/dev/null 2>&1 || true
    fi
    stop_pidfile "$redis_pidfile"
}

# stop_pidfile FILE: TERM (then KILL) the Redis or Sentinel process in FILE,
# and wait for the process itself, not just its socket, so that `down`
# returning means the server is gone. The comm check guards against a stale
# pidfile whose number now belongs to another process.
stop_pidfile() {
    local pid="" deadline
    [[ -f "$1" ]] && pid=$(cat "$1")
    if [[ -n "$pid" ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-* ]]; then
        deadline=$((SECONDS + WAIT_SECONDS))
        while kill -0 "$pid" 2>/dev/null; do
            if [[ $SECONDS -ge $deadline ]]; then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            kill -TERM "$pid" 2>/dev/null || true
            sleep 0.1
        done
    fi
    rm -f "$1"
}

# ------------------------------------------------ Redis replica and Sentinel

# The port of the Redis primary as Sentinel sees it, or nothing when no
# Sentinel answers.
sentinel_master_port() {
    [[ -n "$SENTINEL_PORT" ]] || return 0
    { redis-cli -h 127.0.0.1 -p "$SENTINEL_PORT" sentinel get-master-addr-by-name "$SENTINEL_MASTER" 2>/dev/null || true; } | sed -n 2p
}

# start_redis_node DIR PORT MASTER_PORT: one Redis of an HA stack, on a
# 127.0.0.1 TCP port (a replica needs one to reach its primary), a replica of
# MASTER_PORT unless that is its own port.
start_redis_node() {
    local dir=$1 port=$2 master=$3 deadline
    [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]] && return 0
    mkdir -p "$dir"
    cat >"$dir/redis.conf" <<EOF
# Generated by deploy/stack.sh at every start; edit the script, not this file.
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
dir $dir
bind 127.0.0.1
port $port
save ""
appendonly no
EOF
    [[ "$dir" == "$redis_dir" ]] && printf 'unixsocket %s\nunixsocketperm 700\n' "$redis_sock" >>"$dir/redis.conf"
    [[ "$master" != "$port" ]] && echo "replicaof 127.0.0.1 $master" >>"$dir/redis.conf"
    [[ "$dir" == "$redis_dir" ]] && rm -f "$redis_sock"
    redis-server "$dir/redis.conf" 9>&-
    deadline=$((SECONDS + WAIT_SECONDS))
    until [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
        [[ $SECONDS -lt $deadline ]] || { tail -n 20 "$dir/redis.log" >&2 || true; die "Redis on port $port not ready"; }
        sleep 0.1
    done
}

start_redis_ha() {
    local p master deadline
    for p in REDIS_PORT REDIS_REPLICA_PORT SENTINEL_PORT; do
        [[ -n "${!p}" ]] || pick_port "$p"
    done
    save_conf
    # After a Sentinel failover the replica is the primary: a node that
    # comes back must follow it rather than start as a second primary.
    master=$(sentinel_master_port)
    [[ -n "$master" ]] || master=$REDIS_PORT
    start_redis_node "$redis_dir" "$REDIS_PORT" "$master"
    start_redis_node "$redis_b_dir" "$REDIS_REPLICA_PORT" "$master"
    if [[ "$(redis-cli -h 127.0.0.1 -p "$SENTINEL_PORT" ping 2>/dev/null)" != PONG ]]; then
        mkdir -p "$sentinel_dir"
        # Sentinel rewrites its file with what it learns (the current
        # primary, the replicas), so an existing file is kept.
        if [[ ! -f "$sentinel_dir/sentinel.conf" ]]; then
            cat >"$sentinel_dir/sentinel.conf" <<EOF
# Written by deploy/stack.sh on first start; Sentinel rewrites it since.
daemonize yes
pidfile $sentinel_dir/sentinel.pid
logfile $sentinel_dir/sentinel.log
dir $sentinel_dir
bind 127.0.0.1
port $SENTINEL_PORT
sentinel monitor $SENTINEL_MASTER 127.0.0.1 $master 1
sentinel down-after-milliseconds $SENTINEL_MASTER 1000
sentinel failover-timeout $SENTINEL_MASTER 10000
sentinel parallel-syncs $SENTINEL_MASTER 1
EOF
        fi
        redis-sentinel "$sentinel_dir/sentinel.conf" 9>&-
    fi
    # Ready once Sentinel names the primary and has found its replica.
    deadline=$((SECONDS + WAIT_SECONDS))
    until [[ -n "$(sentinel_master_port)" ]] &&
        [[ "$(redis-cli -h 127.0.0.1 -p "$SENTINEL_PORT" sentinel replicas "$SENTINEL_MASTER" 2>/dev/null | grep -c '^ip$')" -ge 1 ]]; do
        [[ $SECONDS -lt $deadline ]] || { tail -n 20 "$sentinel_dir/sentinel.log" >&2 || true; die "Sentinel not ready"; }
        sleep 0.2
    done
}

stop_redis_ha() {
    stop_pidfile "$sentinel_dir/sentinel.pid"
    stop_pidfile "$redis_b_dir/redis.pid"
    stop_pidfile "$redis_pidfile"
}

# ----------------------------------------------------------------- env file

write_env() {
    local tmp="$env_file.tmp"
    local pg_url="postgresql://hotplate@/hotplate?host=$pg_sock&port=$PG_PORT"
    local admin_url="postgresql://postgres@/hotplate?host=$pg_sock&port=$PG_PORT"
    local pg_log="$pg_log_dir/postgresql.log" redis_url="unix://$redis_sock" log_name replica_url=""
    if ha; then
        # libpq tries the hosts in order and keeps the first that takes
        # writes; Redis is found through Sentinel (docs/RELIABILITY.md).
        pg_url="postgresql://hotplate@127.0.0.1:$PG_PORT,127.0.0.1:$PG_STANDBY_PORT/hotplate?target_session_attrs=read-write"
        admin_url="postgresql://postgres@127.0.0.1:$PG_PORT,127.0.0.1:$PG_STANDBY_PORT/hotplate?target_session_attrs=read-write"
        log_name=$(sed -n "s/^log_filename = '\(.*\)'$/\1/p" "$pg_data/hotplate.conf" 2>/dev/null)
        pg_log="$pg_log_dir/${log_name:-postgresql.log}"
        redis_url="sentinel://127.0.0.1:$SENTINEL_PORT/$SENTINEL_MASTER"
        # The flag replica_reads=on reads from whichever node is the standby
        # (after a failover and the next up, the other one).
        replica_url="postgresql://hotplate@127.0.0.1:$PG_STANDBY_PORT,127.0.0.1:$PG_PORT/hotplate?target_session_attrs=standby"
    fi
    cat >"$tmp" <<EOF
# Written by deploy/stack.sh up for the stack in $home; source it.
export HOTPLATE_HOME='$home'
export HOTPLATE_PG_URL='$pg_url'
export HOTPLATE_PG_ADMIN_URL='$admin_url'
export HOTPLATE_PG_PORT='$PG_PORT'
export HOTPLATE_PG_LOG='$pg_log'
export HOTPLATE_REDIS_URL='$redis_url'
EOF
    if ha; then
        cat >>"$tmp" <<EOF
export HOTPLATE_HA='1'
export HOTPLATE_PG_STANDBY_PORT='$PG_STANDBY_PORT'
export HOTPLATE_PG_REPLICA_URL='$replica_url'
export HOTPLATE_REDIS_SENTINEL_PORT='$SENTINEL_PORT'
EOF
    fi
    mv "$tmp" "$env_file"
}

# ------------------------------------------------------------------ commands

# One stack command at a time per home: two concurrent `up`s would otherwise
# both run initdb or pick ports.
lock() {
    exec 9>"$home/.stack.lock"
    flock -w 300 9 || die "another stack.sh holds $home/.stack.lock"
}

cmd_up() {
    lock
    ensure_pg_system_user
    if [[ ! -f "$conf_file" ]]; then
        choose_run_root
        save_conf
    fi
    local was_running=0
    if ha; then
        # A stack made without HA=1 becomes one: its cluster is the primary.
        save_conf
        pg_running && node_running "$pg_standby_data" && redis_up && was_running=1
    else
        pg_running && redis_running && was_running=1
    fi
    start_pg
    wait_pg_ready
    bootstrap_pg
    if ha; then
        start_standby
        start_redis_ha
    else
        start_redis
    fi
    write_env
    if [[ $was_running -eq 1 ]]; then
        echo "stack: already running in $home"
    elif ha; then
        echo "stack: up in $home with HA (PostgreSQL primary on port $PG_PORT, sync standby on $PG_STANDBY_PORT;" \
            "Redis primary on $(sentinel_master_port) and a replica, Sentinel on $SENTINEL_PORT)"
    else
        echo "stack: up in $home (PostgreSQL on $pg_sock port $PG_PORT, Redis on $redis_sock)"
    fi
    echo "stack: source $env_file"
}

cmd_down() {
    [[ -d "$home" ]] || { echo "stack: nothing in $home"; return 0; }
    lock
    if ha; then
        stop_redis_ha
        # The primary first: stopped after its standby, a fast shutdown of a
        # primary with synchronous_standby_names would wait for nobody.
        stop_pg
        stop_standby
    else
        stop_redis
        stop_pg
    fi
    echo "stack: down in $home"
}

cmd_status() {
    local rc=0
    if pg_running; then
        echo "postgresql: running (socket $pg_sock, port $PG_PORT, data $pg_data)"
    else
        echo "postgresql: stopped"
        rc=3
    fi
    if ha; then
        if node_running "$pg_standby_data"; then
            echo "postgresql standby: running (port $PG_STANDBY_PORT, data $pg_standby_data)"
        else
            echo "postgresql standby: stopped"
            rc=3
        fi
        echo "postgresql failovers: $FAILOVERS"
        if redis_up; then
            echo "redis: running (primary on port $(sentinel_master_port) per Sentinel on $SENTINEL_PORT)"
        else
            echo "redis: no primary known to Sentinel"
            rc=3
        fi
    elif redis_running; then
        echo "redis: running (socket $redis_sock, pid $(cat "$redis_pidfile" 2>/dev/null || echo '?'))"
    else
        echo "redis: stopped"
        rc=3
    fi
    [[ -f "$home/seeded-scale" ]] && echo "seeded: scale $(cat "$home/seeded-scale")"
    [[ -f "$env_file" ]] && echo "env: $env_file"
    return $rc
}

cmd_env() {
    [[ -f "$env_file" ]] || die "no $env_file; run: $0 up --home $home"
    cat "$env_file"
}

cmd_destroy() {
    cmd_down
    [[ -d "$home" ]] || return 0
    # Only what this script made is removed, so tokens and logs written by
    # others into the home stay.
    if [[ "$RUN_ROOT" != "$home" ]]; then
        rm -rf "$RUN_ROOT"
    fi
    rm -rf "$home/pg" "$home/redis" "$home/redis-b" "$home/sentinel" "$env_file" "$conf_file" "$home/seeded-scale"
    echo "stack: destroyed $home"
}

# The fault-injection commands work on an existing stack only, and their
# names map to functions with a dash replaced by an underscore.
cmd_pg_stop() {
    [[ -f "$conf_file" ]] || die "no stack in $home"
    lock
    stop_pg
    echo "stack: PostgreSQL stopped in $home"
}

cmd_pg_start() {
    [[ -f "$conf_file" ]] || die "no stack in $home"
    lock
    start_pg
    wait_pg_ready
    write_env
    echo "stack: PostgreSQL started in $home (port $PG_PORT)"
}

cmd_redis_kill() {
    local pid="" deadline
    [[ -f "$redis_pidfile" ]] && pid=$(cat "$redis_pidfile")
    if [[ -z "$pid" ]] || [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != redis-server ]]; then
        die "Redis is not running in $home"
    fi
    kill -KILL "$pid"
    deadline=$((SECONDS + WAIT_SECONDS))
    while kill -0 "$pid" 2>/dev/null; do
        [[ $SECONDS -lt $deadline ]] || die "Redis $pid survived SIGKILL"
        sleep 0.05
    done
    # A killed Redis leaves its pidfile and socket file behind; start_redis
    # checks the socket with a PING, so only the pidfile needs removing.
    rm -f "$redis_pidfile"
    echo "stack: Redis $pid killed in $home"
}

cmd_redis_start() {
    [[ -f "$conf_file" ]] || die "no stack in $home"
    lock
    # The socket file of a killed Redis would make the new one fail to bind.
    redis_running || rm -f "$redis_sock"
    start_redis
    echo "stack: Redis started in $home"
}

# Fails over as an operator would after losing the primary's machine: SIGKILL
# the primary (and its children), promote the standby with pg_ctl promote,
# and record the swap. The dead node cannot rejoin without pg_rewind, so its
# files are removed; the next `up` makes it the new primary's standby again.
# Until then commits need no standby (the promoted node's
# synchronous_standby_names is empty).
cmd_failover() {
    [[ -f "$conf_file" ]] || die "no stack in $home"
    ha || die "not an HA stack: start it with HA=1 $0 up"
    lock
    node_running "$pg_standby_data" || die "no standby runs in $home"
    local t0=$SECONDS pid dead=$PG_PRIMARY_DIR dead_port=$PG_PORT
    if pg_running; then
        pid=$(kill_postmaster "$pg_data")
        [[ -n "$pid" ]] || die "could not kill the primary"
        echo "stack: PostgreSQL primary $pid (port $PG_PORT) SIGKILLed"
    fi
    as_pg "$PGBIN/pg_ctl" -D "$pg_standby_data" -w -t "$WAIT_SECONDS" -s promote || die "pg_ctl promote failed"
    PG_PRIMARY_DIR=$PG_STANDBY_DIR
    PG_STANDBY_DIR=$dead
    PG_PORT=$PG_STANDBY_PORT
    PG_STANDBY_PORT=$dead_port
    FAILOVERS=$((FAILOVERS + 1))
    set_paths
    rm -rf "$pg_standby_data"
    save_conf
    write_env
    echo "stack: standby promoted in $((SECONDS - t0)) s: the primary is now port $PG_PORT (failover $FAILOVERS);" \
        "run up to rebuild a standby"
}

# SIGKILLs the Redis that Sentinel names primary, then waits (bounded) until
# Sentinel names another: the automatic failover the HA stack runs Sentinel for.
cmd_redis_kill_primary() {
    [[ -f "$conf_file" ]] || die "no stack in $home"
    ha || die "not an HA stack: start it with HA=1 $0 up"
    local port pid deadline new dir
    port=$(sentinel_master_port)
    [[ -n "$port" ]] || die "Sentinel names no Redis primary"
    if [[ "$port" == "$REDIS_PORT" ]]; then dir=$redis_dir; else dir=$redis_b_dir; fi
    pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
    if [[ -z "$pid" ]] || [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != redis-server ]]; then
        die "no Redis runs in $dir"
    fi
    kill -KILL "$pid"
    rm -f "$dir/redis.pid"
    echo "stack: Redis primary $pid (port $port) SIGKILLed"
    deadline=$((SECONDS + WAIT_SECONDS))
    while new=$(sentinel_master_port) && [[ "$new" == "$port" ]]; do
        [[ $SECONDS -lt $deadline ]] || die "Sentinel did not fail over within ${WAIT_SECONDS}s"
        sleep 0.1
    done
    echo "stack: Sentinel promoted the replica on port $new; run up to restart the old primary as its replica"
}

"cmd_${cmd//-/_}"
