"""The README's speed table says what the benchmark printed: every figure is in its output.

The table is copied by hand from ``benchmarks/results/main.txt`` (the output of the command the
README names); this test fails when one of them is updated without the other.
"""
from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAIN = ROOT / "benchmarks" / "results" / "main.txt"

#: README row label (its start) -> the benchmark's peer label.
PEERS = {
    "nngraph recipe, plain graph execution": "nngraph recipe (graph)",
    "nngraph recipe, optimized (NumPy)": "nngraph optimized (FusedLSTM)",
    "nngraph recipe, optimized + numba kernels": "nngraph optimized + numba kernels",
    "PyTorch 2.13 `nn.LSTM`": "PyTorch nn.LSTM",
    "PyTorch `LSTMCell` loop": "PyTorch LSTMCell loop",
    "Chainer 7.8 `L.LSTM` loop": "Chainer L.LSTM loop",
}


def _cells(line: str) -> list[str]:
    return [c.strip().strip("*") for c in line.strip().strip("|").split("|")]


def _benchmark_rows() -> dict[str, dict[str, list[str]]]:
    """{workload: {peer label: cells}} from the main tables of the benchmark's output."""
    rows: dict[str, dict[str, list[str]]] = {}
    workload = None
    for line in MAIN.read_text().splitlines():
        m = re.match(r"### (mnist|char):", line)
        if m:
            workload = m.group(1)
            rows[workload] = {}
        elif workload and line.startswith("| ") and not line.startswith("| peer"):
            cells = _cells(line)
            rows[workload][cells[0]] = cells
    return rows


def test_readme_speed_table_matches_the_benchmark_output():
    text = README.read_text()
    section = text.split("## Speed and memory", 1)[1].split("\n## ", 1)[0]
    bench = _benchmark_rows()
    seen = 0
    for line in section.splitlines():
        cells = _cells(line)
        label = next((b for r, b in PEERS.items() if cells and cells[0].startswith(r)), None)
        if label is None:
            continue
        seen += 1
        for workload, (ms, ratio, peak) in (("mnist", cells[1:4]), ("char", cells[4:7])):
            row = bench[workload][label]
            # benchmark columns: peer, step ms median, min, CPU ms, x nn.LSTM (median, CPU), ...,
            # peak RSS MB is the 10th column.
            assert ms == row[1], (workload, label, ms, row[1])
            assert ratio == row[4].split(",")[0], (workload, label, ratio, row[4])
            assert peak == row[9], (workload, label, peak, row[9])
    assert seen == len(PEERS)
