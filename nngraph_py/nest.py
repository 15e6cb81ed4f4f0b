"""Nested lists of arrays: the helpers every container and graph needs (Lua: nngraph's
``nesting.lua``).

A *nest* is an array or a (possibly nested) list or tuple of arrays. Gradients use ``None`` for
"zeros": every function here reads ``None`` as zeros of the matching shape, so a user may give
``[g, None]`` for a two-output module. 0-d arrays stay 0-d arrays (never NumPy scalars).

Functions:
    :func:`zeros_like`  zeros of a nest's structure (Lua: ``nesting.resizeNestedAs`` + ``fillNested``).
    :func:`add`         a new nest, the element-wise sum of two (``None`` = zeros).
    :func:`add_into`    ``a += b`` in place where possible; returns the sum (Lua: ``addNestedTo``).
    :func:`map`         apply a function to every array of a nest (Lua: ``nesting.map`` idioms).
    :func:`fill_none`   replace ``None`` entries by zeros shaped like a reference nest.
    :func:`copy`        a nest of fresh copies (Lua: ``nesting.cloneNested``).
    :func:`as_array`    turn NumPy scalars (``numpy.float64``) back into 0-d arrays.
    :func:`flatten`     the arrays of a nest in order.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy

from . import backend

__all__ = ["zeros_like", "add", "add_into", "map", "fill_none", "copy", "as_array", "flatten",
           "is_nest"]

_SCALAR = numpy.generic


def is_nest(value: Any) -> bool:
    """Whether ``value`` is a list or tuple (a nest that is not a single array)."""
    return isinstance(value, (list, tuple))


def as_array(value: Any) -> Any:
    """``value`` with NumPy scalars turned into 0-d arrays, recursively in lists.

    NumPy returns ``numpy.float64`` from operations on 0-d arrays (``numpy.tanh(numpy.array(1.))``);
    modules hand their results through this so a 0-d input gives a 0-d array output.
    """
    if isinstance(value, _SCALAR):
        return numpy.asarray(value)
    if isinstance(value, list):
        if any(isinstance(v, (_SCALAR, list, tuple)) for v in value):
            return [as_array(v) for v in value]
        return value
    if isinstance(value, tuple):
        return type(value)(as_array(v) for v in value)
    return value


def zeros_like(value: Any) -> Any:
    """Zeros with the structure, shapes, dtypes and devices of ``value`` (lists stay lists)."""
    if is_nest(value):
        return [zeros_like(v) for v in value]
    if isinstance(value, _SCALAR):
        return numpy.zeros((), dtype=value.dtype)
    return backend.get_array_module(value).zeros_like(value)


def copy(value: Any) -> Any:
    """Fresh copies of every array of ``value`` (``None`` stays ``None``)."""
    if value is None:
        return None
    if is_nest(value):
        return [copy(v) for v in value]
    if isinstance(value, _SCALAR):
        return numpy.array(value)
    return value.copy()


def add(a: Any, b: Any) -> Any:
    """``a + b`` as new arrays, element by element in lists; ``None`` is zeros.

    The result never aliases ``a`` or ``b`` unless one of them is ``None`` and the other is
    returned copied, so it may be written into afterwards.
    """
    if a is None:
        return copy(b)
    if b is None:
        return copy(a)
    if is_nest(a):
        _check_lengths(a, b)
        return [add(x, y) for x, y in zip(a, b)]
    return as_array(a + b)


def add_into(a: Any, b: Any) -> Any:
    """Add ``b`` into ``a`` in place and return the sum (Lua: ``nesting.addNestedTo``).

    Use the returned value: ``a`` itself when it could be updated in place (arrays, 0-d arrays,
    lists, whose entries are replaced), a new array when ``a`` is ``None`` or a NumPy scalar.
    ``a`` must own its arrays (not alias a gradient someone else keeps).
    """
    if b is None:
        return a
    if a is None:
        return copy(b)
    if is_nest(a):
        _check_lengths(a, b)
        if isinstance(a, tuple):
            return [add_into(x, y) for x, y in zip(a, b)]
        for k, y in enumerate(b):
            a[k] = add_into(a[k], y)
        return a
    if isinstance(a, _SCALAR) or not backend.is_array(a):
        return as_array(a + b)
    a += b
    return a


def map(fn: Callable[[Any], Any], value: Any) -> Any:  # noqa: A001 - Lua's name
    """``fn`` applied to every array of ``value``; lists become lists, ``None`` stays ``None``."""
    if value is None:
        return None
    if is_nest(value):
        return [map(fn, v) for v in value]
    return fn(value)


def fill_none(value: Any, like: Any) -> Any:
    """``value`` with every ``None`` replaced by zeros shaped as the matching part of ``like``.

    Returns ``value`` itself when it holds no ``None`` (no copy). Extra structure in ``value``
    that ``like`` lacks is returned unchanged (the module receiving it judges it).
    """
    if value is None:
        return None if like is None else zeros_like(like)
    if is_nest(value) and is_nest(like) and len(value) == len(like):
        filled = [fill_none(v, l) for v, l in zip(value, like)]
        if all(f is v for f, v in zip(filled, value)):
            return value
        return filled
    return value


def flatten(value: Any) -> list[Any]:
    """The arrays of ``value`` in depth-first order (``None`` entries are skipped)."""
    out: list[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if v is None:
            continue
        if is_nest(v):
            stack.extend(reversed(v))
        else:
            out.append(v)
    return out


def _check_lengths(a: Any, b: Any) -> None:
    if not is_nest(b) or len(a) != len(b):
        from .errors import ShapeError, shape_str

        raise ShapeError(f"cannot add {shape_str(b)} to a list of {len(a)} {shape_str(a)}: the "
                         f"structures differ")
