"""Weights in PyTorch's layout: ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` state dicts to and from ours.

PyTorch stacks the gates of layer ``k`` in one matrix, in the order i, f, g, o; our recipe keeps
one ``Linear`` per gate and side::

    weight_ih_l{k}  (4H, in)  = [i2h_input; i2h_forget; i2h_cell; i2h_output] .weight
    weight_hh_l{k}  (4H, H)   = [h2h_input; h2h_forget; h2h_cell; h2h_output] .weight
    bias_ih_l{k}    (4H,)     = the i2h biases, same order
    bias_hh_l{k}    (4H,)     = the h2h biases, same order

A ``GRU`` stacks ``[*_reset; *_update; *_new]`` (PyTorch's r, z, n) in ``(3H, ...)`` matrices; an
``RNN`` has a single block per side (``i2h``, ``h2h``). Our ``layer{k+1}`` is PyTorch's ``l{k}``
and ``layer{k+1}_reverse`` (the backward direction of a bidirectional model) its ``l{k}_reverse``.
Both sides keep two biases, so the match is exact.

This module works on NumPy host arrays and never imports torch; convert at the boundary::

    sd = {k: torch.from_numpy(v) for k, v in to_torch_state_dict(model).items()}
    torch_lstm.load_state_dict(sd)
    load_torch_state_dict(model, {k: v.numpy() for k, v in torch_lstm.state_dict().items()})
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy

from nngraph_py import backend
from nngraph_py.errors import ShapeError

from .cell import GRU_GATES
from .model import GRU, LSTM, RNN, Recurrent

__all__ = ["TORCH_GATE_ORDER", "torch_keys", "to_torch_state_dict", "load_torch_state_dict"]

#: PyTorch's order of the LSTM gates in its stacked matrices (i, f, g, o), in our gate names.
TORCH_GATE_ORDER = ("input", "forget", "cell", "output")


def _blocks(model: Recurrent, side: str) -> list[str]:
    """Names of the Linears stacked in PyTorch's ``weight_{side}`` (``side`` is ih or hh)."""
    prefix = "i2h" if side == "ih" else "h2h"
    if isinstance(model, LSTM):
        return [f"{prefix}_{gate}" for gate in TORCH_GATE_ORDER]
    if isinstance(model, GRU):
        return [f"{prefix}_{gate}" for gate in GRU_GATES]
    if isinstance(model, RNN):
        return [prefix]
    raise TypeError(f"expected an lstm.LSTM, lstm.GRU or lstm.RNN, got {type(model).__name__}")


def _entries(model: Recurrent) -> list[tuple[str, int, str, str]]:
    """``(torch key, cell index, side, our attribute)`` in PyTorch's state-dict order."""
    out = []
    suffixes = ("", "_reverse") if model.bidirectional else ("",)
    for k in range(model.num_layers):
        for d, suffix in enumerate(suffixes):
            for attr in ("weight", "bias"):
                for side in ("ih", "hh"):
                    out.append((f"{attr}_{side}_l{k}{suffix}", k * len(suffixes) + d, side, attr))
    return out


def torch_keys(model: Recurrent) -> list[str]:
    """The keys of the PyTorch state dict of ``model``, in PyTorch's order.

    Args:
        model: an :class:`~lstm.LSTM`, :class:`~lstm.GRU` or :class:`~lstm.RNN`.

    Returns:
        ``["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", ...]`` (then the
        ``..._l0_reverse`` keys when bidirectional).
    """
    _blocks(model, "ih")
    return [key for key, _, _, _ in _entries(model)]


def to_torch_state_dict(model: Recurrent, gradients: bool = False) -> dict[str, numpy.ndarray]:
    """The model's weights (or their gradients) as PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` state dict.

    Args:
        model: an :class:`~lstm.LSTM`, :class:`~lstm.GRU` or :class:`~lstm.RNN`.
        gradients: return the parameter gradients, in the same layout, instead of the weights
            (to compare with ``param.grad`` of the PyTorch module).

    Returns:
        ``{torch key: host NumPy array}``, copies in the model's dtype.
    """
    out: dict[str, numpy.ndarray] = {}
    for key, k, side, attr in _entries(model):
        linears = dict(model.cells[k].named_children())
        name = "grad_" + attr if gradients else attr
        parts = [backend.to_numpy(getattr(linears[n], name)) for n in _blocks(model, side)]
        out[key] = numpy.concatenate(parts, axis=0)
    return out


def load_torch_state_dict(model: Recurrent, state_dict: Mapping[str, Any],
                          strict: bool = True) -> Recurrent:
    """Copy PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` weights into ``model`` (in place, clones included).

    Args:
        model: an :class:`~lstm.LSTM`, :class:`~lstm.GRU` or :class:`~lstm.RNN` of the same sizes.
        state_dict: ``{torch key: host array}`` (NumPy, or anything ``numpy.asarray`` reads).
        strict: refuse keys the model does not have (PyTorch's ``strict``); missing keys are
            always refused.

    Returns:
        ``model``.
    """
    entries = _entries(model)
    expected = {key for key, _, _, _ in entries}
    missing = [key for key, _, _, _ in entries if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    if missing or (strict and unexpected):
        raise KeyError(f"the state dict does not fit {model!r}: missing keys {missing}, "
                       f"unexpected keys {unexpected}"
                       + ("; a model built with proj_size or bias=False is not supported"
                          if unexpected else ""))
    for key, k, side, attr in entries:
        value = numpy.asarray(state_dict[key])
        linears = dict(model.cells[k].named_children())
        names = _blocks(model, side)
        targets = [getattr(linears[n], attr) for n in names]
        want = (sum(int(t.shape[0]) for t in targets),) + tuple(targets[0].shape[1:])
        if tuple(value.shape) != want:
            raise ShapeError(f"{key}: expected shape {want} for {model!r}, got "
                             f"{tuple(value.shape)}")
        rows = int(targets[0].shape[0])
        for j, target in enumerate(targets):
            block = value[j * rows:(j + 1) * rows]
            target[...] = backend.to_device(block, model.device, model.dtype)
    return model
