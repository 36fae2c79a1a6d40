# Entry points for developers and CI. The build itself is CMake's; the stack,
# server and test orchestration live in deploy/*.sh, so this file only names
# the steps and their order.
#
#   make run     build, start the private stack, migrate, seed once, and serve
#                on 127.0.0.1:8080 in the foreground (Ctrl-C stops it all)
#   make up      the same with the server in the background; make down stops it
#                (HA=1: a PostgreSQL primary with a sync standby, and Redis with
#                a replica and Sentinel; docs/RELIABILITY.md)
#   make failover  SIGKILL the PostgreSQL primary of an HA stack and promote its
#                standby (deploy/stack.sh failover); the server finds it itself
#   make test    the layer check, the unit tests (normal and ASan builds), then every
#                suite and a short fuzz in four lanes side by side (deploy/test.sh)
#   make bench-overhead   probes ON against OFF (docs/BENCHMARKS.md)
#   make soak    the journey at half its peak for 30 minutes, drift per series (docs/BENCHMARKS.md)
#   make bench-ab REV=<rev>   one optimization: the build at REV against the tree (docs/BENCHMARKS.md)
#   make bench-replica   read scaling: uncached menu and history, replica_reads off against on, on an HA stack (docs/BENCHMARKS.md)
#   make doctor  the running server's bottleneck report (docs/DOCTOR.md): watches
#                DOCTOR_SECONDS (default 30) of whatever traffic runs, then
#                prints the ranked findings as Markdown (ADMIN, default
#                127.0.0.1:8081; HOTPLATE_ADMIN_TOKEN is sent when set)
#   make bench   before/after runs of the scenarios (SCENARIO=flag[,flag...],
#                all when none is given), or BASELINE=reports/<timestamp> to
#                compare the tree with a saved report (exit 3 on a regression)
#   make lab     all scenarios, the ceilings and the peak-hour shape, then a
#                summary table (under 20 minutes; QUICK=1 under 5)
#   make lab-docs  run every lab in docs/labs on a private stack of its own and
#                rewrite its generated outputs, figures and pictures (LAB=04: one;
#                docs/labs/README.md)
#   make fuzz    build the libFuzzer drivers (clang, ASan+UBSan) in build-fuzz/
#                and fuzz each for FUZZ_SECONDS (default 60); tests/fuzz/run.sh
#
# Variables: SCALE (seed scale, default 1), THREADS (server threads, default
# nproc), LISTEN (default 127.0.0.1:8080), SERVE_ARGS (extra serve arguments);
# for bench and lab: SCENARIO, BASELINE, QUICK (docs/BENCHMARKS.md).

SHELL := /bin/bash
# cmake --build runs make underneath, which otherwise prints every directory
# change because it sees itself as a sub-make of this one.
MAKEFLAGS += --no-print-directory
# The steps of run, up and test must happen in order (deps before build,
# build before the stack); `make -j` must not reorder them.
.NOTPARALLEL:

SCALE ?= 1
THREADS ?= $(shell nproc)
LISTEN ?= 127.0.0.1:8080
SERVE_ARGS ?=
# HA=1 on make up (or run) makes the private stack highly available; the stack
# remembers it (.hotplate/stack.conf), so later commands need not repeat it.
HA ?=
export SCALE THREADS LISTEN SERVE_ARGS HA

FORMAT_DIRS := $(wildcard common services profiling tests loadtests)

# The load-test scripts (loadtests/*.py) import tests/hplib, the Python
# library they share with the test suites; they find it on PYTHONPATH.
LOADTESTS_PYTHONPATH := $(CURDIR)/tests$(if $(PYTHONPATH),:$(PYTHONPATH))

.PHONY: all deps build build-asan run up down status failover migrate seed test bench-overhead bench-ab bench-replica soak bench lab lab-docs fuzz format clean doctor

all: build

deps:
	deploy/deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build -j2

build-asan:
	cmake -S . -B build-asan -DHOTPLATE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-asan -j2

# exec hands the terminal's signals straight to deploy/run.sh, whose traps
# stop the server and the stack on Ctrl-C.
run: deps build
	exec deploy/run.sh fg

up: deps build
	deploy/run.sh up

down:
	deploy/run.sh down

# deploy/run.sh status exits 3 when something is stopped, which scripts can
# use; for a person reading make's output that is not an error.
status:
	@deploy/run.sh status || true

failover:
	deploy/stack.sh failover --home .hotplate

migrate: build
	deploy/run.sh migrate

seed: build
	deploy/run.sh seed

test: deps build build-asan
	deploy/test.sh

# Probe overhead: the probes-ON build against the probes-OFF build on the cached
# menu and checkout routes (wrk throughput, callgrind instructions per request).
# A benchmark, not a test: about 5 minutes; prints the Markdown block for
# docs/BENCHMARKS.md and fails only when something did not work. It builds
# build-bench-on/ and build-bench-off/ and uses the stack in .hotplate/bench.
bench-overhead: deps
	PYTHONPATH=$(LOADTESTS_PYTHONPATH) loadtests/overhead.py

# The soak (loadtests/soak.py; docs/BENCHMARKS.md): the journey at half its
# peak for SOAK_MINUTES (default 30), one sample a minute, and each series'
# trend. Not part of make test (tests/bench runs a 12-second version).
SOAK_MINUTES ?= 30
soak: deps
	PYTHONPATH=$(LOADTESTS_PYTHONPATH) loadtests/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

# Read scaling (loadtests/bench_replica.py; docs/BENCHMARKS.md): uncached
# menu and order history with replica_reads off and on, alternated, on an HA
# stack of its own in .hotplate/replica. About 2 minutes with the defaults.
bench-replica: build
	PYTHONPATH=$(LOADTESTS_PYTHONPATH):$(CURDIR)/loadtests loadtests/bench_replica.py --binary build/hotplate $(REPLICA_ARGS)

# One optimization's before and after (loadtests/ab.py; docs/BENCHMARKS.md):
# the build at REV against the current tree on one route and its statement.
REV ?=
bench-ab: deps
	@test -n "$(REV)" || { echo "make bench-ab REV=<git revision of the before build>"; exit 2; }
	PYTHONPATH=$(LOADTESTS_PYTHONPATH) loadtests/ab.py --before-rev $(REV) $(AB_ARGS)

# Before/after benchmarks (loadtests/bench.py; docs/BENCHMARKS.md). They build
# build-bench/, recreate the stack in .hotplate/lab, and write
# reports/<timestamp>/ and reports/history.jsonl. Benchmarks, not tests: the
# exit status is 1 only when something did not work, and 3 when BASELINE is
# given and a main metric regressed significantly.
SCENARIO ?=
BASELINE ?=
QUICK ?=
comma := ,
BENCH_ARGS = $(foreach s,$(subst $(comma), ,$(SCENARIO)),--scenario $(s)) $(if $(BASELINE),--baseline $(BASELINE)) \
	$(if $(filter-out 0,$(QUICK)),--quick)

bench: deps
	PYTHONPATH=$(LOADTESTS_PYTHONPATH) loadtests/bench.py $(BENCH_ARGS)

lab: deps
	PYTHONPATH=$(LOADTESTS_PYTHONPATH) loadtests/bench.py --lab $(if $(filter-out 0,$(QUICK)),--quick)

# The labs' walkthroughs, run and pasted by the machine (loadtests/labdocs.py).
# LAB=NN (or a comma-separated list) runs some of them.
LAB ?=
lab-docs: deps build
	PYTHONPATH=$(LOADTESTS_PYTHONPATH) loadtests/labdocs.py $(foreach l,$(subst $(comma), ,$(LAB)),--lab $(l))

# libFuzzer drivers of every parser (tests/fuzz/run.sh): FUZZ_SECONDS per
# driver (default 60), FUZZ_JOBS at a time (default 2). Fails on any crash.
fuzz: deps
	tests/fuzz/run.sh

format:
	find $(FORMAT_DIRS) -type f \( -name '*.c' -o -name '*.h' \) -print0 | xargs -0 -r clang-format -i
	clang-format -i main.c

# Removes the build trees only; the stacks' data in .hotplate is kept (use
# deploy/stack.sh destroy for that).
clean:
	rm -rf build build-asan build-bench-on build-bench-off build-fuzz

# GET /debug/doctor?format=md on the running server's admin listener. The
# server does the work (docs/DOCTOR.md); this only asks and prints. curl -f
# makes a 4xx or 5xx fail the target, with the error document shown.
DOCTOR_SECONDS ?= 30
ADMIN ?= 127.0.0.1:8081
doctor:
	@curl -sS --fail-with-body --max-time $$(( $(DOCTOR_SECONDS) + 90 )) \
		$${HOTPLATE_ADMIN_TOKEN:+-H "Authorization: Bearer $$HOTPLATE_ADMIN_TOKEN"} \
		"http://$(ADMIN)/debug/doctor?seconds=$(DOCTOR_SECONDS)&format=md"
