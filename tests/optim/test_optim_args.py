"""Careless hyper-parameters are refused with the name, the range and the value (issue 12, item 8).

Before, each of these trained silently wrong: a negative learning rate climbs the loss, a NaN one
makes every parameter NaN, beta2 = 1 divides by zero in the bias correction, and
``clip_grad_norm(g, -1)`` flipped the sign of the gradient.
"""
from __future__ import annotations

import math

import numpy
import pytest

from nngraph_py import optim
from nngraph_py.errors import NNGraphError
from nngraph_py.optim.optimizer import HyperParameterError

NAN, INF = math.nan, math.inf


def _pair(n=4):
    return numpy.ones(n), numpy.full(n, 0.5)


@pytest.mark.parametrize("make,match", [
    (lambda m: optim.SGD(m, lr=-0.1), r"SGD: the learning rate .* got -0\.1 \(a negative rate"),
    (lambda m: optim.SGD(m, lr=NAN), r"SGD: the learning rate .* got nan"),
    (lambda m: optim.Adam(m, lr=INF), r"Adam: the learning rate .* got inf"),
    (lambda m: optim.Adam(m, betas=(0.9, 1.0)), r"Adam: beta2 \(betas\[1\].* in \[0, 1\), got 1\.0"),
    (lambda m: optim.Adam(m, betas=(-0.1, 0.999)), r"beta1 \(betas\[0\].*got -0\.1"),
    (lambda m: optim.Adam(m, betas=(NAN, 0.999)), r"beta1"),
    (lambda m: optim.Adam(m, eps=-1e-8), r"epsilon"),
    (lambda m: optim.RMSProp(m, alpha=1.5), r"RMSProp: alpha .* in \[0, 1\], got 1\.5"),
    (lambda m: optim.RMSProp(m, lr=-1), r"RMSProp: the learning rate"),
    (lambda m: optim.SGD(m, lr=0.1, momentum=-0.9), r"the momentum .* got -0\.9"),
    (lambda m: optim.SGD(m, lr=0.1, weight_decay=-1e-4), r"the weight decay"),
])
def test_optimizers_refuse_bad_hyper_parameters(make, match):
    params, grads = _pair()
    with pytest.raises(HyperParameterError, match=match) as info:
        make((params, grads))
    assert isinstance(info.value, NNGraphError) and isinstance(info.value, ValueError)
    numpy.testing.assert_array_equal(params, 1.0)


@pytest.mark.parametrize("rule,config,match", [
    (optim.sgd, {"learning_rate": -1e-3}, "sgd: the learning rate"),
    (optim.adam, {"learning_rate": NAN}, "adam: the learning rate"),
    (optim.adam, {"beta2": 1.0}, r"adam: beta2 .* got 1\.0"),
    (optim.adam, {"beta1": 1.2}, "adam: beta1"),
    (optim.rmsprop, {"alpha": -0.5}, "rmsprop: alpha"),
    (optim.rmsprop, {"initial_mean": -1.0}, "rmsprop: the initial mean square"),
    (optim.sgd, {"learning_rate": "fast"}, "sgd: the learning rate .* must be a number, got str"),
])
def test_functional_rules_refuse_bad_hyper_parameters_before_updating(rule, config, match):
    x = numpy.ones(3)
    with pytest.raises(HyperParameterError, match=match):
        rule(lambda x: (float(x @ x), 2 * x), x, config, {})
    numpy.testing.assert_array_equal(x, 1.0)


def test_setting_a_bad_learning_rate_between_steps_is_refused():
    opt = optim.Adam(_pair(), lr=1e-3)
    for bad in (-1e-3, NAN, INF):
        with pytest.raises(HyperParameterError, match="learning rate"):
            opt.lr = bad
    assert opt.lr == 1e-3
    opt.lr = 0.0  # a zero rate (a frozen phase, a warm-up's first step) is allowed
    assert opt.lr == 0.0


def test_load_state_dict_refuses_a_bad_state_and_changes_nothing():
    opt = optim.Adam(_pair(), lr=1e-3)
    state = opt.state_dict()
    state["beta2"] = 1.0
    with pytest.raises(HyperParameterError, match=r"Adam.load_state_dict: beta2"):
        opt.load_state_dict(state)
    assert opt.config["beta2"] == 0.999


def test_edge_values_that_mean_something_are_accepted():
    optim.Adam(_pair(), lr=0.0, betas=(0.0, 0.0), eps=0.0)
    optim.SGD(_pair(), lr=1.0, momentum=1.0, dampening=1.0)
    optim.RMSProp(_pair(), alpha=0.0)
    optim.RMSProp(_pair(), alpha=1.0)


@pytest.mark.parametrize("bad", [-1.0, 0.0, NAN, "1", None])
def test_clip_grad_norm_refuses_a_non_positive_norm(bad):
    g = numpy.array([3.0, 4.0])
    with pytest.raises(HyperParameterError, match=r"clip_grad_norm: max_norm must be a positive"):
        optim.clip_grad_norm(g, bad)
    numpy.testing.assert_array_equal(g, [3.0, 4.0])  # before the fix -1 gave [-0.6, -0.8]


@pytest.mark.parametrize("bad", [-1.0, 0.0, NAN])
def test_clip_grad_value_refuses_a_non_positive_bound(bad):
    g = numpy.array([3.0, -4.0])
    with pytest.raises(HyperParameterError, match="clip_grad_value: clip_value"):
        optim.clip_grad_value(g, bad)
    numpy.testing.assert_array_equal(g, [3.0, -4.0])


def test_an_infinite_clip_norm_means_no_clipping():
    g = numpy.array([3.0, 4.0])
    assert optim.clip_grad_norm(g, INF) == 5.0
    numpy.testing.assert_array_equal(g, [3.0, 4.0])
