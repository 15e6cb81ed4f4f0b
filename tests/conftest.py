"""Shared fixtures: every graph and module test runs on each backend.

``device`` is ``cpu`` (NumPy), ``strict`` (NumPy behind a wrapper that raises on any stray NumPy
call or implicit host conversion: proves the code is device-agnostic without a GPU) and ``cuda``
(CuPy; skipped with the reason when CuPy or a GPU is missing).
"""
from __future__ import annotations

import os

import numpy
import pytest
from hypothesis import HealthCheck, settings

from nngraph_py import backend

DEVICES = ["cpu", "strict", "cuda"]

# Hypothesis profiles (tests/property): "ci", the default, is bounded and derandomized (the same
# examples every run); "long" runs thousands of new examples: --hypothesis-profile=long or
# NNGRAPH_HYPOTHESIS=long, NNGRAPH_HYPOTHESIS_EXAMPLES examples per test (default 2000).
_PROFILE = {"deadline": None, "database": None, "print_blob": True,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much]}
settings.register_profile("ci", max_examples=80, derandomize=True, **_PROFILE)
settings.register_profile(
    "long", max_examples=int(os.environ.get("NNGRAPH_HYPOTHESIS_EXAMPLES", "2000")), **_PROFILE)
settings.load_profile(os.environ.get("NNGRAPH_HYPOTHESIS", "ci"))


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    if request.param == "cuda" and not backend.cuda_available():
        pytest.skip(f"cuda backend: {backend.cuda_unavailable_reason()}")
    return request.param


@pytest.fixture(autouse=True)
def _seed() -> None:
    backend.manual_seed(1234)


@pytest.fixture
def rng() -> numpy.random.Generator:
    return numpy.random.default_rng(0)


def on(device: str, *arrays: numpy.ndarray):
    """Host arrays moved to ``device`` (one array, or a list for several)."""
    moved = [backend.to_device(numpy.asarray(a), device) for a in arrays]
    return moved[0] if len(moved) == 1 else moved
