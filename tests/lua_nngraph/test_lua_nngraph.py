"""Ports of nngraph's ``test/test_nngraph.lua``: one test per Lua test, named after it.

Lua's ``checkGradients`` (totem's finite differences) is :func:`nngraph_py.gradcheck`; values
are compared with Lua's own outputs where the Lua test computes on random data (fixtures made by
``tests/fixtures/lua/engine/make_nngraph_fixtures.lua``). Axes and indices are 0-based here (Lua's
``SplitTable(1)`` is ``SplitTable(0)``), and ``module([node])`` calls a module on a list of one
node (Lua unwraps a table of one node): both are the README's documented differences.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from lua_reference import check_against_lua
from nngraph_py import gradcheck, nn
from nngraph_py.errors import NNGraphError
from nngraph_py.graph.dot import to_dot
from nngraph_py.module import Module


def rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape) + len(shape)).standard_normal(shape)


def test_oneOutput() -> None:
    """test_nngraph.lua: test_oneOutput."""
    in1 = nn.Identity()()
    module = nn.gModule([in1], [nn.Identity()(in1)]).double()
    module.forward(np.array([1.0]))
    np.testing.assert_array_equal(module.output, [1.0])
    np.testing.assert_array_equal(module.backward(np.array([1.0]), np.array([-123.0])), [-123.0])
    module.forward(np.array([2.0]))
    np.testing.assert_array_equal(module.output, [2.0])
    np.testing.assert_array_equal(module.backward(np.array([2.0]), np.array([-2.0])), [-2.0])


def test_twoOutputs() -> None:
    """test_nngraph.lua: test_twoOutputs."""
    in1 = nn.Identity()()
    module = nn.gModule([in1], [nn.Identity()(in1), nn.Identity()(in1)]).double()
    x = np.array([1.0])
    module.forward(x)
    np.testing.assert_array_equal(module.backward(x, [np.array([-2.0]), np.array([-3.0])]), [-5.0])
    gradcheck(module, x)


def test_twoGradOutputs() -> None:
    """test_nngraph.lua: test_twoGradOutputs (Lua's SplitTable(1)({in1}) is SplitTable(0)(in1))."""
    in1 = nn.Sigmoid()()
    out1, out2 = nn.SplitTable(0)(in1).split(2)
    module = nn.gModule([in1], [out1, out2])
    check_against_lua(module, "twoGradOutputs")
    assert len(module.output) == 2
    gradcheck(module, rand(2, 3))


def test_twoInputs() -> None:
    """test_nngraph.lua: test_twoInputs (a nested input {x, {h, c}})."""
    in1, in2 = nn.Identity()(), nn.Identity()()
    prev_h, prev_cell = in2.split(2)
    module = nn.gModule([in1, in2], [nn.CMulTable()([in1, prev_h, prev_cell])])
    check_against_lua(module, "twoInputs")
    assert len(module.grad_input) == 2 and isinstance(module.grad_input[1], list)
    gradcheck(module, [rand(3), [rand(3) + 1, rand(3) + 2]])


def test_twoInputs2() -> None:
    """test_nngraph.lua: test_twoInputs2 (input nodes that are outputs too)."""
    in1, in2 = nn.Sigmoid()(), nn.Sigmoid()()
    module = nn.gModule([in1, in2], [in1, in2, nn.Sigmoid()(in1)])
    check_against_lua(module, "twoInputs2")
    gradcheck(module, [rand(3), rand(3) + 1])


def test_splitDebugLabels() -> None:
    """test_nngraph.lua: test_splitDebugLabels (Lua's "node-1", "node-2"; 0-based here)."""
    node = nn.Identity()()
    node.debug_label = "node"
    node1, node2 = node.split(2)
    assert node1.debug_label == "node-0"
    assert node2.debug_label == "node-1"


def test_identity() -> None:
    """test_nngraph.lua: test_identity."""
    in1, in2 = nn.Identity()(), nn.Identity()()
    module = nn.gModule([in1, in2], [in1, in2, nn.Identity()(in1)])
    check_against_lua(module, "identity")
    gradcheck(module, [rand(3), rand(3) + 1])


def test_gradInputType() -> None:
    """test_nngraph.lua: test_gradInputType."""
    x, prev_rnn_state = nn.Identity()(), nn.Identity()()
    prev_h, prev_cell = prev_rnn_state.split(2)
    cell_out = nn.CAddTable()([nn.CMulTable()([x, prev_h]), nn.CMulTable()([prev_h, prev_cell])])
    module = nn.gModule([x, prev_rnn_state], [cell_out])
    ref = check_against_lua(module, "gradInputType")
    grad_x, (grad_prev_h, grad_prev_cell) = module.grad_input
    assert isinstance(grad_prev_h, np.ndarray)
    assert grad_prev_h.shape == ref["input"][1][0].shape
    gradcheck(module, ref["input"])


def test_tabularInput() -> None:
    """test_nngraph.lua: test_tabularInput (a SplitTable as the input node)."""
    in1 = nn.SplitTable(0)()
    module = nn.gModule([in1], [nn.CAddTable()(in1)])
    check_against_lua(module, "tabularInput")
    gradcheck(module, rand(2, 3))


def test_extraTable() -> None:
    """test_nngraph.lua: test_extraTable (a one-input Identity graph passes a list through)."""
    in1 = nn.Identity()()
    module = nn.gModule([in1], [nn.Identity()(in1)]).double()
    x = np.array([123.0])
    np.testing.assert_array_equal(module.forward(x), x)
    out = module.forward([x])
    assert isinstance(out, list) and len(out) == 1
    np.testing.assert_array_equal(out[0], x)


def test_accGradParameters() -> None:
    """test_nngraph.lua: test_accGradParameters (a CMul input node with two outputs)."""
    cmul = nn.CMul(10)
    in1 = cmul()
    module = nn.gModule([in1], [nn.Identity()(in1), nn.Identity()(in1)])
    check_against_lua(module, "accGradParameters", {"cmul": cmul})
    gradcheck(module, rand(10))


def test_example1() -> None:
    """test_nngraph.lua: test_example1 (a Linear input node)."""
    l1, l2, l3 = nn.Linear(20, 10), nn.Linear(10, 10), nn.Linear(10, 1)
    x1 = l1()
    mlp = nn.gModule([x1], [l3(nn.Tanh()(l2(nn.Tanh()(x1))))])
    check_against_lua(mlp, "example1", {"l1": l1, "l2": l2, "l3": l3})
    gradcheck(mlp, np.random.default_rng(0).random(20))


def test_example2() -> None:
    """test_nngraph.lua: test_example2."""
    a, b, c, d = nn.Linear(20, 20), nn.Linear(10, 10), nn.Linear(20, 1), nn.Linear(10, 1)
    x1, x2 = a(), b()
    madd = nn.CAddTable()([c(nn.Tanh()(x1)), d(nn.Tanh()(x2))])
    gmod = nn.gModule([x1, x2], [nn.Sigmoid()(madd), nn.Tanh()(madd)])
    check_against_lua(gmod, "example2", {"a": a, "b": b, "c": c, "d": d})
    rng = np.random.default_rng(0)
    gradcheck(gmod, [rng.random(20), rng.random(10)])


def test_example3() -> None:
    """test_nngraph.lua: test_example3 (a Sequential with SplitTable and ParallelTable as a
    node, split, JoinTable)."""
    la, lb = nn.Linear(10, 20), nn.Linear(10, 30)
    m = nn.Sequential().add(nn.SplitTable(0)).add(nn.ParallelTable().add(la).add(lb))
    inp = nn.Identity()()
    input1, input2 = m(inp).split(2)
    g = nn.gModule([inp], [nn.JoinTable(0)([input1, input2])])
    check_against_lua(g, "example3", {"la": la, "lb": lb})
    gradcheck(g, np.random.default_rng(0).random((2, 10)))


def test_example4() -> None:
    """test_nngraph.lua: test_example4."""
    a, b, c = nn.Linear(1, 2), nn.Linear(3, 6), nn.Linear(8, 16)
    inp = nn.Identity()()
    l1 = nn.Tanh()(a(inp))
    l2 = nn.Tanh()(b(nn.JoinTable(0)([inp, l1])))
    l3 = nn.Tanh()(c(nn.JoinTable(0)([l1, l2])))
    g = nn.gModule([inp], [l3])
    check_against_lua(g, "example4", {"a": a, "b": b, "c": c})
    gradcheck(g, np.random.default_rng(0).random(1))


def test_type() -> None:
    """test_nngraph.lua: test_type (double, then float: every cached array follows)."""
    in1 = nn.Linear(20, 10)()
    out1 = nn.Linear(10, 1)(nn.Tanh()(nn.Linear(10, 10)(nn.Tanh()(in1))))
    module = nn.gModule([in1], [out1]).double()
    x = np.random.default_rng(0).random(20)
    output = module.forward(x)
    grad_output = np.random.default_rng(1).standard_normal(output.shape)
    module.backward(x, grad_output)
    module.backward(x, output)
    assert output.dtype == np.float64 and module.output.dtype == np.float64
    assert module.grad_input.dtype == np.float64
    assert all(m.output.dtype == np.float64 for m in module.modules())

    module.float()
    assert module.output.dtype == np.float32 and module.grad_input.dtype == np.float32
    assert all(m.output.dtype == np.float32 for m in module.modules())
    assert all(g.dtype == np.float32 for g in module._gouts if g is not None)
    assert module.forward(x.astype(np.float32)).dtype == np.float32
    assert module.backward(x.astype(np.float32),
                           grad_output.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("rows", [3, 2])
def test_nestedGradInput(rows: int) -> None:
    """test_nngraph.lua: test_nestedGradInput (Lua's JoinTable(2) is JoinTable(1))."""
    x = nn.Identity()()
    h1 = nn.Sequential().add(nn.JoinTable(1)).add(nn.Tanh())
    h2 = nn.Sequential().add(nn.JoinTable(1)).add(nn.Identity())
    model = nn.gModule([x], [nn.CAddTable()([h1(x), h2(x)])])
    ref = check_against_lua(model, f"nestedGradInput{rows}")
    gradcheck(model, ref["input"])


def test_unusedInput() -> None:
    """test_nngraph.lua: test_unusedInput."""
    x, h = nn.Identity()(), nn.Identity()()
    nn.Identity()()
    with pytest.raises(NNGraphError, match="does not reach any output"):
        nn.gModule([x, h], [x])


def test_unusedChild() -> None:
    """test_nngraph.lua: test_unusedChild (an unused split output is refused)."""
    prev_state = nn.Identity()()
    h, cell = prev_state.split(2)
    with pytest.raises(NNGraphError):
        nn.gModule([prev_state], [h])


def test_nilInput() -> None:
    """test_nngraph.lua: test_nilInput."""
    with pytest.raises(NNGraphError, match="None"):
        nn.Sigmoid()(None)


def test_unusedNode() -> None:
    """test_nngraph.lua: test_unusedNode (in2 feeds only a dangling Sigmoid)."""
    in1, in2 = nn.Identity()(), nn.Identity()()
    nn.Sigmoid()(in2)
    out1 = nn.Sigmoid()(in1)
    with pytest.raises(NNGraphError):
        nn.gModule([in1, in2], [out1])


def test_usageAfterSplit() -> None:
    """test_nngraph.lua: test_usageAfterSplit (a split node that is also read whole)."""
    prev_state = nn.Identity()()
    h, cell = prev_state.split(2)
    next_state = nn.Identity()(prev_state)
    transformed = nn.Sigmoid()(cell)
    model = nn.gModule([prev_state], [h, next_state, transformed])
    check_against_lua(model, "usageAfterSplit")
    gradcheck(model, [rand(10), rand(10) + 1])


def test_resizeNestedAs() -> None:
    """test_nngraph.lua: test_resizeNestedAs (nested inputs whose length changes between
    calls; the gradient of two Identity outputs is twice the output)."""
    in1 = nn.Identity()()
    net = nn.gModule([in1], [nn.Identity()(in1), nn.Identity()(in1)]).double()
    for sizes in ([3, 4], [3, 4, 5], [3, 4]):
        x = [rand(10), [rand(n) for n in sizes]]
        net.forward(x)
        grad_input = net.backward(x, net.output)
        assert len(grad_input[1]) == len(sizes)
        np.testing.assert_allclose(grad_input[0], 2 * x[0])
        for g, v in zip(grad_input[1], x[1]):
            np.testing.assert_allclose(g, 2 * v)
        gradcheck(net, x)


def test_annotateGraph() -> None:
    """test_nngraph.lua: test_annotateGraph (descriptions in the labels, graph attributes kept
    beside them, forward and backward pictures)."""
    inp = nn.Identity()().annotate(name="Input", description="DescA",
                                   graph_attributes={"color": "red"})
    hidden_a = nn.Linear(10, 10)(inp).annotate(
        name="Hidden A", description="DescB",
        graph_attributes={"color": "blue", "fontcolor": "green", "tooltip": "I am green"})
    hidden_b = nn.Sigmoid()(hidden_a)
    net = nn.gModule([inp], [nn.Linear(10, 10)(hidden_b)])
    assert "DescB" in hidden_a.label() or "DescB" in to_dot(net)
    for which in ("forward", "backward"):
        dot = to_dot(net, which)
        lines = dot.splitlines()

        def line_with(*parts: str) -> bool:
            return any(all(re.search(p, ln) for p in parts) for ln in lines)

        assert line_with(r"color=\"?red", r"label=\"Input.*DescA"), dot
        assert line_with(r"fontcolor=\"?green", r"label=\"Hidden A.*DescB"), dot
        assert line_with(r"color=\"?blue", r"label=\".*DescB"), dot
        assert line_with(r"label=\".*DescB", r"tooltip=\"I am green"), dot


def test_splitMore() -> None:
    """test_nngraph.lua: test_splitMore (split(2) of 3 outputs must raise)."""
    in1 = nn.Identity()()
    out1, out2 = nn.SplitTable(1)(in1).split(2)
    model = nn.gModule([in1], [out1, out2]).double()
    with pytest.raises(NNGraphError, match="split"):
        model.forward(rand(10, 3))


def test_splitLess() -> None:
    """test_nngraph.lua: test_splitLess (split(3) of 2 outputs must raise)."""
    in1 = nn.Identity()()
    out1, out2, out3 = nn.SplitTable(1)(in1).split(3)
    model = nn.gModule([in1], [out1, out2, out3]).double()
    with pytest.raises(NNGraphError):
        model.forward(rand(10, 2))


class _ExpandedZeroGrad(Module):
    """test_gradOutputZeroOptim's dummy: a fixed output; its gradInput is a broadcast (expanded,
    read-only) zero array."""

    def update_output(self, input: np.ndarray) -> np.ndarray:
        self.output = np.random.default_rng(0).random((1, 2, 3))
        return self.output

    def update_grad_input(self, input: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
        self.grad_input = np.broadcast_to(np.zeros((1,) * input.ndim), input.shape)
        return self.grad_input


def test_gradOutputZeroOptim() -> None:
    """test_nngraph.lua: test_gradOutputZeroOptim (expanded zero gradients summed at a fan-out
    are never written into)."""
    x0 = np.random.default_rng(1).random((1, 2, 3))
    g0 = np.random.default_rng(2).random((1, 2, 3))
    x = nn.Identity()()
    mod = nn.gModule([x], [nn.CAddTable()([_ExpandedZeroGrad()(x), nn.Identity()(x)])]).double()
    mod.forward(x0)
    mod.backward(x0, g0)
    np.testing.assert_allclose(mod.backward(x0, g0), g0)

    x = nn.Identity()()
    mod = nn.gModule([x], [nn.CAddTable()([_ExpandedZeroGrad()(x),
                                           _ExpandedZeroGrad()(x)])]).double()
    mod.forward(x0)
    np.testing.assert_array_equal(mod.backward(x0, g0), np.zeros((1, 2, 3)))


def test_replace() -> None:
    """test_nngraph.lua: test_replace (replace Linears and the Sigmoid inside a gModule)."""
    i = nn.Identity()()
    l1 = nn.Linear(5, 2)(i)
    sig = nn.Sigmoid()(l1)
    l2 = nn.Linear(2, 5)(sig)
    model = nn.gModule([i], [l2]).double()
    x, g = rand(4, 5), rand(4, 5)
    assert model.forward(x).shape == x.shape
    assert model.backward(x, g).shape == x.shape

    def swap(m: Module) -> Module:
        if isinstance(m, nn.Linear):
            if m.weight.shape[0] == 5:
                return nn.Linear(2, 10)
            if m.weight.shape[0] == 2:
                return nn.Linear(10, 2)
        elif isinstance(m, nn.Sigmoid):
            return nn.Tanh()
        return m

    originals = [l1.module, sig.module, l2.module]
    model = model.replace(swap).double()
    x, g = rand(4, 10), rand(4, 10)
    assert model.forward(x).shape == x.shape
    assert model.backward(x, g).shape == x.shape
    children = model.children()
    assert not any(m is old for m in children for old in originals), "modules not replaced"
    assert any(isinstance(m, nn.Tanh) for m in children)
