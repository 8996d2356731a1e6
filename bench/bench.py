#!/usr/bin/env python3
"""Bulkhead side by side with nginx and Caddy on one php-fpm pool; run through run.sh.

Layout:
  procs.py    start/stop process groups; CPU and RSS of process trees from /proc
  servers.py  php-fpm, nginx, Caddy and Bulkhead, configured equivalently, and nginx-split
              (nginx in two processes, the reference for what a process boundary costs)
  load.py     the workloads; wrk and h2load runs and their parsers
  density.py  Bulkhead with 10, 100, 500 apps: startup, memory, first request
  report.py   the markdown tables
  site/       the PHP scripts every server serves; upload.lua is wrk's POST script

All servers run at once (an idle server costs nothing), and each workload is run
against each server in turn, the order rotating per workload, so that load from elsewhere
on the machine is spread over the servers instead of landing on one of them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import density
import load
import procs
import report
from load import WORKLOADS, Workload
from report import Row
from servers import HOST, Bulkhead, Caddy, Nginx, NginxSplit, PhpFpm, Server, get, make_certificate, make_site

REPO = Path(__file__).resolve().parent.parent
BULKHEAD = REPO / "target" / "release" / "bulkhead"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="run.sh also takes --no-build (use target/release as is)")
    p.add_argument("--tmp", type=Path, required=True, help="scratch directory (run.sh makes it)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    p.add_argument("--quick", action="store_true", help="short runs, density 10 and 50 apps")
    p.add_argument("--duration", type=float, help="seconds per measured run (default 10)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up before each (default 2)")
    p.add_argument("--density", help="app counts, comma-separated (default 10,100,500; "
                                     "'none' to skip)")
    p.add_argument("--workloads", help="only these, comma-separated ('none' for density only): "
                                       + ",".join(w.key for w in WORKLOADS))
    p.add_argument("--servers", default="bulkhead,nginx,nginx-split,caddy")
    p.add_argument("--php-children", type=int, default=4)
    p.add_argument("--keepalive", type=int, default=0, metavar="N",
                   help="keep-alive FastCGI connections: Bulkhead's fastcgi_keepalive = N, "
                        "nginx's fastcgi_keep_conn with N/2 idle connections in all; each server "
                        "then gets a php-fpm pool of its own (kept connections hold children). "
                        "Caddy has no FastCGI keep-alive. Default 0: a connection per request")
    p.add_argument("--no-bulkhead-tls", dest="bulkhead_tls", action="store_false",
                   help="leave listen_tls out of Bulkhead's config (the TLS workloads are then skipped)")
    args = p.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    sizes = args.density or ("10,50" if args.quick else "10,100,500")
    args.density = [] if sizes == "none" else [int(n) for n in sizes.split(",") if n]
    args.servers = args.servers.split(",")
    wanted = args.workloads.split(",") if args.workloads else [w.key for w in WORKLOADS]
    args.workloads = [w for w in WORKLOADS if w.key in wanted]
    return args


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


# --- machine -----------------------------------------------------------------------------


def first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except OSError:
        return ""
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def source_version() -> str:
    """The commit Bulkhead was built from, and whether tracked files differ from it
    (read-only git commands: nothing here touches the index)."""
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    clean = subprocess.run(["git", "-C", str(REPO), "diff-index", "--quiet", "HEAD", "--"],
                           capture_output=True).returncode == 0
    return f"commit {commit}" + ("" if clean else " with uncommitted changes")


def worker_linkage() -> str:
    """`statically linked` for the release build of scripts/build-release.sh, else the
    shared libraries it loads (an idle worker is about 1 MiB bigger then)."""
    worker = BULKHEAD.with_name("bulkhead-worker")
    out = subprocess.run(["ldd", str(worker)], capture_output=True, text=True).stdout
    libs = [line.split()[0] for line in out.splitlines() if "=>" in line]
    return "statically linked" if not libs else "dynamically linked: " + ", ".join(libs)


def machine_info() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                if line.startswith("model name")), "")
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "CPU": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "bulkhead": f"{first_line([str(BULKHEAD), '--version'])} ({source_version()})",
        "bulkhead-worker": worker_linkage(),
        "nginx": first_line(["nginx", "-v"]),
        "caddy": first_line(["caddy", "version"]),
        "php-fpm": first_line(["php-fpm8.2", "-v"]),
        "wrk": first_line(["wrk", "-v"]).split(" Copyright")[0],
        "h2load": first_line(["h2load", "--version"]),
        "rustc": first_line(["rustc", "--version"]),
        "load average at start": load_average(),
    }


# --- checks before load ------------------------------------------------------------------

EXPECTED = {  # workload -> (method, body to send, length of the expected body)
    "hello": ("GET", None, 14),
    "hello-slowloris": ("GET", None, 14),
    "static": ("GET", None, 1024),
    "upload": ("POST", b"u" * 1024 * 1024, len(b"1048576\n")),
    "php-100k": ("GET", None, 102400),
}


def check(server: Server, workload: Workload) -> str | None:
    """Why `server` cannot run `workload` (a wrong answer, no listener), or None."""
    if workload.tool in load.TLS_TOOLS:
        if server.tls_skip_reason:
            return server.tls_skip_reason
        port = server.tls_port
        return _curl_check(["-k", "--http1.1", "--resolve", f"{HOST}:{port}:127.0.0.1",
                            f"https://{HOST}:{port}{workload.path}"], "1.1 200")
    if workload.tool == "h2load":
        return _curl_check(["--http2-prior-knowledge",
                            f"http://127.0.0.1:{server.h2_port}{workload.path}"], "2 200")
    method, body, length = EXPECTED[workload.key]
    try:
        status, got = get(server.port, workload.path, method=method, body=body)
    except OSError as err:
        return f"check failed: {err}"
    if status != 200 or len(got) != length:
        return f"check failed: {method} {workload.path} gave {status} and {len(got)} bytes"
    return None


def _curl_check(args: list[str], want: str) -> str | None:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
            "-H", f"Host: {HOST}", "--max-time", "5", *args]
    got = subprocess.run(argv, capture_output=True, text=True).stdout.strip()
    return None if got == want else f"check failed: curl {args[-1]} gave {got!r}"


# --- the comparison ----------------------------------------------------------------------


def port_for(server: Server, workload: Workload) -> int:
    if workload.tool in load.TLS_TOOLS:
        return server.tls_port
    return server.h2_port if workload.tool == "h2load" else server.port


def measure(server: Server, fpm: PhpFpm, workload: Workload, args, raw: Path) -> Row:
    """Checks, warms up, then loads `server` with `workload` while metering it and php-fpm."""
    reason = check(server, workload)
    if reason:
        say(f"{workload.key} / {server.name}: {reason}")
        return Row(workload, server.name, note=reason)
    port = port_for(server, workload)
    stem = raw / f"{workload.key}-{server.name}"
    try:
        if args.warmup > 0:
            load.run(workload, port, args.warmup, stem.with_suffix(".warmup.txt"))
        with procs.Meter({"server": server.proc.pid, "php-fpm": fpm.proc.pid}) as meter:
            result = load.run(workload, port, args.duration, stem.with_suffix(".txt"))
    except (RuntimeError, ValueError) as err:
        say(f"{workload.key} / {server.name}: {err}")
        return Row(workload, server.name, note=f"load failed: {str(err).splitlines()[0]}")
    row = Row(workload, server.name, result, meter.usage("server"), meter.usage("php-fpm"))
    say(f"{workload.key:9} {server.name:9} {result.ok_rps:10,.0f} req/s  "
        f"p99 {report._num(result.p99_ms, 2):>7} ms  errors {result.errors}  "
        f"CPU {row.cpu_per_10k():.2f} s/10k")
    return row


def compare(servers: list[Server], fpms: dict[str, PhpFpm], args, raw: Path) -> list[Row]:
    rows = []
    for i, workload in enumerate(args.workloads):
        turn = i % len(servers)
        order = servers[turn:] + servers[:turn]
        results = {s.name: measure(s, fpms[s.name], workload, args, raw) for s in order}
        rows += [results[s.name] for s in servers]
    return rows


def start_servers(args, site: Path, fpms: dict[str, PhpFpm], spawner: procs.Spawner):
    """Starts the servers asked for; returns those that came up, and notes on the others."""
    cert = make_certificate(args.tmp)

    def common(name: str) -> dict:
        return dict(site=site, fpm_socket=fpms[name].socket, tls=cert, keepalive=args.keepalive)

    makers = {
        "bulkhead": lambda: Bulkhead("bulkhead", args.tmp / "bulkhead", **common("bulkhead"),
                                     binary=BULKHEAD, with_tls=args.bulkhead_tls),
        "nginx": lambda: Nginx("nginx", args.tmp / "nginx", **common("nginx")),
        "nginx-split": lambda: NginxSplit("nginx-split", args.tmp / "nginx-split",
                                          **common("nginx-split")),
        "caddy": lambda: Caddy("caddy", args.tmp / "caddy", **common("caddy")),
    }
    started, notes = [], []
    for name in args.servers:
        server = makers[name]()
        try:
            server.start(spawner)
            started.append(server)
        except RuntimeError as err:
            say(f"{name} did not start: {err}")
            notes.append(f"{name} did not start: {str(err).splitlines()[0]} "
                         f"(its log is under logs/{name}/ in the raw output directory)")
            if server.proc:
                spawner.stop(server.proc)
    return started, notes


def error_notes(rows: list[Row]) -> list[str]:
    notes = []
    for row in rows:
        if row.load and row.load.errors:
            share = row.load.errors / max(row.load.requests, 1)
            notes.append(f"{row.workload.key} / {row.server}: {row.load.errors:,} errors in "
                         f"{row.load.requests:,} requests ({share:.1%}); req/s counts only the "
                         f"successful ones, latencies include the failed ones.")
    return notes


# --- density -----------------------------------------------------------------------------


def run_density(args, fpm: PhpFpm, spawner: procs.Spawner):
    rows, notes = [], []
    for on_demand in (False, True):
        mode = "on-demand" if on_demand else "eager"
        for n in args.density:
            say(f"density: starting Bulkhead with {n} apps ({mode})")
            dir = args.tmp / f"density-{mode}-{n}"
            try:
                row = density.measure(n, dir, fpm.socket, BULKHEAD, spawner, on_demand)
            except (RuntimeError, OSError) as err:
                say(f"density {n} ({mode}): {err}")
                notes.append(f"density with {n} apps ({mode}) failed: {err}")
                continue
            rows.append(row)
            say(f"density {n} ({mode}): startup {row.startup_s:.2f} s, "
                f"RSS {row.rss_kib / 1024:.1f} MiB, {row.processes} processes, "
                f"first request {row.first_ms:.1f} ms")
    return rows, notes


# --- main --------------------------------------------------------------------------------


def run_all(args, raw: Path, spawner: procs.Spawner):
    """php-fpm, then the side-by-side comparison, then tenant density."""
    site = make_site(args.tmp / "site")
    fpm = PhpFpm(args.tmp / "php-fpm", children=args.php_children)
    fpm.start(spawner)
    # Kept connections hold php-fpm children even while their server is not under load:
    # with keep-alive, each server gets a pool of its own.
    fpms = {name: fpm for name in args.servers}
    if args.keepalive:
        for name in args.servers:
            fpms[name] = PhpFpm(args.tmp / f"php-fpm-{name}", children=args.php_children)
            fpms[name].start(spawner)
    servers, notes = start_servers(args, site, fpms, spawner)
    rows = compare(servers, fpms, args, raw) if servers else []
    for server in servers:
        spawner.stop(server.proc)
    density_rows = []
    if args.density and "bulkhead" in args.servers:
        density_rows, density_notes = run_density(args, fpm, spawner)
        notes += density_notes
    return rows, density_rows, notes + error_notes(rows)


KEPT = ["*.log", "*.conf", "*.toml", "Caddyfile"]


def keep_files(args, raw: Path) -> None:
    """Copies every server's logs and config out of the scratch directory, which run.sh
    removes, to raw/logs/NAME/."""
    sources = [(name, args.tmp / name) for name in ["php-fpm", *args.servers]]
    sources += [(path.parent.name, path) for path in args.tmp.glob("density-*/bulkhead")]
    for name, src in sources:
        for file in (f for pattern in KEPT for f in src.glob(pattern)):
            (raw / "logs" / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(file, raw / "logs" / name / file.name)


def compose(args, info, rows, density_rows, notes) -> str:
    pool = f"php-fpm pool (`pm = static`, {args.php_children} children)"
    pools = f"one {pool} shared by all servers"
    if args.keepalive:
        pools = (f"one {pool} per server, reached over keep-alive FastCGI connections "
                 f"(Bulkhead `fastcgi_keepalive = {args.keepalive}`, nginx `fastcgi_keep_conn "
                 f"on` with {max(1, args.keepalive // 2)} idle connections in all; Caddy has no FastCGI "
                 f"keep-alive)")
    parts = [
        f"# Bulkhead benchmark, {info.pop('date')}",
        "",
        f"Loopback, {pools}; {args.duration:g} s per server and workload after "
        f"{args.warmup:g} s of "
        f"warm-up; every request carries `Host: {HOST}`. The servers ran side by side, one "
        f"at a time under load.",
        "",
        report.workloads_table(args.workloads),
        "",
        "## Results",
        "",
        report.results_table(rows),
        "",
        "req/s counts successful responses only (wrk counts a status ≥ 400 as an error). "
        "CPU and RSS cover the server's whole live process tree (Bulkhead: broker, gateway, "
        "keyholder and worker; nginx: master and workers; Caddy: its process). php-fpm is "
        "shared: it is reported separately and not counted in the server's numbers.",
        "",
        "## Bulkhead relative to nginx and Caddy",
        "",
        report.ratio_table(rows, args.workloads),
        "",
        "## Bulkhead's CPU per request, by process",
        "",
        report.cpu_split_table(rows),
        "",
        "CPU time of each process over the measured run divided by the requests served; a "
        "process that started or exited during the run is counted only through its parent.",
        "",
        "## Beside a slowloris",
        "",
        report.slowloris_table(rows, args.servers),
        "",
        "The same hello load while 500 more connections each hold a request head open, "
        "sending one header line every 5 s (`bench/slowloris.py`); `kept` is the share of "
        "the hello req/s left.",
        "",
        "## What a process boundary costs",
        "",
        report.boundary_table(rows, args.workloads),
        "",
        "nginx-split is nginx cut in two along Bulkhead's line: a front nginx that speaks to "
        "clients and proxies every request over HTTP/1.1 keep-alive on a Unix socket to a "
        "back nginx that serves files and talks to php-fpm (one worker each). It is a "
        "reference, not a contender: what the boundary costs the most efficient server here.",
        "",
        "## Targets",
        "",
        report.targets_table(rows, density_rows),
        "",
        "## Tenant density (Bulkhead)",
        "",
        report.density_table(density_rows) if density_rows else "not run",
        "",
        "## Machine",
        "",
        report.machine_table(info),
    ]
    if notes:
        parts += ["", "## Notes", ""] + [f"- {note}" for note in notes]
    return "\n".join(parts) + "\n"


def stop_on_term(_signum, _frame) -> None:
    raise SystemExit(143)  # unwinds through the `finally` that stops every server


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, stop_on_term)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    raw = args.out / f"raw-{stamp}"
    raw.mkdir(parents=True, exist_ok=True)
    args.tmp.chmod(0o755)  # Bulkhead's workers read the document roots under their own uids
    info = {"date": stamp, **machine_info()}
    spawner = procs.Spawner(args.tmp / "pgids")
    try:
        rows, density_rows, notes = run_all(args, raw, spawner)
    finally:
        spawner.stop_all()
        keep_files(args, raw)
    info["load average at end"] = load_average()
    text = compose(args, info, rows, density_rows, notes)
    print(text)
    path = args.out / f"results-{stamp}.md"
    path.write_text(text)
    say(f"written to {path} (tool output and logs in {raw})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
