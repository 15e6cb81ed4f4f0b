"""benchmarks/distributed.py: the on-paper model and a step measured in a world of one."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import distributed as bench  # noqa: E402


def test_ring_allreduce_time() -> None:
    # 2 (N - 1) / N of 1 MB over 1 GB/s, plus 2 (N - 1) latencies of 10 us
    assert bench.ring_allreduce_seconds(1e6, 4, 1e9, 1e-5) == pytest.approx(1.5e-3 + 6e-5)
    assert bench.ring_allreduce_seconds(1e6, 2, 1e9, 0.0) == pytest.approx(1e-3)
    assert bench.ring_allreduce_seconds(1e6, 1, 1e9, 1e-5) == 0.0


def test_scaling_rows_give_time_efficiency_and_throughput() -> None:
    rows = bench.scaling_rows(1.25e6, 0.02, 100)
    assert [r[0] for r in rows] == [name for name, _, _ in bench.LINKS]
    # 10 GbE, N = 2: 1.25 MB / 1.25 GB/s = 1 ms + 2 x 20 us; efficiency 20 / 21.04
    assert rows[1][1] == "1.04 ms, 95%, 9,506/s"


def test_throughput_in_a_world_of_one() -> None:
    args = bench.parse_args(["--worker", "throughput", "--global-batch", "4", "--steps", "2",
                             "--warmup", "1", "--hidden", "4", "--layers", "1", "--seq", "3",
                             "--input-size", "5", "--classes", "3"])
    result = bench._throughput(args)
    assert result["processes"] == 1 and result["local_batch"] == 4
    # 4 gates x (i2h 4 x 5 + 4, h2h 4 x 4 + 4) + Linear(4 -> 3)
    assert result["parameters"] == 4 * (24 + 20) + 15
    assert result["samples_per_s"] == pytest.approx(4 / result["median_step_s"])
