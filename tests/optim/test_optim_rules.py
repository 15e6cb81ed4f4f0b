"""The functional rules against Lua's formulas written out by hand, on every device."""
from __future__ import annotations

import math

import numpy
import pytest

from nngraph_py import backend, optim

STEPS = 4


# ---- Lua's formulas, written out plainly (host float64, new arrays each step) ---------------
def lua_sgd(x, grads, lr=1e-3, lrd=0.0, wd=0.0, mom=0.0, damp=None, nesterov=False, lrs=None,
            wds=None):
    damp = mom if damp is None else damp
    buf = None
    for n, g in enumerate(grads):
        g = g.copy()
        if wd != 0:
            g = g + wd * x
        elif wds is not None:
            g = g + wds * x
        if mom != 0:
            buf = g.copy() if buf is None else mom * buf + (1 - damp) * g
            g = g + mom * buf if nesterov else buf
        clr = lr / (1 + n * lrd)
        x = x - clr * (lrs * g if lrs is not None else g)
    return x


def lua_adam(x, grads, lr=1e-3, lrd=0.0, beta1=0.9, beta2=0.999, eps=1e-8, wd=0.0):
    m = numpy.zeros_like(x)
    v = numpy.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        g = g + wd * x
        clr = lr / (1 + (t - 1) * lrd)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        step_size = clr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        x = x - step_size * m / (numpy.sqrt(v) + eps)
    return x


def lua_rmsprop(x, grads, lr=1e-2, alpha=0.99, eps=1e-8, wd=0.0, m0=0.0):
    m = numpy.full_like(x, m0)
    for g in grads:
        g = g + wd * x
        m = alpha * m + (1 - alpha) * g * g
        x = x - lr * g / (numpy.sqrt(m) + eps)
    return x


def fixed_grads(n=7, steps=STEPS, seed=1):
    rng = numpy.random.default_rng(seed)
    return [rng.standard_normal(n) for _ in range(steps)]


def run_functional(rule, device, x0, grads, config):
    """Run ``rule`` with a feval that returns the given gradients in turn; host result."""
    x = backend.to_device(x0.copy(), device)
    todo = [backend.to_device(g.copy(), device) for g in grads]
    state = {}
    for g in todo:
        x_out, (fx,) = rule(lambda x, g=g: (0.0, g), x, config, state)
        assert x_out is x and fx == 0.0
    return backend.to_numpy(x)


SGD_CASES = {
    "plain": dict(lr=0.1),
    "default_lr": dict(),
    "weight_decay": dict(lr=0.1, wd=0.05),
    "momentum_lua_dampening": dict(lr=0.1, mom=0.9),
    "momentum_no_dampening": dict(lr=0.1, mom=0.9, damp=0.0),
    "nesterov": dict(lr=0.1, mom=0.9, damp=0.0, nesterov=True, wd=0.01),
    "lr_decay": dict(lr=0.1, lrd=0.5, mom=0.5),
}
SGD_NAMES = {"lr": "learning_rate", "lrd": "learning_rate_decay", "wd": "weight_decay",
             "mom": "momentum", "damp": "dampening", "nesterov": "nesterov"}


@pytest.mark.parametrize("case", sorted(SGD_CASES))
def test_sgd_matches_lua_formula(case, device):
    x0, grads = numpy.random.default_rng(0).standard_normal(7), fixed_grads()
    kw = SGD_CASES[case]
    config = {SGD_NAMES[k]: v for k, v in kw.items()}
    got = run_functional(optim.sgd, device, x0, grads, config)
    numpy.testing.assert_allclose(got, lua_sgd(x0, grads, **kw), rtol=1e-13, atol=1e-15)


def test_sgd_per_parameter_rates_and_decays(device):
    x0, grads = numpy.random.default_rng(0).standard_normal(7), fixed_grads()
    lrs = numpy.linspace(0.5, 1.5, 7)
    wds = numpy.linspace(0.0, 0.1, 7)
    config = {"learning_rate": 0.1, "learning_rates": backend.to_device(lrs, device),
              "weight_decays": backend.to_device(wds, device)}
    got = run_functional(optim.sgd, device, x0, grads, config)
    numpy.testing.assert_allclose(got, lua_sgd(x0, grads, lr=0.1, lrs=lrs, wds=wds), rtol=1e-13)


ADAM_CASES = {
    "defaults": dict(),
    "lr_eps": dict(lr=0.05, eps=1e-3),
    "betas_wd": dict(lr=0.01, beta1=0.5, beta2=0.9, wd=0.1),
    "lr_decay": dict(lr=0.01, lrd=0.3),
}
ADAM_NAMES = {"lr": "learning_rate", "lrd": "learning_rate_decay", "beta1": "beta1",
              "beta2": "beta2", "eps": "epsilon", "wd": "weight_decay"}


@pytest.mark.parametrize("case", sorted(ADAM_CASES))
def test_adam_matches_lua_formula(case, device):
    x0, grads = numpy.random.default_rng(0).standard_normal(7), fixed_grads()
    kw = ADAM_CASES[case]
    config = {ADAM_NAMES[k]: v for k, v in kw.items()}
    got = run_functional(optim.adam, device, x0, grads, config)
    numpy.testing.assert_allclose(got, lua_adam(x0, grads, **kw), rtol=1e-13, atol=1e-15)


RMSPROP_CASES = {
    "defaults": dict(),
    "alpha_eps_wd": dict(lr=0.05, alpha=0.9, eps=1e-3, wd=0.1),
    "initial_mean": dict(lr=0.05, m0=1.0),
}
RMSPROP_NAMES = {"lr": "learning_rate", "alpha": "alpha", "eps": "epsilon", "wd": "weight_decay",
                 "m0": "initial_mean"}


@pytest.mark.parametrize("case", sorted(RMSPROP_CASES))
def test_rmsprop_matches_lua_formula(case, device):
    x0, grads = numpy.random.default_rng(0).standard_normal(7), fixed_grads()
    kw = RMSPROP_CASES[case]
    config = {RMSPROP_NAMES[k]: v for k, v in kw.items()}
    got = run_functional(optim.rmsprop, device, x0, grads, config)
    numpy.testing.assert_allclose(got, lua_rmsprop(x0, grads, **kw), rtol=1e-13, atol=1e-15)


def test_lua_defaults_are_kept():
    """A first step with an empty config shows each rule's default learning rate."""
    g = numpy.array([1.0, -1.0])
    x = numpy.zeros(2)
    optim.sgd(lambda x: (0.0, g.copy()), x)
    numpy.testing.assert_allclose(x, [-1e-3, 1e-3])
    x = numpy.zeros(2)
    optim.adam(lambda x: (0.0, g.copy()), x)  # first Adam step moves by ~lr
    numpy.testing.assert_allclose(x, [-1e-3, 1e-3], rtol=1e-6)
    x = numpy.zeros(2)
    optim.rmsprop(lambda x: (0.0, g.copy()), x)  # lr * g / sqrt(0.01 g^2) = 10 lr
    numpy.testing.assert_allclose(x, [-0.1, 0.1], rtol=1e-6)


def test_state_defaults_to_config_as_in_lua():
    config = {"learning_rate": 0.1}
    x = numpy.ones(3)
    optim.adam(lambda x: (0.0, x.copy()), x, config)
    assert config["t"] == 1 and config["m"].shape == (3,)
    optim.adam(lambda x: (0.0, x.copy()), x, config)  # the state keys are accepted back
    assert config["t"] == 2


@pytest.mark.parametrize("rule,lr,steps,tol", [
    (optim.sgd, 0.3, 100, 1e-10),
    (optim.adam, 0.05, 400, 1e-6),
    (optim.rmsprop, 0.01, 400, 1e-2),  # constant-lr RMSprop hovers at ~lr
])
def test_converges_on_a_quadratic(rule, lr, steps, tol, quadratic):
    x = quadratic.start()
    config, state = {"learning_rate": lr}, {}
    first, _ = quadratic.feval(x)
    for _ in range(steps):
        rule(quadratic.feval, x, config, state)
    last, _ = quadratic.feval(x)
    assert last < tol * first, (first, last)


def test_momentum_and_nesterov_speed_up_an_ill_conditioned_quadratic():
    a = numpy.array([1.0, 0.01])  # condition number 100
    losses = {}
    for name, extra in [("plain", {}), ("momentum", {"momentum": 0.9, "dampening": 0.0}),
                        ("nesterov", {"momentum": 0.9, "dampening": 0.0, "nesterov": True})]:
        x = numpy.array([1.0, 1.0])
        config = {"learning_rate": 1.0, **extra}
        for _ in range(100):
            optim.sgd(lambda x: (0.5 * float(a @ (x * x)), a * x), x, config)
        losses[name] = 0.5 * float(a @ (x * x))
    assert losses["momentum"] < 1e-2 * losses["plain"]
    assert losses["nesterov"] < losses["momentum"]


def test_weight_decay_shrinks_towards_zero():
    """With a zero loss gradient, weight decay alone is x <- (1 - lr * wd) x."""
    x = numpy.array([1.0, -2.0])
    optim.sgd(lambda x: (0.0, numpy.zeros(2)), x, {"learning_rate": 0.1, "weight_decay": 0.5})
    numpy.testing.assert_allclose(x, [0.95, -1.9])


def test_weight_decay_is_added_into_the_gradient_in_place_as_in_lua():
    g = numpy.array([1.0, 1.0])
    x = numpy.array([2.0, 4.0])
    optim.adam(lambda x: (0.0, g), x, {"weight_decay": 0.5})
    numpy.testing.assert_allclose(g, [2.0, 3.0])


@pytest.mark.parametrize("rule,config", [
    (optim.sgd, {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True,
                 "weight_decay": 0.01, "learning_rate_decay": 0.1}),
    (optim.adam, {"learning_rate": 0.01, "weight_decay": 0.01, "learning_rate_decay": 0.1}),
    (optim.rmsprop, {"learning_rate": 0.01, "weight_decay": 0.01}),
])
@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_chunked_update_is_bitwise_the_whole_update(rule, config, device, small_chunks):
    """The host walks long buffers in chunks; a last, shorter chunk included, nothing changes."""
    n = 1000
    x0, grads = numpy.random.default_rng(0).standard_normal(n), fixed_grads(n, steps=3)
    small_chunks(n)
    whole = run_functional(rule, device, x0, grads, dict(config))
    small_chunks(64)  # 15 full chunks and one of 40
    chunked = run_functional(rule, device, x0, grads, dict(config))
    numpy.testing.assert_array_equal(chunked, whole)


def test_float32_parameters_stay_float32(device):
    x = backend.to_device(numpy.ones(5, numpy.float32), device)
    for rule in (optim.sgd, optim.adam, optim.rmsprop):
        state = {}
        rule(lambda x: (0.0, x * 2), x, {"learning_rate": 0.1, "weight_decay": 0.1}, state)
        assert backend.to_numpy(x).dtype == numpy.float32
        assert all(backend.to_numpy(v).dtype == numpy.float32
                   for v in state.values() if backend.is_array(v))


def test_lua_style_config_names_are_refused_with_a_hint():
    with pytest.raises(KeyError, match="did you mean 'learning_rate'"):
        optim.sgd(lambda x: (0.0, x.copy()), numpy.ones(2), {"learningRate": 0.1}, {})


def test_nesterov_needs_zero_dampening():
    with pytest.raises(ValueError, match="dampening"):
        optim.sgd(lambda x: (0.0, x.copy()), numpy.ones(2), {"momentum": 0.9, "nesterov": True})


def test_shape_mismatch_names_the_culprit():
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\), expected \(2,\)"):
        optim.adam(lambda x: (0.0, numpy.ones(3)), numpy.ones(2))
    with pytest.raises(ValueError, match="flat 1-D"):
        optim.rmsprop(lambda x: (0.0, x.copy()), numpy.ones((2, 2)))
    state = {}
    optim.adam(lambda x: (0.0, x.copy()), numpy.ones(2), {}, state)
    with pytest.raises(ValueError, match="one state dict per parameter vector"):
        optim.adam(lambda x: (0.0, x.copy()), numpy.ones(3), {}, state)
