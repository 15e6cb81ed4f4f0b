"""Ports of nngraph's ``test/test_JustTable.lua``."""
from __future__ import annotations

import numpy as np

from nngraph_py import gradcheck, nn


def test_output() -> None:
    """test_JustTable.lua: test_output."""
    x = np.random.default_rng(0).standard_normal((7, 11))
    out = nn.JustTable().double().forward(x)
    assert isinstance(out, list) and len(out) == 1
    np.testing.assert_array_equal(out[0], x)


def test_grad() -> None:
    """test_JustTable.lua: test_grad."""
    gradcheck(nn.JustTable().double(), np.random.default_rng(0).standard_normal((7, 11)))
