#!/usr/bin/env bash
# Runs every hotplate test after `make build build-asan`: the layer check and
# the unit tests of both builds under ctest, then every pytest suite and the
# fuzzers in five lanes side by side, each against a private stack of its own
# (PostgreSQL and Redis under .hotplate/test*, started here and stopped at the
# end whatever happened):
#
#   e2e        .hotplate/test          tests/e2e (but the doctor's and the profiles'
#                                      files), then the libFuzzer drivers (tests/fuzz/run.sh)
#   doctor     .hotplate/test-doctor   tests/e2e/test_doctor.py and test_doctor_general.py
#   sanitized  .hotplate/test-asan     tests/e2e against the ASan+UBSan server
#   suites     .hotplate/test-suites   tests/bench, tests/monitoring, and the profiles'
#                                      files of tests/e2e (test_pprof*.py, test_prof_history.py)
#   faults     (its own; labdocs-NN)   tests/faults (on a stack of its own in /tmp, and
#                                      test_failover.py an HA one with a standby and Sentinel),
#                                      then every lab's steps in quick mode (loadtests/labdocs.py),
#                                      one lab and its stack at a time
#
# Why lanes: most of the suites wait (on a payment gateway's latency, a
# timeout that must expire, a server that starts, a restarted PostgreSQL), so
# one after another they left one of this machine's two cores idle most of the
# time: the phase table at the end of this script said 864 to 1006 s on the
# 2-core CI machine one after another, and 237 to 331 s in four lanes over six
# runs. Seven lanes (faults and the profiles on lanes of their own) were tried
# and were no faster (404 s against 419 s for four in the same hour), with
# three tests that wait on a deadline failing under the load. Each lane
# has its own database, so the suites that count rows, drop an index or fill
# the orders of a customer never see each other's writes. The doctor's tests
# judge shares of a window of load, not figures, so they hold on a busy
# machine too. The lanes are balanced by their times on this machine, which
# the table at the end shows.
#
# The fuzzers run for FUZZ_SECONDS per driver, 5 unless set: enough to replay
# the corpus and the regressions and to try a few hundred thousand new inputs
# per parser. The long run (60 s per driver) is `make fuzz` and
# tests/faults/record.py, which writes docs/RELIABILITY.md.
#
# The stacks are separate from the one `make up` uses, so running the tests
# never disturbs (or depends on) a developer's running server and data. They
# are recreated empty at every run, so every suite starts from the same seed;
# their files stay until the next run for a post-mortem (PostgreSQL's log is in
# .hotplate/test*/pg/log), and each lane's whole output is in
# .hotplate/test-logs/LANE.log, printed here once the lanes are done.
#
# Every step runs even when an earlier one failed, so one run reports every
# failure; the script exits non-zero if any step failed. A lane's suites are
# skipped only when the stack, migrations or seed they need failed.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

bin="$repo_root/build/hotplate"
asan_bin="$repo_root/build-asan/hotplate"
logs="$repo_root/.hotplate/test-logs"
# pytest and psycopg2 come from Debian's python3-* packages, which install
# into /usr/bin/python3 only. The python3 first on PATH may be another
# interpreter (this machine puts a pyenv shim first) that lacks them.
python=${PYTHON:-/usr/bin/python3}
# Bounds that keep a hung test from eating CI's 90 minutes: per unit test,
# and for each pytest run (e2e also has its own watchdog in conftest.py).
readonly CTEST_TIMEOUT=300
readonly E2E_TIMEOUT=${E2E_TIMEOUT:-1800}
export FUZZ_SECONDS=${FUZZ_SECONDS:-5}

# The phases of the current lane ("main" before and after the lanes): each
# step appends "seconds|name" to $logs/LANE.phases, and each failure a line to
# $logs/LANE.failed, so that the lanes, which are subshells, report to the end.
lane=main
phase_name=""
phase_start=0
step() {
    phase_end
    phase_name=$*
    phase_start=$SECONDS
    echo
    echo "==== test [$lane]: $*"
}
phase_end() {
    if [[ -n $phase_name ]]; then
        echo "$((SECONDS - phase_start))|$phase_name" >>"$logs/$lane.phases"
        phase_name=""
    fi
}
fail() {
    echo "$*" >>"$logs/$lane.failed"
}
# The lines of FILE that match PATTERN (pytest's "FAILED test - reason", a lab's
# "labdocs: FAILED lab: problem"), each cut to 400 characters, go into the
# summary under the failure just recorded: CI shows the end of the output,
# where the lanes' own logs are long gone by.
fail_detail() {
    grep -E "$2" "$1" 2>/dev/null | head -n 12 | cut -c1-400 | sed 's/^/      /' >>"$logs/$lane.failed" || true
}

# ctest --no-tests=error makes an empty test list a failure, as pytest's
# exit code 5 is below: a suite that ran nothing has not passed.
run_ctest() {
    local dir=$1
    step "unit tests in $dir"
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2 --timeout "$CTEST_TIMEOUT" || fail "ctest $dir"
}

# Recreates the stack in $1 empty, migrates and seeds it (tokens in $1/tokens.tsv),
# and exports its environment. destroy, not down: a leftover cluster from an
# interrupted run would carry its data (and seed marker) into this one.
fresh_stack() {
    local home=$1
    step "stack in $home, migrated and seeded at --scale 0.01"
    deploy/stack.sh destroy --home "$home" >/dev/null
    if ! deploy/stack.sh up --home "$home" 8>&-; then
        fail "stack in $home"
        return 1
    fi
    # shellcheck source=/dev/null
    . "$home/env"
    if ! "$bin" migrate --dir "$repo_root/migrations" ||
        ! "$bin" seed --scale 0.01 --tokens "$home/tokens.tsv" --dir "$repo_root/migrations"; then
        fail "migrate and seed in $home"
        return 1
    fi
    export HOTPLATE_TOKENS="$home/tokens.tsv"
}

# One pytest run: pytest_run LABEL [VAR=value...] -- ARGS. Each suite has its
# own pytest.ini and conftest.py and the lane's environment.
pytest_run() {
    local label=$1 rc=0
    shift
    local vars=()
    while [[ $1 != -- ]]; do
        vars+=("$1")
        shift
    done
    shift
    step "$label: ${vars[*]} $python -m pytest -q $*"
    # LeakSanitizer suppresses only libh2o's per-thread state (see tests/lsan.supp);
    # every leak of hotplate's own allocations still fails the ASan smoke test.
    env HOTPLATE_BIN="$bin" \
        HOTPLATE_ASAN_BIN="$asan_bin" \
        LSAN_OPTIONS="suppressions=$repo_root/tests/lsan.supp" \
        HOTPLATE_MIGRATIONS_DIR="$repo_root/migrations" \
        "${vars[@]}" \
        timeout -k 30 "$E2E_TIMEOUT" "$python" -m pytest -q --durations=8 "$@" 2>&1 | tee "$logs/$lane.pytest.out" || rc=$? # pipefail: pytest's status
    case $rc in
    0) ;;
    5) fail "$label (pytest collected no tests)" ;;
    124 | 137) fail "$label (killed after ${E2E_TIMEOUT}s)" ;;
    *)
        fail "$label (pytest exit $rc)"
        fail_detail "$logs/$lane.pytest.out" '^(FAILED|ERROR) '
        ;;
    esac
}

lane_e2e() {
    if fresh_stack "$repo_root/.hotplate/test"; then
        pytest_run tests/e2e -- tests/e2e "${doctor_ignores[@]}" "${profile_ignores[@]}"
    fi
    # The libFuzzer drivers of every parser, under ASan+UBSan; they need no stack.
    step "fuzz: tests/fuzz/run.sh (FUZZ_SECONDS=$FUZZ_SECONDS)"
    tests/fuzz/run.sh 8>&- || fail "fuzz"
}

lane_faults() {
    # tests/faults starts (and destroys) a stack of its own for its faults
    # (here rather than before the ASan e2e run, the longest lane).
    pytest_run tests/faults -- tests/faults
    # Every lab's walkthrough (docs/labs), its steps run at a small scale with
    # each wait cut to a second: a command that no longer works, or an output
    # that lost the shape its text describes, fails here; a figure never does.
    # Each lab starts (and stops) a stack of its own in .hotplate/labdocs-NN.
    step "labs: loadtests/labdocs.py --quick --check"
    if ! PYTHONPATH="$repo_root/tests:$repo_root/loadtests" "$python" loadtests/labdocs.py --quick --check --bin "$bin" 8>&- \
        2>&1 | tee "$logs/labdocs.out"; then
        fail "labs (docs/labs; outputs in .hotplate/labdocs-out)"
        fail_detail "$logs/labdocs.out" '^labdocs: FAILED '
    fi
}

# The profiles' e2e files run in the suites lane, which finishes a minute before
# the e2e lane; the sanitized lane still runs them against the ASan server.
profile_files=(tests/e2e/test_pprof.py tests/e2e/test_pprof_proto.py tests/e2e/test_prof_history.py)
profile_ignores=()
for f in "${profile_files[@]}"; do profile_ignores+=("--ignore=$f"); done

# The doctor's files: the lab flags and the clean run (test_doctor.py), then
# the faults that no flag makes (test_doctor_general.py), on one stack.
doctor_files=(tests/e2e/test_doctor.py tests/e2e/test_doctor_general.py)
doctor_ignores=()
for f in "${doctor_files[@]}"; do doctor_ignores+=("--ignore=$f"); done

lane_doctor() {
    fresh_stack "$repo_root/.hotplate/test-doctor" || return 0
    pytest_run "tests/e2e doctor" -- "${doctor_files[@]}"
}

lane_suites() {
    fresh_stack "$repo_root/.hotplate/test-suites" || return 0
    # tests/bench: the statistics and report tests, and a quick bench end to end.
    pytest_run tests/bench -- tests/bench
    # tests/monitoring: alert rules, the compose file, the load balancer, the logs.
    pytest_run tests/monitoring -- tests/monitoring
    # The profiles, read with go tool pprof (moved here from the e2e lane to balance the lanes).
    pytest_run "tests/e2e profiles" -- "${profile_files[@]}"
}

lane_sanitized() {
    fresh_stack "$repo_root/.hotplate/test-asan" || return 0
    # The e2e suite against the ASan+UBSan server: every server it starts must
    # run clean under the sanitizers and exit clean under LeakSanitizer.
    # HOTPLATE_E2E_SANITIZED=1 tells the tests that cannot hold under a
    # sanitizer (those that read jemalloc statistics or judge CPU time per
    # request, the doctor's file among them) to skip themselves.
    pytest_run "tests/e2e under ASan+UBSan" HOTPLATE_BIN="$asan_bin" HOTPLATE_E2E_SANITIZED=1 HOTPLATE_E2E_DEADLINE=1200 -- tests/e2e
}

# Called from the EXIT trap only, which shellcheck cannot see.
# shellcheck disable=SC2317
teardown() {
    local h
    for h in test test-doctor test-asan test-suites labdocs-*; do
        [[ -d $repo_root/.hotplate/$h ]] || continue
        deploy/stack.sh down --home "$repo_root/.hotplate/$h" >/dev/null 2>&1 || true
    done
}

print_phases() {
    echo
    echo "test: time per phase (seconds, wall clock; $SECONDS s in all)"
    local l p
    for l in main "${lanes[@]}"; do
        [[ $l == main ]] || echo "  lane $l (side by side with the others):"
        [[ -f $logs/$l.phases ]] || continue
        while IFS= read -r p; do
            printf '  %5d  %s\n' "${p%%|*}" "${p#*|}"
        done <"$logs/$l.phases"
    done
}

# Two runs in one checkout would destroy each other's test stacks, so a second
# run waits for the first. The daemons started below must not inherit this
# descriptor, or they would hold the lock for as long as they run.
mkdir -p "$logs"
exec 8>"$repo_root/.hotplate/test.lock"
if ! flock -n 8; then
    echo "test: another make test runs in this checkout; waiting for it"
    flock 8
fi
rm -f "$logs"/*.phases "$logs"/*.failed "$logs"/*.log

for b in "$bin" "$asan_bin"; do
    [[ -x "$b" ]] || { echo "test: $b is missing; run make build build-asan" >&2; exit 1; }
done
trap teardown EXIT

# The layers of the C code (docs/ARCHITECTURE.md): an include that points up,
# or a cycle of modules, fails here with the offending edge printed.
step "layers: tests/check_layers.py"
"$python" tests/check_layers.py || fail "layers"

run_ctest build
run_ctest build-asan

# The dashboard's browser test (tests/e2e/test_dashboard.py) needs
# playwright-core; it installs no browser (Debian's chromium is used).
lock=tests/browser/package-lock.json mods=tests/browser/node_modules
if [[ ! -d $mods || $lock -nt $mods/.package-lock.json ]]; then
    step "npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund) || fail "npm ci in tests/browser"
fi
phase_end

lanes=(e2e doctor sanitized suites faults)
step "the lanes: ${lanes[*]}, side by side"
pids=()
for l in "${lanes[@]}"; do
    (
        lane=$l
        phase_name=""
        "lane_$l"
        phase_end
    ) >"$logs/$l.log" 2>&1 8>&- &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || true
done
phase_end
for l in "${lanes[@]}"; do
    echo
    echo "################ lane $l ($logs/$l.log)"
    cat "$logs/$l.log"
done

print_phases
failed=()
for l in main "${lanes[@]}"; do
    [[ -f $logs/$l.failed ]] || continue
    while IFS= read -r f; do
        failed+=("[$l] $f")
    done <"$logs/$l.failed"
done
echo
if [[ ${#failed[@]} -eq 0 ]]; then
    echo "test: every step succeeded"
    exit 0
fi
echo "test: FAILED steps:" >&2
printf '  - %s\n' "${failed[@]}" >&2
exit 1
