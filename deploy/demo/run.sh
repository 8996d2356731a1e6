#!/usr/bin/env bash
# Runs the Bulkhead demo: two tenants (alpha.localhost, beta.localhost), each with its own
# sandboxed php-fpm pool (started by Bulkhead) and its own secrets, on 127.0.0.1:8080.
#
#   deploy/demo/run.sh            # Ctrl-C stops everything
#
# Environment: BULKHEAD_DEMO_PORT (default 8080), BULKHEAD_DEMO_DIR (runtime directory for
# the pools' sockets and the generated config; default $XDG_RUNTIME_DIR/bulkhead-demo or
# /tmp/bulkhead-demo).
set -euo pipefail

demo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$demo_dir/../.." && pwd)"
port="${BULKHEAD_DEMO_PORT:-8080}"
run_dir="${BULKHEAD_DEMO_DIR:-${XDG_RUNTIME_DIR:-/tmp}/bulkhead-demo}"
tenants=(alpha beta)

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

Each tenant sees only its own secrets, and its page shows what it cannot reach. Config: $run_dir/bulkhead.toml. Ctrl-C stops the demo.

HINT
}

main() {
    ensure_php_fpm
    build
    mkdir -p "$run_dir"
    write_config
    "$repo_dir/target/release/bulkhead" check --config "$run_dir/bulkhead.toml"
    usage_hint
    # In the background, so that SIGTERM/SIGINT reach this script at once: it passes
    # them on and waits for Bulkhead to drain, which stops the php-fpm pools it started.
    "$repo_dir/target/release/bulkhead" run --config "$run_dir/bulkhead.toml" &
    bulkhead_pid=$!
    trap 'kill -TERM "$bulkhead_pid" 2>/dev/null || true' TERM INT
    wait "$bulkhead_pid" || true
    wait "$bulkhead_pid" 2>/dev/null || true
}

main "$@"
