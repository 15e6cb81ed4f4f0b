"""Ports of nngraph's ``test/test_debug.lua``: the construction errors name what is wrong."""
from __future__ import annotations

import sys

import pytest

from nngraph_py import nn
from nngraph_py.errors import NNGraphError


def test_whatIsThisInTheInput() -> None:
    """test_debug.lua: whatIsThisInTheInput (a module, None or an empty list where nodes are
    expected; Lua's inputs[2]/outputs[3] are 0-based positions here)."""
    inp1, inp2 = nn.Identity()(), nn.Identity()  # missing second call
    with pytest.raises(NNGraphError, match=r"element 1 .*is a module \(nn\.Identity\), not a "
                                           r"node: did you forget its second call"):
        nn.Linear(20, 10)(nn.CMulTable()([inp1, inp2]))

    graph_node, nn_module = nn.Identity()(), nn.Identity()
    with pytest.raises(NNGraphError, match=r"inputs\[1\] of gModule is a module \(nn\.Identity\)"):
        nn.gModule([graph_node, nn_module], [graph_node])

    inp = nn.Identity()()
    out1, out2 = nn.Linear(20, 10)(inp), nn.Sigmoid()(inp)
    with pytest.raises(NNGraphError, match=r"outputs\[2\] of gModule is a module \(nn\.Linear"):
        nn.gModule([inp], [out1, out2, nn.Linear(2, 3)])

    inp = nn.Identity()()
    out1, out2 = nn.Tanh()(inp), nn.Sigmoid()(inp)
    with pytest.raises(NNGraphError, match=r"outputs\[1\] of gModule is None"):
        nn.gModule([inp], [out1, None, out2])

    with pytest.raises(NNGraphError, match="empty list of nodes"):
        nn.Identity()([])


def test_splitUnused() -> None:
    """test_debug.lua: splitUnused (the message gives where the node was declared and split)."""
    inp = nn.Identity()(); line = sys._getframe().f_lineno  # noqa: E702 - Lua's same-line trick
    output, unused = inp.split(2)
    with pytest.raises(NNGraphError) as info:
        nn.gModule([inp], [output])
    msg = str(info.value)
    assert "1 of split(2) outputs" in msg and "unused" in msg
    assert f"test_lua_debug.py:{line}" in msg
