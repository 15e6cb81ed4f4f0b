"""Values from the real Lua Torch for the modules issue 11 added (CMul, CAdd, Parallel, Concat,
View over several axes, Dropout v1, ClassNLLCriterion's ignoreIndex).

The fixture ``tests/fixtures/lua/engine_api/engine_api.json`` was written by
``make_fixtures.lua`` beside it (``/opt/luatorch/bin/th make_fixtures.lua > engine_api.json``):
deterministic inputs and weights, the forward, a fixed gradient, the backward and the parameter
gradients. Lua's 1-based dimensions and targets are made 0-based here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy
import pytest

from nngraph_py import nn

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lua", "engine_api")
with open(os.path.join(HERE, "engine_api.json"), encoding="utf-8") as f:
    FIXTURE = json.load(f)


def arr(entry):
    return numpy.array(entry["values"], dtype=numpy.float64).reshape(entry["shape"])


MODULES = {
    "CMul_same_size": lambda: nn.CMul(6),
    "CMul_broadcast": lambda: nn.CMul(1, 3),
    "CMul_batch": lambda: nn.CMul(4, 3),
    "CAdd_broadcast": lambda: nn.CAdd(1, 3),
    "CAdd_batch": lambda: nn.CAdd(3),
    "Parallel_2_1": lambda: nn.Parallel(1, 0, nn.Linear(4, 2), nn.Linear(4, 3)),
    "Parallel_1_2": lambda: nn.Parallel(0, 1, nn.Linear(3, 2), nn.Tanh()),
    "Concat_2": lambda: nn.Concat(1, nn.Linear(4, 2), nn.Tanh(), nn.Linear(4, 1)),
    "View_6": lambda: nn.View(6),
    "DropoutV1_eval": lambda: nn.Dropout(0.25, True).evaluate(),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_matches_lua(name):
    case = FIXTURE[name]
    m = MODULES[name]().double()
    params, grads = m.parameters()
    assert len(params) == len(case["params"])
    for p, ref in zip(params, case["params"]):
        p[...] = arr(ref)
    x = arr(case["x"])
    y = m.forward(x)
    numpy.testing.assert_allclose(y, arr(case["y"]), rtol=1e-12, atol=1e-14)
    m.zero_grad_parameters()
    gi = m.backward(x, arr(case["g"]))
    numpy.testing.assert_allclose(gi, arr(case["gi"]), rtol=1e-12, atol=1e-14)
    for g, ref in zip(grads, case["grads"]):
        numpy.testing.assert_allclose(g, arr(ref), rtol=1e-12, atol=1e-14)


def test_class_nll_ignore_index_matches_lua():
    case = FIXTURE["ClassNLL_ignore"]
    crit = nn.ClassNLLCriterion(numpy.array([0.5, 1, 2, 1.5]), True, 2).double()  # Lua's 3
    x = arr(case["x"])
    target = numpy.array([1, 3, 4, 3, 2]) - 1
    assert crit.forward(x, target) == pytest.approx(case["loss"], rel=1e-12)
    numpy.testing.assert_allclose(crit.backward(x, target), arr(case["gi"]), rtol=1e-12)


@pytest.mark.skipif(shutil.which("th") is None and not os.path.exists("/opt/luatorch/bin/th"),
                    reason="Lua Torch (th) is not installed")
def test_fixture_is_what_lua_writes_today():
    th = shutil.which("th") or "/opt/luatorch/bin/th"
    out = subprocess.run([th, "make_fixtures.lua"], cwd=HERE, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert json.loads(out) == FIXTURE
