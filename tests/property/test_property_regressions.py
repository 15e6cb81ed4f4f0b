"""Named regression tests for the engine bugs the property suite found (/work/coord/engine_bugs.md).

Each is the smallest graph of one failure class, shrunk from a random example, checked against
the same PyTorch reference as the property suite (``run_graph``). The numbers are those of
engine_bugs.md; all failed on commit 1906b66 (before issue 11's fixes).
"""
from __future__ import annotations

import numpy as np
import pytest

from nngraph_py import backend, nn
from prop_graphs import Clone, Composite, GraphDesc, Leaf, Step
from prop_types import Arr, Lst
from test_property_graphs import run_graph


def _desc(steps: list, types: list, outputs: list) -> GraphDesc:
    d = GraphDesc(steps=steps, types=types, outputs=outputs)
    d.n_steps = len(steps)
    return d


def _inp(t: object) -> Step:
    return Step("input", type=t)


def _app(name: str, args: tuple, *srcs: int, table: bool = False) -> Step:
    return Step("apply", expr=Leaf(name, args), srcs=tuple(srcs), table=table)


S0 = Arr(())


def test_bug1_zero_d_value_feeding_three_consumers_keeps_every_gradient() -> None:
    """engine_bugs #1: a 0-d value read by three nodes; the third gradient was added in place
    into a NumPy scalar and lost (grad_input 2.0 instead of 3.0)."""
    x = nn.Identity()()
    outs = [nn.Identity()(x) for _ in range(3)]
    g = nn.gModule([x], outs).double()
    v = np.array(0.5)
    g.forward(v)
    grad = g.backward(v, [np.array(1.0), np.array(1.0), np.array(1.0)])
    assert backend.is_array(grad) and grad.shape == ()
    assert float(grad) == 3.0


def test_bug1_loss_that_is_an_output_and_feeds_other_nodes() -> None:
    """engine_bugs #1: an MSE loss node that is an output and also feeds two MulConstants."""
    pred, target = nn.Identity()(), nn.Identity()()
    loss = nn.MSECriterion()([pred, target])
    a, b = nn.MulConstant(2.0)(loss), nn.MulConstant(3.0)(loss)
    g = nn.gModule([pred, target], [loss, a, b]).double()
    p, t = np.array([1.0, 2.0]), np.array([0.0, 0.0])
    g.forward([p, t])
    dp, _ = g.backward([p, t], [np.array(1.0), np.array(1.0), np.array(1.0)])
    # d(loss)/dp = (p - t), times 1 + 2 + 3
    np.testing.assert_allclose(dp, 6.0 * (p - t))


@pytest.mark.parametrize("module", ["Tanh", "ReLU", "Sigmoid", "MulConstant", "AddConstant",
                                    "Identity", "Dropout"])
def test_bug2_element_wise_modules_keep_0d_arrays(module: str) -> None:
    """engine_bugs #2: Tanh/ReLU/MulConstant returned numpy.float64 for a 0-d input, Sigmoid
    raised TypeError."""
    m = {"MulConstant": lambda: nn.MulConstant(2.0), "AddConstant": lambda: nn.AddConstant(1.0),
         "Dropout": lambda: nn.Dropout(0.0)}.get(module, getattr(nn, module))().double()
    y = m.forward(np.array(0.3))
    assert isinstance(y, np.ndarray) and y.shape == (), type(y)
    gi = m.backward(np.array(0.3), np.array(1.0))
    assert isinstance(gi, np.ndarray) and gi.shape == (), type(gi)


def test_bug2_zero_d_loss_backward_on_the_strict_device() -> None:
    """engine_bugs #2: the backward of a graph with a 0-d loss on the strict device."""
    desc = _desc([_inp(Arr((3,))), _inp(Arr((3,))), _app("MSECriterion", (True,), 0, 1, table=True),
                  _app("Tanh", (), 2)],
                 [Arr((3,)), Arr((3,)), S0, S0], [3])
    run_graph(desc, 0, device="strict")


def test_bug2_fan_out_sum_of_0d_gradients_is_an_array() -> None:
    """engine_bugs #2: an input that is an output and feeds Identity: grad_input was
    numpy.float64 (the fan-out sum of two 0-d gradients)."""
    desc = _desc([_inp(S0), _app("Identity", (), 0)], [S0, S0], [0, 1])
    run_graph(desc, 0)


def test_bug3_none_in_grad_output_of_concat_table() -> None:
    """engine_bugs #3: ConcatTable given [g, None] crashed ('NoneType' has no attribute)."""
    m = nn.ConcatTable(nn.SoftMax(), nn.Linear(4, 2)).double()
    x = np.ones(4)
    m.forward(x)
    for grads in ([np.ones(4), None], [None, np.ones(2)], [None, None]):
        gi = m.backward(x, grads)
        assert isinstance(gi, np.ndarray) and gi.shape == (4,)


def test_bug3_none_in_grad_output_of_parallel_table_with_linear() -> None:
    """engine_bugs #3: ParallelTable(ReLU, Linear) given [g, None]: Linear's matmul got None."""
    m = nn.ParallelTable(nn.ReLU(), nn.Linear(2, 3)).double()
    x = [np.ones((1, 2)), np.ones((1, 2))]
    m.forward(x)
    gi = m.backward(x, [np.ones((1, 2)), None])
    np.testing.assert_array_equal(gi[1], np.zeros((1, 2)))
    assert float(np.abs(m[1].grad_weight).sum()) == 0.0


def test_bug3_none_in_a_list_output_that_fans_out() -> None:
    """engine_bugs #3: a list value read by two nodes, one gradient list holding None: the
    fan-out sum raised TypeError (None + array)."""
    two = Lst((Arr((3,)), Arr((3,))))
    desc = _desc([_inp(two), _app("Identity", (), 0), _app("NarrowTable", (0, 1), 0)],
                 [two, two, Lst((Arr((3,)),))], [1, 2])
    for seed in range(8):  # some seeds give None entries
        run_graph(desc, seed)


def test_bug3_input_that_is_also_an_output_gets_zeros_not_none() -> None:
    """engine_bugs #3: grad_input held None for a nested-list input whose elements are outputs
    with None gradients."""
    nested = Lst((Arr((2,)), Lst((Arr((2,)), Arr((2,))))))
    x = nn.Identity()()
    h, c = x.split(2)
    g = nn.gModule([x], [h, c]).double()
    v = [np.ones(2), [np.ones(2), np.ones(2)]]
    g.forward(v)
    gi = g.backward(v, [None, [np.ones(2), None]])
    assert isinstance(gi, list) and gi[0] is not None and gi[1][1] is not None
    np.testing.assert_array_equal(gi[0], np.zeros(2))
    np.testing.assert_array_equal(gi[1][1], np.zeros(2))
    assert nested  # the type of the input, for the record


def test_bug4_backward_through_a_cloned_gmodule() -> None:
    """engine_bugs #4: a graph whose output is a clone() of a gModule: KeyError in backward."""
    inner_t = Arr((3, 1, 1))
    inner = _desc([_inp(inner_t), _app("CAddTable", (), 0, 0, table=True)],
                  [inner_t, inner_t], [1])
    desc = _desc([_inp(inner_t),
                  Step("apply", expr=Clone(Composite("gModule", graph=inner)), srcs=(0,))],
                 [inner_t, inner_t], [1])
    run_graph(desc, 1, clear_state=True)


def test_bug4_repr_and_summary_of_a_cloned_gmodule() -> None:
    """engine_bugs #4: repr of a cloned gModule raised KeyError (node index keyed by id())."""
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Tanh()(nn.Linear(3, 2)(x))])
    c = g.clone()
    assert "Linear" in repr(c)
    c.double().forward(np.ones(3))


def test_bug4_clone_a_long_chain_without_recursion_error() -> None:
    """engine_bugs #4: cloning a chain of 150 nodes hit RecursionError (deepcopy)."""
    x = nn.Identity()()
    y = x
    for _ in range(150):
        y = nn.Tanh()(y)
    c = nn.gModule([x], [y]).clone().double()
    out = c.forward(np.array([0.5]))
    assert out.shape == (1,)
