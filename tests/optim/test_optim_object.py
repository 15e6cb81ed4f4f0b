"""The object optimizers: same trajectories as the functional rules, buffers, checkpoints."""
from __future__ import annotations

import tracemalloc

import numpy
import pytest

from nngraph_py import backend, optim

# (object class and kwargs, functional rule and the equivalent config)
PAIRS = {
    "sgd": (optim.SGD, dict(lr=0.1), optim.sgd, {"learning_rate": 0.1, "dampening": 0.0}),
    "sgd_momentum_wd": (optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01),
                        optim.sgd, {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.0,
                                    "weight_decay": 0.01}),
    "sgd_nesterov": (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True,
                                     learning_rate_decay=0.1),
                     optim.sgd, {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.0,
                                 "nesterov": True, "learning_rate_decay": 0.1}),
    "adam": (optim.Adam, dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
             optim.adam, {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6,
                          "weight_decay": 0.01}),
    "rmsprop": (optim.RMSProp, dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.01),
                optim.rmsprop, {"learning_rate": 0.01, "alpha": 0.9, "epsilon": 1e-6,
                                "weight_decay": 0.01}),
}


class FlatModel:
    """A stand-in model: two flat buffers, with views as its 'parameters' (Lua's getParameters)."""

    def __init__(self, x0, device):
        self.params = backend.to_device(x0.copy(), device)
        self.grads = self.params * 0
        self.weight = self.params[:3]  # a parameter array viewing the flat buffer
        self.calls = 0

    def get_parameters(self):
        self.calls += 1
        return self.params, self.grads


@pytest.mark.parametrize("case", sorted(PAIRS))
def test_object_and_functional_trajectories_are_identical(case, quadratic):
    cls, kwargs, rule, config = PAIRS[case]
    model = FlatModel(quadratic.x0, quadratic.device)
    opt = cls(model, **kwargs)
    x, state = quadratic.start(), {}
    for _ in range(6):
        opt.zero_grad()
        loss_obj = quadratic.grad_into(opt.params, opt.grads)
        opt.step()
        _, (loss_fun,) = rule(quadratic.feval, x, config, state)
        assert loss_obj == loss_fun
        numpy.testing.assert_array_equal(backend.to_numpy(opt.params), backend.to_numpy(x))
    assert model.calls == 1  # get_parameters is called once, at construction
    numpy.testing.assert_array_equal(backend.to_numpy(model.weight),
                                     backend.to_numpy(model.params[:3]))


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.RMSProp])
def test_converges_on_a_quadratic(cls, quadratic):
    params = quadratic.start()
    opt = cls((params, params * 0), lr=0.1 if cls is not optim.RMSProp else 0.01)
    first = quadratic.grad_into(opt.params, opt.grads)
    for _ in range(300):
        opt.step(lambda: quadratic.grad_into(opt.params, opt.grads))
    assert quadratic.feval(params)[0] < 1e-2 * first


def test_step_returns_the_closure_loss_and_zero_grad_clears():
    params, grads = numpy.ones(4), numpy.zeros(4)
    opt = optim.Adam((params, grads))
    assert opt.step() is None
    assert opt.step(lambda: 3.5) == 3.5
    grads[:] = 7
    opt.zero_grad()
    numpy.testing.assert_array_equal(grads, 0)


@pytest.mark.parametrize("case", sorted(PAIRS))
def test_state_dict_round_trip_resumes_identically(case, device):
    cls, kwargs, _, _ = PAIRS[case]
    rng = numpy.random.default_rng(0)
    grads_seq = [rng.standard_normal(9) for _ in range(6)]
    x0 = rng.standard_normal(9)

    def run(opt, seq):
        for g in seq:
            opt.grads[...] = backend.to_device(g, device)
            opt.step()

    straight = cls((backend.to_device(x0.copy(), device), backend.to_device(x0 * 0, device)),
                   **kwargs)
    run(straight, grads_seq)

    first = cls((backend.to_device(x0.copy(), device), backend.to_device(x0 * 0, device)), **kwargs)
    run(first, grads_seq[:3])
    saved = first.state_dict()
    saved_params = backend.to_numpy(first.params).copy()
    for key, value in saved.items():  # flat arrays and plain numbers only
        assert (backend.is_array(value) and value.ndim == 1) or isinstance(value, (int, float)), key
    run(first, grads_seq[3:4])  # the snapshot does not follow later steps
    host = {k: backend.to_numpy(v).copy() if backend.is_array(v) else v for k, v in saved.items()}

    params = backend.to_device(saved_params, device)
    resumed = cls((params, params * 0), lr=123.0)  # lr comes back from the checkpoint
    resumed.load_state_dict(host)  # host NumPy arrays are moved to the device
    assert resumed.lr == kwargs["lr"]
    run(resumed, grads_seq[3:])
    numpy.testing.assert_array_equal(backend.to_numpy(resumed.params),
                                     backend.to_numpy(straight.params))


def test_load_state_dict_refuses_another_optimizers_state():
    params = (numpy.ones(3), numpy.zeros(3))
    saved = optim.Adam(params).state_dict()
    with pytest.raises(KeyError, match="another optimizer"):
        optim.RMSProp(params).load_state_dict(saved)
    bad = dict(saved, m=numpy.zeros(4))
    with pytest.raises(ValueError, match=r"state_dict\['m'\] has shape \(4,\), expected \(3,\)"):
        optim.Adam(params).load_state_dict(bad)


def test_lr_is_settable_between_steps():
    params, grads = numpy.zeros(2), numpy.ones(2)
    opt = optim.SGD((params, grads), lr=0.1)
    opt.step()
    opt.lr = 0.5
    opt.step()
    numpy.testing.assert_allclose(params, [-0.6, -0.6])
    assert opt.state_dict()["learning_rate"] == 0.5


def test_no_parameter_sized_allocation_per_step():
    """Buffers are allocated at construction; a step allocates no parameter-sized temporary."""
    n = 200_000
    rng = numpy.random.default_rng(0)
    for cls, kw in [(optim.SGD, dict(momentum=0.9, weight_decay=1e-4, nesterov=True)),
                    (optim.Adam, dict(weight_decay=1e-4)),
                    (optim.RMSProp, dict(weight_decay=1e-4))]:
        params = rng.standard_normal(n).astype(numpy.float32)
        grads = rng.standard_normal(n).astype(numpy.float32)
        opt = cls((params, grads), **kw)
        opt.step()  # SGD's momentum buffer is created on the first step, as in Lua
        tracemalloc.start()
        try:
            for _ in range(3):
                opt.step()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < n * 4 // 20, (cls.__name__, peak)


def test_construction_errors_name_the_problem():
    with pytest.raises(TypeError, match="get_parameters"):
        optim.Adam(object())
    with pytest.raises(ValueError, match="shape"):
        optim.Adam((numpy.ones(3), numpy.ones(4)))
    with pytest.raises(TypeError, match="dtype"):
        optim.SGD((numpy.ones(3), numpy.ones(3, numpy.float32)))
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD((numpy.ones(3), numpy.ones(3)), momentum=0.0, nesterov=True)


def test_repr_shows_the_hyper_parameters():
    text = repr(optim.Adam((numpy.ones(3), numpy.zeros(3)), lr=0.01))
    assert text.startswith("Adam(learning_rate=0.01,") and text.endswith("3 parameters)")
