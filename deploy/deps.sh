#!/usr/bin/env bash
# Checks that the Debian 12 packages hotplate needs to build, run and test are
# installed, and installs the missing ones.
#
# The check uses dpkg-query only, so when everything is present the script
# finishes in well under a second and never touches apt (no lock, no network).
# When something is missing it installs it with apt-get as root, through sudo
# when that is available, and otherwise prints the exact command to run and
# exits non-zero. It never asks a question, so it is safe under CI=true with no
# standard input.
#
# Every name below was checked against Debian 12 (bookworm) with
# `apt-cache policy NAME`. pg_stat_statements and auto_explain ship inside
# postgresql-15 on Debian 12; postgresql-contrib is only a metapackage that
# depends on it, and is kept so the intent stays visible.
set -euo pipefail

packages=(
    # Toolchain and build system.
    build-essential cmake pkg-config clang-format
    # clang and its libFuzzer runtime, for the fuzz drivers in tests/fuzz (make fuzz).
    clang libclang-rt-14-dev
    # Libraries the server links against.
    libh2o-evloop-dev libpq-dev libhiredis-dev libjemalloc-dev libjansson-dev
    libssl-dev systemtap-sdt-dev
    # Unit tests.
    libcmocka-dev
    # Profiling endpoints (profiling/prof.c): gperftools' libprofiler to link;
    # google-pprof (in google-perftools, with binutils' nm, objdump and
    # addr2line) reads the raw CPU profile, as jeprof (in libjemalloc-dev
    # above) reads the raw heap profile: the docs and tests use them on the
    # raw formats, and the server converts every other format itself.
    libgoogle-perftools-dev google-perftools binutils
    # pprof's own format (profiling/pprof_proto.c): protobuf-c generates the
    # message code at build time from the profile.proto that
    # golang-github-google-pprof-dev ships; elfutils' libdw symbolizes, zlib
    # gzips. golang-go gives `go tool pprof`, which tests/e2e/test_pprof_proto.py
    # reads the profiles with.
    protobuf-c-compiler libprotobuf-c-dev golang-github-google-pprof-dev libdw-dev zlib1g-dev golang-go
    # The private PostgreSQL and Redis that deploy/stack.sh starts; psql and
    # redis-cli come from the client packages, named here because the scripts
    # call them directly.
    postgresql-15 postgresql-client-15 postgresql-contrib redis-server redis-tools
    # make up HA=1: Redis Sentinel watches the Redis primary and its replica
    # (deploy/stack.sh runs the binary itself; the package's own service is
    # stopped and disabled below so it never holds port 26379 or our files).
    redis-sentinel
    # hypopg, with which GET /debug/doctor checks a proposed CREATE INDEX on a
    # hypothetical index (profiling/doctor_collect.c); CREATE EXTENSION hypopg.
    postgresql-15-hypopg
    # End-to-end tests. They run under Debian's /usr/bin/python3, which is the
    # interpreter these packages install into.
    python3 python3-pytest python3-requests python3-psycopg2
    # Load generation and the readiness probe in deploy/up.sh.
    wrk curl
    # jq, which the bottleneck labs (docs/labs) use to pick fields out of /debug/perf.
    jq
    # make bench and make lab: the Mann-Whitney U test is checked against
    # scipy in tests/bench, and the reports' charts are drawn with matplotlib.
    python3-scipy python3-matplotlib
    # promtool (check metrics, check and test rules) comes with Debian's prometheus package.
    prometheus
    # tests/monitoring: Alertmanager (and amtool) for the end-to-end alert test,
    # nginx in front of two servers for the load-balancing test, and PyYAML to
    # read the rule, compose and provisioning files.
    prometheus-alertmanager nginx-light python3-yaml
    # callgrind, for make bench-overhead's instructions per request.
    valgrind
    # strace -c, for the system calls per cached request (tests/e2e/test_syscalls.py).
    strace
    # The dashboard's browser test (tests/browser): Debian's Chromium, driven
    # by playwright-core under Node.
    chromium nodejs npm
)

# A package counts as present only when dpkg says "install ok installed";
# "deinstall" or half-configured states need apt-get to repair them.
missing=()
for pkg in "${packages[@]}"; do
    # Node.js may come from elsewhere than Debian (NodeSource's nodejs bundles
    # npm and conflicts with Debian's npm package): working commands count.
    case "$pkg" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "deps: all ${#packages[@]} packages present"
    exit 0
fi

echo "deps: missing: ${missing[*]}"

# Non-interactive apt: no debconf prompts, and keep existing config files when
# a package upgrade would otherwise ask about them.
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

if [[ $(id -u) -eq 0 ]]; then
    apt_run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    # sudo -n fails instead of prompting, which would hang without a terminal;
    # --preserve-env keeps DEBIAN_FRONTEND for apt-get.
    apt_run=(sudo -n --preserve-env=DEBIAN_FRONTEND)
else
    echo "deps: not root and no password-less sudo; run this as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
    exit 1
fi

# The package lists may be stale or absent on a fresh machine, so refresh them
# before installing; this only happens when something is actually missing.
"${apt_run[@]}" apt-get update -q
"${apt_run[@]}" apt-get install "${apt_opts[@]}" --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"

# redis-sentinel's package starts its own Sentinel on port 26379 where an init
# system runs; deploy/stack.sh starts private ones on ports of its own, so the
# package's service is stopped and kept from starting again.
if [[ " ${missing[*]} " == *" redis-sentinel "* ]]; then
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        "${apt_run[@]}" systemctl disable --now redis-sentinel.service || true
    elif [[ -x /etc/init.d/redis-sentinel ]]; then
        "${apt_run[@]}" /etc/init.d/redis-sentinel stop || true
        "${apt_run[@]}" update-rc.d redis-sentinel disable || true
    fi
fi
