"""Optional numba kernels for the recipe executors of :mod:`nngraph_py.compile.recipes`: one
pass per time step.

The NumPy path of the recipe executors spends about ten array passes per step on the
element-wise part of a cell (the sigmoids and tanhs of the gates, the products and sums; and in
backward the derivatives). The kernels here do all of a step's element-wise work in one loop over
the batch and hidden units, reading each operand once, with the recurrent product already
computed by BLAS: for the LSTM recipe ``step_forward`` / ``step_backward`` (training) and
``step_infer`` (inference: nothing stored for backward, the biases added in the loop); for the
GRU recipe ``gru_step_forward`` / ``gru_step_backward`` and ``gru_step_infer``.

They are chosen by the executors when numba is installed (``pip install 'nngraph_py[accel]'``)
and the arrays are float32 NumPy arrays (and float64 ones with ``kernels="numba"``: the exact
``math.tanh``, used by the gradient checks); everything works and is tested without numba.
``NNGRAPH_PY_NUMBA=0`` in the environment switches them off. numba itself is imported (and the
kernels compiled, or loaded from numba's cache) only on first use, by :func:`kernels`: importing
``lstm`` costs nothing extra.

**tanh that vectorizes.** A call to the C library's ``tanh`` inside a loop keeps LLVM from
vectorizing it. For float32 arrays the kernels use a rational function fitted to ``tanh`` on
``[0, 9]`` (relative error below 1.3e-9, evaluated in float64, so results are within 0.52 units in
the last place of float32); beyond 9 float32's tanh is 1. Float64 arrays (gradient checks) use
the exact ``math.tanh``. The logistic function is ``0.5 * tanh(x / 2) + 0.5``, as in the NumPy path.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

__all__ = ["available", "kernels", "tanh32", "TANH_CLAMP"]

#: Beyond this magnitude the float32 tanh is +-1 to within rounding.
TANH_CLAMP = 9.0
# tanh(x) ~ x * P(x^2) / Q(x^2) on [-9, 9]; weighted least squares on the relative error,
# reweighted towards the minimax solution (fitted once, in float64).
_P = (9.9999999872392253e-01, 1.3680846546928357e-01, 3.8694954995561848e-03,
      2.8031053515124034e-05, 3.0641892108231199e-08, -1.2245765677908300e-11)
_Q = (1.0, 4.7014178637246140e-01, 2.7250111136171862e-02, 3.9406911558938066e-04,
      1.2890168659699317e-06)


def available() -> bool:
    """True when numba is installed and not switched off by ``NNGRAPH_PY_NUMBA=0`` (does not
    import numba)."""
    if os.environ.get("NNGRAPH_PY_NUMBA", "1") == "0":
        return False
    return importlib.util.find_spec("numba") is not None


def kernels() -> ModuleType:
    """The compiled kernels (``step_forward``, ``step_backward``, ``step_infer`` and the
    ``gru_step_*`` ones), importing numba on first use.

    Raises:
        RuntimeError: numba is not installed or is switched off.
    """
    if not available():
        raise RuntimeError("the compiled recipe kernels need numba: pip install 'nngraph_py[accel]' "
                           "(and NNGRAPH_PY_NUMBA not set to 0)")
    return importlib.import_module("nngraph_py.compile._numba_kernels")


def tanh32(x: float) -> float:
    """The rational tanh the float32 kernels use (plain Python, for tests and docs)."""
    x = min(max(x, -TANH_CLAMP), TANH_CLAMP)
    s = x * x
    p = _P[5]
    for k in (4, 3, 2, 1, 0):
        p = p * s + _P[k]
    q = _Q[4]
    for k in (3, 2, 1, 0):
        q = q * s + _Q[k]
    return x * p / q
