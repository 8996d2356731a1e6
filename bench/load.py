"""The load generators: wrk for HTTP/1.1, h2load for h2c, and their output parsers.

Each run returns a `Load`: request count, duration, requests/s, p50/p99 latency and
errors. Errors are socket errors plus responses wrk counts as "Non-2xx or 3xx" (status ≥
400), or for h2load every finished request that was not 2xx plus failed, errored and
timed-out streams. h2load prints no percentiles, so they come from its per-request log.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from servers import HOST
from slowloris import Slowloris

WRK_THREADS = 2


@dataclass
class Load:
    requests: int
    seconds: float
    rps: float  # as the tool reports it: every response, failed ones included
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def ok_rps(self) -> float:
        """Successful responses per second: what the tables compare."""
        if not self.requests:
            return 0.0
        return self.rps * max(self.requests - self.errors, 0) / self.requests


@dataclass
class Workload:
    """One row group of the results: what to request, how, with how many connections."""

    key: str
    title: str
    path: str
    connections: int
    tool: str = "wrk"  # "wrk" | "h2load" | "wrk-tls" | "h2load-tls"
    lua: str | None = None
    streams: int = 1  # h2load -m
    slowloris: int = 0  # connections of a slowloris held open beside the load (slowloris.py)


WORKLOADS = [
    Workload("hello", "PHP hello world (14 bytes)", "/hello.php", 64),
    Workload("static", "static file, 1 KiB", "/static/1k.txt", 64),
    Workload("upload", "POST of 1 MiB to PHP, which reads it all", "/upload.php", 16,
             lua="upload.lua"),
    Workload("php-100k", "PHP page of 100 KiB", "/big.php", 64),
    Workload("hello-slowloris", "PHP hello world beside a slowloris of 500 connections",
             "/hello.php", 64, slowloris=500),
    Workload("h2c", "PHP hello world over HTTP/2", "/hello.php", 8,
             tool="h2load", streams=16),
    Workload("tls-new", "a new TLS connection per request, session resumed, 1 KiB static file",
             "/static/1k.txt", 16, tool="wrk-tls"),
    Workload("tls-full", "a new TLS connection per request, full handshake, 1 KiB static file",
             "/static/1k.txt", 64, tool="h2load-tls"),
]

TLS_TOOLS = ("wrk-tls", "h2load-tls")


def run(workload: Workload, port: int, seconds: float, raw: Path) -> Load:
    """Runs `workload` against 127.0.0.1:port for `seconds`; keeps the tool's output in
    `raw` (and h2load's request log beside it). A slowloris, if the workload has one, is
    opened before the tool starts and closed after it ends; its summary ends `raw`."""
    if not workload.slowloris:
        return _run_tool(workload, port, seconds, raw)
    with Slowloris(port, workload.slowloris) as attack:
        result = _run_tool(workload, port, seconds, raw)
    with open(raw, "a") as out:
        out.write(attack.summary() + "\n")
    return result


def _run_tool(workload: Workload, port: int, seconds: float, raw: Path) -> Load:
    if workload.tool == "h2load":
        return _h2load(workload, port, seconds, raw)
    if workload.tool == "h2load-tls":
        return _h2load_full_handshakes(workload, port, seconds, raw)
    return _wrk(workload, port, seconds, raw)


# --- wrk ---------------------------------------------------------------------------------


def _wrk(workload: Workload, port: int, seconds: float, raw: Path) -> Load:
    url, extra, wrap = f"http://127.0.0.1:{port}{workload.path}", [], []
    if workload.tool == "wrk-tls":
        url = f"https://{HOST}:{port}{workload.path}"
        extra, wrap = ["-H", "Connection: close"], _resolving_host(raw.parent)
    if workload.lua:
        extra += ["-s", str(Path(__file__).resolve().parent / workload.lua)]
    argv = [*wrap, "wrk", "-t", str(WRK_THREADS), "-c", str(workload.connections),
            "-d", f"{seconds:g}s", "--latency", "-H", f"Host: {HOST}", *extra, url]
    out = _run(argv, raw)
    return parse_wrk(out)


def _resolving_host(dir: Path) -> list[str]:
    """A command prefix under which HOST resolves to 127.0.0.1, so that wrk sends it as the
    TLS server name (SNI) as a browser would: /etc/hosts is replaced in a private mount
    namespace, for the wrapped command only."""
    hosts = dir / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {HOST}\n")
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, str(hosts)]


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * _UNITS_MS[unit]


def parse_wrk(out: str) -> Load:
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if not done:
        raise ValueError(f"unexpected wrk output:\n{out}")
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = sum(map(int, socket_errors.groups())) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Load(
        requests=int(done.group(1)),
        seconds=_duration_ms(done.group(2) + done.group(3)) / 1000,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_duration_ms(percentiles["50"]),
        p99_ms=_duration_ms(percentiles["99"]),
        errors=errors,
    )


# --- h2load ------------------------------------------------------------------------------


def _h2load(workload: Workload, port: int, seconds: float, raw: Path) -> Load:
    log = raw.with_suffix(".requests.tsv")
    argv = ["h2load", "-c", str(workload.connections), "-m", str(workload.streams),
            "-D", f"{round(seconds * 1000)}ms", "-H", f":authority: {HOST}", f"--log-file={log}",
            f"http://127.0.0.1:{port}{workload.path}"]
    out = _run(argv, raw)
    return parse_h2load(out, log)


def _h2load_full_handshakes(workload: Workload, port: int, seconds: float, raw: Path) -> Load:
    """Rounds of `connections` new HTTPS connections, one request each, until `seconds`
    have passed. wrk keeps a connection's TLS session and resumes it on the next one (the
    `tls-new` workload), so it never makes a server sign; h2load starts every client with
    a fresh session, so each connection is a full handshake with a signature. Only the
    time h2load reports for its rounds counts (not its start-up between them). Latency
    percentiles are not measured: h2load's log times the request, not the handshake."""
    url = f"https://{HOST}:{port}{workload.path}"
    n = str(workload.connections)
    argv = [*_resolving_host(raw.parent), "h2load", "--h1", "-c", n, "-n", n, "-m", "1", url]
    total = Load(requests=0, seconds=0.0, rps=0.0, p50_ms=float("nan"), p99_ms=float("nan"),
                 errors=0)
    outputs, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
        outputs.append(out)
        one = parse_h2load_counts(out)
        total.requests += one.requests
        total.seconds += one.seconds
        total.errors += one.errors
    raw.write_text("\n".join(outputs))
    if not total.seconds:
        raise RuntimeError("h2load ran no round")
    total.rps = total.requests / total.seconds
    return total


def parse_h2load_counts(out: str) -> Load:
    """Requests, duration and errors of one h2load run; no latencies."""
    finished = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (finished and counts and codes):
        raise ValueError(f"unexpected h2load output:\n{out}")
    _total, _started, done, _ok, failed, errored, timeout = map(int, counts.groups())
    return Load(
        requests=done,
        seconds=_duration_ms(finished.group(1) + finished.group(2)) / 1000,
        rps=float(finished.group(3)),
        p50_ms=float("nan"),
        p99_ms=float("nan"),
        errors=max(done - int(codes.group(1)), failed) + errored + timeout,
    )


def parse_h2load(out: str, log: Path) -> Load:
    """One h2load run, with latency percentiles from its per-request log."""
    result = parse_h2load_counts(out)
    latencies = sorted(_h2load_latencies_ms(log))
    result.p50_ms = percentile(latencies, 50)
    result.p99_ms = percentile(latencies, 99)
    return result


def _h2load_latencies_ms(log: Path) -> list[float]:
    """Durations from h2load's log: start (µs since epoch), status, duration (µs)."""
    out = []
    with open(log) as lines:
        for line in lines:
            fields = line.split()
            if len(fields) == 3:
                out.append(int(fields[2]) / 1000)
    return out


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list (nan if empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --- running a tool ----------------------------------------------------------------------


def _run(argv: list[str], raw: Path) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    raw.write_text(f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}:\n{proc.stderr[-2000:]}")
    return proc.stdout
