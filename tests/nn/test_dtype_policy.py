"""The dtype policy over every module of the harness (issue 11 item 7).

Floating inputs are cast to the module's dtype; an integer input to a module that computes with
floats is refused with an InputError naming the module; modules that only move values (Identity,
SelectTable, Narrow, View...) pass integers through unchanged. The cases come from the module
harness (tests/nn/test_modules.py), so every module the catalogue adds is covered when it lands.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

from nngraph_py import backend, nn
from nngraph_py.errors import InputError

_spec = importlib.util.spec_from_file_location(
    "_harness_cases", os.path.join(os.path.dirname(__file__), "test_modules.py"))
_harness = sys.modules.get("test_modules")  # already collected by pytest in this session
if _harness is None or not hasattr(_harness, "CASES"):
    _harness = importlib.util.module_from_spec(_spec)
    sys.modules["_harness_cases"] = _harness  # dataclasses look their module up
    _spec.loader.exec_module(_harness)
CASES = _harness.CASES


def _integer(value, rng):
    if isinstance(value, list):
        return [_integer(v, rng) for v in value]
    value = np.asarray(value)
    if value.dtype.kind == "f":
        return np.round(value * 3).astype(np.int64)
    return value


def _floating_inputs(value) -> bool:
    if isinstance(value, list):
        return any(_floating_inputs(v) for v in value)
    return np.asarray(value).dtype.kind == "f"


def _computes_with_floats(module) -> bool:
    return any(not m.integer_inputs or isinstance(m, nn.ModuleFromCriterion)
               for m in module.modules())


def _leaves(value):
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_integer_inputs_are_refused_or_passed_through(case, rng):
    host = case.inputs(rng)
    if not _floating_inputs(host):
        pytest.skip("the case's inputs are indices already (an index module)")
    module = case.make()
    x = _integer(host, rng)
    if _computes_with_floats(module):
        with pytest.raises(InputError, match=r"integer dtype"):
            module.forward(x)
    else:
        out = module.forward(x)
        assert all(a.dtype.kind in "iu" for a in _leaves(out) if backend.is_array(a))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_float16_inputs_are_cast_to_the_module_dtype(case, rng):
    host = case.inputs(rng)
    if not _floating_inputs(host):
        pytest.skip("the case's inputs are indices")
    module = case.make()

    def half(v):
        if isinstance(v, list):
            return [half(a) for a in v]
        v = np.asarray(v)
        return v.astype(np.float16) if v.dtype.kind == "f" else v

    out = module.forward(half(host))
    for a in _leaves(out):
        if backend.is_array(a) and a.dtype.kind == "f":
            assert a.dtype == np.float32


def test_the_policy_names_the_node_in_a_graph():
    x = nn.Identity()()
    y = nn.Tanh()(nn.Narrow(1, 0, 2)(x)).annotate(name="squash")
    g = nn.gModule([x], [y])
    with pytest.raises(Exception, match=r"node 'squash'.*integer dtype int64"):
        g.forward(np.ones((2, 3), dtype=np.int64))
    # A module that only moves values passes integers on: Narrow ran, Tanh refused.
