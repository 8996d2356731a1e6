"""Starting, measuring and stopping the processes under test.

Every server and php-fpm runs in its own process group, recorded in a file that
`run.sh` reads on exit, so nothing the benchmark starts outlives it even if this
script is killed. Measurements come from /proc of the host: CPU is utime+stime of
the live process tree (a root and all its descendants) plus what its members'
exited children used; memory is the sum of VmRSS over that tree (and PSS, from
smaps_rollup, where double counting of shared pages matters).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
STOP_TIMEOUT = 10.0


# --- reading /proc -----------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process on the host."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                out[int(entry)] = int(fields[1])
    return out


def tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of `pids` (all threads) and of their children that exited and were waited
    for (cutime, cstime: a worker restarted mid-run still counts), in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / CLOCK_TICKS


def cpu_seconds_by_name(pids: list[int]) -> dict[str, float]:
    """`cpu_seconds` per command name (`/proc/PID/comm`, at most 15 characters): which
    process of a tree the time went to."""
    out: dict[str, float] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields:
            out[name] = out.get(name, 0.0) + sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    return out


def rss_kib(pids: list[int]) -> int:
    """Sum of resident set sizes of `pids` (from statm, which is cheap to read)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total


def pss_kib(pids: list[int]) -> int:
    """Sum of proportional set sizes: shared pages divided among their sharers."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass
    return total


# --- measuring a run ---------------------------------------------------------------------


@dataclass
class Usage:
    """What a process tree used during one measured run."""

    cpu_s: float
    peak_rss_kib: int
    processes: int
    # CPU seconds by command name, for the processes alive at both ends of the run.
    cpu_by_name: dict[str, float] = field(default_factory=dict)


class Meter:
    """Samples the RSS of several process trees in a thread while a load runs, and takes
    CPU snapshots of each tree at start and stop."""

    def __init__(self, roots: dict[str, int], interval: float = 0.2):
        self.roots = roots
        self.interval = interval
        self._peak = {name: 0 for name in roots}
        self._count = {name: 0 for name in roots}
        self._cpu0: dict[str, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)

    def __enter__(self) -> "Meter":
        self._sample()
        self._cpu0 = {name: cpu_seconds(tree(pid)) for name, pid in self.roots.items()}
        self._by0 = {name: cpu_seconds_by_name(tree(pid)) for name, pid in self.roots.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._cpu1 = {name: cpu_seconds(tree(pid)) for name, pid in self.roots.items()}
        self._by1 = {name: cpu_seconds_by_name(tree(pid)) for name, pid in self.roots.items()}
        self._done.set()
        self._thread.join()
        self._sample()

    def usage(self, name: str) -> Usage:
        cpu = self._cpu1[name] - self._cpu0[name]
        before, after = self._by0[name], self._by1[name]
        by_name = {comm: t - before.get(comm, 0.0) for comm, t in after.items()}
        return Usage(cpu_s=cpu, peak_rss_kib=self._peak[name], processes=self._count[name],
                     cpu_by_name=by_name)

    def _sample_loop(self) -> None:
        while not self._done.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        for name, root in self.roots.items():
            pids = tree(root)
            self._peak[name] = max(self._peak[name], rss_kib(pids))
            self._count[name] = max(self._count[name], len(pids))


# --- starting and stopping ---------------------------------------------------------------


class Spawner:
    """Starts processes in their own process groups and stops them all at the end.

    The group ids are appended to `ledger`, one a line, for run.sh's EXIT trap."""

    def __init__(self, ledger: Path):
        self.ledger = ledger
        self.live: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        with open(self.ledger, "a") as ledger:
            ledger.write(f"{proc.pid}\n")
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM to the root, wait, then SIGKILL whatever of its tree and group is left."""
        pids = tree(proc.pid)
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc.pid, signal.SIGKILL)
        for pid in pids:
            _kill(pid)
        proc.wait()
        _wait_gone(pids)
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            self.stop(proc)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if _stat_fields(pid) and _stat_fields(pid)[0] != "Z"]
        if not alive:
            return
        time.sleep(0.05)
