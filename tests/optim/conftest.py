"""Fixtures of the optimizer tests: a small quadratic on every device, and forced chunking."""
from __future__ import annotations

from typing import Any, Callable

import numpy
import pytest

from nngraph_py import backend
from nngraph_py.optim import optimizer


class Quadratic:
    """``f(x) = 0.5 * sum(a * (x - c)^2)``, minimum 0 at ``c``; arrays on ``device``.

    Attributes:
        x0: a starting point (host, float64).
        feval: ``feval(x) -> (loss, grad)`` in Lua's contract, device-agnostic.
    """

    def __init__(self, device: str, n: int = 7, dtype: Any = numpy.float64, seed: int = 0):
        rng = numpy.random.default_rng(seed)
        self.device = device
        self.dtype = dtype
        self.a_host = rng.uniform(0.5, 2.0, n)
        self.c_host = rng.standard_normal(n)
        self.x0 = rng.standard_normal(n)
        self.a = backend.to_device(self.a_host.astype(dtype), device)
        self.c = backend.to_device(self.c_host.astype(dtype), device)

    def start(self) -> Any:
        """A fresh copy of the starting point on the device."""
        return backend.to_device(self.x0.astype(self.dtype), self.device)

    def feval(self, x: Any) -> tuple[float, Any]:
        d = x - self.c
        return 0.5 * float((self.a * d * d).sum()), self.a * d

    def grad_into(self, params: Any, grads: Any) -> float:
        """Fill a gradient buffer in place (the object API's contract)."""
        loss, g = self.feval(params)
        grads[...] = g
        return loss


@pytest.fixture
def quadratic(device: str) -> Quadratic:
    return Quadratic(device)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Set the host chunk size (in elements of float64) for buffers created afterwards."""

    def set_elements(n: int) -> None:
        monkeypatch.setattr(optimizer, "CHUNK_BYTES", 8 * n)

    return set_elements
