"""``python -m nngraph_py.inspect --onnx OUT CHECKPOINT``."""
from __future__ import annotations

import io
import os

import numpy
import pytest

ort = pytest.importorskip("onnxruntime")

from nngraph_py import torch7  # noqa: E402
from nngraph_py.inspect.cli import main  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lua", "torch7")


def test_char_rnn_checkpoint_to_onnx(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    path = os.path.join(FIXTURES, "char_rnn_lstm.t7")
    target = tmp_path / "lm.onnx"
    assert main(["--onnx", str(target), path], out=out, err=err) == 0, err.getvalue()
    assert "written to" in out.getvalue() and target.exists()
    ck = torch7.load(path)
    feeds = [numpy.array([3])] + [s + 0.5 for s in torch7.char_rnn_state(ck)]
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: f for i, f in zip(sess.get_inputs(), feeds)})
    want = ck["protos"]["rnn"].evaluate().forward(feeds)
    assert max(float(numpy.abs(a - b).max()) for a, b in zip(got, want)) < 1e-12


def test_module_needs_input_shape_and_npz_is_refused(tmp_path):
    seq = os.path.join(FIXTURES, "graphs_ascii.t7")
    err = io.StringIO()
    assert main(["--onnx", str(tmp_path / "a.onnx"), seq], out=io.StringIO(), err=err) == 2
    assert "holds a dict" in err.getvalue()
    err = io.StringIO()
    npz = tmp_path / "m.npz"
    npz.write_bytes(b"")
    assert main(["--onnx", str(tmp_path / "a.onnx"), str(npz)], out=io.StringIO(), err=err) == 2
    assert "from Python" in err.getvalue()
