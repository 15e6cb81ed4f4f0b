"""``Recurrence``: any cell gModule run over time, as the recipes are (Lua: a cell unrolled by
hand with char-rnn's ``clone_many_times``; Element-Research/rnn's ``nn.Recurrence``).

nngraph's users wrote their own step graphs (GRU, peephole or multiplicative LSTMs, attention
steps) and unrolled them by hand. :class:`Recurrence` runs them over time with the executors of
:mod:`lstm.model`: by default the graph compiler's (:func:`nngraph_py.compile.compile_sequence`:
a recipe cell gets its fused executor, any other gModule the general time-loop compiler), or,
with ``optimize=False`` (or for a cell the compiler refuses), per-step clones sharing the cell's
parameters, made lazily and reused. Backpropagation through time, lengths with PyTorch's
packed-sequence semantics, and the module protocol (``parameters``, ``get_parameters``, ``to``,
``clone``, ``clear_state``, a graph node's ``.split(k + 1)``) are the same for every executor.
"""
from __future__ import annotations

from typing import Any, Sequence

from nngraph_py import backend
from nngraph_py.compile.sequence import CellSignature
from nngraph_py.errors import InputError, shape_str
from nngraph_py.graph.gmodule import gModule
from nngraph_py.module import Array, Module

from .model import Recurrent

__all__ = ["Recurrence"]


class Recurrence(Recurrent):
    """Run ``cell`` over time: ``[x_t, s_1, ..., s_k] -> [s_1', ..., s_k']`` at every step.

    Args:
        cell: a gModule with inputs ``[x_t, s_1, ..., s_k]`` and outputs ``[s_1', ..., s_k']``
            (the new carried state, in the same order; one output when ``k == 1``). Its
            parameters are this module's, named ``cell.<name>``; the module takes its dtype and
            device.
        state_sizes: the ``k`` feature sizes of the carried states.
        output: which new state is the per-step output (an index into the states; -1: the last).
        batch_first: ``x`` and the outputs are ``(batch, T, features)``; else time-major.
        optimize: run the cell through the compiler (default) or, when False, node by node
            through per-step clones (see :meth:`~lstm.model.Recurrent.optimize`).

    Shape:
        ``forward(x, state=None, lengths=None)`` returns ``(outputs, [s_1_n, ..., s_k_n])``:
        ``outputs`` ``(batch, T, state_sizes[output])`` (``(T, batch, ...)`` when not
        batch_first), each final state ``(batch, size)``. The initial state (``state=`` or the
        input list ``[x, s_1_0, ..., s_k_0]``) is ``(batch, size)`` each, zeros when absent. As
        a graph node its output is the list ``[outputs, s_1_n, ..., s_k_n]`` (``.split(k + 1)``).
        ``backward(x, [g_outputs, g_s_1, ..., g_s_k])`` (None for zeros; or the gradient of the
        outputs alone) returns the gradient of ``x``, or the list ``[g_x, g_s_1_0, ...]`` when
        the input was a list. Lengths: as :class:`lstm.LSTM` (``lengths=`` or
        :meth:`~lstm.model.Recurrent.set_lengths`).

    Example:
        >>> import numpy
        >>> from nngraph_py import nn
        >>> x, h = nn.Identity()(), nn.Identity()()
        >>> h2 = nn.Tanh()(nn.CAddTable()([nn.Linear(3, 4)(x), nn.Linear(4, 4)(h)]))
        >>> rec = Recurrence(nn.gModule([x, h], [h2]), state_sizes=[4])
        >>> outputs, (h_n,) = rec.forward(numpy.zeros((2, 5, 3), "float32"))
        >>> outputs.shape, h_n.shape
        ((2, 5, 4), (2, 4))
    """

    def __init__(self, cell: gModule, state_sizes: Sequence[int], output: int = -1,
                 batch_first: bool = True, optimize: bool = True):
        Module.__init__(self)
        if not isinstance(cell, Module):
            raise InputError(f"Recurrence: cell must be a gModule [x_t, s_1..s_k] -> "
                             f"[s_1'..s_k'], got {type(cell).__name__}")
        sizes: list[Any] = (list(state_sizes) if isinstance(state_sizes, (list, tuple))
                            else [state_sizes])
        if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0
                            for s in sizes):
            raise ValueError(f"Recurrence: state_sizes must be positive integers, one per "
                             f"carried state, got {state_sizes!r}")
        k = len(sizes)
        if isinstance(cell, gModule) and (cell.n_inputs != k + 1 or cell.n_outputs != k):
            raise InputError(
                f"Recurrence: a cell for {k} state(s) has inputs [x_t, s_1..s_{k}] ({k + 1}) and "
                f"outputs [s_1'..s_{k}'] ({k}); this gModule has {cell.n_inputs} input(s) and "
                f"{cell.n_outputs} output(s)")
        if isinstance(output, bool) or not isinstance(output, int) or not -k <= output < k:
            raise ValueError(f"Recurrence: output must index one of the {k} states, got "
                             f"{output!r}")
        self.carried = tuple(f"s_{i + 1}" for i in range(k))
        self.state_sizes = sizes
        self.output_state = output % k
        self.input_size = None
        self.hidden_size = sizes[self.output_state]
        self.num_layers = 1
        self.dropout = 0.0
        self.batch_first = bool(batch_first)
        self.bidirectional = False
        self.num_directions = 1
        self.cells = [cell]
        self._cell_input_sizes = [None]
        self._features: int | None = None  # x's features in the last forward
        self._device = cell._device
        self._dtype = cell._dtype
        self.train = cell.train
        self.signature = CellSignature(x=0, state_inputs=tuple(range(1, k + 1)),
                                       state_outputs=tuple(range(k)), state_sizes=tuple(sizes),
                                       output_state=self.output_state)
        self._init_runtime(optimize)

    @property
    def cell(self) -> Module:
        """The step cell (the prototype: it owns the parameters)."""
        return self.cells[0]

    def named_children(self) -> list[tuple[str, Module]]:
        return [("cell", self.cells[0])]

    def reset(self, stdv: float | None = None) -> "Recurrence":
        """Re-initialise the cell's parameters with each module's own ``reset`` (if any)."""
        for m in self.cell.modules():
            if m._param_names and hasattr(m, "reset"):
                m.reset() if stdv is None else m.reset(stdv)
        return self

    # States are (batch, size); the base keeps (1, batch, size), one per layer and direction.
    def _state_shape(self, k: int, batch: int) -> tuple[int, ...]:
        return (batch, self.state_sizes[k])

    def _state_doc(self) -> str:
        return "(batch, size)"

    def _split_input(self, input: Any) -> tuple[Array, list[Array | None]]:
        x, states = super()._split_input(input)
        return x, [None if s is None else s[None] for s in states]

    def _split_grad_output(self, grad_output: Any) -> tuple[Array | None, list[Array | None]]:
        g_out, g_states = super()._split_grad_output(grad_output)
        return g_out, [None if g is None else g[None] for g in g_states]

    def update_output(self, input: Any) -> list[Array]:
        out = super().update_output(input)
        x = input[0] if isinstance(input, (list, tuple)) else input
        self._features = int(x.shape[2])
        self.output = [out[0]] + [s[0] for s in out[1:]]
        return self.output

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        grad = super().update_grad_input(input, grad_output)
        if isinstance(grad, list):
            self.grad_input = [grad[0]] + [g[0] for g in grad[1:]]
        return self.grad_input

    def _pack_state(self, state: Any) -> list[Any]:
        k = len(self.carried)
        if backend.is_array(state) and k == 1:
            return [state]
        if not isinstance(state, (list, tuple)) or len(state) != k:
            raise InputError(f"{self.describe()}: state must be the list of the {k} initial "
                             f"states [s_1_0, ...], got {shape_str(state)}")
        return list(state)

    def _unpack_output(self, output: list[Array]) -> tuple:
        return output[0], list(output[1:])

    def summary_steps(self) -> list[tuple[Module, Any]]:
        """``[(cell, step_input)]`` with zeros of one step (after a forward; ``[]`` before)."""
        if self._features is None:
            return []
        self._cell_input_sizes = [self._features]
        return super().summary_steps()

    def extra_repr(self) -> str:
        text = f"states={tuple(self.state_sizes)}, output={self.output_state}"
        if not self.batch_first:
            text += ", batch_first=False"
        if not self.optimized:
            text += ", optimize=False"
        return text
