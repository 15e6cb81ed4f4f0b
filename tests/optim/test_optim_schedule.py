"""Learning-rate schedules."""
from __future__ import annotations

import math

import numpy
import pytest

from nngraph_py import optim


def make_opt(lr=1.0):
    return optim.SGD((numpy.zeros(2), numpy.zeros(2)), lr=lr)


def test_step_decay():
    opt = make_opt(0.1)
    schedule = optim.StepDecay(opt, step_size=3, gamma=0.5)
    lrs = [schedule.step() for _ in range(7)]
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert opt.lr == pytest.approx(0.025)
    assert optim.step_decay(0.1, 6, 3, 0.5) == pytest.approx(0.025)


def test_cosine_decay_goes_from_base_to_min_then_stays():
    opt = make_opt(1.0)
    schedule = optim.CosineDecay(opt, total_steps=4, min_lr=0.2)
    lrs = [schedule.step() for _ in range(6)]
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * min(s, 4) / 4)) / 2 for s in range(1, 7)]
    assert lrs == pytest.approx(expected)
    assert lrs[1] == pytest.approx(0.6) and lrs[-1] == pytest.approx(0.2)
    assert optim.cosine_decay(1.0, 0, 4) == 1.0


def test_inverse_decay_reproduces_lua_learning_rate_decay():
    """InverseDecay stepped once per step on plain SGD = SGD with learning_rate_decay."""
    rng = numpy.random.default_rng(0)
    grads = [rng.standard_normal(3) for _ in range(5)]
    x_a, g_a = numpy.ones(3), numpy.zeros(3)
    x_b, g_b = numpy.ones(3), numpy.zeros(3)
    lua = optim.SGD((x_a, g_a), lr=0.1, learning_rate_decay=0.3)
    plain = optim.SGD((x_b, g_b), lr=0.1)
    schedule = optim.InverseDecay(plain, decay=0.3)
    for g in grads:
        g_a[:] = g
        g_b[:] = g
        lua.step()
        plain.step()
        schedule.step()
    numpy.testing.assert_allclose(x_b, x_a, rtol=1e-15)


def test_schedule_state_dict_round_trip():
    opt = make_opt(0.1)
    schedule = optim.StepDecay(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        schedule.step()
    saved = schedule.state_dict()
    assert saved == {"base_lr": 0.1, "last_step": 3}
    other_opt = make_opt(5.0)
    other = optim.StepDecay(other_opt, step_size=2, gamma=0.1)
    other.load_state_dict(saved)
    assert other_opt.lr == pytest.approx(0.01)
    assert other.step() == pytest.approx(schedule.step())


def test_schedule_arguments_are_checked():
    with pytest.raises(ValueError, match="step_size"):
        optim.StepDecay(make_opt(), step_size=0)
    with pytest.raises(ValueError, match="total_steps"):
        optim.CosineDecay(make_opt(), total_steps=0)
