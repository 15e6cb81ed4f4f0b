"""gradcheck fails on NaN or infinite gradients (issue 12, item 7).

Before, an entry passed when ``ratio > 1`` was False, which it is for NaN: a backward that
returned NaN passed the check.
"""
from __future__ import annotations

import numpy
import pytest

from nngraph_py import nn
from nngraph_py.gradcheck import GradcheckError, gradcheck


class _BadTanh(nn.Tanh):
    """Tanh whose backward puts ``value`` into one entry of its input gradient."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def update_grad_input(self, input, grad_output):
        grad = super().update_grad_input(input, grad_output).copy()
        grad[0, 1] = self.value
        self.grad_input = grad
        return grad


class _BadLinear(nn.Linear):
    """Linear whose weight gradient gets a NaN."""

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        super().acc_grad_parameters(input, grad_output, scale)
        self.grad_weight[1, 2] = numpy.nan


@pytest.mark.parametrize("value", [numpy.nan, numpy.inf, -numpy.inf])
def test_a_non_finite_input_gradient_fails(value):
    x = numpy.random.default_rng(0).standard_normal((3, 4))
    with pytest.raises(GradcheckError, match=r"input\[0, 1\]: analytic (nan|inf|-inf).*not finite"):
        gradcheck(_BadTanh(value).double(), x)
    result = gradcheck(_BadTanh(value).double(), x, raise_on_failure=False)
    assert not result.ok and result.errors["input"] == numpy.inf


def test_a_nan_parameter_gradient_fails():
    x = numpy.random.default_rng(1).standard_normal((2, 3))
    result = gradcheck(_BadLinear(3, 4).double(), x, raise_on_failure=False)
    assert not result.ok and "weight[1, 2]" in result.worst and "nan" in result.worst


def test_a_correct_module_still_passes():
    x = numpy.random.default_rng(2).standard_normal((3, 4))
    assert gradcheck(nn.Tanh().double(), x).ok
    assert gradcheck(nn.Linear(4, 2).double(), x).ok


def test_gradcheck_error_is_a_library_error():
    from nngraph_py.errors import NNGraphError

    assert issubclass(GradcheckError, NNGraphError) and issubclass(GradcheckError, AssertionError)
