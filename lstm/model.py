"""Stacked recurrent layers run over whole sequences: :class:`LSTM` and :class:`RNN`.

PyTorch's ``nn.LSTM`` / ``nn.RNN`` interface, built the Lua way: each layer is a recipe cell (a
``gModule`` from :func:`~lstm.cell.lstm_cell` or :func:`~lstm.cell.rnn_cell`) that owns the
parameters. Two executors run it over time:

* **node by node** - the cell graph unrolled by clones that share its parameters (char-rnn's
  ``clone_many_times``), every node's ``update_output``/``update_grad_input`` run as written.
  Clones are made lazily, up to the longest sequence seen, and reused. :class:`RNN` always runs
  this way; :class:`LSTM` does with ``optimize=False`` (or ``lstm.optimize(False)``).
* **fused** (:class:`LSTM`'s default) - the graph optimizer (:mod:`lstm.fast`) checks that each
  cell is the recipe and runs the same arithmetic on the cells' own arrays with batched products
  and static buffers; no clone is made. A cell that is not the recipe (a user-modified graph) is
  run node by node, with a warning. Both give the same numbers within float tolerance (tested).

The layers run one after the other over the whole sequence, as cuDNN does: layer ``k`` reads the
outputs of layer ``k-1`` at every step, through dropout in training mode (not after the last
layer, as PyTorch). Backward is backpropagation through time, top layer first, last step first.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

from nngraph_py import backend, nn
from nngraph_py.errors import GraphError, InputError, ShapeError, shape_str
from nngraph_py.module import Array, Module
from nngraph_py.nn.dropout import dropout_noise

from .cell import RNN_ACTIVATIONS, make_lstm_cell, make_rnn_cell
from .clones import clone_module, clone_sharing, share_parameters
from .fast import FusedLSTM, RecipeMismatch

__all__ = ["Recurrent", "LSTM", "RNN"]


def _convert_nested(value: Any, convert: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_convert_nested(v, convert) for v in value]
    return convert(value)


class Recurrent(Module):
    """Base of :class:`LSTM` and :class:`RNN`: stacking, the time loop, BPTT and the clones.

    A subclass builds a layer's cell (:meth:`_make_cell`) and maps the carried state (``h`` first,
    PyTorch's order) onto the cell's inputs and outputs.

    Attributes:
        cells: the prototype cell of each layer; it owns the parameters and never runs itself.
    """

    #: Names of the carried state arrays, in PyTorch's order.
    carried: tuple[str, ...] = ("h",)
    #: Caches dropped by ``clear_state`` and not copied by ``clone``.
    _state_names = ("_cell_inputs", "_cell_grads", "_masks")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, batch_first: bool = True):
        super().__init__()
        kind = type(self).__name__
        for value, what in ((input_size, "input_size"), (hidden_size, "hidden_size"),
                            (num_layers, "num_layers")):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{kind}: {what} must be a positive integer, got {value!r}")
        dropout = float(dropout)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{kind}: dropout must satisfy 0 <= dropout < 1 (as nn.Dropout), "
                             f"got {dropout}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{kind}: dropout acts between stacked layers, so dropout={dropout} has "
                          f"no effect with num_layers=1", stacklevel=2)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.batch_first = bool(batch_first)
        self.cells: list[nn.gModule] = [
            self._make_cell(input_size if k == 0 else hidden_size) for k in range(num_layers)
        ]
        self._clones: list[list[nn.gModule]] = [[] for _ in range(num_layers)]
        self._clones_stale = False  # the prototypes' arrays were replaced; re-share on next use
        self._clones_train = self.train
        self._cell_inputs: list[list[Any]] | None = None  # [layer][t] input given to the clone
        self._cell_grads: list[list[Any]] | None = None   # [layer][t] its grad_output
        self._masks: list[list[Array]] | None = None      # [layer][t] dropout after the layer
        self.reset()

    # ----------------------------------------------------------------------------------------
    # What a subclass provides
    # ----------------------------------------------------------------------------------------
    def _make_cell(self, input_size: int) -> nn.gModule:
        """The prototype cell of a layer reading ``input_size`` features."""
        raise NotImplementedError

    def _cell_input(self, x_t: Array, state: list[Array]) -> Any:
        """The cell's input for step input ``x_t`` and carried ``state`` (PyTorch order)."""
        raise NotImplementedError

    def step_inputs(self, batch: int) -> list[Any]:
        """Zero inputs of one time step for each layer's cell, in the cell's input order.

        Layer 1 reads ``input_size`` features, the next layers ``hidden_size``; each carried
        state is ``(batch, hidden_size)``. On the module's device and dtype. Used by
        :func:`nngraph_py.inspect.summary` to show a cell's per-step shapes.
        """
        xp = backend.array_module(self.device)
        zeros = [xp.zeros((batch, self.hidden_size), dtype=self.dtype) for _ in self.carried]
        return [self._cell_input(xp.zeros((batch, self.input_size if k == 0 else
                                           self.hidden_size), dtype=self.dtype), list(zeros))
                for k in range(self.num_layers)]

    def _cell_state(self, cell_output: Any) -> list[Array]:
        """The carried state (PyTorch order) from the cell's output."""
        raise NotImplementedError

    def _cell_grad_output(self, grad_state: list[Array]) -> Any:
        """The cell's grad_output from the gradients w.r.t. the carried state."""
        raise NotImplementedError

    def _cell_grad_input(self, grad_input: Any) -> tuple[Array, list[Array]]:
        """``(grad_x_t, grad_state)`` from the cell's grad_input."""
        raise NotImplementedError

    def _pack_state(self, state: Any) -> list[Any]:
        """The ``[h0, ...]`` list for ``forward``'s ``state`` argument."""
        raise NotImplementedError

    def _unpack_output(self, output: list[Array]) -> tuple:
        """``forward``'s return value from ``self.output`` (``[outputs, h_n, ...]``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------
    # Construction and the module tree
    # ----------------------------------------------------------------------------------------
    def reset(self, stdv: float | None = None) -> "Recurrent":
        """Re-initialise every weight and bias uniformly in ``[-stdv, stdv]``.

        Args:
            stdv: half-width; ``1 / sqrt(hidden_size)`` by default (PyTorch's ``nn.LSTM``).

        Returns:
            self.
        """
        stdv = 1.0 / math.sqrt(self.hidden_size) if stdv is None else float(stdv)
        for cell in self.cells:
            for m in cell.modules():
                if isinstance(m, nn.Linear):
                    m.reset(stdv)
        return self

    def children(self) -> list[Module]:
        return list(self.cells)

    def named_children(self) -> list[tuple[str, Module]]:
        """``layer1``, ``layer2``...: parameter names read ``layer1.i2h_forget.weight``."""
        return [(f"layer{k + 1}", cell) for k, cell in enumerate(self.cells)]

    def zero_state(self, batch_size: int) -> Any:
        """A zero initial state for ``batch_size`` sequences (char-rnn's ``init_state``).

        Returns:
            What ``forward``'s ``state`` takes: ``(h0, c0)`` for an LSTM, ``h0`` for an RNN, each
            of shape ``(num_layers, batch_size, hidden_size)`` on the model's device and dtype.
        """
        xp = backend.array_module(self._device)
        shape = (self.num_layers, int(batch_size), self.hidden_size)
        zeros = [xp.zeros(shape, dtype=self._dtype) for _ in self.carried]
        return self._unpack_output([None] + zeros)[1]

    def num_clones(self) -> int:
        """How many time steps are unrolled (clones per layer) so far."""
        return len(self._clones[0])

    # ----------------------------------------------------------------------------------------
    # Clones: made lazily, kept in step with the prototypes
    # ----------------------------------------------------------------------------------------
    def _prepare_clones(self, steps: int) -> None:
        self._sync_clones()
        for proto, clones in zip(self.cells, self._clones):
            while len(clones) < steps:
                clones.append(clone_sharing(proto))

    def _sync_clones(self) -> None:
        # The base Module replaces parameter arrays (get_parameters, to, share) by walking
        # children(), which lists the prototypes only; the clones catch up here, once.
        if not self._clones_stale and self._clones_train == self.train:
            return
        for proto, clones in zip(self.cells, self._clones):
            for clone in clones:
                share_parameters(clone, proto)
        self._clones_stale = False
        self._clones_train = self.train

    def _after_parameters_replaced(self) -> None:
        self._clones_stale = True

    def _apply_extra(self, convert: Any) -> None:
        for name in self._state_names:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, _convert_nested(value, convert))
        # ``convert`` is memoised: a clone's shared arrays become the prototype's new arrays.
        for clones in self._clones:
            for clone in clones:
                clone._apply(convert)
        self._clones_stale = True

    def _clear_extra_state(self) -> None:
        for clones in self._clones:
            for clone in clones:
                clone.clear_state()

    def clone(self, *shared_names: str) -> "Recurrent":
        """A deep copy; the arrays named in ``shared_names`` are shared (Lua: ``clone``).

        The copy unrolls its own step clones on its first forward.
        """
        saved = self._clones
        self._clones = [[] for _ in saved]
        try:
            return clone_module(self, *shared_names)
        finally:
            self._clones = saved

    # ----------------------------------------------------------------------------------------
    # Input checks
    # ----------------------------------------------------------------------------------------
    def _accept_input(self, value: Any, what: str = "input") -> Any:
        # None stands for zeros: an absent initial state, or no gradient for an output.
        if value is None:
            return None
        return super()._accept_input(value, what)

    def _layout(self) -> str:
        if self.batch_first:
            return f"(batch, T, {self.input_size}) (batch_first=True)"
        return f"(T, batch, {self.input_size}) (batch_first=False)"

    def _split_input(self, input: Any) -> tuple[Array, list[Array | None]]:
        n = len(self.carried)
        names = [name + "0" for name in self.carried]
        if isinstance(input, (list, tuple)):
            if len(input) != 1 + n:
                raise InputError(
                    f"{self.describe()}: expected x or the list [x, {', '.join(names)}], got a "
                    f"list of {len(input)}: {shape_str(input)}")
            x, states = input[0], list(input[1:])
        else:
            x, states = input, [None] * n
        if not backend.is_array(x):
            raise InputError(f"{self.describe()}: expected x to be an array {self._layout()}, "
                             f"got {type(x).__name__}")
        if x.ndim != 3:
            raise ShapeError(
                f"{self.describe()}: expected x of rank 3 {self._layout()}, got shape "
                f"{shape_str(x)}" + (f"; for one sequence add a batch axis: "
                                     f"{'x[None]' if self.batch_first else 'x[:, None]'}"
                                     if x.ndim == 2 else ""))
        if x.shape[2] != self.input_size:
            raise ShapeError(
                f"{self.describe()}: expected x with {self.input_size} features on its last axis "
                f"{self._layout()}, got shape {shape_str(x)}")
        batch, steps = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if steps == 0:
            raise ShapeError(f"{self.describe()}: x has no time steps: shape {shape_str(x)}")
        expected = (self.num_layers, batch, self.hidden_size)
        for name, s in zip(names, states):
            if s is None:
                continue
            if not backend.is_array(s):
                raise InputError(f"{self.describe()}: expected {name} to be an array of shape "
                                 f"{expected}, got {type(s).__name__}")
            if tuple(s.shape) != expected:
                hint = ""
                if s.ndim == 3 and s.shape[1] != batch:
                    hint = (f"; its batch size {s.shape[1]} does not match the input's {batch} "
                            f"(a state carried over from another batch? reset it)")
                raise ShapeError(
                    f"{self.describe()}: expected {name} of shape (num_layers, batch, hidden_size)"
                    f" = {expected}, got {shape_str(s)}{hint}")
        return x, states

    def _split_grad_output(self, grad_output: Any) -> tuple[Array | None, list[Array | None]]:
        n = len(self.carried)
        names = ["grad_outputs"] + [f"grad_{name}_n" for name in self.carried]
        if grad_output is None or backend.is_array(grad_output):
            g_out, g_states = grad_output, [None] * n
        elif (isinstance(grad_output, (list, tuple)) and len(grad_output) == 2 and n > 1
              and isinstance(grad_output[1], (list, tuple)) and len(grad_output[1]) == n):
            g_out, g_states = grad_output[0], list(grad_output[1])  # forward's nesting
        elif isinstance(grad_output, (list, tuple)) and len(grad_output) == 1 + n:
            g_out, g_states = grad_output[0], list(grad_output[1:])
        else:
            raise InputError(
                f"{self.describe()}: grad_output must be an array (gradient w.r.t. the outputs) "
                f"or the list [{', '.join(names)}] (None for zeros), got {shape_str(grad_output)}")
        for name, g, out in zip(names, [g_out] + g_states, self.output):
            if g is not None and tuple(g.shape) != tuple(out.shape):
                raise ShapeError(f"{self.describe()}: expected {name} of shape "
                                 f"{shape_str(out)} (as the output), got {shape_str(g)}")
        return g_out, g_states

    # ----------------------------------------------------------------------------------------
    # Forward and backward through time
    # ----------------------------------------------------------------------------------------
    def forward(self, input: Any, state: Any = None) -> tuple:
        """Run the whole sequence (PyTorch: ``output, state = lstm(x, state)``).

        A thin wrapper over ``Module.forward``, whose ``output`` is the list
        ``[outputs, h_n, ...]`` (so the model works as a graph node: ``.split(3)``).

        Args:
            input: ``x``, or the list ``[x, h0, c0]`` (``[x, h0]`` for an RNN).
            state: the initial state, ``(h0, c0)`` for an LSTM, ``h0`` for an RNN; None: zeros.

        Returns:
            ``(outputs, (h_n, c_n))`` for an LSTM, ``(outputs, h_n)`` for an RNN.

        Shape:
            ``x``: ``(batch, T, input_size)``, ``(T, batch, input_size)`` when not
            ``batch_first``; ``outputs``: the same with ``hidden_size`` features (last layer, every
            step); ``h0``, ``c0``, ``h_n``, ``c_n``: ``(num_layers, batch, hidden_size)``.
        """
        if state is not None:
            if isinstance(input, (list, tuple)):
                raise InputError(f"{self.describe()}: the initial state was given twice, in the "
                                 f"input list and as state=")
            input = [input] + self._pack_state(state)
        return self._unpack_output(super().forward(input))

    def update_output(self, input: Any) -> list[Array]:
        x, states0 = self._split_input(input)
        xp = backend.get_array_module(x)
        batch, steps = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        self._prepare_clones(steps)
        zeros = xp.zeros((batch, self.hidden_size), dtype=x.dtype)
        drop = self.train and self.dropout > 0
        xs = [x[:, t] if self.batch_first else x[t] for t in range(steps)]
        finals: list[list[Array]] = [[] for _ in self.carried]
        cell_inputs, masks = [], []
        for layer, clones in enumerate(self._clones):
            state = [zeros if s0 is None else s0[layer] for s0 in states0]
            inputs, hs = [], []
            for t in range(steps):
                cell_input = self._cell_input(xs[t], state)
                state = self._cell_state(clones[t].update_output(cell_input))
                inputs.append(cell_input)
                hs.append(state[0])
            for k, s in enumerate(state):
                finals[k].append(s)
            cell_inputs.append(inputs)
            if drop and layer < self.num_layers - 1:
                layer_masks = [dropout_noise(xp, (batch, self.hidden_size), self.dropout, x.dtype)
                               for _ in range(steps)]
                hs = [h * m for h, m in zip(hs, layer_masks)]
                masks.append(layer_masks)
            xs = hs
        self._cell_inputs = cell_inputs
        self._cell_grads = None
        self._masks = masks if drop else None
        outputs = xp.stack(xs, axis=1 if self.batch_first else 0)
        self.output = [outputs] + [xp.stack(f, axis=0) for f in finals]
        return self.output

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        if self._cell_inputs is None:
            raise GraphError(f"{self.describe()}: backward called before forward: call "
                             f"forward(input) first")
        x, _ = self._split_input(input)
        g_out, g_states = self._split_grad_output(grad_output)
        self._sync_clones()
        xp = backend.get_array_module(x)
        steps = len(self._cell_inputs[0])
        zeros = xp.zeros((x.shape[0] if self.batch_first else x.shape[1], self.hidden_size),
                         dtype=x.dtype)
        if g_out is None:
            g_layer = [None] * steps
        else:
            g_layer = [g_out[:, t] if self.batch_first else g_out[t] for t in range(steps)]
        cell_grads: list[list[Any]] = [[] for _ in range(self.num_layers)]
        grad_states0: list[list[Array]] = [[] for _ in range(self.num_layers)]
        for layer in range(self.num_layers - 1, -1, -1):
            clones, inputs = self._clones[layer], self._cell_inputs[layer]
            g_state = [zeros if g is None else g[layer] for g in g_states]
            grads, g_xs = [None] * steps, [None] * steps
            for t in range(steps - 1, -1, -1):
                if g_layer[t] is not None:
                    g_state[0] = g_state[0] + g_layer[t]
                grads[t] = self._cell_grad_output(g_state)
                g_xs[t], g_state = self._cell_grad_input(
                    clones[t].update_grad_input(inputs[t], grads[t]))
            cell_grads[layer] = grads
            grad_states0[layer] = g_state
            if layer > 0 and self._masks is not None:
                g_xs = [g * m for g, m in zip(g_xs, self._masks[layer - 1])]
            g_layer = g_xs
        self._cell_grads = cell_grads
        grad_x = xp.stack(g_layer, axis=1 if self.batch_first else 0)
        if isinstance(input, (list, tuple)):
            self.grad_input = [grad_x] + [
                xp.stack([gs[k] for gs in grad_states0], axis=0) for k in range(len(self.carried))
            ]
        else:
            self.grad_input = grad_x
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        if self._cell_grads is None:
            raise GraphError(f"{self.describe()}: acc_grad_parameters called before "
                             f"update_grad_input")
        self._sync_clones()
        for clones, inputs, grads in zip(self._clones, self._cell_inputs, self._cell_grads):
            for clone, cell_input, grad in zip(clones, inputs, grads):
                clone.acc_grad_parameters(cell_input, grad, scale)

    # ----------------------------------------------------------------------------------------
    # Printing
    # ----------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        text = f"{self.input_size} -> {self.hidden_size}, layers={self.num_layers}"
        if self.dropout:
            text += f", dropout={self.dropout:g}"
        if not self.batch_first:
            text += ", batch_first=False"
        return text


class LSTM(Recurrent):
    """A stacked LSTM over whole sequences (PyTorch: ``nn.LSTM``), built of recipe cells.

    Each layer is a :func:`~lstm.cell.lstm_cell` ``gModule`` (named ``layer1``, ``layer2``...);
    ``parameters()`` lists each weight once (``layer1.i2h_forget.weight``...). By default the
    cells run through the graph optimizer's fused executor (:class:`lstm.fast.FusedLSTM`, with
    numba step kernels for float32 NumPy arrays when numba is installed); ``optimize=False``
    runs them node by node through per-step clones sharing the parameters, as char-rnn does.

    Args:
        input_size: features of the input at each step.
        hidden_size: features of ``h`` and ``c``.
        num_layers: stacked layers (layer ``k`` reads the outputs of layer ``k-1``).
        dropout: dropout probability on the outputs of every layer but the last, in training mode.
        batch_first: input and outputs are ``(batch, T, features)``; else ``(T, batch, features)``.
        optimize: run the fused executor (default) or, when False, the per-step clones.

    Shape:
        input ``x`` ``(batch, T, input_size)`` (``(T, batch, input_size)`` when not batch_first),
        or the list ``[x, h0, c0]``; ``output`` is the list ``[outputs, h_n, c_n]``:
        ``outputs`` ``(batch, T, hidden_size)``, ``h_n``, ``c_n`` ``(num_layers, batch,
        hidden_size)``. ``forward(x, state=None)`` returns ``(outputs, (h_n, c_n))``.

    Example:
        >>> import numpy
        >>> lstm = LSTM(10, 20, 2)
        >>> outputs, (h_n, c_n) = lstm.forward(numpy.zeros((3, 5, 10), "float32"))
        >>> outputs.shape, h_n.shape
        ((3, 5, 20), (2, 3, 20))
        >>> grad_x = lstm.backward(numpy.zeros((3, 5, 10), "float32"), numpy.ones_like(outputs))
    """

    carried = ("h", "c")
    _state_names = Recurrent._state_names + ("_fused",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, batch_first: bool = True, optimize: bool = True):
        self._fused: FusedLSTM | None = None
        self._fused_ran = False
        self.optimized = bool(optimize)
        self.kernels = "auto"
        super().__init__(input_size, hidden_size, num_layers, dropout, batch_first)

    def optimize(self, enabled: bool = True, kernels: str = "auto") -> "LSTM":
        """Run the recipe cells with the graph optimizer's fused kernels (the default), or, with
        ``enabled=False``, node by node through per-step clones of the cell graphs.

        Both give the same numbers within float tolerance; the parameters, names and graphs are
        the same (see :mod:`lstm.fast`). ``kernels`` picks the per-step element-wise work:
        ``"auto"`` (numba kernels on float32 NumPy arrays when numba is installed), ``"numpy"``
        or ``"numba"`` (see :class:`lstm.fast.FusedLSTM`). Returns self.
        """
        if kernels not in ("auto", "numpy", "numba"):
            raise ValueError(f"kernels must be 'auto', 'numpy' or 'numba', got {kernels!r}")
        self.optimized = bool(enabled)
        self.kernels = kernels
        self._fused = None
        return self

    def _use_fused(self) -> bool:
        if not self.optimized:
            return False
        if self._fused is None:
            try:
                self._fused = FusedLSTM(self.cells, self.dropout, kernels=self.kernels)
            except RecipeMismatch as exc:  # a user-modified cell: run the graph as written
                warnings.warn(f"{self.describe()}: cells are not the LSTM recipe ({exc}); running "
                              f"them unoptimized", stacklevel=3)
                self.optimized = False
                return False
        return True

    def _apply_extra(self, convert: Any) -> None:
        super()._apply_extra(convert)
        self._fused = None  # its buffers belong to the old device/dtype

    def update_output(self, input: Any) -> list[Array]:
        if not self._use_fused():
            self._fused_ran = False
            return super().update_output(input)
        x, (h0, c0) = self._split_input(input)
        xp = backend.get_array_module(x)
        x_tm = xp.ascontiguousarray(x.transpose(1, 0, 2)) if self.batch_first else x
        out, h_n, c_n = self._fused.forward(x_tm, h0, c0, train=self.train)
        # The fused executor reuses its buffers: hand the caller arrays of its own.
        outputs = xp.ascontiguousarray(out.transpose(1, 0, 2)) if self.batch_first else out.copy()
        self._fused_ran = True
        self._cell_inputs = self._cell_grads = None
        self.output = [outputs, h_n, c_n]
        return self.output

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        if not self._fused_ran:
            return super().update_grad_input(input, grad_output)
        x, _ = self._split_input(input)
        g_out, (g_h, g_c) = self._split_grad_output(grad_output)
        xp = backend.get_array_module(x)
        if g_out is not None and self.batch_first:
            g_out = xp.ascontiguousarray(g_out.transpose(1, 0, 2))
        gx, gh0, gc0 = self._fused.backward(g_out, g_h, g_c)
        grad_x = xp.ascontiguousarray(gx.transpose(1, 0, 2)) if self.batch_first else gx.copy()
        self.grad_input = [grad_x, gh0, gc0] if isinstance(input, (list, tuple)) else grad_x
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        if not self._fused_ran:
            return super().acc_grad_parameters(input, grad_output, scale)
        self._fused.acc_grad_parameters(scale)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.optimized else ", optimize=False")

    def _make_cell(self, input_size: int) -> nn.gModule:
        return make_lstm_cell(input_size, self.hidden_size)

    def _cell_input(self, x_t: Array, state: list[Array]) -> list[Array]:
        h, c = state
        return [x_t, c, h]

    def _cell_state(self, cell_output: list[Array]) -> list[Array]:
        c, h = cell_output
        return [h, c]

    def _cell_grad_output(self, grad_state: list[Array]) -> list[Array]:
        g_h, g_c = grad_state
        return [g_c, g_h]

    def _cell_grad_input(self, grad_input: list[Array]) -> tuple[Array, list[Array]]:
        g_x, g_c, g_h = grad_input
        return g_x, [g_h, g_c]

    def _pack_state(self, state: Any) -> list[Any]:
        if not isinstance(state, (list, tuple)) or len(state) != 2:
            raise InputError(f"{self.describe()}: state must be the pair (h0, c0), got "
                             f"{shape_str(state)}")
        return list(state)

    def _unpack_output(self, output: list[Array]) -> tuple:
        outputs, h_n, c_n = output
        return outputs, (h_n, c_n)


class RNN(Recurrent):
    """A stacked plain (Elman) RNN over whole sequences (PyTorch: ``nn.RNN``; Keras:
    ``SimpleRNN``), built of :func:`~lstm.cell.rnn_cell` graphs.

    Args:
        input_size: features of the input at each step.
        hidden_size: features of ``h``.
        num_layers: stacked layers.
        dropout: dropout probability between layers, in training mode.
        batch_first: ``(batch, T, features)`` layout; else ``(T, batch, features)``.
        nonlinearity: ``"tanh"`` or ``"relu"``.

    Shape:
        as :class:`LSTM` without ``c``: input ``x`` or ``[x, h0]``, output ``[outputs, h_n]``;
        ``forward(x, state=None)`` returns ``(outputs, h_n)``.

    Example:
        >>> import numpy
        >>> rnn = RNN(1, 8, nonlinearity="relu")
        >>> outputs, h_n = rnn.forward(numpy.zeros((4, 60, 1), "float32"))
        >>> h_n.shape
        (1, 4, 8)
    """

    carried = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, batch_first: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in RNN_ACTIVATIONS:
            raise ValueError(f"RNN: nonlinearity must be one of {sorted(RNN_ACTIVATIONS)}, got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity  # read by _make_cell during Recurrent.__init__
        super().__init__(input_size, hidden_size, num_layers, dropout, batch_first)

    def _make_cell(self, input_size: int) -> nn.gModule:
        return make_rnn_cell(input_size, self.hidden_size, self.nonlinearity)

    def _cell_input(self, x_t: Array, state: list[Array]) -> list[Array]:
        return [x_t, state[0]]

    def _cell_state(self, cell_output: Array) -> list[Array]:
        return [cell_output]

    def _cell_grad_output(self, grad_state: list[Array]) -> Array:
        return grad_state[0]

    def _cell_grad_input(self, grad_input: list[Array]) -> tuple[Array, list[Array]]:
        g_x, g_h = grad_input
        return g_x, [g_h]

    def _pack_state(self, state: Any) -> list[Any]:
        if isinstance(state, (list, tuple)):
            if len(state) != 1:
                raise InputError(f"{self.describe()}: state must be h0, got {shape_str(state)}")
            state = state[0]
        return [state]

    def _unpack_output(self, output: list[Array]) -> tuple:
        outputs, h_n = output
        return outputs, h_n

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text
