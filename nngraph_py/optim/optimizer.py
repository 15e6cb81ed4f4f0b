"""The object optimizer and the buffer plumbing shared by every update rule.

Lua's ``optim`` works on one flat parameter vector and its flat gradient (``Module:getParameters``);
so does this package. The functional rules (:func:`~nngraph_py.optim.sgd`, ...) keep Lua's
contract, ``x, {fx} = optim.adam(feval, x, config, state)``; the :class:`Optimizer` subclasses wrap
the same update around the two flat buffers of a model, for training scripts written the PyTorch
way (``opt.zero_grad(); loss = ...; opt.step()``).

Every rule updates in place with ufuncs writing into preallocated buffers, so a step allocates no
parameter-sized temporary. On the host (NumPy, and the strict test module over it) the rules walk
the buffers in chunks of :data:`CHUNK_BYTES` per array, so the several passes of an update (Adam
makes twelve) reuse data from the L2 cache instead of streaming it from memory each time: a
4M-parameter Adam step takes a third less time (see :data:`CHUNK_BYTES`). On the GPU one pass per
ufunc over the whole buffer is what is fast, so CuPy arrays are not chunked.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

from nngraph_py.backend import device_of, get_array_module, is_array, is_floating, to_device
from nngraph_py.errors import InputError, NNGraphError, ShapeError

__all__ = ["Optimizer", "CHUNK_BYTES", "flat_buffers", "scratch_like", "for_each_chunk",
           "check_config", "check_hyper", "HyperParameterError"]


class HyperParameterError(NNGraphError, ValueError):
    """A hyper-parameter outside the range where its rule means anything (a negative or NaN
    learning rate, a beta of 1); the message names it, its range and the value."""


#: key -> (low, high, high_open, what): the range a hyper-parameter must lie in. Lua's optim and
#: PyTorch's optimizers check none (PyTorch: lr, eps, betas, momentum, weight_decay >= 0 and
#: betas < 1); outside these ranges an update silently trains wrong or diverges.
_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "learning_rate": (0.0, math.inf, True, "the learning rate"),
    "learning_rate_decay": (0.0, math.inf, True, "the learning-rate decay"),
    "weight_decay": (0.0, math.inf, True, "the weight decay"),
    "momentum": (0.0, 1.0, False, "the momentum"),
    "dampening": (0.0, 1.0, False, "the dampening"),
    "beta1": (0.0, 1.0, True, "beta1 (betas[0], the decay of the mean)"),
    "beta2": (0.0, 1.0, True, "beta2 (betas[1], the decay of the mean square)"),
    "epsilon": (0.0, math.inf, True, "epsilon"),
    "alpha": (0.0, 1.0, False, "alpha (the decay of the mean square)"),
    "initial_mean": (0.0, math.inf, True, "the initial mean square"),
}


def check_hyper(rule: str, config: Mapping[str, Any], keys: Iterable[str] | None = None) -> None:
    """Refuse hyper-parameters outside their range, naming the first bad one.

    Args:
        rule: the rule's name for the message (``"adam"``, ``"Adam"``).
        config: the hyper-parameters by the functional rule's names.
        keys: the keys to check (default: all of ``config`` that have a range).

    Raises:
        HyperParameterError: e.g. ``adam: beta2 (betas[1], ...) must be in [0, 1), got 1.0``.
    """
    for key in (config if keys is None else keys):
        spec = _RANGES.get(key)
        if spec is None or key not in config:
            continue
        low, high, high_open, what = spec
        value = config[key]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise HyperParameterError(f"{rule}: {what} ({key}) must be a number, got "
                                      f"{type(value).__name__} {value!r:.40}") from None
        if isinstance(value, bool):
            raise HyperParameterError(f"{rule}: {what} ({key}) must be a number, got {value!r}")
        inside = low <= number and (number < high if high_open else number <= high)
        if not inside or math.isnan(number):
            interval = f"[{low:g}, {'inf' if high == math.inf else f'{high:g}'}" + \
                (")" if high_open else "]")
            hint = ""
            if key == "learning_rate" and number > 0:
                hint = " (an infinite rate makes every parameter NaN)"
            elif key == "learning_rate" and number < 0:
                hint = " (a negative rate climbs the loss instead of descending it)"
            raise HyperParameterError(f"{rule}: {what} ({key}) must be finite and in "
                                      f"{interval}, got {value!r}{hint}")

Array = Any

#: Bytes of one array that an update handles per chunk on the host (64K float32, 32K float64):
#: the five arrays of an Adam chunk (x, dx, m, v, scratch) then stay in a core's L2 cache.
#: Adam step, float32, on a 2-core AMD EPYC VM (1 MiB L2 per core), whole buffers -> 256 KiB
#: chunks: 4M parameters 7.7 -> 5.2 ms, 500K 0.53 -> 0.49 ms, 250K 0.26 -> 0.25 ms. Chunks of
#: 64 KiB lose to Python overhead; 128 to 512 KiB are within a few percent of each other.
CHUNK_BYTES = 256 * 1024


def scratch_like(x: Array) -> Array:
    """A scratch buffer for updating ``x``: one chunk long on the host, ``x``-long on a GPU.

    Its length decides the chunking of :func:`for_each_chunk`, so a rule allocates it once (in
    its state) and every later step walks ``x`` in chunks of that length.

    Args:
        x: the flat parameter array.

    Returns:
        A 1-D array of ``x``'s dtype and device.
    """
    xp = get_array_module(x)
    n = int(x.shape[0])
    if device_of(x) == "cuda":
        size = n
    else:
        size = min(n, max(1, CHUNK_BYTES // x.dtype.itemsize))
    return xp.empty((max(size, 1),), dtype=x.dtype)


def for_each_chunk(kernel: Callable[..., None], arrays: tuple, scratch: Array, *args: Any) -> None:
    """Run ``kernel(*array_chunks, scratch_chunk, *args)`` over matching slices of ``arrays``.

    The chunk length is the scratch buffer's length (see :func:`scratch_like`); when it covers
    the arrays the kernel runs once on the whole arrays, without slicing.

    Args:
        kernel: an elementwise, in-place update.
        arrays: 1-D arrays of the same length; ``None`` entries are passed through as ``None``.
        scratch: the scratch buffer; it must be at least one element long.
        args: scalars passed after the scratch chunk.
    """
    n = int(arrays[0].shape[0])
    size = int(scratch.shape[0])
    if size >= n:
        kernel(*arrays, scratch if size == n else scratch[:n], *args)
        return
    for start in range(0, n, size):
        stop = min(start + size, n)
        kernel(*[None if a is None else a[start:stop] for a in arrays],
               scratch[: stop - start], *args)


def check_config(rule: str, config: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse configuration keys a rule does not know, naming the likely intended one.

    Lua ignores unknown keys; a Lua name such as ``learningRate`` passed here would silently fall
    back to the default, so it is an error.
    """
    unknown = set(config) - set(known)
    if not unknown:
        return
    hints = []
    for key in sorted(unknown):
        snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
        hint = f" (did you mean {snake!r}?)" if snake in known else ""
        hints.append(f"{key!r}{hint}")
    raise KeyError(f"{rule}: unknown config key(s) {', '.join(hints)}; "
                   f"known keys are {sorted(known)}")


def check_flat(x: Array, dfdx: Array, rule: str) -> None:
    """Check that ``x`` and its gradient are flat floating arrays of one length, dtype, device."""
    if not is_array(x) or not is_array(dfdx):
        name, value = ("x", x) if not is_array(x) else ("dloss_dx", dfdx)
        raise InputError(f"{rule}: {name} must be an array, got {type(value).__name__}")
    if x.ndim != 1:
        raise ShapeError(f"{rule}: x must be a flat 1-D array (use model.get_parameters()), "
                         f"got shape {tuple(x.shape)}")
    if tuple(dfdx.shape) != tuple(x.shape):
        raise ShapeError(f"{rule}: the gradient has shape {tuple(dfdx.shape)}, "
                         f"expected {tuple(x.shape)} like x")
    if not is_floating(x) or dfdx.dtype != x.dtype:
        raise InputError(f"{rule}: x and its gradient must share one floating dtype, "
                         f"got {x.dtype} and {dfdx.dtype}")
    if device_of(x) != device_of(dfdx):
        raise InputError(f"{rule}: x is on {device_of(x)!r} but its gradient "
                         f"on {device_of(dfdx)!r}")


def flat_buffers(model: Any) -> tuple[Array, Array]:
    """The ``(flat_params, flat_grads)`` pair of a model, or the pair itself.

    Args:
        model: an object with ``get_parameters() -> (flat_params, flat_grads)`` (called once), or
            that pair directly.

    Returns:
        The two 1-D buffers, checked to be of one length, floating dtype and device.
    """
    if isinstance(model, (tuple, list)):
        if len(model) != 2:
            raise InputError(f"expected a model or a (flat_params, flat_grads) pair, "
                             f"got a sequence of {len(model)} items")
        params, grads = model
    elif hasattr(model, "get_parameters"):
        params, grads = model.get_parameters()
    else:
        raise InputError(f"expected a model with get_parameters() or a (flat_params, flat_grads) "
                         f"pair, got {type(model).__name__}")
    check_flat(params, grads, "optimizer")
    return params, grads


def _copy_into(dest: Array, value: Any, key: str) -> None:
    """Copy a (possibly host) array into a state buffer in place, checking its length."""
    if not is_array(value):
        raise InputError(f"state_dict[{key!r}] must be an array, got {type(value).__name__}")
    if tuple(value.shape) != tuple(dest.shape):
        raise ShapeError(f"state_dict[{key!r}] has shape {tuple(value.shape)}, "
                         f"expected {tuple(dest.shape)}: was it saved for another model?")
    dest[...] = to_device(value, device_of(dest), dest.dtype)


class Optimizer:
    """Base class of the object optimizers: an update rule bound to a model's two flat buffers.

    A subclass sets :attr:`rule` (``"sgd"``), :attr:`hyper_keys` (its configuration keys),
    :attr:`state_keys` (what :meth:`state_dict` saves) and implements :meth:`_update`, which calls
    the same update as the functional rule; so ``Adam(model).step()`` and
    ``optim.adam(feval, x, config, state)`` follow identical trajectories.

    Args:
        model: an object with ``get_parameters()`` (called once, here) or a
            ``(flat_params, flat_grads)`` pair. The model's parameters are views into these buffers,
            so :meth:`step` updates the model.
        config: the rule's hyper-parameters, by the functional rule's names.

    Attributes:
        params: the flat parameter buffer, updated in place.
        grads: the flat gradient buffer, read by :meth:`step`.
        config: the hyper-parameters (``config["learning_rate"]`` is :attr:`lr`).
        state: the rule's buffers and counters, as the functional rule keeps them.
    """

    rule: str = ""
    hyper_keys: tuple[str, ...] = ()
    state_keys: tuple[str, ...] = ()

    def __init__(self, model: Any, config: dict[str, Any]):
        check_hyper(type(self).__name__, config)
        self.params, self.grads = flat_buffers(model)
        check_config(self.rule, config, self.hyper_keys)
        self.config = config
        self.state: dict[str, Any] = {}

    # ---- the training loop -------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate; set it between steps to follow a schedule."""
        return self.config["learning_rate"]

    @lr.setter
    def lr(self, value: float) -> None:
        check_hyper(type(self).__name__, {"learning_rate": value})
        self.config["learning_rate"] = float(value)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update the parameters from the current gradient buffer.

        Args:
            closure: optional; called first (with no argument) to recompute the loss and fill the
                gradient buffer, as PyTorch's ``step(closure)``.

        Returns:
            The closure's loss, or ``None`` without a closure.
        """
        loss = closure() if closure is not None else None
        self._update()
        return loss

    def zero_grad(self) -> None:
        """Set the flat gradient buffer to zero (Lua: ``gradParams:zero()``)."""
        self.grads.fill(0)

    def _update(self) -> None:
        raise NotImplementedError

    # ---- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot for checkpoints: hyper-parameters and counters as plain numbers, buffers as
        copies of flat arrays (on the parameters' device). Scratch buffers are left out.

        Returns:
            ``{name: number or 1-D array}``.
        """
        out: dict[str, Any] = dict(self.config)
        for key in self.state_keys:
            if key in self.state:
                value = self.state[key]
                out[key] = value.copy() if is_array(value) else value
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`, so that training resumes exactly where it was saved.

        Buffers are copied into this optimizer's own (which the model does not see), moved to the
        parameters' device and dtype; host NumPy arrays are accepted.

        Args:
            state_dict: as returned by :meth:`state_dict`.
        """
        unknown = set(state_dict) - set(self.hyper_keys) - set(self.state_keys)
        if unknown:
            raise KeyError(f"{type(self).__name__}.load_state_dict: unknown key(s) "
                           f"{sorted(unknown)}; was it saved by another optimizer?")
        missing = set(self.config) - set(state_dict)
        if missing:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing key(s) "
                           f"{sorted(missing)}")
        check_hyper(f"{type(self).__name__}.load_state_dict", state_dict, self.hyper_keys)
        for key in self.hyper_keys:
            if key in state_dict:
                self.config[key] = state_dict[key]
        xp = get_array_module(self.params)
        for key in self.state_keys:
            if key not in state_dict:
                self.state.pop(key, None)
            elif is_array(self.state.get(key)) or is_array(state_dict[key]):
                if not is_array(self.state.get(key)):
                    self.state[key] = xp.empty_like(self.params)
                _copy_into(self.state[key], state_dict[key], key)
            else:
                self.state[key] = state_dict[key]

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({hyper}; {int(self.params.shape[0])} parameters)"
