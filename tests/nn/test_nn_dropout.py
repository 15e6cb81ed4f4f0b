"""Dropout in training mode: statistics of the mask, backward through the same mask, the mask's
device, seeding and state (the harness covers the deterministic evaluation mode)."""
from __future__ import annotations

import numpy as np
import pytest

from nngraph_py import backend, manual_seed, nn


def to_dev(value, device):
    return backend.to_device(np.asarray(value), device)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_training_mask_statistics_and_inverted_scaling(p, device):
    drop = nn.Dropout(p).double().to(device)
    x = to_dev(np.ones((200, 100)), device)
    out = backend.to_numpy(drop.forward(x))
    kept = out != 0
    assert abs(1 - kept.mean() - p) < 0.02  # 20000 draws: 5 standard deviations or more
    np.testing.assert_allclose(out[kept], 1.0 / (1.0 - p))
    assert abs(out.mean() - 1.0) < 0.1  # inverted dropout keeps the expectation
    assert backend.device_of(drop.noise) == device and drop.noise.dtype == np.float64


def test_backward_uses_the_forward_mask(device, rng):
    drop = nn.Dropout(0.4).double().to(device)
    x = to_dev(rng.uniform(0.5, 1.5, size=(6, 7)), device)
    out = drop.forward(x)
    g = to_dev(rng.standard_normal((6, 7)), device)
    grad = drop.backward(x, g)
    assert backend.device_of(grad) == device
    mask = backend.to_numpy(out) / backend.to_numpy(x)  # the forward's own factor per element
    np.testing.assert_allclose(backend.to_numpy(grad), backend.to_numpy(g) * mask, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(drop.noise), mask, rtol=1e-12)
    assert set(np.unique(mask.round(9)).tolist()) <= {0.0, round(1 / 0.6, 9)}


def test_each_training_forward_draws_a_new_mask_and_seeding_repeats_it():
    drop = nn.Dropout(0.5)
    x = np.ones((20, 20), np.float32)
    manual_seed(7)
    first = drop.forward(x).copy()
    second = drop.forward(x).copy()
    assert not np.array_equal(first, second)
    manual_seed(7)
    np.testing.assert_array_equal(drop.forward(x), first)


def test_evaluate_is_the_identity_and_training_restores_dropout(rng):
    drop = nn.Dropout(0.5).evaluate()
    x = rng.standard_normal((5, 5)).astype(np.float32)
    assert drop.forward(x) is x
    g = np.ones((5, 5), np.float32)
    assert drop.backward(x, g) is g
    drop.training()
    assert (drop.forward(np.ones((30, 30), np.float32)) == 0).any()


def test_noise_is_state_cleared_converted_and_not_cloned():
    drop = nn.Dropout(0.3)
    drop.forward(np.ones((3, 3), np.float32))
    assert drop.clone().noise is None
    drop.double()
    assert drop.noise.dtype == np.float64
    drop.to("strict")
    assert backend.device_of(drop.noise) == "strict"
    drop.clear_state()
    assert drop.noise is None and drop.output is None
