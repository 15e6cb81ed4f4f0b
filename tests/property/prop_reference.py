"""The PyTorch autograd reference of a built graph, and the comparisons the properties make.

The reference walks the gModule from its output nodes through each node's ``inputs`` (the
wiring the user built, not the engine's order) and evaluates every module with its registry
entry's ``torch`` function, in float64, with torch leaves holding copies of our parameters (one
leaf per array: parameters shared by clones share a leaf, and their gradients add up). It runs
after our forward, so a Dropout's mask is the one our forward drew.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nngraph_py import backend
from prop_registry import REGISTRY, module_name, to_torch

__all__ = ["Reference", "reference", "assert_tree_close", "leaves"]


class Ctx:
    """What the registry's ``torch`` functions see: parameters as leaves, sub-module evaluation."""

    def __init__(self) -> None:
        self.params: dict[int, tuple[Any, torch.Tensor]] = {}

    def param(self, array: Any) -> torch.Tensor:
        """The torch leaf holding (a float64 copy of) this parameter array."""
        key = id(array)
        if key not in self.params:
            self.params[key] = (array, to_torch(array).requires_grad_(True))
        return self.params[key][1]

    def const(self, array: Any) -> torch.Tensor:
        """A float64 copy of an array that is not a parameter (a Dropout mask)."""
        return to_torch(array)

    def eval(self, module: Any, x: Any) -> Any:
        """The value of ``module`` applied to ``x`` (torch tensors or nested lists of them)."""
        name = module_name(module)
        return REGISTRY[name].torch(self, module, getattr(module, "_prop_args", None), x)


class Reference:
    """The reference's outputs and gradients (float64 host arrays, nested like ours)."""

    def __init__(self, outputs: Any, grad_inputs: Any, param_grads: dict[int, np.ndarray]):
        self.outputs = outputs
        self.grad_inputs = grad_inputs
        self.param_grads = param_grads


def _leaf_inputs(value: Any) -> Any:
    if isinstance(value, list):
        return [_leaf_inputs(v) for v in value]
    t = to_torch(value)
    return t.requires_grad_(True) if t.dtype.is_floating_point else t


def _dot(out: Any, grad: Any) -> Any:
    """``sum(out * grad)`` over a nest, None gradients skipped (zeros)."""
    if grad is None:
        return None
    if isinstance(out, (list, tuple)):
        terms = [_dot(o, g) for o, g in zip(out, grad)]
        terms = [t for t in terms if t is not None]
        return sum(terms[1:], terms[0]) if terms else None
    return (out * to_torch(grad)).sum()


def _grads(value: Any) -> Any:
    if isinstance(value, list):
        return [_grads(v) for v in value]
    if not value.dtype.is_floating_point:
        return np.zeros(tuple(value.shape), dtype=np.float64)
    if value.grad is None:
        return np.zeros(tuple(value.shape))
    return value.grad.detach().numpy().copy()


def _detach(value: Any) -> Any:
    if isinstance(value, list):
        return [_detach(v) for v in value]
    return value.detach().numpy().copy()


def reference(model: Any, inputs: Any, grad_output: Any) -> Reference:
    """Evaluate ``model`` on host ``inputs`` in torch and back-propagate host ``grad_output``."""
    ctx = Ctx()
    x = _leaf_inputs(inputs)
    with torch.enable_grad():
        out = ctx.eval(model, x)
        total = _dot(out, grad_output)
        if total is not None and total.requires_grad:
            total.backward()
    param_grads = {}
    for key, (array, leaf) in ctx.params.items():
        g = leaf.grad
        param_grads[key] = np.zeros(tuple(leaf.shape)) if g is None else g.numpy().copy()
    return Reference(_detach(out), _grads(x), param_grads)


def leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """``(path, array)`` for every array of a nest (None kept as a leaf)."""
    if isinstance(value, (list, tuple)):
        return [item for k, v in enumerate(value) for item in leaves(v, f"{path}[{k}]")]
    return [(path, value)]


def assert_tree_close(ours: Any, ref: Any, what: str, rtol: float, atol: float,
                      device: str | None = None, dtype: Any = None) -> None:
    """Our nest equals the reference's: same structure, arrays (never None, never NumPy
    scalars) of the same shapes on ``device``, values within ``rtol`` and ``atol`` scaled by the
    reference's magnitude."""
    if isinstance(ref, list):
        assert isinstance(ours, (list, tuple)), f"{what}: expected a list of {len(ref)}, got " \
                                                f"{type(ours).__name__}"
        assert len(ours) == len(ref), f"{what}: expected a list of {len(ref)}, got {len(ours)}"
        for k, (o, r) in enumerate(zip(ours, ref)):
            assert_tree_close(o, r, f"{what}[{k}]", rtol, atol, device, dtype)
        return
    assert ours is not None, f"{what}: got None, expected an array of shape {ref.shape}"
    assert backend.is_array(ours), f"{what}: expected an array, got {type(ours).__name__} " \
                                   f"({ours!r})"
    if device is not None:
        assert backend.device_of(ours) == device, f"{what}: on {backend.device_of(ours)}"
    host = backend.to_numpy(ours)
    if dtype is not None and host.dtype.kind == "f":
        assert host.dtype == dtype, f"{what}: dtype {host.dtype}, expected {dtype}"
    assert host.shape == ref.shape, f"{what}: shape {host.shape}, expected {ref.shape}"
    scale = 1.0 + (float(np.abs(ref).max()) if ref.size else 0.0)
    np.testing.assert_allclose(host.astype(np.float64), ref, rtol=rtol, atol=atol * scale,
                               err_msg=what)
