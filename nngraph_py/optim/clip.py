"""Gradient clipping on the flat gradient buffer, in place.

``clip_grad_norm`` is PyTorch's ``torch.nn.utils.clip_grad_norm_`` on one flat buffer (Lua
scripts wrote it by hand: ``local norm = gradParams:norm(); if norm > max then
gradParams:mul(max / norm) end``); ``clip_grad_value`` is char-rnn's
``grad_params:clamp(-grad_clip, grad_clip)``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from nngraph_py.backend import get_array_module
from nngraph_py.optim.optimizer import HyperParameterError

__all__ = ["clip_grad_norm", "clip_grad_value"]

Array = Any


def _check_positive(function: str, name: str, value: Any) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0  # NaN: no
    if not ok:
        raise HyperParameterError(f"{function}: {name} must be a positive number (inf: no "
                                  f"clipping), got {value!r}")


def clip_grad_norm(grad_flat: Array, max_norm: float) -> float:
    """Rescale a flat gradient in place so that its global L2 norm is at most ``max_norm``.

    The scale is ``max_norm / (norm + 1e-6)``, applied only when below 1, as PyTorch's
    ``clip_grad_norm_``. An infinite norm zeroes the gradient; a NaN norm leaves it unchanged, and
    is returned so the caller can skip the step.

    Args:
        grad_flat: the 1-D gradient buffer (``model.get_parameters()[1]``), modified in place.
        max_norm: the largest norm allowed.

    Returns:
        The norm before clipping, as a Python float.

    Raises:
        HyperParameterError: ``max_norm`` is not a positive number (a negative one would flip
            the gradient's sign, zero would erase it).

    Example:
        >>> import numpy as np
        >>> g = np.array([3.0, 4.0])
        >>> clip_grad_norm(g, 1.0)
        5.0
        >>> g.round(6)
        array([0.6, 0.8])
    """
    _check_positive("clip_grad_norm", "max_norm", max_norm)
    xp = get_array_module(grad_flat)
    # dot(g, g) reduces without a parameter-sized temporary (g * g would allocate one).
    total = math.sqrt(float(xp.dot(grad_flat, grad_flat)))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        xp.multiply(grad_flat, scale, out=grad_flat)
    return total


def clip_grad_value(grad_flat: Array, clip_value: float) -> None:
    """Clamp every element of a flat gradient to ``[-clip_value, clip_value]`` in place.

    Args:
        grad_flat: the 1-D gradient buffer, modified in place.
        clip_value: the largest magnitude allowed.

    Raises:
        HyperParameterError: ``clip_value`` is not a positive number.
    """
    _check_positive("clip_grad_value", "clip_value", clip_value)
    xp = get_array_module(grad_flat)
    xp.clip(grad_flat, -clip_value, clip_value, out=grad_flat)
