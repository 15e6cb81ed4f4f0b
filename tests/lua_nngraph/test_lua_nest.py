"""Port of nngraph's ``test/test_nest.lua``.

Lua's ``nngraph.nest`` (nngraph/nest.lua) turns a nested table of nodes into one node; it is
three lines over ``JustTable`` and ``Identity`` on a list of nodes, written here as in Lua.
"""
from __future__ import annotations

import numpy as np

from lua_reference import assert_nest
from nngraph_py import nn


def nest(value):  # noqa: ANN001, ANN201 - nest.lua's _nest
    """One node for a node or a nested list of nodes (Lua: ``nngraph.nest``)."""
    if isinstance(value, nn.Node):
        return value
    if len(value) == 1:
        return nn.JustTable()(nest(value[0]))
    return nn.Identity()([nest(v) for v in value])


def test_output() -> None:
    """test_nest.lua: test_output."""
    in1, in2, in3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    ok = nn.CAddTable()(nest([in1]))
    in1_again = nest(in1)
    state = nest([in1, [in2], in3])
    net = nn.gModule([in1, in2, in3],
                     [ok, in1_again, state, nest([in3]), nest([in1, in2])]).double()
    rng = np.random.default_rng(0)
    val1, val2, val3 = rng.standard_normal((7, 3)), rng.standard_normal(2), rng.standard_normal(3)
    expected = [val1, val1, [val1, [val2], val3], [val3], [val1, val2]]
    assert_nest(net.forward([val1, val2, val3]), expected, "output", 0, 0)
