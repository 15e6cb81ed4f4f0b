"""Bad input to a bare module: a wrong grad_output in backward, a member of a container fed the
wrong kind. Each error names the module (or its graph node) and the expected and actual shapes."""
from __future__ import annotations

import numpy as np
import pytest

from nngraph_py import backend, nn
from nngraph_py.errors import InputError, ShapeError


def to_dev(value, device):
    if isinstance(value, list):
        return [to_dev(v, device) for v in value]
    return backend.to_device(np.asarray(value, "float32"), device)


def assert_mentions(error: BaseException, *fragments: str) -> None:
    message = str(error)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ------------------------------------------------------------------------------------------------
# Module.backward checks grad_output against the output of the last forward
# ------------------------------------------------------------------------------------------------
def test_linear_backward_with_a_grad_output_of_the_wrong_shape(device):
    lin = nn.Linear(3, 2).to(device)
    x = to_dev(np.ones((4, 3)), device)
    lin.forward(x)
    with pytest.raises(ShapeError) as info:
        lin.backward(x, to_dev(np.ones((4, 5)), device))
    assert_mentions(info.value, "nn.Linear(3 -> 2): expected grad_output of shape (4, 2)",
                    "its output in the last forward", "got (4, 5)")
    with pytest.raises(InputError) as info:
        lin.backward(x, [to_dev(np.ones((4, 2)), device)])
    assert_mentions(info.value, "nn.Linear(3 -> 2)", "grad_output as one array of shape (4, 2)",
                    "got a list of 1 [(4, 2)]")
    assert lin.backward(x, to_dev(np.ones((4, 2)), device)).shape == (4, 3)


def test_grad_output_none_means_zeros_for_an_array_output():
    lin = nn.Linear(3, 2)
    x = np.ones((4, 3), "float32")
    lin.forward(x)
    gi = lin.backward(x, None)
    assert gi.shape == (4, 3) and not gi.any() and not lin.grad_weight.any()


def test_a_module_in_a_graph_is_named_by_its_node():
    lin = nn.Linear(3, 2)
    lin(nn.Identity()()).annotate(name="proj")
    x = np.ones((4, 3), "float32")
    lin.forward(x)
    with pytest.raises(ShapeError) as info:
        lin.backward(x, np.ones((4, 5), "float32"))
    assert_mentions(info.value, "node 'proj' (nn.Linear(3 -> 2), created at ",
                    "test_nn_bad_input.py:", "(4, 2)", "(4, 5)")


def test_a_table_module_checks_its_array_grad_output():
    add = nn.CAddTable()
    x = [np.ones((4, 3), "float32")] * 2
    add.forward(x)
    with pytest.raises(ShapeError) as info:
        add.backward(x, np.ones((4, 5), "float32"))
    assert_mentions(info.value, "nn.CAddTable: expected grad_output of shape (4, 3)", "got (4, 5)")


def test_a_scalar_output_takes_a_0d_gradient_or_a_number():
    """Issue 11 item 6: the shape is compared exactly; a (1,) gradient for a 0-d output used to
    pass and crash later inside Select or SplitTable."""
    pred, target = nn.Identity()(), nn.Identity()()
    g = nn.gModule([pred, target], nn.MSECriterion()([pred, target]))
    x, t = np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")
    g.forward([x, t])
    for grad in (1.0, np.float32(2.0), np.array(3.0, "float32")):
        assert g.backward([x, t], grad)[0].shape == (2, 3)
    for grad in (np.ones(1, "float32"), np.ones((1, 1), "float32"), np.ones(2, "float32")):
        with pytest.raises(ShapeError, match=r"of shape \(\) \(a 0-d array.* got \("):
            g.backward([x, t], grad)


def test_split_table_backward_wants_one_gradient_per_slice():
    split = nn.SplitTable(1)
    x = np.ones((4, 3, 2), "float32")
    split.forward(x)
    with pytest.raises(InputError) as info:
        split.backward(x, np.ones((3, 4, 2), "float32"))  # used to be stacked silently
    assert_mentions(info.value, "nn.SplitTable(dim=1): expected grad_output as a list of 3 arrays",
                    "got (3, 4, 2)")
    with pytest.raises(InputError, match=r"list of 3 arrays .* got \[\(4, 2\), \(4, 2\)\]"):
        split.backward(x, [np.ones((4, 2), "float32")] * 2)
    with pytest.raises(ShapeError) as info:
        split.backward(x, [np.ones((4, 2), "float32")] * 2 + [np.ones((4, 5), "float32")])
    assert_mentions(info.value, "expected grad_output[2] of shape (4, 2)", "got (4, 5)")
    g = split.backward(x, [np.ones((4, 2), "float32"), None, np.ones((4, 2), "float32")])
    assert g.shape == (4, 3, 2) and not g[:, 1].any() and g[:, 0].all()


def test_narrow_table_backward_wants_a_list_like_its_output():
    narrow = nn.NarrowTable(1, 2)
    x = [np.ones((2, 3), "float32")] * 3
    narrow.forward(x)
    with pytest.raises(InputError) as info:
        narrow.backward(x, [np.ones((2, 3), "float32")] * 3)
    assert_mentions(info.value, "nn.NarrowTable(1, 2): expected grad_output as a list of 2",
                    "[(2, 3), (2, 3), (2, 3)]")


def test_concat_table_checks_each_members_gradient():
    cat = nn.ConcatTable(nn.Tanh(), nn.Linear(4, 3))
    x = np.ones((2, 4), "float32")
    cat.forward(x)
    with pytest.raises(ShapeError) as info:
        cat.backward(x, [np.ones((2, 4), "float32"), np.ones((2, 5), "float32")])
    assert_mentions(info.value, "member (2) of nn.ConcatTable", "nn.Linear(4 -> 3)",
                    "expected grad_output of shape (2, 3)", "got (2, 5)")


def test_parallel_table_checks_each_members_gradient():
    par = nn.ParallelTable(nn.Linear(4, 3), nn.Tanh())
    x = [np.ones((2, 4), "float32"), np.ones((2, 5), "float32")]
    par.forward(x)
    with pytest.raises(ShapeError) as info:
        par.backward(x, [np.ones((2, 4), "float32"), np.ones((2, 5), "float32")])
    assert_mentions(info.value, "member (1) of nn.ParallelTable", "nn.Linear(4 -> 3)",
                    "expected grad_output of shape (2, 3)", "got (2, 4)")


# ------------------------------------------------------------------------------------------------
# Containers check what each member takes, as Module.forward does
# ------------------------------------------------------------------------------------------------
def test_sequential_member_fed_a_list_is_named():
    seq = nn.Sequential(nn.SplitTable(1), nn.Linear(3, 2))
    with pytest.raises(InputError) as info:
        seq.forward(np.ones((4, 5, 3), "float32"))
    assert_mentions(info.value, "member (2) of nn.Sequential", "nn.Linear(3 -> 2)",
                    "expected one array, got a list of 5")


def test_parallel_table_member_fed_one_array_is_named():
    par = nn.ParallelTable(nn.CAddTable(), nn.Tanh())
    with pytest.raises(InputError) as info:
        par.forward([np.ones((2, 3), "float32"), np.ones((2, 3), "float32")])
    assert_mentions(info.value, "member (1) of nn.ParallelTable", "nn.CAddTable",
                    "expected a list of arrays, got one array (2, 3)")
