#!/usr/bin/env bash
# Builds the libFuzzer drivers (tests/fuzz/fuzz_*.c) with clang under
# ASan+UBSan in build-fuzz/, replays every saved input, then fuzzes each driver
# for FUZZ_SECONDS (default 60) starting from its corpus.
#
#   tests/fuzz/run.sh [NAME...]     NAME is a driver without fuzz_ (cart, query, ...)
#
#   FUZZ_SECONDS  seconds of fuzzing per driver (default 60; 0 replays only)
#   FUZZ_JOBS     drivers fuzzed at once (default 2, this machine's cores)
#   FUZZ_BUILD    build directory (default build-fuzz)
#
# Inputs: tests/fuzz/corpus/NAME/ holds the seeds (read only: what the fuzzer
# finds goes to FUZZ_BUILD/corpus/NAME/, so a run never dirties the tree), and
# tests/fuzz/regressions/NAME/ holds every input that once crashed a driver,
# replayed first on every run. A crash stops that driver, leaves the input in
# FUZZ_BUILD/artifacts/ and fails the run; fix the bug, then copy the input
# into tests/fuzz/regressions/NAME/ with a line in tests/fuzz/regressions/README.md.
#
# FUZZ_BUILD/summary.tsv records what ran (driver, seconds, executions, corpus
# size, result); tests/faults/record.py puts it into docs/RELIABILITY.md.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$repo_root"

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
build=${FUZZ_BUILD:-build-fuzz}
fuzz_dir=tests/fuzz

[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz: FUZZ_SECONDS must be a whole number" >&2; exit 2; }
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: FUZZ_JOBS must be a positive number" >&2; exit 2; }
command -v clang >/dev/null || { echo "fuzz: clang is missing; run deploy/deps.sh" >&2; exit 1; }

echo "==== fuzz: building the drivers in $build (clang, ASan+UBSan)"
CC=clang cmake -S . -B "$build" -DHOTPLATE_FUZZ=ON -DHOTPLATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" --target fuzzers -j2

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
    for src in "$fuzz_dir"/fuzz_*.c; do
        n=$(basename "$src" .c)
        names+=("${n#fuzz_}")
    done
fi

# UBSan findings abort (HOTPLATE_SANITIZE builds with -fno-sanitize-recover);
# ASan and LeakSanitizer report to stderr, which libFuzzer turns into a crash.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$build/logs" "$build/artifacts"

# Runs one driver: replay, then fuzz. Prints one summary line on stdout.
fuzz_one() {
    local name=$1 bin="$build/fuzz_$1" seeds="$fuzz_dir/corpus/$1" regs="$fuzz_dir/regressions/$1"
    local work="$build/corpus/$1" log="$build/logs/$1.log" dict=() inputs=() rc=0 execs corpus
    [[ -x $bin ]] || { printf '%s\t%s\t%s\t%s\t%s\n' "$name" 0 0 0 "missing"; return 1; }
    mkdir -p "$work"
    [[ -d $seeds ]] && inputs+=("$seeds")
    [[ -d $regs ]] && inputs+=("$regs")
    case $name in cart | menu_patch) dict=(-dict="$fuzz_dir/json.dict") ;; esac
    # Replay: -runs=0 executes every saved input once and stops.
    if ! "$bin" -runs=0 "${inputs[@]}" >"$log" 2>&1; then
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" 0 0 0 "replay-crash"
        return 1
    fi
    if [[ $seconds -gt 0 ]]; then
        "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
            -artifact_prefix="$build/artifacts/$name-" "${dict[@]}" "$work" "${inputs[@]}" >>"$log" 2>&1 || rc=$?
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus=$(find "$work" -type f | wc -l)
    if [[ $rc -ne 0 ]]; then
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$seconds" "${execs:-0}" "$corpus" "crash"
        return 1
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$seconds" "${execs:-0}" "$corpus" "ok"
}

echo "==== fuzz: ${names[*]} for ${seconds}s each, $jobs at a time"
summary="$build/summary.tsv"
printf 'driver\tseconds\texecutions\tcorpus\tresult\n' >"$summary.tmp"
failed=0
running=0
for name in "${names[@]}"; do
    fuzz_one "$name" >"$build/logs/$name.summary" &
    running=$((running + 1))
    if [[ $running -ge $jobs ]]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true
for name in "${names[@]}"; do
    line=$(cat "$build/logs/$name.summary")
    printf '%s\n' "$line" >>"$summary.tmp"
    IFS=$'\t' read -r _ _ execs corpus result <<<"$line"
    printf 'fuzz: %-12s %-13s %12s executions, corpus %s\n' "$name" "$result" "$execs" "$corpus"
    if [[ $result != ok ]]; then
        failed=1
        echo "fuzz: $name failed; last lines of $build/logs/$name.log:" >&2
        tail -n 30 "$build/logs/$name.log" >&2
    fi
done
mv "$summary.tmp" "$summary"
if [[ $failed -ne 0 ]]; then
    echo "fuzz: FAILED (inputs in $build/artifacts/; once fixed, copy each into $fuzz_dir/regressions/NAME/)" >&2
    exit 1
fi
echo "fuzz: every driver ran clean; summary in $summary"
