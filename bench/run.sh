#!/usr/bin/env bash
# Benchmarks Bulkhead side by side with nginx and Caddy, all in front of one php-fpm pool,
# on loopback, and prints a markdown report (also written to bench/out/results-*.md).
#
#   bench/run.sh                 # full run, about 4 minutes
#   bench/run.sh --quick         # smoke run: 3 s per workload, density 10 and 50 apps
#   bench/run.sh --no-build      # use the binaries already in target/release
#   bench/run.sh --help          # every option (durations, workloads, servers, density)
#
# Needs nginx, caddy, php-fpm8.2, wrk, h2load (nghttp2-client), curl, openssl, python3 (3.9
# or later) and cargo. Run it as root: Bulkhead's root mode gives each app's worker its own
# uid, and the scratch directory is made world-readable for them.
# See docs/BENCHMARKS.md.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$bench_dir/.." && pwd)"
tmp_dir=""
harness_pid=""

say() { printf 'bench: %s\n' "$*" >&2; }

need_tools() {
    local tool missing=()
    for tool in nginx caddy php-fpm8.2 wrk h2load curl openssl python3 cargo unshare; do
        command -v "$tool" >/dev/null || [[ -x "/usr/sbin/$tool" ]] || missing+=("$tool")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        say "missing: ${missing[*]}"
        say "on Debian: apt-get install nginx caddy php8.2-fpm wrk nghttp2-client curl openssl"
        exit 1
    fi
}

raise_limits() {
    # 500 apps mean 502 processes and a few thousand descriptors in the broker and gateway.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    ulimit -u unlimited 2>/dev/null || ulimit -u "$(ulimit -Hu)" 2>/dev/null || true
}

# Every process the harness starts leads its own process group, listed in $tmp_dir/pgids.
# The harness stops them itself; this catches whatever is left if it was killed.
cleanup() {
    local pgid pid leftovers=()
    if [[ -n "$harness_pid" ]] && kill -TERM "$harness_pid" 2>/dev/null; then
        wait "$harness_pid" 2>/dev/null || true
    fi
    if [[ -f "$tmp_dir/pgids" ]]; then
        while read -r pgid; do
            mapfile -t -O "${#leftovers[@]}" leftovers < <(descendants "$pgid")
            kill -TERM -- "-$pgid" 2>/dev/null || true
        done <"$tmp_dir/pgids"
        sleep 0.5
        while read -r pgid; do
            kill -KILL -- "-$pgid" 2>/dev/null || true
        done <"$tmp_dir/pgids"
        for pid in "${leftovers[@]}"; do
            kill -KILL "$pid" 2>/dev/null || true
        done
    fi
    if [[ -n "$tmp_dir" ]]; then
        rm -rf -- "$tmp_dir"
    fi
}

# The live descendants of process $1 (children that left its process group included).
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        printf '%s\n' "$child"
        descendants "$child"
    done
}

build() {
    say "building Bulkhead (scripts/build-release.sh)"
    "$repo_dir/scripts/build-release.sh"
}

main() {
    local arg do_build=1 args=()
    for arg in "$@"; do
        case "$arg" in
            -h | --help) exec python3 -B "$bench_dir/bench.py" --tmp /nonexistent --help ;;
            --no-build) do_build=0 ;;
            *) args+=("$arg") ;;
        esac
    done
    need_tools
    raise_limits
    if [[ "$do_build" -eq 1 ]]; then
        build
    fi
    tmp_dir="$(mktemp -d /tmp/bulkhead-bench.XXXXXX)"
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    # In the background so that a TERM to this script reaches the trap at once.
    python3 -B "$bench_dir/bench.py" --tmp "$tmp_dir" "${args[@]}" &
    harness_pid=$!
    local status=0
    wait "$harness_pid" || status=$?
    harness_pid=""
    return "$status"
}

main "$@"
