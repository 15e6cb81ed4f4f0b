"""Criteria: the Lua protocol (forward returns a number), dtype/device handling, errors, values
and gradients against PyTorch, and criteria as graph nodes (``nn.MSECriterion()([pred, t])``)."""
from __future__ import annotations

import numpy as np
import pytest

from nngraph_py import backend, gradcheck, nn
from nngraph_py.errors import InputError, ShapeError
from nngraph_py.graph.node import Node


def to_dev(value, device):
    if isinstance(value, list):
        return [to_dev(v, device) for v in value]
    return backend.to_device(np.asarray(value), device)


def host(a) -> np.ndarray:
    return backend.to_numpy(a)


def log_softmax_np(x):
    s = x - x.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------------------------------------
# The protocol
# ------------------------------------------------------------------------------------------------
def test_forward_returns_a_python_float_and_backward_an_array_on_the_device(device, rng):
    crit = nn.MSECriterion().double().to(device)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss = crit.forward(to_dev(x, device), to_dev(t, device))
    assert type(loss) is float
    assert loss == pytest.approx(((x - t) ** 2).mean(), rel=1e-12)
    assert backend.device_of(crit.output) == device and crit.output.shape == ()
    grad = crit.backward(to_dev(x, device), to_dev(t, device))
    assert backend.device_of(grad) == device
    np.testing.assert_allclose(host(grad), 2 * (x - t) / x.size, rtol=1e-12)


def test_size_average_false_sums():
    x, t = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    assert nn.MSECriterion(size_average=False).forward(x, t) == pytest.approx(55.0)
    logp = np.log(np.full((2, 4), 0.25))
    crit = nn.ClassNLLCriterion(size_average=False)
    assert crit.forward(logp, np.array([1, 3])) == pytest.approx(2 * np.log(4), rel=1e-6)


def test_float_inputs_are_cast_and_integer_targets_kept(rng):
    crit = nn.ClassNLLCriterion()
    assert crit.dtype == np.float32
    x = rng.standard_normal((4, 3))
    t = np.array([0, 1, 2, 1])
    assert crit.backward(x, t).dtype == np.float32
    crit.double()
    assert crit.backward(x, t).dtype == np.float64
    mse = nn.MSECriterion()
    assert mse.backward(x, np.ones((4, 3), np.int64)).dtype == np.float32


def test_one_dimensional_input_takes_a_python_int_target():
    logp = np.log(np.array([0.2, 0.3, 0.5]))
    assert nn.ClassNLLCriterion().double().forward(logp, 2) == pytest.approx(-np.log(0.5))
    ce = nn.CrossEntropyCriterion().double()
    assert ce.forward(np.zeros(4), np.array([3])) == pytest.approx(np.log(4))
    grad = ce.backward(np.zeros(4), 3)
    np.testing.assert_allclose(grad, [0.25, 0.25, 0.25, -0.75])


def test_class_weights_follow_device_and_dtype(device):
    crit = nn.ClassNLLCriterion([1.0, 2.0, 3.0]).to(device).double()
    assert backend.device_of(crit.weights) == device and crit.weights.dtype == np.float64
    logp = to_dev(np.log(np.full((2, 3), 1 / 3)), device)
    t = to_dev(np.array([0, 2]), device)
    assert crit.forward(logp, t) == pytest.approx(np.log(3))
    with pytest.raises(ShapeError, match=r"3 classes"):
        crit.forward(to_dev(np.zeros((2, 4)), device), t)


def test_arrays_on_another_device_are_refused():
    crit = nn.MSECriterion().to("strict")
    with pytest.raises(backend.DeviceError, match=r"criterion.to\('cpu'\)"):
        crit.forward(np.zeros(3), to_dev(np.zeros(3), "strict"))


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
def test_criterion_errors_name_expected_and_actual(device):
    nll = nn.ClassNLLCriterion().to(device)
    x = to_dev(np.zeros((4, 3)), device)
    with pytest.raises(ShapeError, match=r"class indices in \[0, 3\).*\(4, 3\).*from 0 to 3"):
        nll.forward(x, to_dev(np.array([0, 1, 2, 3]), device))
    with pytest.raises(ShapeError, match=r"from -1 to 2"):
        nll.forward(x, to_dev(np.array([0, -1, 2, 2]), device))
    with pytest.raises(InputError, match=r"integer class indices.*float\d\d \(4,\)"):
        nll.forward(x, to_dev(np.array([0.0, 1.0, 2.0, 1.0]), device))
    with pytest.raises(ShapeError, match=r"target \(4,\) for input \(4, 3\), got \(4, 1\)"):
        nll.forward(x, to_dev(np.zeros((4, 1), np.int64), device))
    with pytest.raises(ShapeError, match=r"\(batch, classes\) or \(classes,\), got \(2, 2, 3\)"):
        nll.forward(to_dev(np.zeros((2, 2, 3)), device), to_dev(np.zeros(2, np.int64), device))
    with pytest.raises(ShapeError, match=r"2 classes.*got \(4, 3\)"):
        nn.ClassNLLCriterion([1.0, 1.0]).to(device).forward(x, to_dev(np.zeros(4, int), device))
    mse = nn.MSECriterion().to(device)
    with pytest.raises(ShapeError, match=r"input's shape \(4, 3\), got \(4,\)"):
        mse.forward(x, to_dev(np.zeros(4), device))
    with pytest.raises(InputError, match="must be an array"):
        mse.forward(x, "zeros")


def test_calling_a_criterion_on_arrays_explains_forward():
    with pytest.raises(InputError, match=r"forward\(input, target\)"):
        nn.MSECriterion()(np.zeros(3), np.zeros(3))
    with pytest.raises(InputError, match="not a node|is an array"):
        nn.MSECriterion()([np.zeros(3), np.zeros(3)])
    with pytest.raises(InputError, match=r"\[prediction, target\]"):
        nn.ModuleFromCriterion(nn.MSECriterion()).forward(np.zeros(3))
    with pytest.raises(InputError, match="expects a criterion"):
        nn.ModuleFromCriterion(nn.Tanh())


# ------------------------------------------------------------------------------------------------
# Criteria as graph nodes
# ------------------------------------------------------------------------------------------------
def _regression_graph():
    x, t = nn.Identity()(), nn.Identity()()
    pred = nn.Linear(4, 2)(x)
    loss = nn.MSECriterion()([pred, t])
    return nn.gModule([x, t], [loss]), loss


def test_calling_a_criterion_on_nodes_builds_a_module_from_criterion_node():
    g, loss = _regression_graph()
    assert isinstance(loss, Node)
    assert isinstance(loss.module, nn.ModuleFromCriterion)
    assert isinstance(loss.module.criterion, nn.MSECriterion)
    assert "nn.ModuleFromCriterion(nn.MSECriterion)" in repr(g)


def test_graph_with_a_loss_output_backward_from_a_float_or_an_array(device, rng):
    g, loss_node = _regression_graph()
    g.double().to(device)
    lin = next(m for m in g.children() if isinstance(m, nn.Linear))
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 2))
    inputs = to_dev([x, t], device)
    out = g.forward(inputs)
    assert out.shape == () and backend.device_of(out) == device
    w, b = host(lin.weight), host(lin.bias)
    pred = x @ w.T + b
    assert float(out) == pytest.approx(((pred - t) ** 2).mean(), rel=1e-12)

    g.zero_grad_parameters()
    gx, gt = g.backward(inputs, 1.0)
    dpred = 2 * (pred - t) / pred.size
    np.testing.assert_allclose(host(gx), dpred @ w, rtol=1e-10)
    np.testing.assert_array_equal(host(gt), np.zeros_like(t))  # Lua: no gradient to the target
    np.testing.assert_allclose(host(lin.grad_weight), dpred.T @ x, rtol=1e-10)

    gx2, _ = g.backward(inputs, to_dev(np.asarray(3.0), device))
    np.testing.assert_allclose(host(gx2), 3 * dpred @ w, rtol=1e-10)
    with pytest.raises(Exception, match=r"of shape \(\)"):
        g.backward(inputs, to_dev(np.ones(2), device))


def test_graph_with_a_weighted_loss_converts_the_criterion(device, rng):
    x, t = nn.Identity()(), nn.Identity()()
    loss = nn.CrossEntropyCriterion([1.0, 0.5, 2.0])([nn.Linear(4, 3)(x), t])
    g = nn.gModule([x, t], [loss]).to(device).double()
    crit = loss.module.criterion
    assert crit.device == device and crit.dtype == np.float64
    assert backend.device_of(crit.weights) == device and crit.weights.dtype == np.float64
    inputs = to_dev([rng.standard_normal((5, 4)), np.array([0, 1, 2, 2, 1])], device)
    gradcheck(g, inputs)
    g.clear_state()
    assert crit.log_prob is None and crit.output is None


# ------------------------------------------------------------------------------------------------
# Against PyTorch
# ------------------------------------------------------------------------------------------------
try:
    import torch
except ImportError:  # pragma: no cover - torch is a dev dependency
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the reference: "
                                 "pip install torch==2.13.0")


def _torch_value_and_grad(loss_fn, x, t):
    xt = torch.tensor(x, requires_grad=True)
    loss = loss_fn(xt, torch.tensor(t))
    loss.backward()
    return loss.item(), xt.grad.numpy()


@needs_torch
@pytest.mark.parametrize("size_average", [True, False])
def test_mse_matches_torch(size_average, rng):
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    crit = nn.MSECriterion(size_average).double()
    value, grad = _torch_value_and_grad(
        torch.nn.MSELoss(reduction="mean" if size_average else "sum"), x, t)
    assert crit.forward(x, t) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(crit.backward(x, t), grad, rtol=1e-12)


@needs_torch
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0, 0.25]])
@pytest.mark.parametrize("size_average", [True, False])
def test_class_nll_matches_torch(weights, size_average, rng):
    x = log_softmax_np(rng.standard_normal((6, 4)))
    t = np.array([0, 3, 1, 1, 2, 3])
    crit = nn.ClassNLLCriterion(weights, size_average).double()
    w = None if weights is None else torch.tensor(host(crit.weights))
    value, grad = _torch_value_and_grad(
        torch.nn.NLLLoss(weight=w, reduction="mean" if size_average else "sum"), x, t)
    assert crit.forward(x, t) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(crit.backward(x, t), grad, rtol=1e-12, atol=1e-15)


@needs_torch
@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0, 0.25]])
@pytest.mark.parametrize("size_average", [True, False])
def test_cross_entropy_matches_torch(weights, size_average, rng):
    x = 10 * rng.standard_normal((6, 4))  # large scores: the computation must stay stable
    t = np.array([0, 3, 1, 1, 2, 3])
    crit = nn.CrossEntropyCriterion(weights, size_average).double()
    w = None if weights is None else torch.tensor(host(crit.weights))
    value, grad = _torch_value_and_grad(
        torch.nn.CrossEntropyLoss(weight=w, reduction="mean" if size_average else "sum"), x, t)
    assert crit.forward(x, t) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(crit.backward(x, t), grad, rtol=1e-10, atol=1e-15)


@needs_torch
def test_cross_entropy_float32_matches_torch_on_extreme_scores():
    x = np.array([[1000.0, -1000.0, 0.0], [-50.0, 60.0, 70.0]], np.float32)
    t = np.array([1, 0])
    crit = nn.CrossEntropyCriterion()
    value, grad = _torch_value_and_grad(torch.nn.CrossEntropyLoss(), x, t)
    assert np.isfinite(crit.forward(x, t))
    assert crit.forward(x, t) == pytest.approx(value, rel=1e-5)
    np.testing.assert_allclose(crit.backward(x, t), grad, rtol=1e-5, atol=1e-7)
