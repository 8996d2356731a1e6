"""Tests of the load tools' parsers and of the full-handshake rounds, on output captured
from real wrk and h2load runs (bench/testdata/). Run by scripts/test.sh:

    python3 -m unittest discover -s bench
"""

from __future__ import annotations

import math
import subprocess
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import load
import report

DATA = Path(__file__).resolve().parent / "testdata"

WRK_WITH_ERRORS = """\
Running 10s test @ http://127.0.0.1:8080/hello.php
  2 threads and 64 connections
  Latency Distribution
     50%  812.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.50s
  1000 requests in 2.00s, 1.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 10
Requests/sec:    500.00
"""


class WrkTest(unittest.TestCase):
    def test_keep_alive_run(self):
        got = load.parse_wrk((DATA / "wrk-hello.txt").read_text())
        self.assertEqual(got.requests, 75653)
        self.assertAlmostEqual(got.seconds, 10.02)
        self.assertAlmostEqual(got.rps, 7553.94)
        self.assertAlmostEqual(got.p50_ms, 8.41)
        self.assertAlmostEqual(got.p99_ms, 13.15)
        self.assertEqual(got.errors, 0)
        self.assertAlmostEqual(got.ok_rps, got.rps)

    def test_errors_and_units(self):
        got = load.parse_wrk(WRK_WITH_ERRORS)
        self.assertEqual(got.errors, 1 + 2 + 0 + 3 + 10)
        self.assertAlmostEqual(got.p50_ms, 0.812)
        self.assertAlmostEqual(got.p99_ms, 1500.0)
        self.assertAlmostEqual(got.ok_rps, 500.0 * (1000 - 16) / 1000)

    def test_latencies_in_seconds_have_a_trailing_space(self):
        # wrk pads a value in seconds ("1.37s "); a run with timeouts has such a p99.
        got = load.parse_wrk((DATA / "wrk-seconds-timeouts.txt").read_text())
        self.assertAlmostEqual(got.p50_ms, 0.295)
        self.assertAlmostEqual(got.p99_ms, 1370.0)
        self.assertEqual(got.errors, 30)

    def test_refuses_foreign_output(self):
        with self.assertRaises(ValueError):
            load.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


class H2loadTest(unittest.TestCase):
    def test_h2c_run_with_percentiles_from_its_log(self):
        out = (DATA / "h2load-h2c.txt").read_text()
        got = load.parse_h2load(out, DATA / "h2load-h2c.requests.tsv")
        self.assertEqual((got.requests, got.errors), (74142, 0))
        self.assertAlmostEqual(got.rps, 7414.2)
        self.assertAlmostEqual(got.p50_ms, 15.065)
        self.assertAlmostEqual(got.p99_ms, 20.835)

    def test_one_full_handshake_round_has_no_percentiles(self):
        got = load.parse_h2load_counts((DATA / "h2load-tls-round.txt").read_text())
        self.assertEqual((got.requests, got.errors), (64, 0))
        self.assertAlmostEqual(got.seconds, 0.04665)
        self.assertTrue(math.isnan(got.p50_ms) and math.isnan(got.p99_ms))
        self.assertEqual(report._num(got.p99_ms, 2), "–")

    def test_failed_streams_count_as_errors(self):
        out = (DATA / "h2load-tls-round.txt").read_text()
        out = out.replace("64 done, 64 succeeded, 0 failed", "64 done, 60 succeeded, 4 failed")
        out = out.replace("64 2xx, 0 3xx, 0 4xx, 0 5xx", "58 2xx, 0 3xx, 0 4xx, 6 5xx")
        self.assertEqual(load.parse_h2load_counts(out).errors, 6)


class FullHandshakeRoundsTest(unittest.TestCase):
    def test_rounds_add_up_until_the_duration_is_used(self):
        round_out = (DATA / "h2load-tls-round.txt").read_text()
        done = subprocess.CompletedProcess([], 0, stdout=round_out, stderr="")
        clock = iter([0.0, 1.0, 2.0, 3.0, 4.0])  # deadline at 3.5: three rounds
        workload = next(w for w in load.WORKLOADS if w.key == "tls-full")
        raw = Path(self._tmp()) / "tls-full.txt"
        with mock.patch.object(load.subprocess, "run", return_value=done) as run, \
                mock.patch.object(load.time, "monotonic", side_effect=lambda: next(clock)):
            got = load.run(workload, 443, 3.5, raw)
        self.assertEqual(run.call_count, 3)
        argv = run.call_args.args[0]
        self.assertIn("h2load", argv)
        self.assertEqual(argv[argv.index("-n") + 1], str(workload.connections))
        self.assertEqual(got.requests, 3 * 64)
        self.assertAlmostEqual(got.seconds, 3 * 0.04665)
        self.assertAlmostEqual(got.rps, 3 * 64 / (3 * 0.04665))
        self.assertEqual(raw.read_text().count("finished in"), 3)

    def test_no_round_is_an_error(self):
        workload = next(w for w in load.WORKLOADS if w.key == "tls-full")
        with self.assertRaises(RuntimeError):
            load.run(workload, 443, 0, Path(self._tmp()) / "none.txt")

    def _tmp(self) -> str:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name


if __name__ == "__main__":
    unittest.main()
