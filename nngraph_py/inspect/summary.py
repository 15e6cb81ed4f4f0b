"""A model's table: one row per node, with output shapes, parameters, sharing and totals.

Lua printed a model (``print(mlp)``) and drew its graph (``graph.dot(mlp.fg)``); Keras has
``model.summary()``, PyTorch ``print(model)`` and torchinfo's ``summary(model, input_size)``.
:func:`summary` gives all of that for a gModule (nested ones indented), a Sequential or any
module: the node's name as ``named_parameters`` uses it, its module, the nodes it reads, its output
shape, each parameter by its full name (``i2h_forget.weight``) with shape, count, whether it is
trained and which earlier name it shares its array with (clones, ``Module.share``), and totals in
which a shared array is counted once. Inside a recurrent module's step cells the shapes are those
of one time step (the cell run once on zeros), marked as such.

The rows are data (:class:`SummaryRow`, :class:`ParamInfo`); :meth:`Summary.to_dict` turns them
into JSON, which is how a checkpoint describes its model without any code (see
:mod:`nngraph_py.checkpoint`), and :meth:`Summary.from_dict` reads them back for the command line.

The work is split by job: :mod:`.summary_rows` (the data and its JSON), :mod:`.summary_walk`
(rows from the module tree, recurrent step cells through ``Module.summary_steps``),
:mod:`.shapes` (shapes and the forward on zeros), :mod:`.summary_table` (the text table). This
module holds :func:`summary` and re-exports the public names.
"""
from __future__ import annotations

import sys
from typing import Any, TextIO

import numpy

from ..module import Module
from .shapes import Shape, arrays_in, format_shape, forward_on_zeros, normalise_shapes, shape_of
from .summary_rows import ParamInfo, Summary, SummaryRow
from .summary_table import PER_STEP_MARK, format_bytes, format_count
from .summary_walk import Walker, container_kind, is_trainable, module_line

__all__ = ["summary", "Summary", "SummaryRow", "ParamInfo", "module_line", "is_trainable",
           "format_count", "format_bytes", "format_shape", "PER_STEP_MARK", "Shape"]


def summary(model: Module, input_shapes: Any = None, dtype: Any = None, depth: int | None = None,
            print_table: bool = True, file: TextIO | None = None) -> Summary:
    """Summarise a model: one row per node with output shape, parameters, sharing; totals.

    (Keras: ``model.summary()``; torchinfo: ``summary(model, input_size)``; Lua: ``print(model)``
    and ``graph.dot``.)

    Args:
        model: a gModule (nested gModules are listed indented under their node), a Sequential or
            any module.
        input_shapes: the shape of the input, batch dimension included if the model is used with
            one (``(4, 20)``), or a list of shapes for several inputs (``[(10,), (10,), (20,)]``).
            When given, the model runs once on zeros of these shapes (in evaluation mode, on its
            device and dtype) to learn every node's output shape; its cached state is cleared
            afterwards (``clear_state``) so no memory stays. When None, output shapes are those
            of the last forward if the model still holds them, else unknown. Either way, the
            step cells of a recurrent module (``lstm.LSTM``'s ``layer1``...: prototypes that
            own the parameters but never run) then run once on zeros of one time step's inputs,
            in evaluation mode, and are cleared again: their rows show per-step shapes, marked
            ``*`` (:attr:`SummaryRow.per_step`). Parameters, gradients and the random generators
            are left as they were.
        dtype: dtype of the zero inputs (default: the model's dtype; e.g. ``"int64"`` for
            index inputs).
        depth: show nested rows down to this level only (0: the model's own nodes); deeper
            parameters are still counted in the totals and in their container's row.
        print_table: print the table (to ``file``, default standard output).
        file: where to print.

    Returns:
        A :class:`Summary`: ``rows`` (data), ``total_params``, ``trainable_params``,
        ``total_bytes``...; ``str(summary)`` is the table.

    Raises:
        ShapeError: the model does not accept zeros of ``input_shapes`` (the message says which
            node refused which shape).

    Example:
        >>> from nngraph_py import nn
        >>> x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
        >>> z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(20, 10)(x3)])])
        >>> s = summary(nn.gModule([x1, x2, x3], [z]), [(10,), (10,), (20,)], print_table=False)
        >>> s.total_params
        210
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary expects a module, got {type(model).__name__}")
    if depth is not None and depth < 0:
        raise ValueError(f"depth must be None or >= 0, got {depth}")
    shapes = normalise_shapes(input_shapes)
    ran = shapes is not None
    if ran:
        forward_on_zeros(model, shapes, dtype)
    has_outputs = ran or model.output is not None
    walker = Walker(use_outputs=has_outputs)
    output_shape = shape_of(model.output) if has_outputs else None
    try:
        walker.walk(model)
        for a in arrays_in(model.output if has_outputs else None):
            walker.outputs[id(a)] = a
    finally:
        if ran:
            model.clear_state()
    seen: set[int] = set()
    grad_bytes = 0
    for g in model.parameters()[1]:
        if id(g) not in seen:
            seen.add(id(g))
            grad_bytes += int(g.size) * numpy.dtype(g.dtype).itemsize
    counted = [p for row in walker.rows for p in row.params if not p.shared_with]
    result = Summary(
        rows=[r for r in walker.rows if depth is None or r.depth <= depth],
        total_params=sum(p.count for p in counted),
        trainable_params=sum(p.count for p in counted if p.trainable),
        total_bytes=sum(p.nbytes for p in counted),
        grad_bytes=grad_bytes,
        activation_bytes=(sum(int(a.size) * numpy.dtype(a.dtype).itemsize
                              for a in walker.outputs.values()) if walker.outputs else None),
        shared=sum(1 for row in walker.rows for p in row.params if p.shared_with),
        model=module_line(model), input_shapes=shapes, dtype=numpy.dtype(model.dtype).name,
        device=model.device,
        shapes_from="input_shapes" if ran else ("last forward" if has_outputs else None),
        depth=depth, container=container_kind(model), output_shape=output_shape)
    if print_table:
        print(result.table(), file=file or sys.stdout)
    return result
