"""Stochastic gradient descent with weight decay, momentum, Nesterov momentum and annealing.

Lua: ``optim.sgd`` (torch/optim ``sgd.lua``). The update, in Lua's order::

    dfdx += weight_decay * x                       (or weight_decays * x, per parameter)
    buf = dfdx                 on the first step    (momentum != 0)
    buf = momentum * buf + (1 - dampening) * dfdx   afterwards
    dfdx = dfdx + momentum * buf   if nesterov, else dfdx = buf
    clr = learning_rate / (1 + eval_counter * learning_rate_decay)
    x -= clr * dfdx                                 (or clr * learning_rates * dfdx)

PyTorch's ``torch.optim.SGD`` computes the same sequence, with two differences of default and
scope: Lua's ``dampening`` defaults to the momentum (PyTorch's to 0), and PyTorch has no
``learning_rate_decay`` nor per-parameter ``learning_rates`` / ``weight_decays``. The object
:class:`SGD` takes PyTorch's default ``dampening=0``; the functional :func:`sgd` keeps Lua's.
As in Lua, weight decay and Nesterov momentum add into the gradient array in place.
"""
from __future__ import annotations

from typing import Any, Callable

from nngraph_py.backend import get_array_module
from nngraph_py.optim.optimizer import (Optimizer, check_config, check_flat, check_hyper,
                                        for_each_chunk, scratch_like)

__all__ = ["sgd", "SGD"]

Array = Any

_HYPER = ("learning_rate", "learning_rate_decay", "weight_decay", "weight_decays", "momentum",
          "dampening", "nesterov", "learning_rates")
_STATE = ("eval_counter", "dfdx")
_SCRATCH = ("tmp",)


def _sgd_kernel(x: Array, dfdx: Array, buf: Array | None, lrs: Array | None, wds: Array | None,
                tmp: Array, wd: float, mom: float, damp: float, nesterov: bool, first: bool,
                clr: float) -> None:
    """One in-place SGD step on matching chunks (see the module docstring for the formula)."""
    xp = get_array_module(x)
    if wd != 0:
        xp.multiply(x, wd, out=tmp)
        xp.add(dfdx, tmp, out=dfdx)
    elif wds is not None:
        xp.multiply(wds, x, out=tmp)
        xp.add(dfdx, tmp, out=dfdx)
    if buf is not None:
        if first:
            buf[...] = dfdx
        else:
            xp.multiply(buf, mom, out=buf)
            if damp == 0:
                xp.add(buf, dfdx, out=buf)
            else:
                xp.multiply(dfdx, 1 - damp, out=tmp)
                xp.add(buf, tmp, out=buf)
        if nesterov:
            xp.multiply(buf, mom, out=tmp)
            xp.add(dfdx, tmp, out=dfdx)
        else:
            dfdx = buf
    if lrs is not None:
        xp.multiply(lrs, dfdx, out=tmp)
        xp.multiply(tmp, -clr, out=tmp)
    else:
        xp.multiply(dfdx, -clr, out=tmp)
    xp.add(x, tmp, out=x)


def sgd_update(x: Array, dfdx: Array, config: dict[str, Any], state: dict[str, Any]) -> None:
    """Apply one SGD step to ``x`` given its gradient (the part of :func:`sgd` after ``feval``).

    Args:
        x: flat parameters, updated in place.
        dfdx: their gradient; modified in place by weight decay and Nesterov momentum, as in Lua.
        config: hyper-parameters (see :func:`sgd`).
        state: buffers and counters, created on the first call.
    """
    lr = config.get("learning_rate", 1e-3)
    lrd = config.get("learning_rate_decay", 0.0)
    wd = config.get("weight_decay", 0.0)
    mom = config.get("momentum", 0.0)
    damp = config.get("dampening", mom)
    nesterov = config.get("nesterov", False)
    lrs = config.get("learning_rates")
    wds = config.get("weight_decays")
    if nesterov and not (mom > 0 and damp == 0):
        raise ValueError("sgd: Nesterov momentum requires a momentum and zero dampening "
                         f"(got momentum={mom}, dampening={damp}; the functional sgd's dampening "
                         "defaults to the momentum, as in Lua: pass dampening=0)")
    check_flat(x, dfdx, "sgd")
    check_hyper("sgd", config)
    for name, vec in (("learning_rates", lrs), ("weight_decays", wds)):
        if vec is not None and tuple(vec.shape) != tuple(x.shape):
            raise ValueError(f"sgd: config[{name!r}] has shape {tuple(vec.shape)}, "
                             f"expected {tuple(x.shape)} like x")
    nevals = state.get("eval_counter", 0)
    if "tmp" not in state:
        state["tmp"] = scratch_like(x)
    first = False
    buf = None
    if mom != 0:
        if "dfdx" not in state:
            state["dfdx"] = get_array_module(x).empty_like(dfdx)
            first = True
        buf = state["dfdx"]
    clr = lr / (1 + nevals * lrd)
    for_each_chunk(_sgd_kernel, (x, dfdx, buf, lrs, None if wd != 0 else wds), state["tmp"],
                   wd, mom, damp, nesterov, first, clr)
    state["eval_counter"] = nevals + 1


def sgd(feval: Callable[[Array], tuple[Any, Array]], x: Array,
        config: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None) -> tuple[Array, list[Any]]:
    """Stochastic gradient descent (Lua: ``optim.sgd``).

    Args:
        feval: ``feval(x) -> (loss, dloss_dx)``, the loss and gradient at ``x``.
        x: the flat 1-D parameter array, updated in place.
        config: hyper-parameters (defaults from Lua):
            ``learning_rate`` (1e-3), ``learning_rate_decay`` (0: the step ``n`` uses
            ``learning_rate / (1 + n * learning_rate_decay)``), ``weight_decay`` (0),
            ``weight_decays`` (per-parameter array, used when ``weight_decay`` is 0),
            ``momentum`` (0), ``dampening`` (defaults to ``momentum``), ``nesterov`` (False;
            needs a momentum and ``dampening=0``), ``learning_rates`` (per-parameter array).
        state: the optimizer's memory between calls: ``eval_counter``, ``dfdx`` (the momentum
            buffer) and ``tmp`` (scratch). Defaults to ``config`` itself, as in Lua.

    Returns:
        ``(x, [loss])``: the updated ``x`` and the loss before the update.

    Example:
        >>> import numpy as np
        >>> x = np.array([1.0, -2.0])
        >>> config = {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0}
        >>> x, (fx,) = sgd(lambda x: (float(x @ x), 2 * x), x, config)
        >>> x
        array([ 0.8, -1.6])
    """
    config = {} if config is None else config
    state = config if state is None else state
    check_config("sgd", config, _HYPER + _STATE + _SCRATCH if state is config else _HYPER)
    fx, dfdx = feval(x)
    sgd_update(x, dfdx, config, state)
    return x, [fx]


class SGD(Optimizer):
    """Stochastic gradient descent over a model's flat buffers (Lua: ``optim.sgd``).

    Args:
        model: an object with ``get_parameters()`` or a ``(flat_params, flat_grads)`` pair.
        lr: learning rate.
        momentum: momentum factor (0 disables it).
        weight_decay: L2 penalty added to the gradient (in place, as in Lua).
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        dampening: dampening of the momentum; 0 by default as in PyTorch (Lua's default is the
            momentum, which the functional :func:`sgd` keeps).
        learning_rate_decay: Lua's annealing, ``lr / (1 + step * learning_rate_decay)``.

    Example:
        >>> import numpy as np
        >>> params, grads = np.ones(3), np.zeros(3)
        >>> opt = SGD((params, grads), lr=0.1, momentum=0.9)
        >>> grads[:] = 2 * params; opt.step(); params
        array([0.8, 0.8, 0.8])
    """

    rule = "sgd"
    hyper_keys = ("learning_rate", "learning_rate_decay", "weight_decay", "momentum", "dampening",
                  "nesterov")
    state_keys = ("eval_counter", "dfdx")

    def __init__(self, model: Any, lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, dampening: float = 0.0,
                 learning_rate_decay: float = 0.0):
        if nesterov and not (momentum > 0 and dampening == 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and dampening == 0, "
                             f"got momentum={momentum}, dampening={dampening}")
        super().__init__(model, {
            "learning_rate": float(lr), "learning_rate_decay": float(learning_rate_decay),
            "weight_decay": float(weight_decay), "momentum": float(momentum),
            "dampening": float(dampening), "nesterov": bool(nesterov)})
        self.state["eval_counter"] = 0
        self.state["tmp"] = scratch_like(self.params)

    def _update(self) -> None:
        sgd_update(self.params, self.grads, self.config, self.state)
