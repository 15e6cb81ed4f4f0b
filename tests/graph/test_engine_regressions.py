"""Regression tests for the engine's wrong results of issue 11 (each failed before its fix).

The numbers name the items of the issue: 1 fan-out of 0-d values, 2 0-d arrays stay arrays,
3 None in gradient lists means zeros, 4 clone of a graph, 5 reuse refused, 6 exact grad_output
shape, 7 the dtype policy.
"""
from __future__ import annotations

import numpy
import pytest
import torch

from conftest import on
from nngraph_py import backend, nn
from nngraph_py.errors import GraphBuildError, InputError, NNGraphError, ShapeError


def rand(rng, *shape):
    return rng.standard_normal(shape)


# ------------------------------------------------------------------------------------------------
# 1. 0-d fan-out
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("consumers", [2, 3, 4])
def test_zero_d_value_feeding_several_consumers_gets_the_summed_gradient(device, rng, consumers):
    x = nn.Identity()()
    s = nn.Select(0, 1)(x)  # a 0-d value
    outs = [nn.MulConstant(float(k + 1))(s) for k in range(consumers)]
    g = nn.gModule([x], [nn.CAddTable()(outs)]).double().to(device)
    v = rand(rng, 3)
    g.forward(on(device, v))
    gi = g.backward(on(device, v), on(device, numpy.array(1.0)))
    expected = numpy.zeros(3)
    expected[1] = sum(range(1, consumers + 1))
    numpy.testing.assert_allclose(backend.to_numpy(gi), expected)


def test_loss_that_is_an_output_and_feeds_other_nodes(device, rng):
    """loss is output 1 and also feeds 2 * loss (output 2) and 3 * loss (output 3)."""
    pred, target = nn.Identity()(), nn.Identity()()
    loss = nn.MSECriterion()([pred, target])
    g = nn.gModule([pred, target], [loss, nn.MulConstant(2.0)(loss), nn.MulConstant(3.0)(loss)])
    g = g.double().to(device)
    p, t = rand(rng, 4), rand(rng, 4)
    g.forward(on(device, p, t))
    one = on(device, numpy.array(1.0))
    gp, _ = g.backward(on(device, p, t), [one, one, one])
    numpy.testing.assert_allclose(backend.to_numpy(gp), 6.0 * 2 * (p - t) / 4, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# 2. 0-d arrays stay 0-d arrays
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [nn.Tanh, nn.ReLU, nn.Sigmoid, lambda: nn.MulConstant(2.0),
                                  lambda: nn.AddConstant(1.0), nn.Identity],
                         ids=["Tanh", "ReLU", "Sigmoid", "MulConstant", "AddConstant", "Identity"])
def test_element_wise_modules_keep_zero_d_arrays(device, make):
    m = make().double().to(device)
    x = on(device, numpy.array(0.3))
    y = m.forward(x)
    assert backend.is_array(y) and y.shape == () and m.output is y
    gi = m.backward(x, on(device, numpy.array(1.0)))
    assert backend.is_array(gi) and gi.shape == ()


def test_zero_d_loss_backward_on_the_strict_device(rng):
    x, t = nn.Identity()(), nn.Identity()()
    loss = nn.MulConstant(0.5)(nn.Tanh()(nn.MSECriterion()([nn.Linear(3, 2)(x), t])))
    g = nn.gModule([x, t], [loss]).double().to("strict")
    inputs = on("strict", rand(rng, 4, 3), rand(rng, 4, 2))
    out = g.forward(inputs)
    assert backend.device_of(out) == "strict" and out.shape == ()
    gx, gt = g.backward(inputs, on("strict", numpy.array(1.0)))
    assert backend.device_of(gx) == "strict" and gx.shape == (4, 3)


# ------------------------------------------------------------------------------------------------
# 3. None in gradient lists is zeros, everywhere
# ------------------------------------------------------------------------------------------------
def test_concat_table_with_none_gradient(device, rng):
    m = nn.ConcatTable(nn.Linear(3, 2), nn.Narrow(1, 0, 2)).double().to(device)
    x = on(device, rand(rng, 4, 3))
    m.forward(x)
    g = rand(rng, 4, 2)
    gi = m.backward(x, [on(device, g), None])
    numpy.testing.assert_allclose(backend.to_numpy(gi), g @ backend.to_numpy(m[0].weight))
    gi = m.backward(x, [None, on(device, g)])
    expected = numpy.zeros((4, 3))
    expected[:, :2] = g
    numpy.testing.assert_allclose(backend.to_numpy(gi), expected)


def test_parallel_table_with_none_gradient(device, rng):
    m = nn.ParallelTable(nn.Linear(3, 2), nn.Tanh()).double().to(device)
    x = on(device, rand(rng, 4, 3), rand(rng, 5))
    m.forward(x)
    ga, gb = m.backward(x, [None, on(device, rand(rng, 5))])
    numpy.testing.assert_array_equal(backend.to_numpy(ga), numpy.zeros((4, 3)))
    assert gb.shape == (5,)


def test_none_inside_a_nested_gradient_list_of_a_graph(device, rng):
    x = nn.Identity()()
    branches = nn.ConcatTable(nn.Linear(3, 2), nn.Tanh())(x)
    y = nn.Identity()(branches)
    g = nn.gModule([x], [y, nn.Tanh()(nn.SelectTable(1)(branches))]).double().to(device)
    v = on(device, rand(rng, 4, 3))
    g.forward(v)
    gi = g.backward(v, [[None, on(device, numpy.ones((4, 3)))], None])
    assert numpy.all(numpy.isfinite(backend.to_numpy(gi)))
    expected = 1 - numpy.tanh(backend.to_numpy(v)) ** 2
    numpy.testing.assert_allclose(backend.to_numpy(gi), expected, rtol=1e-12)


def test_input_that_is_also_an_output_gets_zeros_not_none(rng):
    a, b = nn.Identity()(), nn.Identity()()
    g = nn.gModule([a, b], [a, nn.Tanh()(b)]).double()
    x = [rand(rng, 3), rand(rng, 3)]
    g.forward(x)
    ga, gb = g.backward(x, [None, numpy.ones(3)])
    numpy.testing.assert_array_equal(ga, numpy.zeros(3))
    assert gb.shape == (3,)


# ------------------------------------------------------------------------------------------------
# 4. clone of graphs
# ------------------------------------------------------------------------------------------------
def _small_graph():
    x = nn.Identity()()
    h = nn.Tanh()(nn.Linear(3, 4)(x)).annotate(name="hidden")
    return nn.gModule([x], [nn.Linear(4, 2)(h)])


def test_cloned_gmodule_repr_and_backward_as_a_node_of_another_graph(rng):
    proto = _small_graph().double()
    copy = proto.clone()
    assert "hidden" in repr(copy)
    x = nn.Identity()()
    outer = nn.gModule([x], [nn.Tanh()(copy(x))])
    v = rand(rng, 5, 3)
    outer.forward(v)
    gi = outer.backward(v, numpy.ones((5, 2)))
    assert gi.shape == (5, 3)
    assert copy.node_name(copy.nodes[1]) == proto.node_name(proto.nodes[1])


def test_clone_sharing_of_lstm_clones_module_has_its_own_index(rng):
    from lstm.clones import clone_sharing

    proto = _small_graph().double()
    twin = clone_sharing(proto)
    assert twin.parameters()[0][0] is proto.parameters()[0][0]
    assert repr(twin) == repr(proto)
    v = rand(rng, 2, 3)
    twin.forward(v)
    twin.backward(v, numpy.ones((2, 2)))


def test_clone_of_a_long_chain_needs_no_recursion():
    x = nn.Identity()()
    h = x
    for _ in range(400):
        h = nn.Tanh()(h)
    g = nn.gModule([x], [h]).double()
    copy = g.clone()
    assert len(copy.nodes) == 401
    out = copy.forward(numpy.ones(2))
    numpy.testing.assert_allclose(out, g.forward(numpy.ones(2)))


# ------------------------------------------------------------------------------------------------
# 5. reuse refused everywhere
# ------------------------------------------------------------------------------------------------
def test_one_criterion_on_two_pairs_of_nodes_is_refused():
    a, b, c, d = (nn.Identity()() for _ in range(4))
    crit = nn.MSECriterion()
    crit([a, b])
    with pytest.raises(GraphBuildError, match=r"clone"):
        crit([c, d])


def test_one_module_in_two_sequentials_is_refused():
    lin = nn.Linear(3, 3)
    nn.Sequential(lin)
    with pytest.raises(GraphBuildError, match=r"clone"):
        nn.Sequential(lin)


def test_module_in_a_container_and_a_graph_is_refused():
    lin = nn.Linear(3, 3)
    nn.Sequential(lin, nn.Tanh())
    with pytest.raises(GraphBuildError, match=r"clone"):
        lin(nn.Identity()())
    lin2 = nn.Linear(3, 3)
    lin2(nn.Identity()())
    with pytest.raises(GraphBuildError, match=r"clone"):
        nn.ConcatTable(lin2)


def test_same_module_twice_in_one_tree_is_refused():
    lin = nn.Linear(3, 3)
    seq = nn.Sequential(lin)
    with pytest.raises(GraphBuildError, match=r"clone"):
        seq.add(lin)


def test_module_from_criterion_wrapping_one_criterion_twice_in_a_graph_is_refused():
    a, b = nn.Identity()(), nn.Identity()()
    crit = nn.MSECriterion()
    nn.ModuleFromCriterion(crit)([a, b])
    with pytest.raises(GraphBuildError, match=r"clone"):
        nn.ModuleFromCriterion(crit)([a, b])


def test_module_used_in_a_container_and_inside_a_graph_node_is_refused_at_gmodule():
    """Two wrappers of one criterion that never made a node: caught when the graph is built."""
    from nngraph_py.graph.node import Node

    a, b = nn.Identity()(), nn.Identity()()
    crit = nn.MSECriterion()
    n1 = Node(nn.ModuleFromCriterion(crit), [a, b], table=True)
    n2 = Node(nn.ModuleFromCriterion(crit), [a, b], table=True)
    with pytest.raises(GraphBuildError, match=r"clone"):
        nn.gModule([a, b], [n1, n2])


# ------------------------------------------------------------------------------------------------
# 6. exact shape check of grad_output
# ------------------------------------------------------------------------------------------------
def test_one_element_gradient_for_a_zero_d_output_is_refused(rng):
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Select(0, 0)(x)]).double()
    v = rand(rng, 3)
    g.forward(v)
    with pytest.raises(ShapeError, match=r"shape \(\)"):
        g.backward(v, numpy.ones(1))
    m = nn.Select(0, 0).double()
    m.forward(v)
    with pytest.raises(ShapeError):
        m.backward(v, numpy.ones(1))


# ------------------------------------------------------------------------------------------------
# 7. dtype policy
# ------------------------------------------------------------------------------------------------
def test_integer_input_to_a_float_module_is_refused_naming_the_node():
    x = nn.Identity()()
    h = nn.ReLU()(nn.Linear(3, 2)(x)).annotate(name="act")
    g = nn.gModule([x], [h])
    with pytest.raises(InputError, match=r"integer|int64"):
        g.forward(numpy.ones((2, 3), dtype=numpy.int64))
    with pytest.raises(InputError, match=r"act"):
        nn.gModule([x2 := nn.Identity()()], [nn.ReLU()(x2).annotate(name="act")]).forward(
            numpy.ones(3, dtype=numpy.int64))
    with pytest.raises(InputError, match=r"nn.ReLU"):
        nn.ReLU().forward(numpy.ones(3, dtype=numpy.int64))


def test_float_inputs_are_cast_to_the_module_dtype():
    m = nn.Tanh()  # float32
    assert m.forward(numpy.ones(3, dtype=numpy.float64)).dtype == numpy.float32
    assert m.forward(numpy.ones(3, dtype=numpy.float16)).dtype == numpy.float32


def test_integer_targets_and_indices_still_pass_through_structural_modules(rng):
    x, t = nn.Identity()(), nn.Identity()()
    loss = nn.ClassNLLCriterion()([nn.LogSoftMax()(nn.Linear(3, 4)(x)), t])
    g = nn.gModule([x, t], [loss])
    out = g.forward([rand(rng, 2, 3), numpy.array([1, 3])])
    assert out.shape == ()
