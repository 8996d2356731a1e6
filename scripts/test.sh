#!/usr/bin/env bash
# Builds every binary, then runs every test in the workspace: unit tests and the end-to-end
# tests in tests/ (which start the real binaries against a real php-fpm), and the tests of
# the benchmark harness (bench/test_*.py).
#
#   scripts/test.sh [extra arguments for the test runner]
#
# Uses cargo-nextest when it is installed, cargo test otherwise. End-to-end tests are mostly
# waiting on sockets, so a few more test threads than cores is fine; BULKHEAD_TEST_THREADS
# overrides the default of 4.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads="${BULKHEAD_TEST_THREADS:-4}"

# The end-to-end tests run target/debug/bulkhead*: build them first, or they test stale code.
cargo build --locked --workspace --bins

# The benchmark harness: its parsers on output captured from real wrk and h2load runs, and
# its report tables.
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s bench

if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests; run them first so the last summary is nextest's.
    cargo test --locked --workspace --doc
    cargo nextest run --locked --workspace --no-fail-fast --test-threads "$threads" "$@"
else
    cargo test --locked --workspace --no-fail-fast "$@" -- --test-threads "$threads"
fi
