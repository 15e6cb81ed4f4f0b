"""RMSprop, as Lua's ``optim.rmsprop`` computes it (torch/optim ``rmsprop.lua``).

The update::

    dfdx += weight_decay * x                        (L2 penalty in the gradient, in place)
    m = alpha * m + (1 - alpha) * dfdx * dfdx       (m starts at initial_mean, 0 by default)
    x -= learning_rate * dfdx / (sqrt(m) + epsilon)

PyTorch's ``torch.optim.RMSprop`` (``centered=False, momentum=0``) computes exactly this, with the
same defaults (lr 1e-2, alpha 0.99, eps 1e-8) and epsilon outside the square root as here;
TensorFlow and Keras put it inside (``sqrt(m + epsilon)``). PyTorch has no ``initial_mean``; Lua
has no centered variant nor momentum.
"""
from __future__ import annotations

from typing import Any, Callable

from nngraph_py.backend import get_array_module
from nngraph_py.optim.optimizer import (Optimizer, check_config, check_flat, check_hyper,
                                        for_each_chunk, scratch_like)

__all__ = ["rmsprop", "RMSProp"]

Array = Any

_HYPER = ("learning_rate", "alpha", "epsilon", "weight_decay", "initial_mean")
_STATE = ("m",)
_SCRATCH = ("tmp",)


def _rmsprop_kernel(x: Array, dfdx: Array, m: Array, tmp: Array, wd: float, alpha: float,
                    epsilon: float, lr: float) -> None:
    """One in-place RMSprop step on matching chunks."""
    xp = get_array_module(x)
    if wd != 0:
        xp.multiply(x, wd, out=tmp)
        xp.add(dfdx, tmp, out=dfdx)
    # m = alpha * m + (1 - alpha) * dfdx^2
    xp.multiply(m, alpha, out=m)
    xp.multiply(dfdx, 1 - alpha, out=tmp)
    xp.multiply(tmp, dfdx, out=tmp)
    xp.add(m, tmp, out=m)
    # x -= lr * dfdx / (sqrt(m) + epsilon)
    xp.sqrt(m, out=tmp)
    xp.add(tmp, epsilon, out=tmp)
    xp.divide(dfdx, tmp, out=tmp)
    xp.multiply(tmp, -lr, out=tmp)
    xp.add(x, tmp, out=x)


def rmsprop_init_state(x: Array, state: dict[str, Any], initial_mean: float = 0.0) -> None:
    """Allocate RMSprop's buffers for ``x`` unless ``state`` has them (``m`` = ``initial_mean``)."""
    xp = get_array_module(x)
    if "m" not in state:
        m = xp.empty_like(x)
        m.fill(initial_mean)
        state["m"] = m
    if "tmp" not in state:
        state["tmp"] = scratch_like(x)


def rmsprop_update(x: Array, dfdx: Array, config: dict[str, Any], state: dict[str, Any]) -> None:
    """Apply one RMSprop step to ``x`` given its gradient (:func:`rmsprop` after ``feval``).

    Args:
        x: flat parameters, updated in place.
        dfdx: their gradient; weight decay is added into it in place, as in Lua.
        config: hyper-parameters (see :func:`rmsprop`).
        state: buffers, created on the first call.
    """
    lr = config.get("learning_rate", 1e-2)
    alpha = config.get("alpha", 0.99)
    epsilon = config.get("epsilon", 1e-8)
    wd = config.get("weight_decay", 0.0)
    check_flat(x, dfdx, "rmsprop")
    check_hyper("rmsprop", config)
    rmsprop_init_state(x, state, config.get("initial_mean", 0.0))
    if tuple(state["m"].shape) != tuple(x.shape):
        raise ValueError(f"rmsprop: the state's buffer has shape {tuple(state['m'].shape)} but x "
                         f"has {tuple(x.shape)}: one state dict per parameter vector")
    for_each_chunk(_rmsprop_kernel, (x, dfdx, state["m"]), state["tmp"], wd, alpha, epsilon, lr)


def rmsprop(feval: Callable[[Array], tuple[Any, Array]], x: Array,
            config: dict[str, Any] | None = None,
            state: dict[str, Any] | None = None) -> tuple[Array, list[Any]]:
    """RMSprop (Lua: ``optim.rmsprop``); see the module docstring for the formula.

    Args:
        feval: ``feval(x) -> (loss, dloss_dx)``, the loss and gradient at ``x``.
        x: the flat 1-D parameter array, updated in place.
        config: hyper-parameters (defaults from Lua): ``learning_rate`` (1e-2), ``alpha`` (0.99),
            ``epsilon`` (1e-8), ``weight_decay`` (0), ``initial_mean`` (0, the starting value of
            the mean square).
        state: the optimizer's memory between calls: ``m`` (the leaky mean of squared gradients)
            and ``tmp`` (scratch). Defaults to ``config`` itself, as in Lua.

    Returns:
        ``(x, [loss])``: the updated ``x`` and the loss before the update.

    Example:
        >>> import numpy as np
        >>> x = np.array([1.0, -2.0])
        >>> x, (fx,) = rmsprop(lambda x: (float(x @ x), 2 * x), x, {"learning_rate": 0.01})
        >>> x.round(6)
        array([ 0.9, -1.9])
    """
    config = {} if config is None else config
    state = config if state is None else state
    check_config("rmsprop", config, _HYPER + _STATE + _SCRATCH if state is config else _HYPER)
    fx, dfdx = feval(x)
    rmsprop_update(x, dfdx, config, state)
    return x, [fx]


class RMSProp(Optimizer):
    """RMSprop over a model's flat buffers (Lua: ``optim.rmsprop``; same update as PyTorch's
    ``RMSprop`` without centering or momentum).

    Args:
        model: an object with ``get_parameters()`` or a ``(flat_params, flat_grads)`` pair.
        lr: learning rate.
        alpha: decay rate of the mean square.
        eps: epsilon, added to ``sqrt(m)``.
        weight_decay: L2 penalty added to the gradient (in place, as in Lua).
        initial_mean: starting value of the mean square (Lua's ``initialMean``).

    Example:
        >>> import numpy as np
        >>> params, grads = np.ones(3), np.zeros(3)
        >>> opt = RMSProp((params, grads), lr=0.01)
        >>> grads[:] = 2 * params; opt.step(); params.round(6)
        array([0.9, 0.9, 0.9])
    """

    rule = "rmsprop"
    hyper_keys = _HYPER
    state_keys = _STATE

    def __init__(self, model: Any, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, initial_mean: float = 0.0):
        super().__init__(model, {
            "learning_rate": float(lr), "alpha": float(alpha), "epsilon": float(eps),
            "weight_decay": float(weight_decay), "initial_mean": float(initial_mean)})
        rmsprop_init_state(self.params, self.state, initial_mean)

    def _update(self) -> None:
        rmsprop_update(self.params, self.grads, self.config, self.state)
