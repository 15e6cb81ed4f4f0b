"""Smoke test of ``python -m benchmarks.conv``: tiny sizes, the table printed (no timing asserted)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_quick_conv_benchmark_prints_both_peers_and_the_profile(tmp_path):
    out = tmp_path / "conv.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.conv", "--quick", "--profile",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for fragment in ("| nngraph", "| torch", "vs torch", "peak RSS MB",
                     "SpatialConvolution(1 -> 2, 3x3", "where nngraph_py's step goes"):
        assert fragment in proc.stdout
    assert out.exists()
