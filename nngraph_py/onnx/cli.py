"""``python -m nngraph_py.inspect --onnx OUT.onnx CHECKPOINT``: export a saved model to ONNX.

The model must be in the file itself: a Lua Torch ``.t7`` (a module, a gModule, or a char-rnn
checkpoint, whose ``protos.rnn`` is exported). The library's ``.npz`` checkpoints hold
parameters and metadata only, not the code that builds the model: export those from Python with
:func:`nngraph_py.onnx.export` after ``load_checkpoint(path, model)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy

from ..errors import NNGraphError
from .export import OnnxExportError, export

__all__ = ["export_file", "parse_shape"]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"2,3"`` or ``"2x3"`` -> ``(2, 3)``."""
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise OnnxExportError(f"--input-shape expects sizes like 2,3 or 2x3, got {text!r}") \
            from None
    if not shape or any(s <= 0 for s in shape):
        raise OnnxExportError(f"--input-shape expects positive sizes, got {text!r}")
    return shape


def _model_and_example(value: Any, shapes: Sequence[tuple[int, ...]]) -> tuple[Any, Any, str]:
    from .. import torch7
    from ..module import Module

    if isinstance(value, dict) and isinstance(value.get("protos"), dict) and "vocab" in value:
        model = value["protos"]["rnn"]
        example = [numpy.zeros((1,), dtype=numpy.int64)] + torch7.char_rnn_state(value, batch=1)
        return model, example, "char-rnn protos.rnn"
    if not isinstance(value, Module):
        raise OnnxExportError(f"the file holds a {type(value).__name__}, not a module or a "
                              f"char-rnn checkpoint")
    if not shapes:
        raise OnnxExportError("give the input shape(s) with --input-shape (once per input), "
                              "e.g. --input-shape 1,20")
    dtype = numpy.dtype(value._dtype)
    arrays = [numpy.zeros(s, dtype=dtype) for s in shapes]
    return value, arrays if len(arrays) > 1 else arrays[0], type(value).__name__


def export_file(checkpoint: str, out_path: str, shapes: Sequence[tuple[int, ...]] = ()) -> str:
    """Export the model stored in ``checkpoint`` to ``out_path``; returns a one-line report.

    Raises:
        NNGraphError: an unreadable file, a file without a model, or a model that cannot be
            exported (the message says which).
    """
    if checkpoint.endswith(".npz"):
        raise OnnxExportError(
            f"{checkpoint} is an nngraph_py checkpoint: it holds the parameters, not the code "
            f"that builds the model; export it from Python: load_checkpoint(path, model) then "
            f"nngraph_py.onnx.export(model, example_input, {out_path!r})")
    from .. import torch7

    value = torch7.load(checkpoint)
    model, example, what = _model_and_example(value, shapes)
    proto = export(model, example, out_path)
    return (f"ONNX model ({what}: {len(proto.graph.input)} inputs, {len(proto.graph.output)} "
            f"outputs, {len(proto.graph.node)} nodes, opset {proto.opset_import[0].version}) "
            f"written to {out_path}")


def run(checkpoint: str, out_path: str, shapes: Sequence[str], out: Any, err: Any) -> int:
    """The ``--onnx`` branch of the inspect command line: exit status 0, or 2 on errors."""
    try:
        print(export_file(checkpoint, out_path, [parse_shape(s) for s in shapes]), file=out)
    except (NNGraphError, OSError) as exc:
        print("error: " + " ".join(str(exc).split()), file=err)
        return 2
    return 0
