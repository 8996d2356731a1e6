#!/usr/bin/env bash
# The release build as deployed, end to end: runs the quick start's demo
# (deploy/demo/run.sh, which builds with scripts/build-release.sh) on a spare port and
# checks that both tenants answer through their managed php-fpm pools, each with its own
# secret only and unable to read the other's files, that
# the worker binary is the statically linked one, and that an idle worker stays small.
# Stops everything it started. Used by .ci/run; needs php8.2-fpm and curl.
#
#   scripts/smoke-release.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
port="${BULKHEAD_SMOKE_PORT:-18480}"
run_dir="$(mktemp -d /tmp/bulkhead-smoke.XXXXXX)"
log="$run_dir/demo.log"
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; sed 's/^/  demo log: /' "$log" >&2 || true; exit 1; }

BULKHEAD_DEMO_PORT="$port" BULKHEAD_DEMO_DIR="$run_dir" deploy/demo/run.sh >"$log" 2>&1 &
demo=$!
stop() {
    kill -TERM "$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
    rm -rf "$run_dir"
}
trap stop EXIT

fetch() { curl -sS --max-time 5 -H "Host: $1" "http://127.0.0.1:$port/"; }

# The demo builds first: allow for a release build from scratch.
for _ in $(seq 1800); do
    fetch alpha.localhost >/dev/null 2>&1 && break
    kill -0 "$demo" 2>/dev/null || fail "the demo exited before answering"
    sleep 0.5
done
alpha="$(fetch alpha.localhost)" || fail "alpha.localhost does not answer"
beta="$(fetch beta.localhost)" || fail "beta.localhost does not answer"
grep -q 'alpha-demo-db-password' <<<"$alpha" || fail "alpha did not get its secret: $alpha"
grep -q 'beta-demo' <<<"$beta" || fail "beta did not get its secrets: $beta"
! grep -q 'beta-demo' <<<"$alpha" || fail "alpha received beta's secret"
! grep -q 'alpha-demo' <<<"$beta" || fail "beta received alpha's secret"
! grep -q '^warning: ' "$log" || fail "bulkhead check warned about the demo's files"
for page in "$alpha" "$beta"; do
    grep -q 'refused' <<<"$page" || fail "a tenant's page does not show its refused attempts: $page"
    ! grep -q 'READ \|RAN:' <<<"$page" || fail "a tenant's PHP reached what its pool must not: $page"
done
status="$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: nobody.localhost' "http://127.0.0.1:$port/")"
[[ "$status" == 421 ]] || fail "an unknown host got $status, not 421"

broker="$(pgrep -f -n "bulkhead run --config $run_dir/bulkhead.toml")" || fail "no broker found"
workers="$(pgrep -P "$broker" -x bulkhead-worker)" || fail "the broker has no worker"
for pid in $workers; do
    ! grep -q 'libc\.so' "/proc/$pid/maps" || fail "worker $pid maps libc.so: not the static build"
    # Its proportional share (PSS): the binary's text pages are shared by every worker.
    rss_kib="$(awk '/^Rss:/ {print $2}' "/proc/$pid/smaps_rollup")"
    pss_kib="$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")"
    printf 'smoke: worker %s: %s KiB resident, %s KiB proportional, after one request\n' \
        "$pid" "$rss_kib" "$pss_kib"
    (( pss_kib <= 4096 )) || fail "worker $pid has a $pss_kib KiB share of memory, more than 4 MiB"
done
printf 'smoke: ok: both tenants answer with their own secrets through the release build\n'
