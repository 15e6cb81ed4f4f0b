"""Ports of nngraph's ``test/test_old.lua`` (t1..t8: scripts that print and draw; here each
checks what the script printed or drew). ``topsort`` is a helper, not a test."""
from __future__ import annotations

import numpy as np

from lua_reference import check_against_lua
from nngraph_py import nn
from nngraph_py.graph.dot import to_dot


def _example2() -> nn.gModule:
    x1, x2 = nn.Linear(20, 20)(), nn.Linear(10, 10)()
    madd = nn.CAddTable()([nn.Linear(20, 1)(nn.Tanh()(x1)), nn.Linear(10, 1)(nn.Tanh()(x2))])
    return nn.gModule([x1, x2], [nn.Sigmoid()(madd), nn.Tanh()(madd)]).double()


def test_t1() -> None:
    """test_old.lua: t1 (forward, updateGradInput, forward and backward pictures)."""
    gmod = _example2()
    rng = np.random.default_rng(0)
    x = [rng.random(20), rng.random(10)]
    out = gmod.update_output(x)
    assert [o.shape for o in out] == [(1,), (1,)]
    gi = gmod.update_grad_input(x, [rng.random(1), rng.random(1)])
    assert [g.shape for g in gi] == [(20,), (10,)]
    for which in ("forward", "backward"):
        dot = to_dot(gmod, which)
        assert dot.count("Linear") >= 4 and "->" in dot


def test_t2() -> None:
    """test_old.lua: t2 (a gModule against the same network as Sequential/ParallelTable with
    copied weights: outputs, gradInputs and accumulated gradients equal; Lua's values too)."""
    l0, l1, l2 = nn.Linear(5, 10), nn.Linear(10, 20), nn.Linear(30, 50)
    m0, m1 = l0(), l1()
    gmod = nn.gModule([m0, m1], [l2(nn.JoinTable(0)([m0, m1]))]).double()
    check_against_lua(gmod, "old_t2", {"l0": l0, "l1": l1, "l2": l2})
    nn0, nn1, nn2 = (l.clone() for l in (l0, l1, l2))
    nnmod = nn.Sequential(nn.ParallelTable(nn0, nn1), nn.JoinTable(0).double(), nn2)
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = [rng.random(5), rng.random(10)]
        np.testing.assert_allclose(gmod.forward(x), nnmod.forward(x), rtol=1e-12)
        odx = rng.random(50)
        gmod.zero_grad_parameters()
        nnmod.zero_grad_parameters()
        for a, b in zip(gmod.backward(x, odx), nnmod.backward(x, odx)):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        for g, n in ((l0, nn0), (l1, nn1), (l2, nn2)):
            np.testing.assert_allclose(g.grad_weight, n.grad_weight, rtol=1e-12)
            np.testing.assert_allclose(g.grad_bias, n.grad_bias, rtol=1e-12)


def test_t3() -> None:
    """test_old.lua: t3 (nn's SplitTable/ParallelTable/JoinTable network trained 25 steps on
    MSE: the error goes down)."""
    mlp = nn.Sequential(nn.SplitTable(1),
                        nn.ParallelTable(nn.Linear(10, 3), nn.Linear(10, 7)),
                        nn.ParallelTable(nn.Linear(3, 2), nn.Linear(7, 1)),
                        nn.JoinTable(0)).double()
    assert mlp.forward(np.random.default_rng(0).standard_normal((10, 2))).shape == (3,)
    criterion = nn.MSECriterion().double()
    x = np.ones((10, 2))
    y = x[:3, 0].copy()
    errors = []
    for _ in range(25):
        pred = mlp.forward(x)
        errors.append(float(criterion.forward(pred, y)))
        mlp.zero_grad_parameters()
        mlp.backward(x, criterion.backward(pred, y))
        mlp.update_parameters(0.05)
    assert errors[-1] < errors[0] / 10


def test_t4() -> None:
    """test_old.lua: t4 (an input passed through as an output: gradInput sizes)."""
    get_input1, get_input2 = nn.Identity()(), nn.Identity()()
    net = nn.gModule([get_input1, get_input2], [nn.Tanh()(get_input1), get_input2]).double()
    rng = np.random.default_rng(0)
    x = [rng.standard_normal(2), rng.standard_normal(5)]
    net.forward(x)
    g = [rng.standard_normal(2), rng.standard_normal(5)]
    grad_input = net.backward(x, g)
    assert grad_input[0].size == x[0].size
    np.testing.assert_array_equal(grad_input[1], g[1])


def test_t5() -> None:
    """test_old.lua: t5 (test_example3's graph: forward, backward and pictures)."""
    m = nn.Sequential(nn.SplitTable(0), nn.ParallelTable(nn.Linear(10, 20), nn.Linear(10, 30)))
    inp = nn.Identity()()
    input1, input2 = m(inp).split(2)
    g = nn.gModule([inp], [nn.JoinTable(0)([input1, input2])]).double()
    assert "SelectTable" in to_dot(g)
    rng = np.random.default_rng(0)
    indata = rng.random((2, 10))
    assert g.forward(indata).shape == (50,)
    assert g.backward(indata, rng.random(50)).shape == (2, 10)
    assert "->" in to_dot(g, "backward")


def test_t8() -> None:
    """test_old.lua: t8 (the picture of a Linear read by two Tanh joined by CAddTable: one
    node per module, and the fan-out's two edges)."""
    in1 = nn.Identity()()
    m = nn.Linear(10, 10)(in1)
    out = nn.CAddTable()([nn.Tanh()(m), nn.Tanh()(m)])
    mod = nn.gModule([in1], [out])
    dot = to_dot(mod)
    assert dot.count("->") >= 5  # in1->Linear, Linear->Tanh x2, Tanh->CAddTable x2
    assert dot.count("Tanh") >= 2
