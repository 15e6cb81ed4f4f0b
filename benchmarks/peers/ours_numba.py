"""Our optimized entry with the optional numba step kernels (``lstm.accel``).

Importing this module fails when numba is missing, which marks the peer unavailable.
"""
from __future__ import annotations

from typing import Any

import numba  # noqa: F401 - the dependency that makes this peer available

from lstm import accel

from .ours import NNGraphOptimized

__all__ = ["NNGraphNumba"]

if not accel.available():
    raise ImportError("numba kernels switched off (NNGRAPH_PY_NUMBA=0)")


class NNGraphNumba(NNGraphOptimized):
    """The same cells and head; ``FusedLSTM`` with one compiled loop per step's element-wise work."""

    label = "nngraph optimized + numba kernels"
    kernels = "numba"

    def versions(self) -> dict[str, Any]:
        return {**super().versions(), "numba": numba.__version__}
