"""Adam, as Lua's ``optim.adam`` computes it (torch/optim ``adam.lua``).

The update at step ``t`` (counting from 1)::

    dfdx += weight_decay * x                        (L2 penalty in the gradient, in place)
    clr = learning_rate / (1 + (t - 1) * learning_rate_decay)
    m = beta1 * m + (1 - beta1) * dfdx
    v = beta2 * v + (1 - beta2) * dfdx * dfdx
    step_size = clr * sqrt(1 - beta2^t) / (1 - beta1^t)
    x -= step_size * m / (sqrt(v) + epsilon)

This is the "efficient" form of Kingma & Ba's Algorithm 1 (section 2 of the paper). PyTorch's
``torch.optim.Adam`` divides by ``sqrt(v) / sqrt(1 - beta2^t) + epsilon`` instead, i.e. Lua's
epsilon is PyTorch's ``epsilon / sqrt(1 - beta2^t)``: the two agree exactly when ``epsilon = 0``
and differ by a relative ``O(epsilon / sqrt(v))`` otherwise (most in the first steps, when
``1 - beta2^t`` is small). Weight decay is L2 in both (Adam, not AdamW); PyTorch has no
``learning_rate_decay``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from nngraph_py.backend import get_array_module
from nngraph_py.optim.optimizer import (Optimizer, check_config, check_flat, check_hyper,
                                        for_each_chunk, scratch_like)

__all__ = ["adam", "Adam"]

Array = Any

_HYPER = ("learning_rate", "learning_rate_decay", "beta1", "beta2", "epsilon", "weight_decay")
_STATE = ("t", "m", "v")
_SCRATCH = ("denom",)


def _adam_kernel(x: Array, dfdx: Array, m: Array, v: Array, tmp: Array, wd: float, beta1: float,
                 beta2: float, epsilon: float, step_size: float) -> None:
    """One in-place Adam step on matching chunks; ``tmp`` holds the products and the denominator."""
    xp = get_array_module(x)
    if wd != 0:
        xp.multiply(x, wd, out=tmp)
        xp.add(dfdx, tmp, out=dfdx)
    # m = beta1 * m + (1 - beta1) * dfdx
    xp.multiply(m, beta1, out=m)
    xp.multiply(dfdx, 1 - beta1, out=tmp)
    xp.add(m, tmp, out=m)
    # v = beta2 * v + (1 - beta2) * dfdx^2
    xp.multiply(v, beta2, out=v)
    xp.multiply(dfdx, 1 - beta2, out=tmp)
    xp.multiply(tmp, dfdx, out=tmp)
    xp.add(v, tmp, out=v)
    # x -= step_size * m / (sqrt(v) + epsilon)
    xp.sqrt(v, out=tmp)
    xp.add(tmp, epsilon, out=tmp)
    xp.divide(m, tmp, out=tmp)
    xp.multiply(tmp, -step_size, out=tmp)
    xp.add(x, tmp, out=x)


def adam_init_state(x: Array, state: dict[str, Any]) -> None:
    """Allocate Adam's buffers for ``x`` unless ``state`` has them (zeros, step 0)."""
    xp = get_array_module(x)
    state.setdefault("t", 0)
    for key in ("m", "v"):
        if key not in state:
            state[key] = xp.zeros_like(x)
    if "denom" not in state:
        state["denom"] = scratch_like(x)


def adam_update(x: Array, dfdx: Array, config: dict[str, Any], state: dict[str, Any]) -> None:
    """Apply one Adam step to ``x`` given its gradient (the part of :func:`adam` after ``feval``).

    Args:
        x: flat parameters, updated in place.
        dfdx: their gradient; weight decay is added into it in place, as in Lua.
        config: hyper-parameters (see :func:`adam`).
        state: buffers and the step counter, created on the first call.
    """
    lr = config.get("learning_rate", 1e-3)
    lrd = config.get("learning_rate_decay", 0.0)
    beta1 = config.get("beta1", 0.9)
    beta2 = config.get("beta2", 0.999)
    epsilon = config.get("epsilon", 1e-8)
    wd = config.get("weight_decay", 0.0)
    check_flat(x, dfdx, "adam")
    check_hyper("adam", config)
    adam_init_state(x, state)
    if tuple(state["m"].shape) != tuple(x.shape):
        raise ValueError(f"adam: the state's buffers have shape {tuple(state['m'].shape)} but x "
                         f"has {tuple(x.shape)}: one state dict per parameter vector")
    clr = lr / (1 + state["t"] * lrd)
    t = state["t"] + 1
    step_size = clr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    for_each_chunk(_adam_kernel, (x, dfdx, state["m"], state["v"]), state["denom"],
                   wd, beta1, beta2, epsilon, step_size)
    state["t"] = t


def adam(feval: Callable[[Array], tuple[Any, Array]], x: Array,
         config: dict[str, Any] | None = None,
         state: dict[str, Any] | None = None) -> tuple[Array, list[Any]]:
    """Adam (Lua: ``optim.adam``); see the module docstring for the formula and PyTorch's.

    Args:
        feval: ``feval(x) -> (loss, dloss_dx)``, the loss and gradient at ``x``.
        x: the flat 1-D parameter array, updated in place.
        config: hyper-parameters (defaults from Lua): ``learning_rate`` (1e-3),
            ``learning_rate_decay`` (0), ``beta1`` (0.9), ``beta2`` (0.999), ``epsilon`` (1e-8),
            ``weight_decay`` (0).
        state: the optimizer's memory between calls: ``t`` (steps taken), ``m`` and ``v`` (the
            moment estimates), ``denom`` (scratch). Defaults to ``config`` itself, as in Lua.

    Returns:
        ``(x, [loss])``: the updated ``x`` and the loss before the update.

    Example:
        >>> import numpy as np
        >>> x = np.array([1.0, -2.0])
        >>> x, (fx,) = adam(lambda x: (float(x @ x), 2 * x), x, {"learning_rate": 0.1})
        >>> x.round(6)
        array([ 0.9, -1.9])
    """
    config = {} if config is None else config
    state = config if state is None else state
    check_config("adam", config, _HYPER + _STATE + _SCRATCH if state is config else _HYPER)
    fx, dfdx = feval(x)
    adam_update(x, dfdx, config, state)
    return x, [fx]


class Adam(Optimizer):
    """Adam over a model's flat buffers (Lua: ``optim.adam``; the update differs from PyTorch's
    only in where epsilon enters, see the module docstring).

    Args:
        model: an object with ``get_parameters()`` or a ``(flat_params, flat_grads)`` pair.
        lr: learning rate.
        betas: ``(beta1, beta2)``, the decay rates of the moment estimates.
        eps: epsilon, added to ``sqrt(v)``.
        weight_decay: L2 penalty added to the gradient (in place, as in Lua).
        learning_rate_decay: Lua's annealing, ``lr / (1 + (t - 1) * learning_rate_decay)``.

    Example:
        >>> import numpy as np
        >>> params, grads = np.ones(3), np.zeros(3)
        >>> opt = Adam((params, grads), lr=0.1)
        >>> grads[:] = 2 * params; opt.step(); params.round(6)
        array([0.9, 0.9, 0.9])
    """

    rule = "adam"
    hyper_keys = _HYPER
    state_keys = _STATE

    def __init__(self, model: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, learning_rate_decay: float = 0.0):
        beta1, beta2 = betas
        super().__init__(model, {
            "learning_rate": float(lr), "learning_rate_decay": float(learning_rate_decay),
            "beta1": float(beta1), "beta2": float(beta2), "epsilon": float(eps),
            "weight_decay": float(weight_decay)})
        adam_init_state(self.params, self.state)

    def _update(self) -> None:
        adam_update(self.params, self.grads, self.config, self.state)
