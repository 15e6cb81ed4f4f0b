"""The optional numba step kernels of the LSTM recipe: :mod:`nngraph_py.compile.accel`,
re-exported under its historical name."""
from nngraph_py.compile.accel import TANH_CLAMP, available, kernels, tanh32

__all__ = ["available", "kernels", "tanh32", "TANH_CLAMP"]
