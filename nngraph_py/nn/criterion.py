"""Loss functions (Lua: ``nn.Criterion``, ``nn.MSECriterion``, ``nn.ClassNLLCriterion``,
``nn.CrossEntropyCriterion``, and nngraph's ``nn.ModuleFromCriterion``).

A criterion is not a module, as in Lua: ``forward(input, target)`` returns the loss as a Python
number and ``backward(input, target)`` the gradient w.r.t. ``input``. To put a loss inside a
graph, call the criterion on two nodes: ``nn.MSECriterion()([prediction, target])`` is a node
whose module is a :class:`ModuleFromCriterion`, with a 0-d output (the loss).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy

from .. import backend, nest
from ..errors import ArgumentError, InputError, ShapeError, shape_str
from ..convertible import Convertible
from ..module import Array, Module, integer_input_error
from .activation import log_softmax

__all__ = ["Criterion", "MSECriterion", "ClassNLLCriterion", "CrossEntropyCriterion",
           "ModuleFromCriterion", "mse_loss", "mse_grad", "class_nll_loss", "class_nll_grad"]


# --------------------------------------------------------------------------------------------
# The math, usable without the classes
# --------------------------------------------------------------------------------------------
def mse_loss(xp: Any, input: Array, target: Array, size_average: bool = True) -> Array:
    """``sum((input - target)^2)``, divided by the number of elements when ``size_average``.

    Returns a 0-d array on the input's device.
    """
    d = input - target
    loss = (d * d).sum()
    if size_average and d.size:
        loss = loss / d.size
    return xp.asarray(loss, dtype=input.dtype)


def mse_grad(xp: Any, input: Array, target: Array, size_average: bool = True) -> Array:
    """The gradient of :func:`mse_loss` w.r.t. ``input``: ``2 (input - target) [/ n]``."""
    d = input - target
    return d * (2.0 / d.size if size_average and d.size else 2.0)


def _as_rows(xp: Any, log_prob: Array, target: Array) -> tuple[Array, Array, Array]:
    x2 = log_prob if log_prob.ndim == 2 else log_prob.reshape(1, -1)
    t1 = target.reshape(-1)
    return x2, t1, xp.arange(t1.shape[0])


def _picked_weights(xp: Any, x2: Array, t1: Array, weights: Array | None,
                    ignore_index: int | None) -> tuple[Array, Array]:
    """The target rows' class indices (ignored targets pointed at class 0) and their weights
    (0 for ignored targets)."""
    if ignore_index is None:
        keep = None
        t_safe = t1
    else:
        keep = t1 != ignore_index
        t_safe = xp.where(keep, t1, 0)
    if weights is None:
        w = xp.ones(t1.shape, dtype=x2.dtype) if keep is None else keep.astype(x2.dtype)
    else:
        w = weights[t_safe] if keep is None else weights[t_safe] * keep.astype(x2.dtype)
    return t_safe, w


def class_nll_loss(xp: Any, log_prob: Array, target: Array, weights: Array | None = None,
                   size_average: bool = True, ignore_index: int | None = None) -> Array:
    """``-sum_i w[t_i] log_prob[i, t_i]``, divided by ``sum_i w[t_i]`` when ``size_average``.

    Args:
        log_prob: ``(batch, classes)`` or ``(classes,)`` log-probabilities.
        target: 0-based integer class indices, ``(batch,)`` (or one index for 1-D input).
        weights: optional ``(classes,)`` class weights (all 1 when None).
        ignore_index: targets equal to it count for nothing, in the sum and in the average
            (Lua's ``ignoreIndex``); when every target is ignored the loss is 0, as Lua's.
    Returns:
        A 0-d array on the input's device.
    """
    x2, t1, rows = _as_rows(xp, log_prob, target)
    if weights is None and ignore_index is None:
        total, norm = -x2[rows, t1].sum(), t1.shape[0]
    else:
        t_safe, w = _picked_weights(xp, x2, t1, weights, ignore_index)
        total, norm = -(x2[rows, t_safe] * w).sum(), w.sum()
    if size_average:
        loss = total / norm if float(norm) != 0 else total * 0
    else:
        loss = total
    return xp.asarray(loss, dtype=log_prob.dtype)


def class_nll_grad(xp: Any, log_prob: Array, target: Array, weights: Array | None = None,
                   size_average: bool = True, ignore_index: int | None = None) -> Array:
    """The gradient of :func:`class_nll_loss` w.r.t. ``log_prob`` (non-zero at the targets only)."""
    x2, t1, rows = _as_rows(xp, log_prob, target)
    grad = xp.zeros_like(x2)
    if weights is None and ignore_index is None:
        value = -1.0 / t1.shape[0] if size_average else -1.0
        grad[rows, t1] = value
    else:
        t_safe, w = _picked_weights(xp, x2, t1, weights, ignore_index)
        norm = w.sum()
        if size_average and float(norm) != 0:
            w = w / norm
        grad[rows, t_safe] = -w
    return grad.reshape(log_prob.shape)


# --------------------------------------------------------------------------------------------
# The base class
# --------------------------------------------------------------------------------------------
class Criterion(Convertible):
    """Abstract loss (Lua: ``nn.Criterion``); not a :class:`Module`.

    A criterion implements ``update_output(input, target)`` (the loss as a 0-d array) and
    ``update_grad_input(input, target)``. It holds no parameters, but keeps a device and a dtype
    as modules do: floating inputs and targets are cast to its dtype, integer targets are kept,
    arrays on another device are refused.

    Attributes:
        output: the loss of the last ``forward``, a 0-d array on the device.
        grad_input: the gradient of the last ``backward``.
    """

    def __init__(self) -> None:
        self.output: Array | None = None
        self.grad_input: Array | None = None
        self._device = "cpu"
        self._dtype = backend.get_default_dtype()
        self._node: Any = None  # the graph node computing this loss, if any (one at most)

    def forward(self, input: Array, target: Any) -> float:
        """The loss for ``input`` and ``target``, as a Python float (Lua returns a number).

        ``self.output`` keeps it as a 0-d array on the device.
        """
        input, target = self._accept(input, "input"), self._accept(target, "target")
        return float(self.update_output(input, target))

    def backward(self, input: Array, target: Any) -> Array:
        """The gradient of the loss w.r.t. ``input`` (Lua: ``Criterion:backward``)."""
        input, target = self._accept(input, "input"), self._accept(target, "target")
        return self.update_grad_input(input, target)

    def update_output(self, input: Array, target: Array) -> Array:
        """Compute ``self.output``, a 0-d array (Lua: ``updateOutput``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_output")

    def update_grad_input(self, input: Array, target: Array) -> Array:
        """Compute ``self.grad_input`` (Lua: ``updateGradInput``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_grad_input")

    def __call__(self, *args: Any) -> Any:
        """A graph node computing this loss: ``criterion([prediction_node, target_node])``.

        Returns a node whose module is ``ModuleFromCriterion(self)``; its output is the 0-d loss.
        """
        from ..graph.node import make_node

        if len(args) != 1 or not isinstance(args[0], (list, tuple)) or len(args[0]) != 2:
            raise InputError(
                f"{self!r}([prediction, target]) builds a graph node from a list of two nodes; "
                f"to compute the loss of arrays, call {self!r}.forward(input, target)"
            )
        return make_node(ModuleFromCriterion(self), (list(args[0]),))

    # ----------------------------------------------------------------------------------------
    # Device and dtype
    # ----------------------------------------------------------------------------------------
    def _convert(self, fn: Callable[[Array], Array]) -> None:
        """Apply ``fn`` to every array the criterion holds (class weights, caches)."""
        for key, value in list(vars(self).items()):
            if backend.is_array(value):
                setattr(self, key, fn(value))

    def to(self, device: str | None = None, dtype: Any = None) -> "Criterion":
        """Move to ``device`` and/or cast to the floating ``dtype``; returns self (as Module.to)."""
        if device is not None:
            backend.array_module(device)  # raises a clear DeviceError when unavailable
        new_dtype = numpy.dtype(dtype) if dtype is not None else None
        if new_dtype is not None and new_dtype.kind != "f":
            raise ArgumentError(f"a criterion's dtype must be floating, got {new_dtype}")
        self._convert(lambda a: backend.to_device(a, device, new_dtype))
        if device is not None:
            self._device = device
        if new_dtype is not None:
            self._dtype = new_dtype
        return self

    def clear_state(self) -> "Criterion":
        """Drop the cached loss, gradient and buffers (Lua: ``clearState``)."""
        for key in ("output", "grad_input") + tuple(getattr(self, "_state_names", ())):
            setattr(self, key, None)
        return self

    # ----------------------------------------------------------------------------------------
    # Input checks and printing
    # ----------------------------------------------------------------------------------------
    def _accept(self, value: Any, what: str) -> Array:
        """Move Python numbers to the device, check the device of arrays, cast floating ones."""
        xp = backend.array_module(self._device)
        if isinstance(value, bool) or not (backend.is_array(value)
                                           or isinstance(value, numbers.Real)):
            raise InputError(f"{self.describe()}: {what} must be an array, got "
                             f"{type(value).__name__}")
        if isinstance(value, numbers.Integral):
            return xp.asarray(int(value))
        if isinstance(value, numbers.Real):
            return xp.asarray(float(value), dtype=self._dtype)
        dev = backend.device_of(value)
        if dev != self._device:
            raise backend.DeviceError(
                f"{self.describe()}: {what} is on device '{dev}' but the criterion is on "
                f"'{self._device}'; move the array with nngraph_py.to_device(x, '{self._device}') "
                f"or the criterion with criterion.to('{dev}')"
            )
        if backend.is_floating(value) and value.dtype != self._dtype:
            value = value.astype(self._dtype)
        return value

    def describe(self) -> str:
        """A short identification for error messages."""
        return repr(self)

    def extra_repr(self) -> str:
        """The text inside the parentheses of the repr (empty: Lua prints the bare name)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        return f"nn.{type(self).__name__}" + (f"({extra})" if extra else "")


# --------------------------------------------------------------------------------------------
# Criteria
# --------------------------------------------------------------------------------------------
class MSECriterion(Criterion):
    """Mean squared error (Lua: ``nn.MSECriterion([sizeAverage])``).

    ``loss = sum((input - target)^2) / n``, ``n`` the number of elements (no division when
    ``size_average`` is False).

    Args:
        size_average: divide by the number of elements (Lua's ``sizeAverage``, default True).

    Shape:
        input: any; target: the input's shape (an integer target is cast to the input's dtype).

    Example:
        >>> MSECriterion().forward(numpy.ones(4), numpy.zeros(4))
        1.0
    """

    def __init__(self, size_average: bool = True):
        super().__init__()
        self.size_average = bool(size_average)

    def _check(self, input: Array, target: Array) -> Array:
        """The target, checked, with the input's dtype (integer targets are accepted)."""
        if tuple(target.shape) != tuple(input.shape):
            raise ShapeError(f"{self.describe()}: expected a target of the input's shape "
                             f"{shape_str(input)}, got {shape_str(target)}")
        return target if target.dtype == input.dtype else target.astype(input.dtype)

    def update_output(self, input: Array, target: Array) -> Array:
        target = self._check(input, target)
        xp = backend.get_array_module(input)
        self.output = mse_loss(xp, input, target, self.size_average)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        target = self._check(input, target)
        xp = backend.get_array_module(input)
        self.grad_input = mse_grad(xp, input, target, self.size_average)
        return self.grad_input


class ClassNLLCriterion(Criterion):
    """Negative log-likelihood of the target classes (Lua: ``nn.ClassNLLCriterion``).

    The input holds log-probabilities (e.g. from ``LogSoftMax``); the loss is
    ``-sum_i w[t_i] input[i, t_i]``, divided by ``sum_i w[t_i]`` (the batch size without weights)
    when ``size_average``.

    Args:
        weights: optional ``(classes,)`` class weights (moved to the criterion's device and dtype).
        size_average: average over the batch (Lua's ``sizeAverage``, default True).
        ignore_index: a target value that contributes nothing (Lua's ``ignoreIndex`` and
            PyTorch's ``ignore_index``, default -100): padding labels, for instance. The average
            divides by the weight of the other targets; all ignored gives a loss of 0 (Lua).

    Shape:
        input ``(batch, classes)`` with target ``(batch,)``, or input ``(classes,)`` with one
        target (a Python int, a 0-d or a 1-element array). Targets are 0-based integer class
        indices (Lua's are 1-based).

    Example:
        >>> ClassNLLCriterion().double().forward(numpy.log([[0.5, 0.5]]), numpy.array([1]))
        0.6931471805599453
    """

    def __init__(self, weights: Any = None, size_average: bool = True, ignore_index: int = -100):
        super().__init__()
        self.size_average = bool(size_average)
        self.ignore_index = int(ignore_index)
        self.weights: Array | None = None
        # The values as given, kept exactly (a tuple: conversions do not touch it), so that
        # double() after a float32 construction computes with the given float64 weights.
        self._weights_given: tuple[float, ...] | None = None
        if weights is not None:
            given = numpy.asarray(backend.to_numpy(weights), dtype=numpy.float64)
            if given.ndim != 1:
                raise ShapeError(f"class weights must be 1-D (classes,), got {shape_str(given)}")
            self._weights_given = tuple(float(v) for v in given)
            self.weights = backend.to_device(given.astype(self._dtype), self._device)

    def _convert(self, fn: Callable[[Array], Array]) -> None:
        super()._convert(fn)
        if self.weights is not None and self._weights_given is not None:
            exact = numpy.asarray(self._weights_given, dtype=numpy.float64)
            self.weights = backend.to_device(exact, backend.device_of(self.weights),
                                             self.weights.dtype)

    def _check(self, input: Array, target: Array) -> None:
        who = self.describe()
        if input.ndim not in (1, 2):
            raise ShapeError(f"{who}: expected input (batch, classes) or (classes,), "
                             f"got {shape_str(input)}")
        if target.dtype.kind not in "iu":
            raise InputError(f"{who}: expected integer class indices (0-based) as target, got "
                             f"{target.dtype} {shape_str(target)}; convert with "
                             f"target.astype('int64')")
        if input.ndim == 2 and tuple(target.shape) != (int(input.shape[0]),):
            raise ShapeError(f"{who}: expected target ({int(input.shape[0])},) for input "
                             f"{shape_str(input)}, got {shape_str(target)}")
        if input.ndim == 1 and target.size != 1:
            raise ShapeError(f"{who}: expected one target index for input {shape_str(input)}, "
                             f"got {shape_str(target)}")
        n_classes = int(input.shape[-1])
        if self.weights is not None and tuple(self.weights.shape) != (n_classes,):
            raise ShapeError(f"{who}: expected input with {int(self.weights.shape[0])} classes "
                             f"(one per class weight), got {shape_str(input)}")
        bad = (target < 0) | (target >= n_classes)
        if target.size:
            bad = bad & (target != self.ignore_index)
        if target.size and bool(bad.any()):
            raise ShapeError(f"{who}: expected class indices in [0, {n_classes}) for input "
                             f"{shape_str(input)}, got values from {int(target.min())} to "
                             f"{int(target.max())} (labels are 0-based; Lua's are 1-based)")

    def _ignore(self, target: Array) -> int | None:
        """``ignore_index`` when some target equals it (None keeps the fast path)."""
        if target.size and bool((target == self.ignore_index).any()):
            return self.ignore_index
        return None

    def extra_repr(self) -> str:
        return "" if self.ignore_index == -100 else f"ignore_index={self.ignore_index}"

    def update_output(self, input: Array, target: Array) -> Array:
        self._check(input, target)
        xp = backend.get_array_module(input)
        self.output = class_nll_loss(xp, input, target, self.weights, self.size_average,
                                     self._ignore(target))
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        self._check(input, target)
        xp = backend.get_array_module(input)
        self.grad_input = class_nll_grad(xp, input, target, self.weights, self.size_average,
                                         self._ignore(target))
        return self.grad_input


class CrossEntropyCriterion(ClassNLLCriterion):
    """``LogSoftMax`` then ``ClassNLLCriterion``, in one stable computation (Lua:
    ``nn.CrossEntropyCriterion``).

    The input holds unnormalised scores; arguments, shapes and targets are those of
    :class:`ClassNLLCriterion`. The log-probabilities of the last forward are kept for backward.

    Example:
        >>> CrossEntropyCriterion().double().forward(numpy.zeros((1, 2)), numpy.array([1]))
        0.6931471805599453
    """

    _state_names = ("log_prob",)

    def __init__(self, weights: Any = None, size_average: bool = True, ignore_index: int = -100):
        super().__init__(weights, size_average, ignore_index)
        self.log_prob: Array | None = None

    def update_output(self, input: Array, target: Array) -> Array:
        self._check(input, target)
        xp = backend.get_array_module(input)
        self.log_prob = log_softmax(xp, input)
        self.output = class_nll_loss(xp, self.log_prob, target, self.weights, self.size_average,
                                     self._ignore(target))
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        self._check(input, target)
        xp = backend.get_array_module(input)
        if self.log_prob is None or self.log_prob.shape != input.shape:
            self.log_prob = log_softmax(xp, input)
        g = class_nll_grad(xp, self.log_prob, target, self.weights, self.size_average,
                           self._ignore(target))
        # LogSoftMax's backward: g - softmax * sum(g).
        self.grad_input = g - xp.exp(self.log_prob) * g.sum(axis=-1, keepdims=True)
        return self.grad_input


# --------------------------------------------------------------------------------------------
# A criterion as a graph module
# --------------------------------------------------------------------------------------------
class ModuleFromCriterion(Module):
    """A criterion as a module (Lua: nngraph's ``nn.ModuleFromCriterion``).

    Args:
        criterion: the criterion; it is kept (not copied), and converting this module with
            ``to`` / ``double`` / ``cuda`` converts it too.

    Shape:
        input: ``[prediction, target]``; output: the loss, a 0-d array on the device. Its
        ``grad_input`` is ``[dloss/dprediction * grad_output, zeros_like(target)]``.

    Example:
        >>> pred, target = nn.Identity()(), nn.Identity()()
        >>> loss = nn.MSECriterion()([nn.Linear(3, 2)(pred), target])
        >>> g = nn.gModule([pred, target], [loss])
        >>> x, y = numpy.ones((4, 3), "float32"), numpy.zeros((4, 2), "float32")
        >>> g.forward([x, y]).shape
        ()
        >>> dx, dy = g.backward([x, y], 1.0)
    """

    integer_inputs = True  # the target may be class indices; the prediction is checked below

    def __init__(self, criterion: Criterion):
        if not isinstance(criterion, Criterion):
            raise InputError(f"ModuleFromCriterion expects a criterion, got "
                             f"{type(criterion).__name__}")
        self.criterion = criterion
        device, dtype = criterion._device, criterion._dtype
        super().__init__()
        self._device, self._dtype = device, dtype

    # The criterion's device and dtype are this module's: Module.to sets them on every module.
    @property
    def _device(self) -> str:  # type: ignore[override]
        return self.criterion._device

    @_device.setter
    def _device(self, value: str) -> None:
        self.criterion._device = value

    @property
    def _dtype(self) -> Any:  # type: ignore[override]
        return self.criterion._dtype

    @_dtype.setter
    def _dtype(self, value: Any) -> None:
        self.criterion._dtype = value

    def _split(self, input: Any) -> tuple[Array, Array]:
        if not isinstance(input, (list, tuple)) or len(input) != 2:
            raise InputError(f"{self.describe()}: expected input [prediction, target], got "
                             f"{shape_str(input)}")
        return input[0], input[1]

    def update_output(self, input: list[Array]) -> Array:
        prediction, target = self._split(input)
        for leaf in nest.flatten(prediction):
            if backend.is_array(leaf) and not backend.is_floating(leaf):
                raise integer_input_error(self, leaf, "input[0] (the prediction)")
        self.output = self.criterion.update_output(prediction, target)
        return self.output

    def update_grad_input(self, input: list[Array], grad_output: Array) -> list[Array]:
        prediction, target = self._split(input)
        if int(grad_output.size) != 1:
            raise ShapeError(f"{self.describe()}: expected grad_output of one element (the loss "
                             f"is a scalar), got {shape_str(grad_output)}")
        grad = self.criterion.update_grad_input(prediction, target)
        xp = backend.get_array_module(grad)
        self.grad_input = [grad * grad_output.reshape(()), xp.zeros_like(target)]
        return self.grad_input

    def _apply_extra(self, convert: Callable[[Any], Any]) -> None:
        self.criterion._convert(convert)

    def _clear_extra_state(self) -> None:
        self.criterion.clear_state()

    def extra_repr(self) -> str:
        return repr(self.criterion)
