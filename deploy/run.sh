#!/usr/bin/env bash
# Runs the hotplate server against the private stack in .hotplate, either in
# the foreground (make run) or in the background (make up / make down), and
# prepares the database for it (make migrate / make seed).
#
#   deploy/run.sh fg        stack up, migrate, seed once, then serve in the
#                           foreground; Ctrl-C stops the server and the stack.
#   deploy/run.sh up        the same preparation, then serve in the background
#                           and return once GET /readyz answers 200.
#   deploy/run.sh down      stop the background server and the stack.
#   deploy/run.sh status    print the state of the server and the stack.
#   deploy/run.sh migrate   stack up, then apply the migrations.
#   deploy/run.sh seed      stack up, migrate, then seed at SCALE (always).
#
# Settings come from the environment, as the Makefile passes them:
#   SCALE       seed scale (default 1)
#   THREADS     server threads (default: the number of CPUs)
#   LISTEN      server address (default 127.0.0.1:8080)
#   SERVE_ARGS  extra arguments for `hotplate serve`, e.g. "--flag x=1"
#   HOTPLATE_BIN  the server binary (default build/hotplate)
#   HOTPLATE_PG_URL and HOTPLATE_REDIS_URL  both set: use these services, no private stack
#   HA=1        make the private stack highly available (deploy/stack.sh; it
#               then stays so, and its env names every host)
#
# The server's pid is kept in .hotplate/hotplate.pid whichever way it was
# started, so `up` can tell that one already runs and `down` can stop it.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

home="$repo_root/.hotplate"
bin=${HOTPLATE_BIN:-$repo_root/build/hotplate}
scale=${SCALE:-1}
threads=${THREADS:-$(nproc)}
listen=${LISTEN:-127.0.0.1:8080}
# Continuous profiling is on in the local stack (a CPU profile and a heap
# window every minute, the last hour kept in .hotplate/profiles, listed at
# /debug/pprof/history); SERVE_ARGS="--flag profile_every_s=0" turns it off,
# since the last --flag given wins.
serve_args=(--flag profile_every_s=60 --profile-dir "$home/profiles")
read -r -a extra_args <<<"${SERVE_ARGS:-}"
serve_args+=("${extra_args[@]}")
pidfile="$home/hotplate.pid"
logfile="$home/hotplate.log"
tokens="$home/tokens.tsv"
marker="$home/seeded-scale"
readonly READY_SECONDS=60
readonly STOP_SECONDS=20

die() {
    echo "run: $*" >&2
    exit 1
}

need_bin() {
    [[ -x "$bin" ]] || die "$bin is missing; run make build"
}

# The pid of the running server, or nothing. The comm check guards against a
# stale pidfile whose number now belongs to another process.
server_pid() {
    local pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if [[ -n "$pid" ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == hotplate ]]; then
        echo "$pid"
    fi
}

# Succeeds when something accepts TCP connections on host:port ($1).
addr_in_use() {
    (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# External services: when the caller sets both HOTPLATE_PG_URL and
# HOTPLATE_REDIS_URL, the private stack is neither started nor stopped and the
# server, migrations and seed use those services instead.
# URLs that point at this checkout's own stack (a shell that sourced
# .hotplate/env) do not count as external.
external=0
if [[ -n "${HOTPLATE_PG_URL:-}" && -n "${HOTPLATE_REDIS_URL:-}" ]]; then
    external=1
    if [[ -f "$home/env" ]] && grep -qF "HOTPLATE_PG_URL='$HOTPLATE_PG_URL'" "$home/env"; then
        external=0
    fi
fi

stack_up() {
    if [[ $external == 1 ]]; then
        echo "run: using external services (HOTPLATE_PG_URL and HOTPLATE_REDIS_URL are set)"
        mkdir -p "$home"
        return 0
    fi
    deploy/stack.sh up --home "$home"
    # shellcheck source=/dev/null
    . "$home/env"
}

stack_down() {
    [[ $external == 1 ]] || deploy/stack.sh down --home "$home"
}

migrate() {
    "$bin" migrate --dir "$repo_root/migrations"
}

# Writes the seed and then the marker, so an interrupted seed leaves no marker
# and the next run seeds again. deploy/stack.sh deletes the marker whenever it
# creates a new cluster, so the marker never outlives the data it describes.
seed() {
    rm -f "$marker"
    echo "run: seeding at scale $scale (tokens in $tokens)"
    "$bin" seed --scale "$scale" --tokens "$tokens" --dir "$repo_root/migrations"
    echo "$scale" >"$marker.tmp"
    mv "$marker.tmp" "$marker"
}

seed_once() {
    if [[ -f "$marker" ]]; then
        local have
        have=$(cat "$marker")
        echo "run: already seeded at scale $have"
        if [[ "$have" != "$scale" ]]; then
            echo "run: (SCALE=$scale ignored; run make seed SCALE=$scale to reseed)"
        fi
        return 0
    fi
    seed
}

prepare() {
    need_bin
    stack_up
    migrate
    seed_once
}

# Refuses to start a second server: the first would keep the port, and the
# second's readiness probe would be answered by the first.
refuse_if_taken() {
    local pid
    pid=$(server_pid)
    [[ -z "$pid" ]] || die "a hotplate server already runs (pid $pid); make down first"
    if addr_in_use "$listen"; then
        die "$listen is taken by another process; set LISTEN=127.0.0.1:PORT"
    fi
}

stop_server() {
    local pid deadline
    pid=$(server_pid)
    if [[ -n "$pid" ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_SECONDS))
        while kill -0 "$pid" 2>/dev/null; do
            if [[ $SECONDS -ge $deadline ]]; then
                echo "run: server $pid ignored SIGTERM for ${STOP_SECONDS}s; killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
        echo "run: server stopped"
    fi
    rm -f "$pidfile"
}

print_info() {
    local uid="" tok=""
    # The first customer in the tokens file gives a ready-to-paste example.
    if [[ -f "$tokens" ]]; then
        read -r uid tok < <(awk -F'\t' '$1 == "customer" { print $2, $3; exit }' "$tokens") || true
    fi
    cat <<EOF
hotplate is up
  API:     http://$listen/  (routes in docs/API.md)
  admin:   http://127.0.0.1:8081/debug/perf  and  /metrics  (docs/PROFILING.md)
  tokens:  $tokens  (kind<TAB>user id<TAB>bearer token)
  log:     $logfile
  db:      psql "\$HOTPLATE_PG_URL"  (after: . $home/env, for the private stack)
  try:     curl -s 'http://$listen/restaurants?limit=3'
           curl -s -H 'Authorization: Bearer ${tok:-TOKEN}' http://$listen/users/${uid:-ID}/orders
  stop:    make down
EOF
}

cmd_fg() {
    local pid="" rc
    refuse_if_taken
    # The server runs as a background child rather than through exec so that
    # this shell survives it and can stop the stack afterwards: the EXIT trap
    # stops both, whether the server ended on a signal, on its own, or the
    # preparation failed. Bash starts background children with SIGINT
    # ignored, so a Ctrl-C is passed on to the server as SIGTERM.
    trap 'stop_server; stack_down' EXIT
    trap 'if [[ -n "$pid" ]]; then kill -TERM "$pid" 2>/dev/null || true; else exit 130; fi' INT TERM HUP
    prepare
    echo "run: serving on http://$listen/ with $threads threads (Ctrl-C stops it and the stack)"
    "$bin" serve --listen "$listen" --threads "$threads" "${serve_args[@]}" &
    pid=$!
    echo "$pid" >"$pidfile"
    # wait returns early when a trapped signal arrives; wait again until the
    # server has really exited so that its own exit status is reported.
    rc=0
    wait "$pid" || rc=$?
    while kill -0 "$pid" 2>/dev/null; do
        rc=0
        wait "$pid" || rc=$?
    done
    echo "run: server exited with status $rc"
    # 128+SIGTERM and 128+SIGINT are the normal ends of a foreground run.
    [[ $rc -eq 0 || $rc -eq 143 || $rc -eq 130 ]] || exit "$rc"
}

cmd_up() {
    local pid deadline
    pid=$(server_pid)
    if [[ -n "$pid" ]]; then
        echo "run: already up (pid $pid)"
        print_info
        return 0
    fi
    refuse_if_taken
    prepare
    # setsid puts the server in its own session, so a Ctrl-C or hangup in
    # this terminal later does not reach it; only make down stops it.
    echo "run: starting server on $listen with $threads threads (log $logfile)"
    setsid "$bin" serve --listen "$listen" --threads "$threads" "${serve_args[@]}" \
        >>"$logfile" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    deadline=$((SECONDS + READY_SECONDS))
    until curl -fsS -o /dev/null --max-time 2 "http://$listen/readyz" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [[ $SECONDS -ge $deadline ]]; then
            echo "run: server did not become ready within ${READY_SECONDS}s; last lines of $logfile:" >&2
            tail -n 40 "$logfile" >&2 || true
            stop_server
            exit 1
        fi
        sleep 0.2
    done
    print_info
}

cmd_down() {
    stop_server
    stack_down
}

cmd_status() {
    local pid
    pid=$(server_pid)
    if [[ -n "$pid" ]]; then
        echo "hotplate: running (pid $pid, log $logfile)"
    else
        echo "hotplate: stopped"
    fi
    deploy/stack.sh status --home "$home"
}

cmd_migrate() {
    need_bin
    stack_up
    migrate
}

cmd_seed() {
    need_bin
    stack_up
    migrate
    seed
}

case "${1:-}" in
fg | up | down | status | migrate | seed) "cmd_$1" ;;
*)
    echo "usage: $0 fg|up|down|status|migrate|seed" >&2
    exit 2
    ;;
esac
