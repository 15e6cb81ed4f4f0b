"""The tutorial example runs, passes its checks, and answers the reader."""
from __future__ import annotations

import importlib.util
import os

import pytest

from nngraph_py.checkpoint import load_checkpoint
from nngraph_py.inspect import graphviz_available

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "examples", "nngraph_tutorial.py")


@pytest.fixture(scope="module")
def tutorial():
    spec = importlib.util.spec_from_file_location("nngraph_tutorial", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_passes_and_writes_its_outputs(tutorial, tmp_path, capsys):
    out_dir = str(tmp_path / "out")
    assert tutorial.main(["--out", out_dir]) == 0
    text = capsys.readouterr().out
    assert "-> PASS" in text and "ALL CHECKS PASSED" in text
    assert "Linear1.weight  shape (10, 20)" in text and "Linear1.bias  shape (10,)" in text
    assert "Parameters: 210" in text
    # the reader's inputs: the error names the Linear and the shapes
    assert "expected input (batch, 20) or (20,), got (10,)" in text
    files = set(os.listdir(out_dir))
    assert {"mlp_forward.dot", "mlp_backward.dot", "mlp.npz"} <= files
    if graphviz_available():
        assert {"mlp_forward.svg", "mlp_backward.svg"} <= files
    ck = load_checkpoint(os.path.join(out_dir, "mlp.npz"))
    assert list(ck.params) == ["Linear1.weight", "Linear1.bias"]


def test_forward_check_fails_on_a_wrong_formula(tutorial, monkeypatch, capsys):
    mlp = tutorial.build_mlp()
    inputs = tutorial.tutorial_inputs()
    assert tutorial.forward_check(mlp, inputs)
    real_forward = mlp.forward
    monkeypatch.setattr(mlp, "forward", lambda x: real_forward(x) + 1)
    assert not tutorial.forward_check(mlp, inputs)
    assert "FAIL" in capsys.readouterr().out


def test_main_exits_nonzero_when_a_check_fails(tutorial, tmp_path, monkeypatch):
    monkeypatch.setattr(tutorial, "forward_check", lambda mlp, inputs: False)
    assert tutorial.main(["--out", str(tmp_path)]) == 1


def test_help(tutorial, capsys):
    with pytest.raises(SystemExit) as info:
        tutorial.main(["--help"])
    assert info.value.code == 0 and "--out" in capsys.readouterr().out
