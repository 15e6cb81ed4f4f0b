"""Ports of nngraph's ``test/test_JustElement.lua``."""
from __future__ import annotations

import numpy as np

from nngraph_py import gradcheck, nn


def _input() -> list:
    return [np.random.default_rng(0).standard_normal((7, 11))]


def test_output() -> None:
    """test_JustElement.lua: test_output."""
    x = _input()
    np.testing.assert_array_equal(nn.JustElement().double().forward(x), x[0])


def test_grad() -> None:
    """test_JustElement.lua: test_grad."""
    gradcheck(nn.JustElement().double(), _input())


def test_split() -> None:
    """test_JustElement.lua: test_split (split(1) of a one-element list)."""
    in1 = nn.Identity()()
    net = nn.gModule([in1], [in1.split(1)[0]]).double()
    x = _input()
    np.testing.assert_array_equal(net.forward(x), x[0])
