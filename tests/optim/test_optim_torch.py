"""The rules against ``torch.optim`` over 5 steps on the same gradients, in float64.

Where the formulas coincide the results agree to rounding: SGD (any momentum, dampening,
Nesterov, weight decay) and RMSprop (PyTorch's, like Lua's, adds epsilon outside the square root).
Adam differs in where epsilon enters: Lua divides by ``sqrt(v) + eps`` after folding the bias
corrections into the step size, PyTorch by ``sqrt(v) / sqrt(1 - beta2^t) + eps``; the two agree
exactly with ``eps = 0``, and at step ``t`` Lua's ``eps`` is PyTorch's ``eps / sqrt(1 - beta2^t)``.
"""
from __future__ import annotations

import math

import numpy
import pytest

from nngraph_py import optim

torch = pytest.importorskip("torch", reason="PyTorch is the reference (pip install torch==2.13.0)")

STEPS = 5
N = 11


def gradients(seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.standard_normal(N), [rng.standard_normal(N) for _ in range(STEPS)]


def run_ours(rule, config, x0, grads):
    x, state = x0.copy(), {}
    for g in grads:
        rule(lambda x, g=g: (0.0, g.copy()), x, config, state)
    return x


def run_torch(cls, kwargs, x0, grads):
    p = torch.tensor(x0.copy(), dtype=torch.float64, requires_grad=True)
    opt = cls([p], **kwargs)
    for g in grads:
        p.grad = torch.tensor(g.copy(), dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("ours,theirs", [
    ({"learning_rate": 0.1}, {"lr": 0.1}),
    ({"learning_rate": 0.1, "weight_decay": 0.05}, {"lr": 0.1, "weight_decay": 0.05}),
    ({"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0},
     {"lr": 0.1, "momentum": 0.9}),
    ({"learning_rate": 0.1, "momentum": 0.9},  # Lua's default dampening is the momentum
     {"lr": 0.1, "momentum": 0.9, "dampening": 0.9}),
    ({"learning_rate": 0.1, "momentum": 0.8, "dampening": 0.0, "nesterov": True,
      "weight_decay": 0.01},
     {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
])
def test_sgd_matches_torch(ours, theirs):
    x0, grads = gradients()
    numpy.testing.assert_allclose(run_ours(optim.sgd, ours, x0, grads),
                                  run_torch(torch.optim.SGD, theirs, x0, grads), rtol=1e-13)


def test_sgd_object_defaults_match_torch():
    """The object SGD takes PyTorch's dampening default (0)."""
    x0, grads = gradients()
    params, buf = x0.copy(), numpy.zeros(N)
    opt = optim.SGD((params, buf), lr=0.1, momentum=0.9, nesterov=True)
    for g in grads:
        buf[:] = g
        opt.step()
    expected = run_torch(torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}, x0, grads)
    numpy.testing.assert_allclose(params, expected, rtol=1e-13)


@pytest.mark.parametrize("ours,theirs", [
    ({"learning_rate": 0.01, "epsilon": 0.0}, {"lr": 0.01, "eps": 0.0}),
    ({"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.95, "epsilon": 0.0, "weight_decay": 0.1},
     {"lr": 0.05, "betas": (0.8, 0.95), "eps": 0.0, "weight_decay": 0.1}),
])
def test_adam_matches_torch_without_epsilon(ours, theirs):
    x0, grads = gradients()
    numpy.testing.assert_allclose(run_ours(optim.adam, ours, x0, grads),
                                  run_torch(torch.optim.Adam, theirs, x0, grads), rtol=1e-12)


def test_adam_epsilon_placement_differs_from_torch():
    """With a large epsilon the difference shows; it is PyTorch's eps / sqrt(1 - beta2^t)."""
    x0, grads = gradients()
    eps, beta2 = 0.1, 0.999
    ours = run_ours(optim.adam, {"learning_rate": 0.01, "epsilon": eps}, x0, grads[:1])
    same_eps = run_torch(torch.optim.Adam, {"lr": 0.01, "eps": eps}, x0, grads[:1])
    assert numpy.abs(ours - same_eps).max() > 1e-4
    rescaled = run_torch(torch.optim.Adam, {"lr": 0.01, "eps": eps / math.sqrt(1 - beta2)},
                         x0, grads[:1])
    numpy.testing.assert_allclose(ours, rescaled, rtol=1e-12)
    # With the default epsilon, 5 steps of 0.01 end within 1e-6 of each other: the relative
    # difference of a step is about eps / sqrt(v), largest for the smallest gradients.
    ours = run_ours(optim.adam, {"learning_rate": 0.01}, x0, grads)
    theirs = run_torch(torch.optim.Adam, {"lr": 0.01}, x0, grads)
    assert 0 < numpy.abs(ours - theirs).max() < 1e-6


@pytest.mark.parametrize("ours,theirs", [
    ({}, {}),  # same defaults: lr 1e-2, alpha 0.99, eps 1e-8
    ({"learning_rate": 0.05, "alpha": 0.9, "epsilon": 1e-3, "weight_decay": 0.1},
     {"lr": 0.05, "alpha": 0.9, "eps": 1e-3, "weight_decay": 0.1}),
])
def test_rmsprop_matches_torch(ours, theirs):
    x0, grads = gradients()
    numpy.testing.assert_allclose(run_ours(optim.rmsprop, ours, x0, grads),
                                  run_torch(torch.optim.RMSprop, theirs, x0, grads), rtol=1e-12)
