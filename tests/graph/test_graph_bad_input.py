"""Bad input to a gModule: each refusal names the node (annotation or file:line), the expected
and the actual shapes, on arrival at the gModule, at a node at run time, or in backward."""
from __future__ import annotations

import numpy
import pytest

from conftest import on
from nngraph_py import nn
from nngraph_py.errors import GraphBuildError, GraphError, InputError, ShapeError
from nngraph_py.compile import compile


def ones(*shape):
    return numpy.ones(shape, "float32")


def assert_mentions(error: BaseException, *fragments: str) -> None:
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def one_input_graph():
    x = nn.Identity()().annotate(name="x")
    return nn.gModule(x, nn.Linear(3, 2)(x).annotate(name="proj"))


def two_input_graph():
    u, v = nn.Identity()().annotate(name="u"), nn.Identity()().annotate(name="v")
    return nn.gModule([u, v], nn.CAddTable()([nn.Linear(3, 3)(u), v]))


# ------------------------------------------------------------------------------------------------
# On arrival: what the gModule's inputs take
# ------------------------------------------------------------------------------------------------
def test_one_input_gmodule_refuses_a_list_of_one_naming_its_input_node(device):
    g = one_input_graph().to(device)
    x = on(device, ones(4, 3))
    with pytest.raises(InputError) as info:
        g.forward([x])
    assert_mentions(info.value, "nn.gModule([x] -> [proj])", "has one input, node 'x'",
                    "test_graph_bad_input.py:", "takes one array, not a list of 1 [(4, 3)]",
                    "call forward(x), not forward([x])")
    with pytest.raises(InputError, match="not a list of 1"):
        g.backward([x], on(device, ones(4, 2)))
    assert g.forward(x).shape == (4, 2)  # still usable


@pytest.mark.parametrize("value, got", [
    (None, "got NoneType"),
    ("abc", "got str"),
    ([[1.0, 2.0, 3.0]], "not a list of 1 [[float, float, float]]"),
    ([ones(4, 3), ones(4, 3)], "not a list of 2 [(4, 3), (4, 3)]"),
])
def test_one_input_gmodule_refuses_what_is_not_an_array(value, got):
    with pytest.raises(InputError) as info:
        one_input_graph().forward(value)
    assert_mentions(info.value, "has one input, node 'x'", got)


@pytest.mark.parametrize("value, got", [
    (ones(4, 3), "pass a list of 2 arrays, got (4, 3)"),
    ([ones(4, 3)], "pass a list of 2 arrays, got a list of 1 [(4, 3)]"),
    ([ones(4, 3)] * 3, "got a list of 3 [(4, 3), (4, 3), (4, 3)]"),
])
def test_several_inputs_refuse_a_wrong_count(value, got):
    with pytest.raises(InputError) as info:
        two_input_graph().forward(value)
    assert_mentions(info.value, "nn.gModule([u, v] -> [CAddTable1])", "has 2 inputs (u, v)", got)


def test_several_inputs_refuse_none_and_lists_naming_the_input_node():
    g = two_input_graph()
    with pytest.raises(InputError) as info:
        g.forward([ones(4, 3), None])
    assert_mentions(info.value, "input[1] goes to node 'v'", "test_graph_bad_input.py:",
                    "takes an array, got NoneType")
    with pytest.raises(InputError) as info:  # u feeds a Linear: one array
        g.forward([[ones(4, 3), ones(4, 3)], ones(4, 3)])
    assert_mentions(info.value, "input[0] goes to node 'u'",
                    "takes one array, not a list of 2 [(4, 3), (4, 3)]")
    assert g.forward((ones(4, 3), ones(4, 3))).shape == (4, 3)  # a tuple is a list


def test_an_input_read_by_a_table_module_takes_a_list():
    x = nn.Identity()().annotate(name="pieces")
    g = nn.gModule(x, nn.JoinTable(1)(x))
    assert g.forward([ones(2, 3), ones(2, 1)]).shape == (2, 4)
    with pytest.raises(InputError) as info:
        g.forward(ones(2, 3))
    assert_mentions(info.value, "node 'pieces'", "takes a list of arrays, got one array (2, 3)")


def test_a_nested_list_for_a_table_module_names_the_node():
    a, b = nn.Identity()(), nn.Identity()()
    g = nn.gModule([a, b], nn.CAddTable()([a, b]).annotate(name="sum"))
    with pytest.raises(GraphError) as info:
        g.forward([[ones(4, 3), ones(4, 3)], ones(4, 3)])
    assert_mentions(info.value, "node 'sum'",
                    "expected a list of arrays, got [[(4, 3), (4, 3)], (4, 3)]")


# ------------------------------------------------------------------------------------------------
# At run time: a node receives the kind its module takes (Module.forward's check, in the graph)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: nn.Linear(3, 2), lambda: nn.Tanh()],
                         ids=["Linear", "Tanh"])
def test_a_one_array_module_fed_a_list_names_the_node(make, device):
    x = nn.Identity()()
    steps = nn.SplitTable(1)(x)
    y = make()(steps).annotate(name="head")  # forgot .split(5) / SelectTable
    g = nn.gModule(x, y).to(device)
    with pytest.raises(GraphError) as info:  # Tanh used to compute on the list: silent garbage
        g.forward(on(device, ones(4, 5, 3)))
    assert_mentions(info.value, "forward failed at node 'head'", "test_graph_bad_input.py:",
                    "expected one array, got a list of 5 [(4, 3), (4, 3), (4, 3), (4, 3), (4, 3)]",
                    "SelectTable")
    assert isinstance(info.value.cause, InputError) and info.value.node is y


def test_a_table_module_fed_one_array_names_the_node():
    x = nn.Identity()()
    total = nn.CMulTable()(nn.Linear(3, 3)(x))  # one node, not a list of nodes
    g = nn.gModule(x, total)
    with pytest.raises(GraphError) as info:
        g.forward(ones(4, 3))
    assert_mentions(info.value, "node 'CMulTable1'", "test_graph_bad_input.py:",
                    "expected a list of arrays, got one array (4, 3)", "module([a, b])")


def test_a_table_module_fed_a_list_output_runs():
    x = nn.Identity()()
    g = nn.gModule(x, nn.CAddTable()(nn.SplitTable(1)(x)))
    numpy.testing.assert_array_equal(g.forward(ones(2, 3, 4)), numpy.full((2, 4), 3.0, "float32"))


def test_the_kind_check_survives_fused_linears():
    x = nn.Identity()()
    steps = nn.SplitTable(1)(x)
    a, b = nn.Linear(3, 2)(steps).annotate(name="a"), nn.Linear(3, 2)(steps)
    g = compile(nn.gModule(x, [a, b]))
    with pytest.raises(GraphError) as info:
        g.forward(ones(4, 5, 3))
    assert_mentions(info.value, "node 'a'", "nn.Linear(3 -> 2)",
                    "expected one array, got a list of 5")


def test_nested_gmodule_with_several_inputs_fed_one_array():
    p, q = nn.Identity()(), nn.Identity()()
    inner = nn.gModule([p, q], nn.CAddTable()([p, q]))
    x = nn.Identity()()
    outer = nn.gModule(x, inner(nn.Linear(3, 3)(x)).annotate(name="block"))
    with pytest.raises(GraphError) as info:
        outer.forward(ones(4, 3))
    assert_mentions(info.value, "forward failed at node 'block'", "has 2 inputs",
                    "pass a list of 2 arrays, got (4, 3)")


def test_nested_one_input_gmodule_called_on_a_list_is_refused_when_built():
    inner = one_input_graph()
    a, b = nn.Identity()().annotate(name="a"), nn.Identity()().annotate(name="b")
    with pytest.raises(GraphBuildError) as info:
        inner([a, b])
    assert_mentions(info.value, "nn.gModule takes one array", "list of 2 nodes (a, b)")


def test_kinds_are_planned_once_at_construction():
    x = nn.Identity()()
    y = nn.CAddTable()([nn.Tanh()(x), nn.Linear(3, 3)(x)])
    g = nn.gModule(x, nn.SplitTable(1)(y))
    # Input node: checked on arrival; the table node: always a list; the others: one array.
    checks = {g.node_name(n): step[4] for n, step in zip(g.nodes, g._plan)}
    assert checks == {"Identity1": None, "Tanh1": False, "Linear1": False, "CAddTable1": None,
                      "SplitTable1": False}


# ------------------------------------------------------------------------------------------------
# backward: grad_output is checked against the outputs of the last forward
# ------------------------------------------------------------------------------------------------
def test_grad_output_of_the_wrong_shape_names_the_output_node(device):
    g = one_input_graph().to(device)
    x = on(device, ones(4, 3))
    g.forward(x)
    with pytest.raises(ShapeError) as info:
        g.backward(x, on(device, ones(4, 5)))
    assert_mentions(info.value, "nn.gModule([x] -> [proj])", "expected grad_output of shape (4, 2)",
                    "output node 'proj' (nn.Linear(3 -> 2), created at ",
                    "test_graph_bad_input.py:", "got (4, 5)")
    with pytest.raises(InputError) as info:
        g.backward(x, [on(device, ones(4, 2))])
    assert_mentions(info.value, "expected grad_output as one array of shape (4, 2)",
                    "got a list of 1 [(4, 2)]")
    assert g.backward(x, on(device, ones(4, 2))).shape == (4, 3)  # still usable


def test_grad_outputs_of_several_outputs_are_counted_and_checked_one_by_one():
    x, y = nn.Identity()(), nn.Identity()()
    g = nn.gModule([x, y], [nn.Tanh()(x).annotate(name="t"), nn.Linear(3, 2)(y).annotate(name="l")])
    inputs = [ones(4, 3), ones(4, 3)]
    g.forward(inputs)
    with pytest.raises(InputError) as info:
        g.backward(inputs, ones(4, 3))
    assert_mentions(info.value, "has 2 outputs (t, l)", "a list of 2", "got (4, 3)")
    with pytest.raises(InputError) as info:
        g.backward(inputs, [ones(4, 3)])
    assert_mentions(info.value, "has 2 outputs (t, l)", "got a list of 1 [(4, 3)]")
    with pytest.raises(ShapeError) as info:
        g.backward(inputs, [ones(4, 3), ones(4, 3)])
    assert_mentions(info.value, "expected grad_output[1] of shape (4, 2)", "output node 'l'",
                    "got (4, 3)")
    gx, gy = g.backward(inputs, [ones(4, 3), None])  # None: no gradient for that output
    assert gx.shape == gy.shape == (4, 3) and not gy.any()


def test_grad_output_for_a_list_output_is_checked_element_by_element():
    x = nn.Identity()()
    g = nn.gModule(x, nn.SplitTable(1)(x).annotate(name="steps"))
    g.forward(ones(2, 3, 4))
    with pytest.raises(ShapeError) as info:
        g.backward(ones(2, 3, 4), [ones(2, 4), ones(2, 5), ones(2, 4)])
    assert_mentions(info.value, "expected grad_output[1] of shape (2, 4)",
                    "element 1 of output node 'steps'", "got (2, 5)")
    with pytest.raises(GraphError) as info:  # another count: SplitTable itself refuses it
        g.backward(ones(2, 3, 4), [ones(2, 4), ones(2, 4)])
    assert_mentions(info.value, "node 'steps'", "expected grad_output as a list of 3 arrays",
                    "[(2, 4), (2, 4)]")
