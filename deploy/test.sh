#!/usr/bin/env bash
# Runs every hotplate test after `make build build-asan`: the unit tests of
# both builds under ctest, then the end-to-end suite (tests/e2e) against a
# private stack of its own in .hotplate/test.
#
# The test stack is separate from the one `make up` uses, so running the
# tests never disturbs (or depends on) a developer's running server and data.
# It is recreated empty at every run, so the seed and the tests always start
# from the same state, and it is stopped at the end whatever happened; its
# files stay until the next run for a post-mortem (PostgreSQL's log is in
# .hotplate/test/pg/log).
#
# The further suites follow (tests/faults among them, on a stack of its own
# that it creates and destroys), then the e2e suite again against the
# ASan+UBSan server, then the libFuzzer drivers (tests/fuzz/run.sh;
# FUZZ_SECONDS per driver, default 60).
#
# Every step runs even when an earlier one failed, so one run reports every
# failure; the script exits non-zero if any step failed. The e2e steps are
# skipped only when the stack, migrations or seed they need failed.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo_root"

home="$repo_root/.hotplate/test"
bin="$repo_root/build/hotplate"
asan_bin="$repo_root/build-asan/hotplate"
tokens="$home/tokens.tsv"
# pytest and psycopg2 come from Debian's python3-* packages, which install
# into /usr/bin/python3 only. The python3 first on PATH may be another
# interpreter (this machine puts a pyenv shim first) that lacks them.
python=${PYTHON:-/usr/bin/python3}
# Bounds that keep a hung test from eating CI's 90 minutes: per unit test,
# and for the whole e2e run (which also has its own watchdog in conftest.py).
readonly CTEST_TIMEOUT=300
readonly E2E_TIMEOUT=${E2E_TIMEOUT:-1800}

failed=()

# Each phase's wall time, printed at the end: "name seconds", in order.
phases=()
phase_name=""
phase_start=0
step() {
    phase_end
    phase_name=$*
    phase_start=$SECONDS
    echo
    echo "==== test: $*"
}
phase_end() {
    if [[ -n $phase_name ]]; then
        phases+=("$((SECONDS - phase_start))|$phase_name")
        phase_name=""
    fi
}
print_phases() {
    phase_end
    echo
    echo "test: time per phase (seconds, wall clock; $SECONDS s in all)"
    local p
    for p in "${phases[@]}"; do
        printf '  %5d  %s\n' "${p%%|*}" "${p#*|}"
    done
}

# ctest --no-tests=error makes an empty test list a failure, as pytest's
# exit code 5 is below: a suite that ran nothing has not passed.
run_ctest() {
    local dir=$1
    step "unit tests in $dir"
    if ! ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2 --timeout "$CTEST_TIMEOUT"; then
        failed+=("ctest $dir")
    fi
}

# Called from the EXIT trap only, which shellcheck cannot see.
# shellcheck disable=SC2317
teardown() {
    step "stopping the test stack"
    deploy/stack.sh down --home "$home" || true
}

run_e2e() {
    local rc
    step "test stack in $home"
    # destroy, not down: a leftover cluster from an interrupted run would
    # carry its data (and seed marker) into this one.
    deploy/stack.sh destroy --home "$home" >/dev/null
    rm -f "$tokens"
    trap teardown EXIT
    if ! deploy/stack.sh up --home "$home" 8>&-; then
        failed+=("test stack")
        return
    fi
    # shellcheck source=/dev/null
    . "$home/env"

    step "migrate"
    if ! "$bin" migrate --dir "$repo_root/migrations"; then
        failed+=("migrate")
        return
    fi
    step "seed --scale 0.01"
    if ! "$bin" seed --scale 0.01 --tokens "$tokens" --dir "$repo_root/migrations"; then
        failed+=("seed")
        return
    fi

    # The dashboard's browser test (tests/e2e/test_dashboard.py) needs
    # playwright-core; it installs no browser (Debian's chromium is used).
    local lock=tests/browser/package-lock.json mods=tests/browser/node_modules
    if [[ ! -d $mods || $lock -nt $mods/.package-lock.json ]]; then
        step "npm ci in tests/browser"
        (cd tests/browser && npm ci --no-audit --no-fund) || failed+=("npm ci in tests/browser")
    fi

    # The suites: tests/e2e, then each further suite directory that exists
    # (tests/bench: a quick bench end to end; tests/monitoring: alert rules,
    # the compose file and the load balancer). Each is its own pytest run with
    # its own pytest.ini and conftest.py, and the same environment.
    local suite
    for suite in tests/e2e tests/bench tests/monitoring tests/faults; do
        [[ -d $suite ]] || continue
        step "$suite: $python -m pytest -q $suite"
        rc=0
        # LeakSanitizer suppresses only libh2o's per-thread state (see tests/lsan.supp);
        # every leak of hotplate's own allocations still fails the ASan smoke test.
        HOTPLATE_BIN="$bin" \
            HOTPLATE_ASAN_BIN="$asan_bin" \
            LSAN_OPTIONS="suppressions=$repo_root/tests/lsan.supp" \
            HOTPLATE_TOKENS="$tokens" \
            HOTPLATE_MIGRATIONS_DIR="$repo_root/migrations" \
            timeout -k 30 "$E2E_TIMEOUT" "$python" -m pytest -q "$suite" || rc=$?
        case $rc in
        0) ;;
        5) failed+=("$suite (pytest collected no tests)") ;;
        124 | 137) failed+=("$suite (killed after ${E2E_TIMEOUT}s)") ;;
        *) failed+=("$suite (pytest exit $rc)") ;;
        esac
    done

    # The whole e2e suite a second time, against the ASan+UBSan server: every
    # server it starts must run clean under the sanitizers and exit clean
    # under LeakSanitizer. It took 5.4 minutes on the 2-core machine, against
    # about 2 for the release binary. HOTPLATE_E2E_SANITIZED=1 tells the
    # tests that cannot hold under a sanitizer (those that read jemalloc
    # statistics or judge CPU time per request) to skip themselves.
    #
    # The e2e suite expects the freshly seeded database it started from (the
    # order counts of its customers grow with every run, and the suites above
    # add more), so the stack is recreated and seeded again first.
    step "test stack recreated and seeded for the ASan+UBSan pass"
    deploy/stack.sh destroy --home "$home" >/dev/null
    rm -f "$tokens"
    if ! deploy/stack.sh up --home "$home" 8>&-; then
        failed+=("test stack for the ASan+UBSan pass")
        return
    fi
    # shellcheck source=/dev/null
    . "$home/env"
    if ! "$bin" migrate --dir "$repo_root/migrations" ||
        ! "$bin" seed --scale 0.01 --tokens "$tokens" --dir "$repo_root/migrations"; then
        failed+=("migrate and seed for the ASan+UBSan pass")
        return
    fi
    step "tests/e2e under ASan+UBSan: HOTPLATE_BIN=$asan_bin $python -m pytest -q tests/e2e"
    rc=0
    HOTPLATE_BIN="$asan_bin" \
        HOTPLATE_ASAN_BIN="$asan_bin" \
        HOTPLATE_E2E_SANITIZED=1 \
        HOTPLATE_E2E_DEADLINE=1200 \
        LSAN_OPTIONS="suppressions=$repo_root/tests/lsan.supp" \
        HOTPLATE_TOKENS="$tokens" \
        HOTPLATE_MIGRATIONS_DIR="$repo_root/migrations" \
        timeout -k 30 "$E2E_TIMEOUT" "$python" -m pytest -q tests/e2e || rc=$?
    case $rc in
    0) ;;
    124 | 137) failed+=("tests/e2e under ASan (killed after ${E2E_TIMEOUT}s)") ;;
    *) failed+=("tests/e2e under ASan (pytest exit $rc)") ;;
    esac
}

# Two runs in one checkout would destroy each other's test stack, so a second
# run waits for the first. The daemons started below must not inherit this
# descriptor, or they would hold the lock for as long as they run.
mkdir -p "$home"
exec 8>"$home.lock"
if ! flock -n 8; then
    echo "test: another make test runs in this checkout; waiting for it"
    flock 8
fi

for b in "$bin" "$asan_bin"; do
    [[ -x "$b" ]] || { echo "test: $b is missing; run make build build-asan" >&2; exit 1; }
done

# The layers of the C code (docs/ARCHITECTURE.md): an include that points up,
# or a cycle of modules, fails here with the offending edge printed.
step "layers: tests/check_layers.py"
"$python" tests/check_layers.py || failed+=("layers")

run_ctest build
run_ctest build-asan
run_e2e

# The libFuzzer drivers of every parser under ASan+UBSan (tests/fuzz/run.sh):
# FUZZ_SECONDS each (default 60, two at a time, so about 4 minutes for seven
# drivers); FUZZ_SECONDS=0 only replays the corpus and the regressions.
step "fuzz: tests/fuzz/run.sh (FUZZ_SECONDS=${FUZZ_SECONDS:-60})"
tests/fuzz/run.sh 8>&- || failed+=("fuzz")

print_phases
echo
if [[ ${#failed[@]} -eq 0 ]]; then
    echo "test: every step succeeded"
    exit 0
fi
echo "test: FAILED steps:" >&2
printf '  - %s\n' "${failed[@]}" >&2
exit 1
