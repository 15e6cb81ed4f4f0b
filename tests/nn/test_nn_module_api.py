"""The Module API through containers: live parameters, flat buffers, sharing, cloning, device and
dtype conversion, modes and state (Lua: ``parameters``, ``getParameters``, ``clone``, ``type``,
``training`` / ``evaluate``, ``clearState``)."""
from __future__ import annotations

import numpy as np
import pytest

from nngraph_py import backend, gradcheck, nn


def to_dev(value, device):
    if isinstance(value, list):
        return [to_dev(v, device) for v in value]
    return backend.to_device(np.asarray(value), device)


def host(a) -> np.ndarray:
    return backend.to_numpy(a)


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))


# ------------------------------------------------------------------------------------------------
# Containers
# ------------------------------------------------------------------------------------------------
def test_sequential_len_indexing_iteration_and_add_chaining():
    a, b = nn.Linear(4, 3), nn.Tanh()
    seq = nn.Sequential().add(a).add(b)
    assert len(seq) == 2
    assert seq[0] is a and seq[-1] is b and list(seq) == [a, b]
    assert seq.children() == [a, b]
    assert list(seq.modules()) == [seq, a, b]


def test_named_parameters_are_numbered_from_one_as_printed():
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(),
                        nn.ConcatTable(nn.Linear(3, 2), nn.Linear(3, 2, bias=False)))
    assert [name for name, _ in net.named_parameters()] == [
        "1.weight", "1.bias", "3.1.weight", "3.1.bias", "3.2.weight"]
    assert net.num_parameters() == 4 * 3 + 3 + 3 * 2 + 2 + 3 * 2


def test_parameters_are_the_live_arrays(device):
    net = mlp().double().to(device)
    params, grads = net.parameters()
    assert params[0] is net[0].weight and grads[0] is net[0].grad_weight
    assert params[3] is net[2].bias
    for p in params:
        p[...] = 0.0
    params[3][...] = 1.5
    out = net.forward(to_dev(np.ones((2, 4)), device))
    np.testing.assert_array_equal(host(out), np.full((2, 2), 1.5))


def test_get_parameters_flat_views_drive_the_module(device, rng):
    net = mlp().double().to(device)
    x = to_dev(rng.standard_normal((5, 4)), device)
    flat, gflat = net.get_parameters()
    assert backend.device_of(flat) == device and flat.shape == (net.num_parameters(),)
    flat[...] = 0.0
    flat[-2:] = 0.25  # the last Linear's bias
    np.testing.assert_array_equal(host(net.forward(x)), np.full((5, 2), 0.25))
    assert host(net[2].bias).tolist() == [0.25, 0.25]

    flat[...] = to_dev(rng.standard_normal(flat.shape), device)
    net.zero_grad_parameters()
    net.forward(x)
    net.backward(x, to_dev(np.ones((5, 2)), device))
    expected = np.concatenate([host(g).ravel() for g in net.parameters()[1]])
    np.testing.assert_array_equal(host(gflat), expected)
    assert np.abs(expected).sum() > 0


def test_shared_clone_is_counted_once_and_stays_shared_in_flat_buffers(device, rng):
    lin = nn.Linear(3, 3)
    twin = lin.clone("weight", "bias", "grad_weight", "grad_bias")
    net = nn.Sequential(lin, nn.Tanh(), twin).double().to(device)
    assert net[2].weight is net[0].weight and net[2].grad_bias is net[0].grad_bias
    assert len(net.parameters()[0]) == 2
    assert net.num_parameters() == 12
    assert [n for n, _ in net.named_parameters()] == ["1.weight", "1.bias"]

    flat, gflat = net.get_parameters()
    assert flat.shape == (12,)
    assert net[2].weight is net[0].weight
    flat[...] = 0.0
    assert host(net[2].weight).sum() == 0.0

    flat[...] = to_dev(rng.standard_normal(12), device)
    # Both uses accumulate into the one gradient: finite differences agree.
    gradcheck(net, to_dev(rng.standard_normal((2, 3)), device))


def test_clone_without_names_is_independent(device, rng):
    net = mlp().double().to(device)
    x = to_dev(rng.standard_normal((2, 4)), device)
    net.forward(x)
    copy = net.clone()
    assert copy.output is None and copy[0].output is None  # caches are not copied
    assert repr(copy) == repr(net)
    copy[0].weight[...] = 0.0
    assert np.abs(host(net[0].weight)).sum() > 0
    assert copy.device == device and copy.dtype == np.float64
    assert backend.device_of(copy[0].weight) == device


def test_zero_grad_and_update_parameters(device, rng):
    net = mlp().double().to(device)
    x = to_dev(rng.standard_normal((3, 4)), device)
    net.forward(x)
    net.backward(x, to_dev(np.ones((3, 2)), device))
    before = [host(p).copy() for p in net.parameters()[0]]
    grads = [host(g).copy() for g in net.parameters()[1]]
    assert all(np.abs(g).sum() > 0 for g in grads)
    net.update_parameters(0.1)
    for p, b, g in zip(net.parameters()[0], before, grads):
        np.testing.assert_allclose(host(p), b - 0.1 * g)
    net.zero_grad_parameters()
    assert all(np.abs(host(g)).sum() == 0 for g in net.parameters()[1])


def test_backward_scale_reaches_members(rng):
    net = mlp().double()
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    net.forward(x)
    net.backward(x, g)
    once = [host(a).copy() for a in net.parameters()[1]]
    net.zero_grad_parameters()
    net.backward(x, g, scale=0.5)
    for a, b in zip(net.parameters()[1], once):
        np.testing.assert_allclose(host(a), 0.5 * b)


# ------------------------------------------------------------------------------------------------
# Device and dtype
# ------------------------------------------------------------------------------------------------
def test_to_strict_converts_parameters_and_cached_outputs(rng):
    net = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.Tanh())
    x = rng.standard_normal((2, 4)).astype(np.float32)
    net.forward(x)
    net.backward(x, np.ones((2, 3), np.float32))
    net.to("strict")
    assert net.device == "strict" and all(m.device == "strict" for m in net.modules())
    for m in net.modules():
        for key, value in m._state_items():
            assert backend.device_of(value) == "strict", (m, key)
    assert backend.device_of(net[0].weight) == "strict"
    assert backend.device_of(net[1].noise) == "strict"
    out = net.forward(to_dev(x, "strict"))
    assert backend.device_of(out) == "strict"
    with pytest.raises(backend.DeviceError, match="module.to"):
        net.forward(x)  # a host array given to a strict module


def test_double_and_float_cast_parameters_and_caches(rng):
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    x = rng.standard_normal((2, 4))
    net.forward(x)
    assert net.output.dtype == np.float32  # inputs are cast to the module dtype
    net.double()
    assert net.dtype == np.float64 and net[0].weight.dtype == np.float64
    assert net.output.dtype == np.float64 and net[0].output.dtype == np.float64
    assert net.forward(x).dtype == np.float64
    net.float()
    assert net[0].grad_weight.dtype == np.float32 and net.output.dtype == np.float32


def test_to_converts_concat_table_outputs(rng):
    net = nn.ConcatTable(nn.Linear(4, 3), nn.Tanh())
    net.forward(rng.standard_normal((2, 4)))
    net.to("strict")
    assert [backend.device_of(o) for o in net.output] == ["strict", "strict"]


def test_to_converts_nested_list_outputs(rng):
    net = nn.ConcatTable(nn.ConcatTable(nn.Tanh(), nn.Sigmoid()), nn.ConcatTable(nn.Tanh()))
    net.forward(rng.standard_normal((2, 4)))
    net.to("strict")
    assert backend.device_of(net.output[0][0]) == "strict"


def test_sequential_adopts_its_first_members_device_and_dtype():
    net = nn.Sequential(nn.Linear(3, 2).double())
    assert net.dtype == np.float64
    out = net.forward(np.ones((1, 3), np.float32))
    assert out.dtype == np.float64
    strict_net = nn.Sequential(nn.Linear(3, 2).to("strict"), nn.Tanh().to("strict"))
    assert strict_net.device == "strict"


# ------------------------------------------------------------------------------------------------
# Modes and state
# ------------------------------------------------------------------------------------------------
def test_training_and_evaluate_propagate_through_containers(rng):
    drops = [nn.Dropout(0.5) for _ in range(3)]
    net = nn.Sequential(nn.ConcatTable(drops[0], nn.Sequential(drops[1])),
                        nn.ParallelTable(drops[2], nn.Identity()))
    net.evaluate()
    assert not any(m.train for m in net.modules())
    x = rng.standard_normal((4, 5))
    out = net.forward(x)
    np.testing.assert_array_equal(out[0], x.astype(np.float32))
    np.testing.assert_array_equal(out[1], x.astype(np.float32))
    net.training()
    assert all(m.train for m in net.modules())
    out = net.forward(np.ones((50, 50)))
    assert set(np.unique(out[1]).tolist()) == {0.0, 2.0}  # one Dropout(0.5)
    assert set(np.unique(out[0]).tolist()) == {0.0, 4.0}  # two in a row


def test_clear_state_reaches_every_member(rng):
    net = nn.Sequential(nn.Linear(4, 3), nn.Dropout(), nn.ConcatTable(nn.Tanh(), nn.Identity()))
    x = rng.standard_normal((2, 4))
    net.forward(x)
    net.backward(x, [np.ones((2, 3)), np.ones((2, 3))])
    net.clear_state()
    for m in net.modules():
        assert m.output is None and m.grad_input is None
    assert net[1].noise is None
    assert net[0].weight is not None


def test_containers_inside_a_graph(device, rng):
    x = nn.Identity()()
    body = nn.Sequential(nn.Linear(4, 3), nn.Tanh())(x)
    heads = nn.ConcatTable(nn.Linear(3, 2), nn.Linear(3, 2))(body)
    a, b = heads.split(2)
    g = nn.gModule([x], [nn.CAddTable()([a, b])]).double().to(device)
    names = [n for n, _ in g.named_parameters()]
    assert names[0].endswith("1.weight") and any(".2.bias" in n for n in names)
    gradcheck(g, to_dev(rng.standard_normal((2, 4)), device))


def test_clone_of_a_graph_module_inside_a_container(rng):
    x = nn.Identity()()
    g = nn.gModule([x], [nn.Tanh()(nn.Linear(3, 2)(x))])
    net = nn.Sequential(g, nn.MulConstant(2.0))
    copy = net.clone()
    inputs = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(copy.forward(inputs), net.forward(inputs))
