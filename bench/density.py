"""Tenant density: Bulkhead with N apps, each with its own document root, all on the
shared php-fpm socket, with workers started eagerly or on demand.

For each N: the time from starting the broker until every app has answered, the memory
of all Bulkhead processes once idle, and the latency of the very first request to an app
(one that nothing has touched since start: its worker has served nothing and php-fpm has
not compiled its script). The apps are probed in order; the last few are kept untouched
until all others answer, then each gets one timed request, then a second (warm) one.

On demand (`on_demand = true`), no worker runs until an app's first request: startup is
until the first app answers, memory is read with nothing else touched (the idle cost of
configured-but-unused apps), and the first request to a fresh app includes starting its
worker (the cold start).
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import procs
from servers import BENCH_DIR, Bulkhead, get

FRESH_APPS = 5  # apps kept untouched for the first-request measurement
STARTUP_TIMEOUT = 300.0
SETTLE = 1.0  # seconds between the last answer and the memory reading


@dataclass
class DensityRow:
    apps: int
    startup_s: float
    processes: int
    rss_kib: int
    pss_kib: int
    worker_rss_kib: float  # median over worker processes
    worker_pss_kib: float
    first_ms: float  # median over the fresh apps
    second_ms: float
    mode: str = "eager"  # or "on-demand"
    note: str = ""


def make_roots(base: Path, n: int) -> list[tuple[str, Path]]:
    """`n` apps named app-001…, each a document root holding index.php."""
    apps = []
    for i in range(1, n + 1):
        name = f"app-{i:03d}"
        root = base / name
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(BENCH_DIR / "site" / "index.php", root / "index.php")
        root.chmod(0o755)
        (root / "index.php").chmod(0o644)
        apps.append((name, root))
    return apps


def measure(n: int, dir: Path, fpm_socket: Path, binary: Path,
            spawner: procs.Spawner, on_demand: bool = False) -> DensityRow:
    apps = make_roots(dir / "roots", n)
    server = Bulkhead(f"bulkhead-{n}", dir / "bulkhead", site=dir, fpm_socket=fpm_socket,
                      binary=binary, apps=apps, on_demand=on_demand)
    fresh = apps[n - max(1, min(FRESH_APPS, n // 2)):]
    started = time.monotonic()
    server.proc = spawner.start(server.argv(), server.log, env=server.env())
    try:
        if on_demand:
            return _measure_on_demand(n, server, apps[0][0], fresh, started)
        for name, _root in apps[: len(apps) - len(fresh)]:
            _poll(server.port, name, started)
        first = [_timed(server.port, name, started) for name, _root in fresh]
        startup = time.monotonic() - started
        second = [_timed(server.port, name, started) for name, _root in fresh]
        time.sleep(SETTLE)
        return _memory_row(n, server, startup, first, second)
    finally:
        spawner.stop(server.proc)


def _measure_on_demand(n: int, server: Bulkhead, probe: str, fresh: list,
                       started: float) -> DensityRow:
    """One app woken to know the gateway serves; memory with the rest untouched; then
    the cold and warm requests to the fresh apps."""
    _poll(server.port, probe, started)
    startup = time.monotonic() - started
    time.sleep(SETTLE)
    idle = _memory_row(n, server, startup, [0.0], [0.0])
    first = [_timed(server.port, name, started) for name, _root in fresh]
    second = [_timed(server.port, name, started) for name, _root in fresh]
    idle.first_ms, idle.second_ms = statistics.median(first), statistics.median(second)
    idle.mode, idle.note = "on-demand", ""
    return idle


def _poll(port: int, app: str, started: float) -> None:
    """Asks `app` until it answers 200."""
    while True:
        try:
            if get(port, "/", host=f"{app}.localhost", timeout=10.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() - started > STARTUP_TIMEOUT:
            raise RuntimeError(f"{app} did not answer within {STARTUP_TIMEOUT:.0f}s")
        time.sleep(0.02)


def _timed(port: int, app: str, started: float) -> float:
    """Milliseconds of one request to `app`; if it is not a 200, waits until it answers
    and counts the whole wait."""
    t0 = time.monotonic()
    try:
        ok = get(port, "/", host=f"{app}.localhost", timeout=10.0)[0] == 200
    except OSError:
        ok = False
    if not ok:
        _poll(port, app, started)
    return (time.monotonic() - t0) * 1000


def _memory_row(n: int, server: Bulkhead, startup: float, first: list[float],
                second: list[float]) -> DensityRow:
    pids = procs.tree(server.proc.pid)
    workers = [pid for pid in pids if _comm(pid) == "bulkhead-worker"]
    note = "" if len(workers) == n else f"{len(workers)} worker processes for {n} apps"
    return DensityRow(
        apps=n,
        startup_s=startup,
        processes=len(pids),
        rss_kib=procs.rss_kib(pids),
        pss_kib=procs.pss_kib(pids),
        worker_rss_kib=statistics.median(procs.rss_kib([p]) for p in workers) if workers else 0,
        worker_pss_kib=statistics.median(procs.pss_kib([p]) for p in workers) if workers else 0,
        first_ms=statistics.median(first),
        second_ms=statistics.median(second),
        note=note,
    )


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
