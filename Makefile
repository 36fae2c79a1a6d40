# Entry points for developers and CI. The build itself is CMake's; the stack,
# server and test orchestration live in deploy/*.sh, so this file only names
# the steps and their order.
#
#   make run     build, start the private stack, migrate, seed once, and serve
#                on 127.0.0.1:8080 in the foreground (Ctrl-C stops it all)
#   make up      the same with the server in the background; make down stops it
#   make test    unit tests (normal and ASan builds) and the e2e suite
#   make bench-overhead   probes ON against OFF (docs/BENCHMARKS.md)
#
# Variables: SCALE (seed scale, default 1), THREADS (server threads, default
# nproc), LISTEN (default 127.0.0.1:8080), SERVE_ARGS (extra serve arguments).

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
export SCALE THREADS LISTEN SERVE_ARGS

FORMAT_DIRS := $(wildcard common services profiling tests loadtests)

.PHONY: all deps build build-asan run up down status migrate seed test bench-overhead format clean

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
	loadtests/overhead.py

format:
	find $(FORMAT_DIRS) -type f \( -name '*.c' -o -name '*.h' \) -print0 | xargs -0 -r clang-format -i

# Removes the build trees only; the stacks' data in .hotplate is kept (use
# deploy/stack.sh destroy for that).
clean:
	rm -rf build build-asan build-bench-on build-bench-off
