"""Helpers for the .t7 tests: fixture paths and nested comparisons."""
from __future__ import annotations

import os
from typing import Any

import numpy
import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lua", "torch7")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "luatorch",
                         "artifacts")


def fixture(name: str) -> str:
    """The path of a committed Lua-made fixture."""
    path = os.path.join(FIXTURES, name)
    if not os.path.exists(path):
        pytest.fail(f"missing fixture {path}: regenerate with make_fixtures.sh")
    return path


def max_diff(a: Any, b: Any) -> float:
    """The largest absolute difference between two (nested lists of) arrays of one structure."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        assert isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)), (type(a), type(b))
        assert len(a) == len(b), (len(a), len(b))
        return max([max_diff(x, y) for x, y in zip(a, b)] + [0.0])
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    if a.size == 0 and b.size == 0:
        return 0.0
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(numpy.abs(a - b).max())


def grads_by_param(model: Any) -> dict[int, Any]:
    """``id(parameter array) -> its gradient array`` over a model (shared arrays once)."""
    params = [p for _, p in model.named_parameters()]
    grads = [g for _, g in model.named_grad_parameters()]
    return {id(p): g for p, g in zip(params, grads)}
