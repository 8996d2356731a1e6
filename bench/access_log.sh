#!/bin/sh
# The access log's cost on the hello workload: two Bulkhead instances in front of one
# php-fpm pool, one writing a combined access log to a file and one without, loaded in
# turn with wrk (ROUNDS rounds of SECONDS each, alternating, the order flipping every
# round), in one run. The ratio reported is the median of each round's with/without ratio:
# paired rounds cancel most of the load that other work puts on the machine.
#
# Usage: bench/access_log.sh [BIN_DIR]   (default target/release; run as root: root mode)
# Environment: SECONDS_PER_ROUND (default 5), ROUNDS (default 3), CONNECTIONS (default 64).
# Prints each round's req/s and the ratio of the medians.
set -eu
BIN=${1:-target/release}
SECS=${SECONDS_PER_ROUND:-5}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNECTIONS:-64}
for tool in wrk php-fpm8.2 curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install wrk php8.2-fpm curl" >&2; exit 1; }
done
[ -x "$BIN/bulkhead" ] || { echo "no $BIN/bulkhead: run scripts/build-release.sh" >&2; exit 1; }
BIN=$(cd "$BIN" && pwd)
DIR=$(mktemp -d /tmp/bulkhead-access-log-bench.XXXXXX)
chmod 755 "$DIR"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; sleep 1; rm -rf "$DIR"; }
trap cleanup EXIT INT TERM

mkdir -p "$DIR/site" "$DIR/fpm"
printf '<?php\necho "Hello, world!\\n";\n' > "$DIR/site/hello.php"
chmod -R a+rX "$DIR/site"
cat > "$DIR/fpm/php-fpm.conf" <<EOF
[global]
pid = $DIR/fpm/php-fpm.pid
error_log = $DIR/fpm/error.log
daemonize = no
[bench]
listen = $DIR/fpm/php.sock
listen.mode = 0666
listen.backlog = 4096
pm = static
pm.max_children = 4
pm.max_requests = 0
clear_env = yes
EOF
php-fpm8.2 -F -R -y "$DIR/fpm/php-fpm.conf" -p "$DIR/fpm" >"$DIR/fpm/stdio.log" 2>&1 &
PIDS="$PIDS $!"

# instance NAME PORT UID_RANGE EXTRA_TOP_LINE
instance() {
    mkdir -p "$DIR/$1"
    cat > "$DIR/$1/bulkhead.toml" <<EOF
listen = ["127.0.0.1:$2"]
control_socket = "$DIR/$1/control.sock"
$4
[sandbox]
uid_range = "$3"
[[app]]
name = "bench"
hosts = ["bench.localhost"]
root = "$DIR/site"
fastcgi = "unix:$DIR/fpm/php.sock"
EOF
    RUST_LOG=warn "$BIN/bulkhead" run -c "$DIR/$1/bulkhead.toml" >"$DIR/$1/bulkhead.log" 2>&1 &
    PIDS="$PIDS $!"
}
instance off 18181 "62000-62099" ""
instance on 18182 "62100-62199" "access_log = { path = \"$DIR/on/access.log\", format = \"combined\" }"

for port in 18181 18182; do
    i=0
    until curl -fs -H 'Host: bench.localhost' "http://127.0.0.1:$port/hello.php" >/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "Bulkhead on $port never answered" >&2; cat "$DIR"/*/bulkhead.log >&2; exit 1; }
        sleep 0.1
    done
done

rps() {
    wrk -t2 -c"$CONNS" -d"${SECS}s" -H 'Host: bench.localhost' "http://127.0.0.1:$1/hello.php" \
        | awk '/Requests\/sec/ {print $2} /Non-2xx|Socket errors/ {print "ERRORS: " $0 > "/dev/stderr"}'
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
: > "$DIR/off.rps"; : > "$DIR/on.rps"; : > "$DIR/ratio"
r=1
while [ $r -le "$ROUNDS" ]; do
    if [ $((r % 2)) -eq 1 ]; then off=$(rps 18181); on=$(rps 18182); else on=$(rps 18182); off=$(rps 18181); fi
    echo "round $r: without the access log $off req/s, with it $on req/s"
    echo "$off" >> "$DIR/off.rps"; echo "$on" >> "$DIR/on.rps"
    awk "BEGIN {print $on / $off}" >> "$DIR/ratio"
    r=$((r + 1))
done
OFF=$(median < "$DIR/off.rps"); ON=$(median < "$DIR/on.rps")
LINES=$(wc -l < "$DIR/on/access.log")
RATIO=$(median < "$DIR/ratio")
echo "median: without $OFF req/s, with $ON req/s; median paired ratio $RATIO; $LINES lines logged"
grep -h "dropped" "$DIR"/on/bulkhead.log || echo "no line dropped"
