"""Port of nngraph's ``test/test_connectivity.lua``."""
from __future__ import annotations

import sys

import pytest

from nngraph_py import nn
from nngraph_py.errors import NNGraphError


def test_connectivity() -> None:
    """test_connectivity.lua: connectivity (a dangling Sigmoid is refused, naming where it was
    declared)."""
    inp = nn.Identity()()
    lin = nn.Linear(20, 10)(inp)
    nn.Sigmoid()(lin); line = sys._getframe().f_lineno  # noqa: E702 - Lua's same-line trick
    actual_output = nn.Tanh()(lin)
    with pytest.raises(NNGraphError, match=rf"test_lua_connectivity\.py:{line}\).*does not "
                                           rf"connect to any output"):
        nn.gModule([inp], [actual_output])
