"""Shapes for the summary: of outputs (nested lists for list outputs), of the shapes a user
gives (``10``, ``(4, 10)``, ``[(10,), (20,)]``), and the forward on zeros that learns a model's
output shapes.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy

from .. import backend
from ..errors import ShapeError
from ..module import Module

__all__ = ["Shape", "shape_of", "arrays_in", "normalise_shapes", "forward_on_zeros",
           "format_shape"]

Shape = Any  # tuple of ints, or a (nested) list of them for modules that output lists


def format_shape(shape: Shape) -> str:
    """``(4, 10)`` -> ``"(4, 10)"``; shapes -> ``"[(4, 10), (4, 10)]"``; None -> ``""``."""
    if shape is None:
        return ""
    if isinstance(shape, tuple):
        return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    return "[" + ", ".join(format_shape(s) for s in shape) + "]"


def shape_of(value: Any) -> Shape:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [shape_of(v) for v in value]
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def arrays_in(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from arrays_in(v)
    elif backend.is_array(value):
        yield value


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(
        isinstance(d, (int, numpy.integer)) and not isinstance(d, bool) for d in value)


def normalise_shapes(shapes: Any) -> Any:
    """``10`` -> ``(10,)``; a shape stays a tuple; a list of shapes becomes a list of tuples."""
    if shapes is None:
        return None
    if isinstance(shapes, (int, numpy.integer)) and not isinstance(shapes, bool):
        return (int(shapes),)
    if _is_shape(shapes):
        return tuple(int(d) for d in shapes)
    if isinstance(shapes, (list, tuple)):
        return [normalise_shapes(s) for s in shapes]
    raise TypeError(f"input_shapes must be a shape (a tuple of ints) or a list of shapes, "
                    f"got {type(shapes).__name__}")


def _zeros(shapes: Any, xp: Any, dtype: Any) -> Any:
    if isinstance(shapes, tuple):
        return xp.zeros(shapes, dtype=dtype)
    return [_zeros(s, xp, dtype) for s in shapes]


def forward_on_zeros(model: Module, shapes: Any, dtype: Any) -> None:
    """Run ``model`` on zeros in evaluation mode (no dropout noise), restoring every mode."""
    xp = backend.array_module(model.device)
    x = _zeros(shapes, xp, numpy.dtype(dtype) if dtype is not None else model.dtype)
    modes = [(m, m.train) for m in model.modules()]
    model.evaluate()
    try:
        model.forward(x)
    except Exception as exc:
        raise ShapeError(
            f"summary: the model does not accept inputs of shape(s) {format_shape(shapes)} "
            f"(a forward on zeros failed; the batch dimension, if any, is part of each shape):\n"
            f"{exc}"
        ) from exc
    finally:
        for m, mode in modes:
            m.train = mode
