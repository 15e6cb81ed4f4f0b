"""Stacked recurrent layers run over whole sequences: :class:`LSTM`, :class:`GRU` and :class:`RNN`.

PyTorch's ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` interface, built the Lua way: each layer (and, with
``bidirectional=True``, each direction of it) is a recipe cell (a ``gModule`` from
:func:`~lstm.cell.lstm_cell`, :func:`~lstm.cell.gru_cell` or :func:`~lstm.cell.rnn_cell`) that owns
the parameters. How a cell's inputs and outputs carry the state is the layer's
:class:`~nngraph_py.compile.sequence.CellSignature`; what runs a cell over time is an *executor*
(:class:`~nngraph_py.compile.sequence.SequenceExecutor`: forward over the sequence, backward
through time, parameter gradients), one per cell, chosen once when first needed
(:attr:`Recurrent.executors`):

* **compiled** (every layer's default, ``optimize=True``) -
  :func:`nngraph_py.compile.compile_sequence`: the hand-fused recipe executors for the LSTM and
  GRU recipes (kind ``"recipe-lstm"``, ``"recipe-gru"``), the general time-loop compiler for any
  other cell (``"compiled"``), all on the cells' own arrays. A cell the compiler refuses runs node
  by node, with a warning naming the reason.
* **node by node** (``optimize=False`` or ``.optimize(False)``, kind ``"unrolled"``) -
  :class:`~nngraph_py.compile.unrolled.UnrolledSequence`: the cell graph unrolled by clones that
  share its parameters (char-rnn's ``clone_many_times``), every node run as written; clones are
  made lazily, up to the longest sequence seen, and reused.

Both give the same numbers within float tolerance (tested). The executors are rebuilt only when
:meth:`Recurrent.optimize` changes the choice or on a device or dtype change (``to``); after the
parameter arrays are replaced (``get_parameters``, ``share``), a mode switch or ``clear_state``
they are told to re-bind (``invalidate``). In evaluate mode a forward keeps nothing for backward.

The layers run one after the other over the whole sequence, as cuDNN does: layer ``k`` reads the
outputs of layer ``k-1`` (both directions, forward features first) at every step, through dropout
in training mode (not after the last layer, as PyTorch). The dropout masks are ``nn.Dropout``'s
noise, drawn once per forward by the layer (never by an executor), so every executor sees the
same ones. The backward direction of a layer is its cell run over the time-reversed sequence.
Backward is backpropagation through time, top layer first, last step first.

**Lengths.** ``forward(x, lengths=...)`` (or :meth:`Recurrent.set_lengths` when the model is a
node of a graph) gives each sequence of the batch its length, with PyTorch's packed-sequence
semantics: a cell's step ``t >= length`` keeps the state it had (``h_n``/``c_n`` are the state
after the last valid step) and outputs zeros; no gradient flows from those steps; the backward
direction starts at each sequence's last valid step (on the reversed sequence the padded steps
come first, and the state stays the initial one through them).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy

from nngraph_py import backend, nest, nn
from nngraph_py.compile.sequence import (CellSignature, CompileError, SequenceExecutor,
                                         compile_sequence)
from nngraph_py.compile.unrolled import UnrolledSequence
from nngraph_py.errors import GraphError, InputError, ShapeError, shape_str
from nngraph_py.module import Array, Module
from nngraph_py.nn.dropout import dropout_noise

from .cell import RNN_ACTIVATIONS, make_gru_cell, make_lstm_cell, make_rnn_cell

__all__ = ["Recurrent", "LSTM", "GRU", "RNN", "lengths_mask"]


def lengths_mask(lengths: Any, batch: int, steps: int, device: str, who: str) -> Any:
    """The ``(T, batch, 1)`` boolean mask of the valid steps for ``lengths``, or None when every
    sequence has all ``T`` steps.

    Args:
        lengths: integers of shape ``(batch,)`` (an array of any backend, or a list).
        batch, steps: the input's batch size and number of steps.
        device: where the mask goes.
        who: the module's description, for error messages.

    Raises:
        ShapeError, InputError: ``lengths`` is not ``(batch,)`` integers in ``[1, T]``.
    """
    host = backend.to_numpy(lengths) if backend.is_array(lengths) else numpy.asarray(lengths)
    if host.dtype.kind not in "iu":
        raise InputError(f"{who}: lengths must be integers of shape (batch,) = ({batch},), got "
                         f"dtype {host.dtype}")
    if host.shape != (batch,):
        raise ShapeError(f"{who}: lengths must have shape (batch,) = ({batch},), got "
                         f"{tuple(host.shape)}")
    if host.min() < 1 or host.max() > steps:
        raise InputError(f"{who}: lengths must lie in [1, T] = [1, {steps}], got min "
                         f"{int(host.min())}, max {int(host.max())}")
    if (host == steps).all():
        return None
    mask = numpy.arange(steps)[:, None] < host[None, :]
    return backend.to_device(numpy.ascontiguousarray(mask[:, :, None]), device)


class Recurrent(Module):
    """Base of :class:`LSTM`, :class:`GRU`, :class:`RNN` and :class:`~lstm.Recurrence`: stacking,
    directions, lengths, dropout between layers and the choice of the executors (see the module
    docstring); the time loop and BPTT are the executors'.

    A subclass builds a layer's cell (:meth:`_make_cell`) and describes how the cell carries the
    state (``h`` first, PyTorch's order) with a :class:`~nngraph_py.compile.sequence.CellSignature`
    (:meth:`_make_signature`).

    Attributes:
        cells: the prototype cell of each layer and direction (layer 1 forward, layer 1 backward,
            layer 2 forward...); each owns its parameters.
        signature: how every cell's inputs and outputs map onto ``x_t`` and the carried state.
        optimized: whether the executors are compiled (:meth:`optimize`).
        kernels: the compiler's element-wise kernels (``"auto"``, ``"numpy"``, ``"numba"``).
        lengths: the lengths set by :meth:`set_lengths` (None: every sequence has all steps).
    """

    #: Names of the carried state arrays, in PyTorch's order.
    carried: tuple[str, ...] = ("h",)
    #: Caches dropped by ``clear_state`` and not copied by ``clone``.
    _state_names = ("_masks", "_mask", "_forward_kept", "_backward_ran")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, batch_first: bool = True, bidirectional: bool = False,
                 optimize: bool = True):
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
        self.input_size: int | None = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.state_sizes = [hidden_size] * len(self.carried)
        self.output_state = 0  # the carried state that is the per-step output
        width = self.num_directions * hidden_size
        sizes = [input_size if k == 0 else width for k in range(num_layers)
                 for _ in range(self.num_directions)]
        self._cell_input_sizes: list[int | None] = list(sizes)
        self.cells: list[nn.gModule] = [self._make_cell(n) for n in sizes]
        self.signature = self._make_signature()
        self._init_runtime(optimize)
        self.reset()

    def _init_runtime(self, optimize: bool) -> None:
        self._executors: list[SequenceExecutor] | None = None  # one per cell, built when needed
        self._executors_train = self.train  # the mode they were bound in
        self._masks: list[Array | None] | None = None     # [layer] dropout after the layer
        self._mask: Array | None = None                   # (T, B, 1) valid steps, last forward
        self._forward_kept: bool | None = None  # None: no forward; False: it kept nothing
        self._backward_ran: bool | None = None
        self.lengths: Any = None
        self.optimized = bool(optimize)
        self.kernels = "auto"

    # ----------------------------------------------------------------------------------------
    # What a subclass provides
    # ----------------------------------------------------------------------------------------
    def _make_cell(self, input_size: int) -> nn.gModule:
        """The prototype cell of a layer reading ``input_size`` features."""
        raise NotImplementedError

    def _make_signature(self) -> CellSignature:
        """How the cells' inputs and outputs map onto ``x_t`` and the carried state."""
        raise NotImplementedError

    def _pack_state(self, state: Any) -> list[Any]:
        """The ``[h0, ...]`` list for ``forward``'s ``state`` argument."""
        raise NotImplementedError

    def _unpack_output(self, output: list[Array]) -> tuple:
        """``forward``'s return value from ``self.output`` (``[outputs, h_n, ...]``)."""
        raise NotImplementedError

    # The ONNX exporter (nngraph_py.onnx.export) unrolls the cells through these two.
    def _cell_input(self, x_t: Any, state: list[Any]) -> list[Any]:
        return self.signature.cell_input(x_t, state)

    def _cell_state(self, cell_output: Any) -> list[Any]:
        return self.signature.cell_state(cell_output)

    # ----------------------------------------------------------------------------------------
    # Inspection
    # ----------------------------------------------------------------------------------------
    def step_inputs(self, batch: int) -> list[Any]:
        """Zero inputs of one time step for each cell, in the cell's input order.

        Layer 1 reads ``input_size`` features, the next layers ``num_directions * hidden_size``;
        each carried state is ``(batch, size)``. On the module's device and dtype.
        """
        xp = backend.array_module(self.device)
        out = []
        for n in self._cell_input_sizes:
            zeros = [xp.zeros((batch, size), dtype=self.dtype) for size in self.state_sizes]
            out.append(self.signature.cell_input(xp.zeros((batch, n), dtype=self.dtype), zeros))
        return out

    def summary_steps(self) -> list[tuple[Module, Any]]:
        """``[(cell, step_input)]``: each prototype cell with zeros of one time step's input,
        of the batch size of the last forward (1 before any), for
        :func:`nngraph_py.inspect.summary` to show per-step shapes."""
        batch = 1
        output = self.output
        if isinstance(output, (list, tuple)) and output and getattr(output[0], "ndim", 0) == 3:
            batch = int(output[0].shape[0] if self.batch_first else output[0].shape[1])
        return list(zip(self.cells, self.step_inputs(batch)))

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
        """``layer1``, ``layer1_reverse``, ``layer2``...: parameter names read
        ``layer1.i2h_forget.weight`` (PyTorch's ``_reverse`` suffix for the backward direction)."""
        names = []
        for k in range(self.num_layers):
            names.append(f"layer{k + 1}")
            if self.bidirectional:
                names.append(f"layer{k + 1}_reverse")
        return list(zip(names, self.cells))

    def zero_state(self, batch_size: int) -> Any:
        """A zero initial state for ``batch_size`` sequences (char-rnn's ``init_state``).

        Returns:
            What ``forward``'s ``state`` takes: ``(h0, c0)`` for an LSTM, ``h0`` for a GRU or an
            RNN, each of shape ``(num_layers * num_directions, batch_size, hidden_size)`` on the
            model's device and dtype.
        """
        xp = backend.array_module(self._device)
        zeros = [xp.zeros((len(self.cells), int(batch_size), size), dtype=self._dtype)
                 for size in self.state_sizes]
        return self._unpack_output([None] + zeros)[1]

    def set_lengths(self, lengths: Any) -> "Recurrent":
        """Give the sequences' lengths for the following forwards (None: all steps valid).

        The way to pass lengths when the model is a node of a graph, whose ``forward`` takes the
        graph's inputs only::

            rnn.set_lengths(lengths)      # integers of shape (batch,), 1 <= length <= T
            out = graph.forward(x)        # the node runs with them; backward uses them too
            rnn.set_lengths(None)

        ``forward(x, lengths=...)`` gives lengths for one call instead. Returns self.
        """
        self.lengths = lengths
        return self

    # ----------------------------------------------------------------------------------------
    # The executors: chosen once, rebound when the parameters, device, dtype or mode change
    # ----------------------------------------------------------------------------------------
    def optimize(self, enabled: bool = True, kernels: str = "auto") -> "Recurrent":
        """Run the cells through compiled executors (:func:`nngraph_py.compile.compile_sequence`:
        the fused recipe executors, or the general time-loop compiler), or, with
        ``enabled=False``, node by node through per-step clones of the cell graphs.

        Both give the same numbers within float tolerance; the parameters, names and graphs are
        the same. ``kernels`` picks the compiled element-wise work: ``"auto"`` (numba kernels
        where they apply and numba is installed), ``"numpy"``, ``"numba"`` or ``"cuda"``
        (generated CuPy kernels for CuPy arrays, by the general compiler only; NumPy passes on
        other arrays). The executors are built again on the next forward (see
        :attr:`executors`). Returns self.
        """
        if kernels not in ("auto", "numpy", "numba", "cuda"):
            raise ValueError(f"kernels must be 'auto', 'numpy', 'numba' or 'cuda', got "
                             f"{kernels!r}")
        self.optimized = bool(enabled)
        self.kernels = kernels
        self._executors = None
        return self

    @property
    def executors(self) -> list[SequenceExecutor]:
        """One :class:`~nngraph_py.compile.sequence.SequenceExecutor` per cell (in the order of
        :attr:`cells`), built on first use: compiled when :attr:`optimized` (node by node, with
        a warning, for a cell the compiler refuses), else node by node. Their ``kind`` says
        which: ``"recipe-lstm"``, ``"recipe-gru"``, ``"compiled"`` or ``"unrolled"``."""
        if self._executors is None:
            self._executors = self._build_executors()
            self._executors_train = self.train
        elif self._executors_train != self.train:  # evaluate()/training() since the last use
            self._invalidate_executors()
            self._executors_train = self.train
        return self._executors

    def _build_executors(self) -> list[SequenceExecutor]:
        if not self.optimized:
            return [UnrolledSequence(cell, self.signature) for cell in self.cells]
        built: list[SequenceExecutor] = []
        refused: list[str] = []
        for cell in self.cells:
            try:
                built.append(compile_sequence(cell, self.signature, kernels=self.kernels))
            except CompileError as exc:
                refused.append(str(exc))
                built.append(UnrolledSequence(cell, self.signature))
        if refused:
            warnings.warn(f"{self.describe()}: the compiler refused {len(refused)} of "
                          f"{len(self.cells)} cell(s) ({refused[0]}); running them node by node",
                          stacklevel=6)  # the caller of forward(x)
        return built

    def _invalidate_executors(self) -> None:
        for executor in self._executors or []:
            executor.invalidate()

    def num_clones(self) -> int:
        """How many time steps the first cell's node-by-node executor has unrolled (its
        clones) so far; 0 when it runs compiled or has not run."""
        executor = self._executors[0] if self._executors else None
        return len(executor.clones) if isinstance(executor, UnrolledSequence) else 0

    # ----------------------------------------------------------------------------------------
    # Hooks of the module protocol
    # ----------------------------------------------------------------------------------------
    def _after_parameters_replaced(self) -> None:
        # get_parameters, share or a conversion replaced the cells' arrays.
        self._invalidate_executors()

    def _apply_extra(self, convert: Any) -> None:
        for name in ("_masks", "_mask"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, nest.map(convert, value))
        self._executors = None  # bound to the old device/dtype: built again on the next use

    def _clear_extra_state(self) -> None:
        self._invalidate_executors()  # their kept steps and buffers; the choice stays

    def _prepare_clone(self, memo: dict[int, Any]) -> None:
        # A copy builds executors of its own, for its own cells.
        if self._executors is not None:
            memo[id(self._executors)] = None

    # ----------------------------------------------------------------------------------------
    # Input checks
    # ----------------------------------------------------------------------------------------
    def _accept_input(self, value: Any, what: str = "input") -> Any:
        # None stands for zeros: an absent initial state, or no gradient for an output.
        if value is None:
            return None
        return super()._accept_input(value, what)

    def _layout(self) -> str:
        features = "features" if self.input_size is None else self.input_size
        if self.batch_first:
            return f"(batch, T, {features}) (batch_first=True)"
        return f"(T, batch, {features}) (batch_first=False)"

    def _state_shape(self, k: int, batch: int) -> tuple[int, ...]:
        """The shape of initial / final state ``k`` (``(num_layers * num_directions, batch,
        size)``)."""
        return (len(self.cells), batch, self.state_sizes[k])

    def _split_input(self, input: Any) -> tuple[Array, list[Array | None]]:
        n = len(self.carried)
        names = [name + ("_0" if name[-1].isdigit() else "0") for name in self.carried]
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
        if self.input_size is not None and x.shape[2] != self.input_size:
            raise ShapeError(
                f"{self.describe()}: expected x with {self.input_size} features on its last axis "
                f"{self._layout()}, got shape {shape_str(x)}")
        batch, steps = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        if steps == 0:
            raise ShapeError(f"{self.describe()}: x has no time steps: shape {shape_str(x)}")
        for k, (name, s) in enumerate(zip(names, states)):
            if s is None:
                continue
            expected = self._state_shape(k, batch)
            if not backend.is_array(s):
                raise InputError(f"{self.describe()}: expected {name} to be an array of shape "
                                 f"{expected}, got {type(s).__name__}")
            if tuple(s.shape) != expected:
                hint = ""
                if s.ndim == len(expected) and s.shape[-2] != batch:
                    hint = (f"; its batch size {s.shape[-2]} does not match the input's {batch} "
                            f"(a state carried over from another batch? reset it)")
                raise ShapeError(
                    f"{self.describe()}: expected {name} of shape {self._state_doc()} = "
                    f"{expected}, got {shape_str(s)}{hint}")
        return x, states

    def _state_doc(self) -> str:
        layers = "num_layers * 2" if self.bidirectional else "num_layers"
        return f"({layers}, batch, hidden_size)"

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
    def forward(self, input: Any, state: Any = None, lengths: Any = None) -> tuple:
        """Run the whole sequence (PyTorch: ``output, state = lstm(x, state)``).

        A thin wrapper over ``Module.forward``, whose ``output`` is the list
        ``[outputs, h_n, ...]`` (so the model works as a graph node: ``.split(3)``).

        Args:
            input: ``x``, or the list ``[x, h0, c0]`` (``[x, h0]`` for a GRU or an RNN).
            state: the initial state, ``(h0, c0)`` for an LSTM, ``h0`` for a GRU or an RNN;
                None: zeros.
            lengths: integers of shape ``(batch,)``, each sequence's number of valid steps
                (PyTorch's packed sequences, see the module doc); for this call only (see
                :meth:`set_lengths`). None: the lengths set by :meth:`set_lengths`, if any.

        Returns:
            ``(outputs, (h_n, c_n))`` for an LSTM, ``(outputs, h_n)`` for a GRU or an RNN.

        Shape:
            ``x``: ``(batch, T, input_size)``, ``(T, batch, input_size)`` when not
            ``batch_first``; ``outputs``: the same with ``num_directions * hidden_size``
            features (last layer, every step, forward direction first); ``h0``, ``c0``, ``h_n``,
            ``c_n``: ``(num_layers * num_directions, batch, hidden_size)``.
        """
        if state is not None:
            if isinstance(input, (list, tuple)):
                raise InputError(f"{self.describe()}: the initial state was given twice, in the "
                                 f"input list and as state=")
            input = [input] + self._pack_state(state)
        if lengths is None:
            return self._unpack_output(super().forward(input))
        saved, self.lengths = self.lengths, lengths
        try:
            return self._unpack_output(super().forward(input))
        finally:
            self.lengths = saved


    def update_output(self, input: Any) -> list[Array]:
        x, states0 = self._split_input(input)
        xp = backend.get_array_module(x)
        batch, steps = (x.shape[0], x.shape[1]) if self.batch_first else (x.shape[1], x.shape[0])
        mask = None
        if self.lengths is not None:
            mask = lengths_mask(self.lengths, batch, steps, backend.device_of(x), self.describe())
        executors = self.executors
        keep = self.train  # evaluate mode: inference, nothing kept for backward
        self._forward_kept, self._backward_ran = keep, False
        self._mask = mask if keep else None
        D, H = self.num_directions, self.hidden_size
        drop = self.train and self.dropout > 0
        inp = x.transpose(1, 0, 2) if self.batch_first else x  # time-major
        finals: list[list[Array]] = [[] for _ in self.carried]
        masks: list[Array | None] = []
        for layer in range(self.num_layers):
            def run(idx: int, seq: Array, m: Array | None) -> tuple[Array, list[Array]]:
                s0 = [None if s is None else s[idx] for s in states0]
                return executors[idx].forward(seq, s0, m, keep)

            outs = []
            for out, fin in self._over_directions(layer, [inp] * D, mask, run):
                outs.append(out)
                for k, s in enumerate(fin):
                    finals[k].append(s)
            inp = outs[0] if D == 1 else xp.concatenate(outs, axis=2)
            if drop and layer < self.num_layers - 1:
                # nn.Dropout's noise, drawn here once per forward whatever the executors.
                noise = dropout_noise(xp, (steps, batch, D * H), self.dropout, x.dtype)
                inp = inp * noise
                masks.append(noise)
            else:
                masks.append(None)
        self._masks = masks if drop else None
        # A copy of its own for the caller: compiled executors reuse their buffers.
        outputs = xp.array(inp.transpose(1, 0, 2) if self.batch_first else inp, order="C")
        self.output = [outputs] + [xp.stack(f, axis=0) for f in finals]
        return self.output

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        if not self._forward_kept:
            raise GraphError(
                f"{self.describe()}: backward called before forward: call forward(input) first"
                if self._forward_kept is None else
                f"{self.describe()}: backward after a forward in evaluate mode, which keeps "
                f"nothing for backward: call training() and forward again")
        x, _ = self._split_input(input)
        g_out, g_states = self._split_grad_output(grad_output)
        executors = self.executors
        xp = backend.get_array_module(x)
        D, H = self.num_directions, self.hidden_size
        g = None
        if g_out is not None:
            g = g_out.transpose(1, 0, 2) if self.batch_first else g_out
        n_cells = len(self.cells)
        grad_states0: list[list[Array | None]] = [[None] * n_cells for _ in self.carried]
        for layer in range(self.num_layers - 1, -1, -1):
            def run(idx: int, g_d: Array | None, _: Any) -> tuple[Array, list[Array]]:
                g_fin = [None if gs is None else gs[idx] for gs in g_states]
                gx, g0 = executors[idx].backward(g_d, g_fin)
                for k, s in enumerate(g0):
                    grad_states0[k][idx] = s
                return gx, g0

            per_dir = [None if g is None else (g if D == 1 else g[:, :, d * H:(d + 1) * H])
                       for d in range(D)]
            g_in = None
            for gx, _ in self._over_directions(layer, per_dir, self._mask, run):
                g_in = gx if g_in is None else g_in + gx
            if layer > 0 and self._masks is not None and self._masks[layer - 1] is not None:
                g_in = g_in * self._masks[layer - 1]
            g = g_in
        self._backward_ran = True
        grad_x = xp.array(g.transpose(1, 0, 2) if self.batch_first else g, order="C")
        if isinstance(input, (list, tuple)):
            self.grad_input = [grad_x] + [xp.stack(gs, axis=0) for gs in grad_states0]
        else:
            self.grad_input = grad_x
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        if not self._backward_ran:
            raise GraphError(f"{self.describe()}: acc_grad_parameters called before "
                             f"update_grad_input")
        for executor in self.executors:
            executor.acc_grad_parameters(scale)

    def _over_directions(self, layer: int, seqs: list[Any], mask: Array | None,
                         run: Callable[[int, Any, Array | None], tuple[Array, list[Array]]]
                         ) -> list[tuple[Array, list[Array]]]:
        """``run(idx, seqs[d], mask)`` for each direction ``d`` of ``layer`` (cell ``idx``):
        the backward direction gets its sequence (None stays None) and the mask reversed in
        time, and its first result is reversed back; the results in direction order."""
        results = []
        for d, seq in enumerate(seqs):
            idx = layer * self.num_directions + d
            if d == 0:
                results.append(run(idx, seq, mask))
                continue
            first, rest = run(idx, None if seq is None else seq[::-1],
                              None if mask is None else mask[::-1])
            results.append((first[::-1], rest))
        return results

    # ----------------------------------------------------------------------------------------
    # Printing
    # ----------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        text = f"{self.input_size} -> {self.hidden_size}, layers={self.num_layers}"
        if self.bidirectional:
            text += ", bidirectional"
        if self.dropout:
            text += f", dropout={self.dropout:g}"
        if not self.batch_first:
            text += ", batch_first=False"
        if not self.optimized:
            text += ", optimize=False"
        return text


class LSTM(Recurrent):
    """A stacked LSTM over whole sequences (PyTorch: ``nn.LSTM``), built of recipe cells.

    Each layer is a :func:`~lstm.cell.lstm_cell` ``gModule`` (named ``layer1``, ``layer2``...;
    ``layer1_reverse``... for the backward direction); ``parameters()`` lists each weight once
    (``layer1.i2h_forget.weight``...). By default the compiler runs each cell through the fused
    recipe executor (:class:`nngraph_py.compile.recipes.FusedLSTMLayer`, with numba step kernels
    for float32 NumPy arrays when numba is installed; a user-modified cell through the general
    time-loop compiler); ``optimize=False`` runs them node by node through per-step clones
    sharing the parameters, as char-rnn does. (Lua: char-rnn's ``model/LSTM.lua``, unrolled
    by ``clone_many_times``; Element-Research/rnn's ``nn.SeqLSTM``.)

    Args:
        input_size: features of the input at each step.
        hidden_size: features of ``h`` and ``c``.
        num_layers: stacked layers (layer ``k`` reads the outputs of layer ``k-1``).
        dropout: dropout probability on the outputs of every layer but the last, in training mode.
        batch_first: input and outputs are ``(batch, T, features)``; else ``(T, batch, features)``.
        bidirectional: each layer also runs a second cell over the reversed sequence; PyTorch's
            layout (outputs ``2 * hidden_size`` features, forward first).
        optimize: run compiled executors (default) or, when False, the per-step clones.

    Shape:
        input ``x`` ``(batch, T, input_size)`` (``(T, batch, input_size)`` when not batch_first),
        or the list ``[x, h0, c0]``; ``output`` is the list ``[outputs, h_n, c_n]`` (as a graph
        node: ``.split(3)``): ``outputs`` ``(batch, T, D * hidden_size)``, ``h_n``, ``c_n``
        ``(num_layers * D, batch, hidden_size)``, ``D = 2`` when bidirectional.
        ``forward(x, state=None, lengths=None)`` returns ``(outputs, (h_n, c_n))``.

    Example:
        >>> import numpy
        >>> lstm = LSTM(10, 20, 2)
        >>> outputs, (h_n, c_n) = lstm.forward(numpy.zeros((3, 5, 10), "float32"))
        >>> outputs.shape, h_n.shape
        ((3, 5, 20), (2, 3, 20))
        >>> grad_x = lstm.backward(numpy.zeros((3, 5, 10), "float32"), numpy.ones_like(outputs))
    """

    carried = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, batch_first: bool = True, bidirectional: bool = False,
                 optimize: bool = True):
        super().__init__(input_size, hidden_size, num_layers, dropout, batch_first,
                         bidirectional, optimize)

    def _make_cell(self, input_size: int) -> nn.gModule:
        return make_lstm_cell(input_size, self.hidden_size)

    def _make_signature(self) -> CellSignature:
        # The recipe is gModule([x, prev_c, prev_h], [next_c, next_h]); carried as (h, c).
        return CellSignature(x=0, state_inputs=(2, 1), state_outputs=(1, 0),
                             state_sizes=tuple(self.state_sizes), output_state=0)

    def _pack_state(self, state: Any) -> list[Any]:
        if not isinstance(state, (list, tuple)) or len(state) != 2:
            raise InputError(f"{self.describe()}: state must be the pair (h0, c0), got "
                             f"{shape_str(state)}")
        return list(state)

    def _unpack_output(self, output: list[Array]) -> tuple:
        outputs, h_n, c_n = output
        return outputs, (h_n, c_n)


class _OneState(Recurrent):
    """A recurrent layer whose cell carries ``h`` alone: ``[x, prev_h] -> next_h``."""

    carried = ("h",)

    def _make_signature(self) -> CellSignature:
        return CellSignature(x=0, state_inputs=(1,), state_outputs=(0,),
                             state_sizes=tuple(self.state_sizes), output_state=0)

    def _pack_state(self, state: Any) -> list[Any]:
        if isinstance(state, (list, tuple)):
            if len(state) != 1:
                raise InputError(f"{self.describe()}: state must be h0, got {shape_str(state)}")
            state = state[0]
        return [state]

    def _unpack_output(self, output: list[Array]) -> tuple:
        outputs, h_n = output
        return outputs, h_n


class GRU(_OneState):
    """A stacked GRU over whole sequences with PyTorch ``nn.GRU``'s equations, built of
    :func:`~lstm.cell.gru_cell` graphs (Lua: Element-Research/rnn's ``nn.GRU``, whose reset
    gate acts before the projection; here after it, as PyTorch and cuDNN).

    By default the cells run through the fused recipe executor
    (:class:`nngraph_py.compile.recipes.FusedGRULayer`); ``optimize=False`` runs them node by node
    through per-step clones.

    Args:
        input_size: features of the input at each step.
        hidden_size: features of ``h``.
        num_layers: stacked layers.
        dropout: dropout probability between layers, in training mode.
        batch_first: ``(batch, T, features)`` layout; else ``(T, batch, features)``.
        bidirectional: a second cell per layer over the reversed sequence (PyTorch's layout).
        optimize: run compiled executors (default) or, when False, the per-step clones.

    Shape:
        as :class:`LSTM` without ``c``: input ``x`` or ``[x, h0]``, output ``[outputs, h_n]``
        (as a graph node: ``.split(2)``); ``forward(x, state=None, lengths=None)`` returns
        ``(outputs, h_n)``.

    Example:
        >>> import numpy
        >>> gru = GRU(3, 8, bidirectional=True)
        >>> outputs, h_n = gru.forward(numpy.zeros((4, 6, 3), "float32"), lengths=[6, 2, 5, 1])
        >>> outputs.shape, h_n.shape
        ((4, 6, 16), (2, 4, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, batch_first: bool = True, bidirectional: bool = False,
                 optimize: bool = True):
        super().__init__(input_size, hidden_size, num_layers, dropout, batch_first,
                         bidirectional, optimize)

    def _make_cell(self, input_size: int) -> nn.gModule:
        return make_gru_cell(input_size, self.hidden_size)



class RNN(_OneState):
    """A stacked plain (Elman) RNN over whole sequences (PyTorch: ``nn.RNN``; Keras:
    ``SimpleRNN``), built of :func:`~lstm.cell.rnn_cell` graphs, run by the general time-loop
    compiler (node by node through per-step clones with ``optimize=False``).

    Args:
        input_size: features of the input at each step.
        hidden_size: features of ``h``.
        num_layers: stacked layers.
        dropout: dropout probability between layers, in training mode.
        batch_first: ``(batch, T, features)`` layout; else ``(T, batch, features)``.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bidirectional: a second cell per layer over the reversed sequence (PyTorch's layout).
        optimize: run compiled executors (default) or, when False, the per-step clones.

    Shape:
        as :class:`GRU`: input ``x`` or ``[x, h0]``, output ``[outputs, h_n]``;
        ``forward(x, state=None, lengths=None)`` returns ``(outputs, h_n)``.

    Example:
        >>> import numpy
        >>> rnn = RNN(1, 8, nonlinearity="relu")
        >>> outputs, h_n = rnn.forward(numpy.zeros((4, 60, 1), "float32"))
        >>> h_n.shape
        (1, 4, 8)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, batch_first: bool = True, nonlinearity: str = "tanh",
                 bidirectional: bool = False, optimize: bool = True):
        if nonlinearity not in RNN_ACTIVATIONS:
            raise ValueError(f"RNN: nonlinearity must be one of {sorted(RNN_ACTIVATIONS)}, got "
                             f"{nonlinearity!r}")
        self.nonlinearity = nonlinearity  # read by _make_cell during Recurrent.__init__
        super().__init__(input_size, hidden_size, num_layers, dropout, batch_first,
                         bidirectional, optimize)

    def _make_cell(self, input_size: int) -> nn.gModule:
        return make_rnn_cell(input_size, self.hidden_size, self.nonlinearity)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text
