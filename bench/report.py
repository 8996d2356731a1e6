"""Markdown tables from the measurements: results per workload and server, Bulkhead's
ratios to nginx and Caddy, what a process boundary costs (nginx split in two), the
targets, tenant density, and the machine."""

from __future__ import annotations

import math
from dataclasses import dataclass

from density import DensityRow
from load import Load, Workload
from procs import Usage

MIB = 1024.0


@dataclass
class Row:
    """One server under one workload; `load` is None when it did not run (see `note`)."""

    workload: Workload
    server: str
    load: Load | None = None
    usage: Usage | None = None
    fpm: Usage | None = None
    note: str = ""

    def cpu_per_10k(self, usage: Usage | None = None) -> float:
        usage = usage or self.usage
        if not (self.load and usage and self.load.requests):
            return math.nan
        return usage.cpu_s / self.load.requests * 10_000


# --- formatting --------------------------------------------------------------------------


def _num(value: float, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def _mib(kib: float) -> str:
    return _num(kib / MIB, 1)


def _ratio(a: float, b: float) -> str:
    if not a or not b or math.isnan(a) or math.isnan(b):
        return "–"
    return f"{a / b:.2f}×"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- the tables --------------------------------------------------------------------------


def workloads_table(workloads: list[Workload]) -> str:
    out = []
    for w in workloads:
        how = {"wrk": "wrk, HTTP/1.1 keep-alive", "h2load": "h2load, h2c prior knowledge",
               "wrk-tls": "wrk, `Connection: close` over TLS",
               "h2load-tls": "h2load rounds, one request per TLS connection"}[w.tool]
        conns = f"{w.connections}" + (f" × {w.streams} streams" if w.streams > 1 else "")
        out.append([w.key, w.title, f"`{w.path}`", how, conns])
    return table(["workload", "what", "path", "client", "connections"], out)


def results_table(rows: list[Row]) -> str:
    header = ["workload", "server", "req/s", "p50 ms", "p99 ms", "errors", "CPU s/10k req",
              "peak RSS MiB", "procs", "php-fpm CPU s/10k", "php-fpm RSS MiB"]
    out = []
    for row in rows:
        if row.load is None:
            out.append([row.workload.key, row.server, row.note] + [""] * (len(header) - 3))
            continue
        load, usage, fpm = row.load, row.usage, row.fpm
        out.append([
            row.workload.key, row.server, _num(load.ok_rps), _num(load.p50_ms, 2),
            _num(load.p99_ms, 2), str(load.errors), _num(row.cpu_per_10k(), 2),
            _mib(usage.peak_rss_kib), str(usage.processes), _num(row.cpu_per_10k(fpm), 2),
            _mib(fpm.peak_rss_kib),
        ])
    return table(header, out)


def _find(rows: list[Row], key: str, server: str) -> Row | None:
    for row in rows:
        if row.workload.key == key and row.server == server and row.load:
            return row
    return None


# Bulkhead's processes by command name (the kernel keeps 15 characters of it).
BULKHEAD_PROCESSES = [("gateway", "bulkhead-gatewa"), ("worker", "bulkhead-worker"),
                      ("keyholder", "bulkhead-keyhol"), ("broker", "bulkhead")]


def _us_per_request(cpu_s: float | None, row: Row) -> float:
    if cpu_s is None or not (row.load and row.load.requests):
        return math.nan
    return cpu_s / row.load.requests * 1e6


def cpu_split_table(rows: list[Row]) -> str:
    """Bulkhead's CPU per request by process, next to all of nginx's and to php-fpm's."""
    header = ["workload", *(f"{label} µs" for label, _ in BULKHEAD_PROCESSES),
              "Bulkhead µs", "nginx µs", "php-fpm µs (Bulkhead run)"]
    out = []
    for row in rows:
        if row.server != "bulkhead" or not row.usage:
            continue
        nginx = next((r for r in rows if r.server == "nginx" and r.workload == row.workload),
                     None)
        split = [_num(_us_per_request(row.usage.cpu_by_name.get(comm, 0.0), row), 1)
                 for _, comm in BULKHEAD_PROCESSES]
        nginx_us = _us_per_request(nginx.usage.cpu_s, nginx) if nginx and nginx.usage else math.nan
        fpm_us = _us_per_request(row.fpm.cpu_s if row.fpm else None, row)
        out.append([row.workload.key, *split, _num(_us_per_request(row.usage.cpu_s, row), 1),
                    _num(nginx_us, 1), _num(fpm_us, 1)])
    return table(header, out)


def ratio_table(rows: list[Row], workloads: list[Workload]) -> str:
    header = ["workload"]
    for other in ("nginx", "caddy"):
        header += [f"req/s vs {other}", f"p99 vs {other}", f"CPU/req vs {other}",
                   f"RSS vs {other}"]
    out = []
    for workload in workloads:
        mine = _find(rows, workload.key, "bulkhead")
        line = [workload.key]
        if mine and mine.load.errors:
            line = [f"{workload.key} ({mine.load.errors / mine.load.requests:.0%} errors)"]
        for other in ("nginx", "caddy"):
            theirs = _find(rows, workload.key, other)
            if not (mine and theirs):
                line += ["–"] * 4
                continue
            line += [
                _ratio(mine.load.ok_rps, theirs.load.ok_rps),
                _ratio(mine.load.p99_ms, theirs.load.p99_ms),
                _ratio(mine.cpu_per_10k(), theirs.cpu_per_10k()),
                _ratio(mine.usage.peak_rss_kib, theirs.usage.peak_rss_kib),
            ]
        out.append(line)
    return table(header, out)


# The reference: nginx cut into two processes along Bulkhead's line (servers.NginxSplit).
SPLIT = "nginx-split"


def _rps_ratio(a: Row | None, b: Row | None) -> str:
    return _ratio(a.load.ok_rps, b.load.ok_rps) if a and b else "–"


def _cpu_ratio(a: Row | None, b: Row | None) -> str:
    return _ratio(a.cpu_per_10k(), b.cpu_per_10k()) if a and b else "–"


def boundary_table(rows: list[Row], workloads: list[Workload]) -> str:
    """What crossing a process boundary costs: nginx split in two against nginx whole, and
    Bulkhead against both."""
    header = ["workload", "nginx-split req/s vs nginx", "Bulkhead req/s vs nginx",
              "Bulkhead req/s vs nginx-split", "nginx-split CPU/req vs nginx",
              "Bulkhead CPU/req vs nginx-split"]
    out = []
    for workload in workloads:
        nginx, split = _find(rows, workload.key, "nginx"), _find(rows, workload.key, SPLIT)
        mine = _find(rows, workload.key, "bulkhead")
        if not (nginx and split):
            continue
        out.append([workload.key, _rps_ratio(split, nginx), _rps_ratio(mine, nginx),
                    _rps_ratio(mine, split), _cpu_ratio(split, nginx), _cpu_ratio(mine, split)])
    return table(header, out) if out else "not measured (run with nginx and nginx-split)"


def slowloris_table(rows: list[Row], servers: list[str]) -> str:
    """Each server's hello req/s and p99 without and beside a slowloris (`hello-slowloris`)."""
    header = ["server", "hello req/s", "beside a slowloris req/s", "kept", "hello p99 ms",
              "beside a slowloris p99 ms", "errors beside it"]
    out = []
    for server in servers:
        alone, beside = _find(rows, "hello", server), _find(rows, "hello-slowloris", server)
        if not (alone and beside):
            continue
        out.append([server, f"{alone.load.ok_rps:,.0f}", f"{beside.load.ok_rps:,.0f}",
                    _ratio(beside.load.ok_rps, alone.load.ok_rps), _num(alone.load.p99_ms, 2),
                    _num(beside.load.p99_ms, 2), f"{beside.load.errors:,}"])
    return table(header, out) if out else "not measured (run hello and hello-slowloris)"


def targets_table(rows: list[Row], density: list[DensityRow]) -> str:
    out = []

    def ratio_target(name, key, field, limit, at_least):
        mine, theirs = _find(rows, key, "bulkhead"), _find(rows, key, "nginx")
        split = _find(rows, key, SPLIT)
        reference = _ratio(getattr(split.load, field), getattr(theirs.load, field)) \
            if split and theirs else "–"
        if not (mine and theirs):
            out.append([name, "not measured", "–", reference])
            return
        value = getattr(mine.load, field) / getattr(theirs.load, field)
        met = (value >= limit if at_least else value <= limit) and not mine.load.errors
        errors = f" ({mine.load.errors:,} errors)" if mine.load.errors else ""
        out.append([name, f"{value:.2f}× nginx{errors}", "met" if met else "**missed**",
                    reference])

    ratio_target("PHP hello world req/s ≥ 1.0× nginx", "hello", "ok_rps", 1.0, True)
    ratio_target("PHP hello world p99 ≤ 1.2× nginx", "hello", "p99_ms", 1.2, False)
    ratio_target("static 1 KiB req/s ≥ 0.8× nginx", "static", "ok_rps", 0.8, True)
    per_app = idle_cost(density)
    if per_app is None:
        out.append(["idle worker ≤ 4 MiB RSS", "not measured", "–", "–"])
    else:
        met = per_app <= 4 * MIB
        out.append(["idle worker ≤ 4 MiB RSS", f"{per_app / MIB:.2f} MiB per app",
                    "met" if met else "**missed**", "–"])
    return table(["target", "measured", "result", "nginx-split, same measure"], out)


def idle_cost(density: list[DensityRow]) -> float | None:
    """(RSS_N - RSS_smallest) / (N - smallest), in KiB, for the largest N, with a worker
    running for every app (eager mode)."""
    density = [row for row in density if row.mode == "eager"]
    if len(density) < 2:
        return None
    base, top = density[0], density[-1]
    return (top.rss_kib - base.rss_kib) / (top.apps - base.apps)


def density_table(density: list[DensityRow]) -> str:
    header = ["mode", "apps", "startup s", "processes", "RSS MiB", "PSS MiB",
              "idle RSS/app MiB", "idle PSS/app MiB", "worker RSS MiB (median)",
              "worker PSS MiB (median)", "first request ms", "second request ms"]
    out = []
    bases = {}
    for row in density:
        bases.setdefault(row.mode, row)
    for row in density:
        base = bases[row.mode]
        per_rss = per_pss = "–"
        if base and row.apps > base.apps:
            per_rss = _mib((row.rss_kib - base.rss_kib) / (row.apps - base.apps))
            per_pss = _mib((row.pss_kib - base.pss_kib) / (row.apps - base.apps))
        apps = str(row.apps) + (f" ({row.note})" if row.note else "")
        out.append([
            row.mode, apps, _num(row.startup_s, 2), str(row.processes), _mib(row.rss_kib),
            _mib(row.pss_kib), per_rss, per_pss, _mib(row.worker_rss_kib),
            _mib(row.worker_pss_kib), _num(row.first_ms, 1), _num(row.second_ms, 1),
        ])
    return table(header, out)


def machine_table(info: dict[str, str]) -> str:
    return table(["", ""], [[key, f"`{value}`" if value else "–"] for key, value in info.items()])
