"""Reference values made by Lua Torch itself, for the ports of nngraph's and nn's tests.

The JSON files in ``tests/fixtures/lua/engine/`` were written by the Lua scripts beside them
(``make_nngraph_fixtures.lua``, ``make_nn_fixtures.lua``; see their headers for the command), in
float64 after ``torch.manualSeed``. A tensor is ``{"size": [...], "data": [...]}``; Lua tables
are JSON lists.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

import numpy as np

from nngraph_py import backend

__all__ = ["FIXTURES", "TH", "load", "decode", "set_params", "check_against_lua", "assert_nest"]

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lua", "engine")
#: The Lua Torch interpreter, when built on this machine (tests that run Lua skip without it).
TH = shutil.which("th") or ("/opt/luatorch/bin/th" if os.path.exists("/opt/luatorch/bin/th")
                            else None)


def decode(value: Any) -> Any:
    """JSON from ``jsonout.lua`` as NumPy float64 arrays and lists."""
    if isinstance(value, dict) and "data" in value and "size" in value:
        return np.array(value["data"], dtype=np.float64).reshape(value["size"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    return value


def load(name: str) -> dict:
    """The decoded fixture ``<name>.json``."""
    with open(os.path.join(FIXTURES, name + ".json")) as f:
        return decode(json.load(f))


def set_params(named: dict, ref: dict) -> None:
    """Copy Lua's weights into our modules, by the names the Lua script gave them."""
    for name, m in named.items():
        for lua, ours in (("weight", "weight"), ("bias", "bias")):
            if lua in ref[name]:
                getattr(m, ours)[...] = ref[name][lua].reshape(getattr(m, ours).shape)


def assert_nest(ours: Any, ref: Any, what: str, rtol: float = 1e-12, atol: float = 1e-12) -> None:
    """Same nesting, shapes and values (Lua's 1-element loss tensors compare with our 0-d)."""
    if isinstance(ref, list):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(ref), \
            f"{what}: expected a list of {len(ref)}, got {type(ours).__name__}"
        for k, (o, r) in enumerate(zip(ours, ref)):
            assert_nest(o, r, f"{what}[{k}]", rtol, atol)
        return
    assert backend.is_array(ours), f"{what}: expected an array, got {type(ours).__name__}"
    host = np.asarray(backend.to_numpy(ours), dtype=np.float64)
    if host.shape != ref.shape and host.size == ref.size == 1:
        host = host.reshape(ref.shape)
    assert host.shape == ref.shape, f"{what}: shape {host.shape}, Lua's {ref.shape}"
    np.testing.assert_allclose(host, ref, rtol=rtol, atol=atol, err_msg=what)


def check_against_lua(model: Any, case: str, named: dict | None = None,
                      grad_output: Any = None) -> dict:
    """Run ``model`` (float64) on the fixture's input and gradOutput and compare the output,
    the gradInput and the named modules' parameter gradients with Lua's.

    Args:
        grad_output: replaces the fixture's gradOutput (e.g. reshaped to our 0-d loss).
    Returns:
        The fixture.
    """
    ref = load(f"nngraph_{case}")
    named = named or {}
    model.double()
    set_params(named, ref["params"])
    model.zero_grad_parameters()
    g = ref["gradOutput"] if grad_output is None else grad_output
    assert_nest(model.forward(ref["input"]), ref["output"], f"{case}: output")
    assert_nest(model.backward(ref["input"], g), ref["gradInput"], f"{case}: gradInput")
    for name, m in named.items():
        for lua, ours in (("gradWeight", "grad_weight"), ("gradBias", "grad_bias")):
            if lua in ref["params"][name]:
                assert_nest(getattr(m, ours), ref["params"][name][lua].reshape(
                    getattr(m, ours).shape), f"{case}: {name}.{ours}")
    return ref
