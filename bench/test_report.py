"""Tests of the report's per-process CPU, process-boundary and targets tables. Run by scripts/test.sh:

    python3 -m unittest discover -s bench
"""

from __future__ import annotations

import unittest

import load
import report
from procs import Usage


def _row(server: str, requests: int, cpu_s: float, by_name: dict[str, float], fpm_s: float,
         p99_ms: float = 2.0, key: str = "hello"):
    workload = next(w for w in load.WORKLOADS if w.key == key)
    result = load.Load(requests=requests, seconds=10.0, rps=requests / 10, p50_ms=1.0,
                       p99_ms=p99_ms, errors=0)
    usage = Usage(cpu_s=cpu_s, peak_rss_kib=1024, processes=len(by_name), cpu_by_name=by_name)
    fpm = Usage(cpu_s=fpm_s, peak_rss_kib=1024, processes=5)
    return report.Row(workload, server, result, usage, fpm)


class CpuSplitTest(unittest.TestCase):
    def test_microseconds_per_request_by_process(self):
        bulkhead = _row("bulkhead", 10_000, 1.2, {"bulkhead-gatewa": 0.4, "bulkhead-worker": 0.7,
                                                  "bulkhead": 0.1}, 0.9)
        nginx = _row("nginx", 20_000, 1.4, {"nginx": 1.4}, 1.8)
        text = report.cpu_split_table([bulkhead, nginx])
        lines = text.splitlines()
        self.assertEqual(len(lines), 3, text)  # header, rule, one row: Bulkhead's only
        cells = [c.strip() for c in lines[2].strip("|").split("|")]
        # gateway, worker, keyholder (absent: 0), broker, Bulkhead, nginx, php-fpm
        self.assertEqual(cells, ["hello", "40.0", "70.0", "0.0", "10.0", "120.0", "70.0", "90.0"])

    def test_no_nginx_row_gives_a_dash(self):
        bulkhead = _row("bulkhead", 100, 0.01, {"bulkhead-worker": 0.01}, 0.0)
        cells = report.cpu_split_table([bulkhead]).splitlines()[2].strip("|").split("|")
        self.assertEqual(cells[6].strip(), "–")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("|").split("|")]


class BoundaryTest(unittest.TestCase):
    def setUp(self):
        self.rows = [
            _row("bulkhead", 8_000, 1.2, {}, 0.9, p99_ms=3.0),
            _row("nginx", 10_000, 1.0, {}, 0.9, p99_ms=2.0),
            _row("nginx-split", 9_000, 1.35, {}, 0.9, p99_ms=2.5),
        ]
        self.hello = [w for w in load.WORKLOADS if w.key == "hello"]

    def test_ratios_between_the_three(self):
        lines = report.boundary_table(self.rows, self.hello).splitlines()
        self.assertEqual(len(lines), 3)
        # req/s: split/nginx, bulkhead/nginx, bulkhead/split; then CPU s per 10k requests:
        # split 1.35/0.9 = 1.5 against nginx's 1.0, bulkhead 1.2/0.8 = 1.5 against split's 1.5
        self.assertEqual(_cells(lines[2]), ["hello", "0.90×", "0.80×", "0.89×", "1.50×", "1.00×"])

    def test_without_the_reference_says_so(self):
        text = report.boundary_table(self.rows[:2], self.hello)
        self.assertIn("not measured", text)

    def test_targets_show_the_reference_beside_bulkhead(self):
        lines = report.targets_table(self.rows, []).splitlines()
        rps, p99 = _cells(lines[2]), _cells(lines[3])
        self.assertEqual(rps[1:], ["0.80× nginx", "**missed**", "0.90×"])
        self.assertEqual(p99[1:], ["1.50× nginx", "**missed**", "1.25×"])


class SlowlorisTest(unittest.TestCase):
    def test_hello_with_and_without_the_slowloris_per_server(self):
        rows = [
            _row("bulkhead", 8_000, 1.0, {}, 0.9, p99_ms=3.0),
            _row("bulkhead", 6_000, 1.0, {}, 0.9, p99_ms=4.0, key="hello-slowloris"),
            _row("nginx", 10_000, 1.0, {}, 0.9),
        ]
        lines = report.slowloris_table(rows, ["bulkhead", "nginx"]).splitlines()
        self.assertEqual(len(lines), 3)  # nginx has no slowloris row
        self.assertEqual(_cells(lines[2]), ["bulkhead", "800", "600", "0.75×", "3.00", "4.00", "0"])

    def test_without_the_workload_says_so(self):
        text = report.slowloris_table([_row("nginx", 10, 1.0, {}, 0.9)], ["nginx"])
        self.assertIn("not measured", text)


if __name__ == "__main__":
    unittest.main()
