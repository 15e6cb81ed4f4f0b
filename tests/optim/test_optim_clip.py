"""Gradient clipping on the flat gradient buffer."""
from __future__ import annotations

import math

import numpy
import pytest

from nngraph_py import backend, optim


def test_clip_grad_norm_rescales_in_place(device):
    g = backend.to_device(numpy.array([3.0, 4.0, 0.0]), device)
    total = optim.clip_grad_norm(g, 1.0)
    assert total == pytest.approx(5.0) and isinstance(total, float)
    numpy.testing.assert_allclose(backend.to_numpy(g), [0.6, 0.8, 0.0], rtol=1e-5)
    assert math.sqrt(float((g * g).sum())) <= 1.0


def test_clip_grad_norm_leaves_small_gradients_alone(device):
    g = backend.to_device(numpy.array([0.3, -0.4]), device)
    assert optim.clip_grad_norm(g, 1.0) == pytest.approx(0.5)
    numpy.testing.assert_array_equal(backend.to_numpy(g), [0.3, -0.4])


def test_clip_grad_norm_float32_and_non_finite():
    g = numpy.full(1000, 0.1, numpy.float32)
    assert optim.clip_grad_norm(g, 0.5) == pytest.approx(math.sqrt(10), rel=1e-5)
    assert g.dtype == numpy.float32
    numpy.testing.assert_allclose(numpy.linalg.norm(g), 0.5, rtol=1e-5)
    g = numpy.array([numpy.inf, 1.0])
    with numpy.errstate(invalid="ignore"):  # inf * 0
        assert optim.clip_grad_norm(g, 1.0) == math.inf
    numpy.testing.assert_array_equal(g[1:], 0.0)  # PyTorch's rule: scale max / (inf + 1e-6) = 0
    g = numpy.array([numpy.nan, 1.0])
    assert math.isnan(optim.clip_grad_norm(g, 1.0))  # returned so the caller can skip the step
    assert g[1] == 1.0


def test_clip_grad_norm_matches_pytorch():
    torch = pytest.importorskip(
        "torch", reason="PyTorch is the reference (pip install torch==2.13.0)")
    rng = numpy.random.default_rng(0)
    g = rng.standard_normal(50) * 3
    tg = torch.tensor(g.copy())
    p = torch.zeros(50, dtype=torch.float64, requires_grad=True)
    p.grad = tg
    expected = float(torch.nn.utils.clip_grad_norm_([p], 2.0))
    assert optim.clip_grad_norm(g, 2.0) == pytest.approx(expected, rel=1e-12)
    numpy.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_clamps_in_place(device):
    g = backend.to_device(numpy.array([-7.0, -0.5, 0.0, 2.0, 9.0]), device)
    assert optim.clip_grad_value(g, 5.0) is None
    numpy.testing.assert_array_equal(backend.to_numpy(g), [-5.0, -0.5, 0.0, 2.0, 5.0])
