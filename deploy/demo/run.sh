#!/usr/bin/env bash
# Runs the Bulkhead demo: two tenants (alpha.localhost, beta.localhost), each with its own
# php-fpm master and its own secrets, behind one Bulkhead on 127.0.0.1:8080.
#
#   deploy/demo/run.sh            # Ctrl-C stops everything
#
# Environment: BULKHEAD_DEMO_PORT (default 8080), BULKHEAD_DEMO_DIR (runtime directory for
# sockets, logs and the generated config; default $XDG_RUNTIME_DIR/bulkhead-demo or
# /tmp/bulkhead-demo).
set -euo pipefail

demo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$demo_dir/../.." && pwd)"
port="${BULKHEAD_DEMO_PORT:-8080}"
run_dir="${BULKHEAD_DEMO_DIR:-${XDG_RUNTIME_DIR:-/tmp}/bulkhead-demo}"
tenants=(alpha beta)
fpm_pids=()

say() { printf 'demo: %s\n' "$*" >&2; }

find_php_fpm() {
    local candidate
    for candidate in /usr/sbin/php-fpm8.2 "$(command -v php-fpm8.2 || true)" "$(command -v php-fpm || true)"; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_php_fpm() {
    if find_php_fpm >/dev/null; then
        return 0
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        say "php-fpm is not installed. Install it, then run this script again:"
        printf '\n    sudo apt-get install php8.2-fpm\n\n' >&2
        exit 1
    fi
    say "php-fpm is not installed; installing php8.2-fpm"
    apt-get update
    apt-get install -y php8.2-fpm
}

build() {
    say "building (scripts/build-release.sh)"
    "$repo_dir/scripts/build-release.sh"
}

fpm_config() {
    local tenant="$1"
    cat <<CONF
[global]
pid = $run_dir/fpm-$tenant/php-fpm.pid
error_log = $run_dir/fpm-$tenant/error.log
daemonize = no

[$tenant]
listen = $run_dir/php-$tenant.sock
listen.mode = 0666
pm = static
pm.max_children = 2
clear_env = yes
security.limit_extensions = .php
catch_workers_output = yes
CONF
}

start_fpm() {
    local tenant="$1" php_fpm="$2" as_root=()
    [[ "$(id -u)" -eq 0 ]] && as_root=(-R)
    mkdir -p "$run_dir/fpm-$tenant"
    fpm_config "$tenant" >"$run_dir/fpm-$tenant/php-fpm.conf"
    "$php_fpm" -F "${as_root[@]}" -y "$run_dir/fpm-$tenant/php-fpm.conf" -p "$run_dir/fpm-$tenant" \
        >"$run_dir/fpm-$tenant/stdio.log" 2>&1 &
    fpm_pids+=("$!")
}

wait_for_socket() {
    local socket="$1" tries=100
    until [[ -S "$socket" ]]; do
        tries=$((tries - 1))
        if [[ "$tries" -le 0 ]]; then
            say "php-fpm did not create $socket; see $run_dir/fpm-*/error.log"
            exit 1
        fi
        sleep 0.1
    done
}

stop_fpm() {
    local pid
    for pid in "${fpm_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${fpm_pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}

# The config names every tenant's root, socket and secret files, and the secrets are
# secrets: both are readable by their owner only (`bulkhead check` warns otherwise). The
# demo's secrets are copied out of the repository, whose checkout is world-readable.
write_config() {
    local tenant secret
    install -d -m 700 "$run_dir/secrets"
    for tenant in "${tenants[@]}"; do
        for secret in "$demo_dir/$tenant/secrets/"*; do
            install -m 600 "$secret" "$run_dir/secrets/$tenant-$(basename "$secret")"
        done
    done
    (
        umask 077
        sed -e "s|@RUN_DIR@|$run_dir|g" -e "s|@DEMO_DIR@|$demo_dir|g" -e "s|@PORT@|$port|g" \
            "$demo_dir/bulkhead.toml.in" >"$run_dir/bulkhead.toml.new"
    )
    mv "$run_dir/bulkhead.toml.new" "$run_dir/bulkhead.toml"
}

usage_hint() {
    cat >&2 <<HINT

Bulkhead demo on http://127.0.0.1:$port/ — try, in another terminal:

    curl -H 'Host: alpha.localhost' http://127.0.0.1:$port/
    curl -H 'Host: beta.localhost' http://127.0.0.1:$port/
    curl --http2-prior-knowledge -H 'Host: beta.localhost' http://127.0.0.1:$port/
    curl -i -H 'Host: nobody.localhost' http://127.0.0.1:$port/     # 421: no such app

Each tenant sees only its own secrets. Config: $run_dir/bulkhead.toml. Ctrl-C stops the demo.

HINT
}

main() {
    ensure_php_fpm
    local php_fpm
    php_fpm="$(find_php_fpm)"
    build
    mkdir -p "$run_dir"
    trap stop_fpm EXIT
    for tenant in "${tenants[@]}"; do
        rm -f "$run_dir/php-$tenant.sock"
        start_fpm "$tenant" "$php_fpm"
    done
    for tenant in "${tenants[@]}"; do
        wait_for_socket "$run_dir/php-$tenant.sock"
    done
    write_config
    "$repo_dir/target/release/bulkhead" check --config "$run_dir/bulkhead.toml"
    usage_hint
    # In the background, so that SIGTERM/SIGINT reach this script at once: it
    # passes them on, waits for Bulkhead to drain, and the EXIT trap stops php-fpm.
    "$repo_dir/target/release/bulkhead" run --config "$run_dir/bulkhead.toml" &
    bulkhead_pid=$!
    trap 'kill -TERM "$bulkhead_pid" 2>/dev/null || true' TERM INT
    wait "$bulkhead_pid" || true
    wait "$bulkhead_pid" 2>/dev/null || true
}

main "$@"
