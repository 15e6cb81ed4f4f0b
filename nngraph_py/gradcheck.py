"""Finite-difference gradient checks (Lua: ``nn.Jacobian.testJacobian`` and
``testJacobianParameters``).

The module's output is reduced to the scalar ``L = sum(output * R)`` for a fixed random ``R``
(given to ``backward`` as ``grad_output``); each floating input element and each parameter element
is perturbed by ``+-eps`` and the central difference is compared with the analytic gradient.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy

from . import backend
from .errors import NNGraphError
from .module import Module

__all__ = ["gradcheck", "GradcheckResult", "GradcheckError"]


class GradcheckError(NNGraphError, AssertionError):
    """Analytic and numerical gradients disagree; the message names the worst entry."""


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` measured.

    Attributes:
        ok: every entry within tolerance.
        errors: ``{what: max absolute error}`` for each input (``input[0]``...) and parameter
            (its ``named_parameters`` name).
        worst: a sentence naming the worst entry.
    """

    ok: bool
    errors: dict[str, float] = field(default_factory=dict)
    worst: str = ""

    @property
    def max_error(self) -> float:
        """The largest absolute error over all entries."""
        return max(self.errors.values(), default=0.0)


def _flatten(value: Any, prefix: str, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out.append((prefix, value))


def _random_like(value: Any, rng: numpy.random.Generator) -> Any:
    if isinstance(value, (list, tuple)):
        return [_random_like(v, rng) for v in value]
    host = rng.standard_normal(tuple(value.shape)).astype(numpy.float64)
    return backend.to_device(host, backend.device_of(value))


def _copy(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value.copy()


def _loss(module: Module, input: Any, weights: Any) -> float:
    out = module.forward(input)
    pairs: list[tuple[str, Any]] = []
    _flatten(out, "", pairs)
    wpairs: list[tuple[str, Any]] = []
    _flatten(weights, "", wpairs)
    return sum(float((o * w).sum()) for (_, o), (_, w) in zip(pairs, wpairs))


def _numeric(module: Module, input: Any, weights: Any, array: Any, eps: float) -> numpy.ndarray:
    grad = numpy.zeros(tuple(array.shape), dtype=numpy.float64)
    flat_index = list(numpy.ndindex(*tuple(array.shape)))
    for idx in flat_index:
        orig = float(array[idx])
        array[idx] = orig + eps
        plus = _loss(module, input, weights)
        array[idx] = orig - eps
        minus = _loss(module, input, weights)
        array[idx] = orig
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(module: Module, input: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-4, check_inputs: bool = True, check_parameters: bool = True,
              seed: int = 0, raise_on_failure: bool = True) -> GradcheckResult:
    """Compare ``backward`` with central finite differences, for inputs and parameters.

    Args:
        module: a float64 module (``module.double()``); it must be deterministic (put Dropout in
            ``evaluate()`` mode).
        input: an array or a (nested) list of arrays; integer arrays (class labels) are not
            perturbed.
        eps: the finite-difference step.
        atol, rtol: an entry passes when ``|analytic - numeric| <= atol + rtol * |numeric|``;
            a NaN or infinite entry, analytic or numeric, always fails.
        check_inputs: check the gradients w.r.t. the inputs.
        check_parameters: check the parameter gradients (accumulated by ``backward``).
        seed: seed of the random projection ``R`` of the output.
        raise_on_failure: raise :class:`GradcheckError` when an entry fails.
    Returns:
        A :class:`GradcheckResult`.

    Example:
        >>> gradcheck(nn.Linear(3, 2).double(), numpy.random.rand(4, 3))
    """
    if numpy.dtype(module.dtype) != numpy.float64:
        raise TypeError(f"gradcheck needs a float64 module: call module.double() (got {module.dtype})")
    rng = numpy.random.default_rng(seed)
    input = module._accept_input(input)
    weights = _random_like(module.forward(input), rng)

    module.zero_grad_parameters()
    module.forward(input)
    analytic_inputs = _copy(module.backward(input, weights))
    analytic_params = {name: _copy(g) for name, g in module.named_grad_parameters()}

    errors: dict[str, float] = {}
    worst_detail, worst_ratio, ok = "", -1.0, True

    def compare(what: str, analytic: Any, numeric: numpy.ndarray) -> None:
        nonlocal worst_detail, worst_ratio, ok
        a = backend.to_numpy(analytic).astype(numpy.float64)
        if not a.size:
            errors[what] = 0.0
            return
        # A NaN or infinite gradient (analytic or numeric) fails: a plain ratio test is False
        # for NaN and would pass it.
        finite = numpy.isfinite(a) & numpy.isfinite(numeric)
        with numpy.errstate(invalid="ignore"):
            diff = numpy.where(finite, numpy.abs(a - numeric), numpy.inf)
        errors[what] = float(diff.max())
        ratio = numpy.where(finite, diff / (atol + rtol * numpy.abs(numeric)), numpy.inf)
        k = numpy.unravel_index(int(ratio.argmax()), ratio.shape)
        if ratio[k] > worst_ratio:
            worst_ratio = float(ratio[k])
            note = "" if finite[k] else " (not finite)"
            worst_detail = (f"{what}{list(int(i) for i in k)}: analytic {a[k]:.8g}, "
                            f"numeric {numeric[k]:.8g}{note}")
        if not ratio[k] <= 1.0:
            ok = False

    if check_inputs:
        inputs: list[tuple[str, Any]] = []
        _flatten(input, "input", inputs)
        grads: list[tuple[str, Any]] = []
        _flatten(analytic_inputs, "input", grads)
        grad_map = dict(grads)
        for what, arr in inputs:
            if not backend.is_array(arr) or not backend.is_floating(arr):
                continue
            compare(what, grad_map[what], _numeric(module, input, weights, arr, eps))
    if check_parameters:
        for name, p in module.named_parameters():
            compare(name, analytic_params[name], _numeric(module, input, weights, p, eps))

    result = GradcheckResult(ok=ok, errors=errors, worst=worst_detail)
    if raise_on_failure and not ok:
        raise GradcheckError(f"gradient check failed for {repr(module).splitlines()[0]}: "
                             f"worst entry {worst_detail}")
    return result
