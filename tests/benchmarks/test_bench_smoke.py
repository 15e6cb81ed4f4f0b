"""Smoke test of ``python -m benchmarks.lstm``: it runs at tiny sizes and reports what it should.

No timing is asserted: the machine running the tests may be loaded. The OpenBLAS pins of the
environment (``OPENBLAS_CORETYPE``, ``OPENBLAS_L2_SIZE``) are left as they are
(``--keep-openblas-env``).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from benchmarks.lstm import main_table
from benchmarks.peers import LABELS, REFERENCE
from benchmarks.workloads import QUICK

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_NUMBA = importlib.util.find_spec("numba") is not None


def test_quick_run_prints_tables_and_writes_json(tmp_path):
    peers = (["nngraph-recipe", "nngraph-optimized"] + (["nngraph-numba"] if HAS_NUMBA else [])
             + (["torch-lstm"] if HAS_TORCH else []))
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.lstm", "--quick", "--repeat", "1", "--warmup", "0",
         "--peers", ",".join(peers), "--keep-openblas-env", "--silent", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    for name in ("mnist", "char"):
        assert f"### {name}:" in text
    for key in peers:
        assert LABELS[key] in text
    assert "step ms median" in text and "peak RSS MB" in text and "after import MB" in text
    assert "### Guard" in text and "FAILED" not in text

    report = json.loads(out_json.read_text())
    assert set(report) >= {"meta", "guard", "results"}
    assert report["guard"]["ok"] is True
    assert report["meta"]["threads"] == 1 and report["meta"]["quick"] is True
    for name in ("mnist", "char"):
        entry = report["results"][name]
        assert entry["workload"]["name"] == name
        assert list(entry["peers"]) == peers
        for key in peers:
            r = entry["peers"][key]
            assert len(r["step_ms"]) == len(r["step_cpu_ms"]) == 1 and len(r["fwd_ms"]) == 1
            assert r["median_step_ms"] > 0 and r["median_fwd_ms"] > 0
            assert r["memory"]["peak_mb"] >= r["memory"]["import_mb"] > 0
            assert r["loss_first"] > 0
        # Our two entries start from the same weights: the same first loss.
        ours = entry["peers"]
        assert abs(ours["nngraph-recipe"]["loss_first"]
                   - ours["nngraph-optimized"]["loss_first"]) < 1e-5


def test_table_reports_an_unavailable_peer_and_ratios():
    w = QUICK["mnist"]
    ok = {"step_ms": [2.0], "fwd_ms": [1.0], "median_step_ms": 2.0, "median_fwd_ms": 1.0,
          "median_step_cpu_ms": 2.0, "median_fwd_cpu_ms": 1.0,
          "memory": {"import_mb": 200.0, "peak_mb": 300.0}}
    mine = dict(ok, step_ms=[1.0], median_step_ms=1.0, median_step_cpu_ms=1.5,
                memory={"import_mb": 50.0, "peak_mb": 60.0})
    text = main_table(w, {"nngraph-optimized": mine, REFERENCE: ok,
                          "chainer-nstep": {"unavailable": "ImportError: no chainer"}})
    assert "unavailable: ImportError: no chainer" in text
    row = next(line for line in text.splitlines() if LABELS["nngraph-optimized"] in line)
    assert "0.50x, 0.75x" in row   # step time (median, CPU) against nn.LSTM
    assert "0.20x, 0.10x" in row   # peak and (peak - import) against nn.LSTM's


def test_gemm_products_cover_a_training_step():
    from benchmarks.gemm import step_products
    from benchmarks.workloads import WORKLOADS

    w = WORKLOADS["mnist"]
    products = step_products(w)
    # Per layer: projection, recurrent, grad of h, grad of input, two weight gradients; 3 for the head.
    assert len(products) == 6 * w.layers + 3
    recurrent = [p for p in products if "recurrent" in p.what]
    assert all((p.m, p.k, p.n, p.count) == (100, 128, 512, 28) for p in recurrent)
    first = products[0]
    assert (first.m, first.k, first.n) == (28 * 100, 28, 512)
    head = [p for p in step_products(WORKLOADS["char"]) if p.what == "head: forward"][0]
    assert head.m == 50 * 32  # the char head reads every step


def test_gemm_quick_run_prints_a_table_and_writes_json(tmp_path):
    out_json = tmp_path / "gemm.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gemm", "--quick", "--repeat", "2", "--rounds", "1",
         "--keep-openblas-env", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "### mnist:" in proc.stdout and "### char:" in proc.stdout
    assert "all products of one training step" in proc.stdout
    report = json.loads(out_json.read_text())
    rows = report["workloads"]["mnist"]
    assert rows and all(r["us"]["numpy"] > 0 for r in rows)
    if HAS_TORCH:
        assert "numpy / torch" in proc.stdout and all(r["us"]["torch"] > 0 for r in rows)
