#!/usr/bin/env bash
# Builds the release binaries as they are deployed and benchmarked, into target/release/.
#
#   scripts/build-release.sh [extra cargo arguments, e.g. --locked]
#
# bulkhead-worker is linked statically against glibc (it needs no NSS and no dlopen):
# one worker runs per app, and without ld.so, libc.so, libm.so and libgcc_s mapped into
# every one of them an idle worker keeps about 1 MiB less resident (3.5 MiB instead of
# 4.6 MiB on Debian 12). Cargo cannot make one binary of a workspace static without
# also building its proc-macros for a static target, so the worker is relinked on its
# own; a later plain `cargo build --release` relinks it dynamically again, which works
# the same.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --workspace --bins "$@"
cargo rustc --release -p bulkhead-worker --bin bulkhead-worker "$@" -- -C target-feature=+crt-static
