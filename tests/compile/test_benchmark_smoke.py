"""The compiler benchmark runs end to end at tiny sizes (``--quick``: one repeat)."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")


def test_benchmark_compiler_quick_prints_every_case(capsys):
    from benchmarks import compiler

    assert compiler.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for case in ("gru-train", "lstm-infer", "gru-infer", "ff-train", "ff-infer"):
        assert f"| {case}" in out
    assert "Recurrence(make_gru_cell)" in out and "torch nn.GRU" in out
    assert "1.00x" in out  # the reference peer of each case
