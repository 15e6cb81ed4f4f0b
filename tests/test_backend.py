"""The strict array module really catches stray NumPy calls, and devices convert cleanly."""
from __future__ import annotations

import numpy
import pytest

from nngraph_py import backend
from nngraph_py.backend import StrayNumpyCall, get_array_module, strict, to_device, to_numpy


@pytest.fixture
def a():
    return to_device(numpy.arange(6.0).reshape(2, 3), "strict")


@pytest.mark.parametrize("stray", [
    lambda a: numpy.exp(a),
    lambda a: numpy.asarray(a),
    lambda a: numpy.sum(a),
    lambda a: numpy.concatenate([a, a]),
    lambda a: a + numpy.ones(3),
    lambda a: numpy.ones(3) * a,
])
def test_stray_numpy_calls_raise(a, stray):
    with pytest.raises((StrayNumpyCall, TypeError)):
        stray(a)


def test_the_array_module_works(a):
    xp = get_array_module(a)
    assert xp is strict
    out = xp.zeros((2, 3))
    assert xp.multiply(a, 2, out=out) is out
    numpy.testing.assert_allclose(to_numpy(xp.tanh(a) @ a.T), numpy.tanh(to_numpy(a)) @ to_numpy(a).T)
    b = a.copy()
    b += 1
    b[0] = 0
    assert float(b.sum()) == 4 + 5 + 6
    assert isinstance(a.T, backend.StrictArray) and a.reshape(3, 2).shape == (3, 2)


def test_to_device_round_trip_keeps_integer_dtypes():
    labels = numpy.array([1, 2, 3])
    moved = to_device(labels, "strict", "float32")
    assert moved.dtype == numpy.int64 and backend.device_of(moved) == "strict"
    x = to_device(numpy.ones(3), "strict", "float32")
    assert x.dtype == numpy.float32 and to_numpy(x).dtype == numpy.float32


def test_cuda_unavailable_is_explained():
    if backend.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(backend.DeviceError, match="unavailable"):
        backend.array_module("cuda")
