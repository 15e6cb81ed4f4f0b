"""Cells run over time: one interface for every executor, and the compiler's entry point.

A recurrent layer (:class:`lstm.LSTM`, :class:`lstm.GRU`, :class:`lstm.RNN`,
:class:`lstm.Recurrence`) runs a *cell* gModule over a time-major sequence. How the cell's inputs
and outputs map onto the step input and the carried state is a :class:`CellSignature`; what runs
the cell over time is a :class:`SequenceExecutor`. There are two kinds of executor:

* the node-by-node one (:class:`nngraph_py.compile.unrolled.UnrolledSequence`): per-step clones
  sharing the cell's parameters, every node run through its module (char-rnn's
  ``clone_many_times``);
* the compiled ones, made by :func:`compile_sequence`: its passes try the recipe matchers first
  (:mod:`nngraph_py.compile.recipes`: the nngraph LSTM and the GRU recipe, hand-fused), then the
  general time-loop compiler (:mod:`nngraph_py.compile.timeloop`), which takes any cell.

All of them run on the cell's own parameters (names, checkpoints and inspection are the cell's)
and give the same values and gradients within float tolerance.

No Lua Torch original: nngraph's users unrolled their cells by hand with clones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from ..errors import GraphError
from ..graph.gmodule import gModule
from ..module import Array

__all__ = ["CellSignature", "SequenceExecutor", "compile_sequence", "CompileError"]


class CompileError(GraphError):
    """The compiler cannot run this cell (the message says why); callers run it node by node."""


@dataclass(frozen=True)
class CellSignature:
    """How a cell's inputs and outputs map onto the step input ``x_t`` and the carried state.

    The carried states are numbered in the layer's order (PyTorch's: ``h`` first, then ``c``).

    Attributes:
        x: the index of ``x_t`` among the cell's inputs.
        state_inputs: ``state_inputs[k]`` is the cell input that receives carried state ``k``.
        state_outputs: ``state_outputs[k]`` is the cell output that is the new state ``k``
            (an index into the cell's outputs; a cell with one output has ``(0,)``).
        state_sizes: the feature size of each carried state.
        output_state: which carried state is the per-step output of the layer.

    Example:
        The nngraph LSTM recipe ``gModule([x, prev_c, prev_h], [next_c, next_h])`` carried as
        ``(h, c)``: ``CellSignature(x=0, state_inputs=(2, 1), state_outputs=(1, 0),
        state_sizes=(H, H), output_state=0)``.
    """

    x: int
    state_inputs: tuple[int, ...]
    state_outputs: tuple[int, ...]
    state_sizes: tuple[int, ...]
    output_state: int = 0

    def cell_input(self, x_t: Any, state: Sequence[Any]) -> list[Any]:
        """The cell's input list for step input ``x_t`` and carried ``state``."""
        out: list[Any] = [None] * (1 + len(self.state_inputs))
        out[self.x] = x_t
        for k, i in enumerate(self.state_inputs):
            out[i] = state[k]
        return out

    def cell_state(self, cell_output: Any) -> list[Any]:
        """The carried state (layer order) from the cell's output (a list, or one array)."""
        outs = cell_output if isinstance(cell_output, (list, tuple)) else [cell_output]
        return [outs[i] for i in self.state_outputs]

    def cell_grad_output(self, grad_state: Sequence[Any]) -> Any:
        """The cell's grad_output from the gradients of the new carried state."""
        out: list[Any] = [None] * len(self.state_outputs)
        for k, i in enumerate(self.state_outputs):
            out[i] = grad_state[k]
        return out if len(out) > 1 else out[0]

    def cell_grad_input(self, grad_input: Sequence[Any]) -> tuple[Any, list[Any]]:
        """``(grad_x_t, grad_state)`` from the cell's grad_input list."""
        return grad_input[self.x], [grad_input[i] for i in self.state_inputs]


class SequenceExecutor(Protocol):
    """Runs one cell over a time-major sequence, forward and backward through time.

    ``x`` is ``(T, B, features)``; states are ``(B, size)`` in the signature's order (None:
    zeros); ``mask`` is None or the ``(T, B, 1)`` boolean array of valid steps (a padded step
    keeps the state and outputs zeros; no gradient flows from it). ``backward`` and
    ``acc_grad_parameters`` follow the last ``forward`` made with ``keep=True``.

    Attributes:
        kind: ``"unrolled"`` (node by node), ``"recipe-lstm"``, ``"recipe-gru"`` or
            ``"compiled"`` (the general time-loop compiler).
    """

    kind: str

    def forward(self, x: Array, state0: Sequence[Array | None], mask: Array | None = None,
                keep: bool = True) -> tuple[Array, list[Array]]:
        """``(outputs (T, B, size), final states)``; ``keep=False`` keeps nothing for
        backward (inference)."""
        ...

    def backward(self, grad_out: Array | None,
                 grad_final: Sequence[Array | None]) -> tuple[Array, list[Array]]:
        """``(grad_x (T, B, features), gradients of the initial states)``; None: zeros."""
        ...

    def acc_grad_parameters(self, scale: float = 1.0) -> None:
        """Add ``scale`` times the parameter gradients of the last backward to the cell's."""
        ...

    def invalidate(self) -> None:
        """The cell's parameter arrays, device, dtype or mode changed: drop whatever is bound to
        the old ones (buffers, clones' shared arrays); the next forward rebuilds it."""
        ...


def compile_sequence(cell: gModule, signature: CellSignature, kernels: str = "auto",
                     recipes: bool = True) -> SequenceExecutor:
    """The compiled executor of ``cell`` run over time (see the module docstring).

    Args:
        cell: the cell gModule (its parameters are read at every call, never copied for good).
        signature: how the cell's inputs and outputs map onto ``x_t`` and the carried state.
        kernels: element-wise work as ``"numpy"`` array passes, ``"numba"`` generated loop
            kernels (float32/float64 NumPy arrays), ``"cuda"`` generated CuPy
            ``ElementwiseKernel`` s (float32/float64 CuPy arrays; not yet run on a GPU by the
            project's tests, which check the generated C on the CPU), or ``"auto"`` (numba where
            it applies and is installed, else array passes).
        recipes: try the hand-fused recipe executors first (the first passes); False, or
            ``kernels="cuda"``: the general compiler only.

    Raises:
        CompileError: the cell cannot be compiled (callers fall back to node by node).
    """
    from . import recipes as _recipes

    if kernels not in ("auto", "numpy", "numba", "cuda"):
        raise GraphError(f"kernels must be 'auto', 'numpy', 'numba' or 'cuda', got {kernels!r}")
    if recipes and kernels != "cuda":  # the recipes have no CUDA kernels: the general compiler
        for matcher in _recipes.MATCHERS:
            executor = matcher(cell, signature, kernels)
            if executor is not None:
                return executor
    from .timeloop import CompiledSequence

    return CompiledSequence(cell, signature, kernels=kernels)
