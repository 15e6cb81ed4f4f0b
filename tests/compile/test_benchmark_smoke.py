"""The compiler benchmark runs end to end at tiny sizes (``--quick``: one repeat), every mode."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("threadpoolctl")


def test_benchmark_compiler_quick_prints_every_case(capsys):
    from benchmarks import compiler

    assert compiler.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for case in ("gru-train-mnist", "gru-train-char", "peephole-train-mnist",
                 "peephole-train-char", "lstm-infer-mnist", "gru-infer-char", "ff-train",
                 "ff-infer"):
        assert f"| {case} " in out
    for peer in ("Recurrence(user GRU) compiled (numpy)", "Recurrence(user GRU) optimize(False)",
                 "Recurrence(peephole LSTM) (numpy)", "lstm.LSTM recipe (numpy)", "torch nn.GRU",
                 "compile(gModule)"):
        assert peer in out
    assert "1.00x" in out  # the reference peer of each case
    assert "FAILED" not in out  # the guard: compiled peers compute the node-by-node numbers
    assert "### Issue 16's targets" in out and "load average" in out
    assert "malloc: glibc defaults" in out


def test_benchmark_compiler_quick_scaling_and_profile(capsys):
    from benchmarks import compiler

    assert compiler.main(["--quick", "--scaling"]) == 0
    out = capsys.readouterr().out
    assert "### Scaling: GRU training step" in out and "| 16     | 5 " in out
    assert compiler.main(["--quick", "--shapes", "mnist",
                          "--profile", "gru-train-mnist:user-gru-numpy"]) == 0
    out = capsys.readouterr().out
    assert "top 15 by cumulative time" in out and "recurrence.py" in out
    with pytest.raises(SystemExit, match="unknown peer"):
        compiler.main(["--quick", "--only", "ff-train", "--profile", "nope"])


def test_benchmark_compiler_memory_child_reports_its_peak(capsys):
    from benchmarks import compiler

    assert compiler.main(["--quick", "--only", "ff-train", "--memory-child",
                          "ff-train:ff-compiled"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(compiler.MEMORY_MARK)
    r = json.loads(line[len(compiler.MEMORY_MARK):])
    assert r["kind"] == "compiled" and r["peak_mb"] >= r["built_mb"] > 0


def test_benchmark_compiler_malloc_reuse_reruns_in_a_child(capsys):
    from benchmarks import compiler

    assert compiler.main(["--quick", "--malloc-reuse", "--only", "ff-infer"]) == 0
    out = capsys.readouterr().out
    assert "malloc: MALLOC REUSE" in out and "| ff-infer " in out
