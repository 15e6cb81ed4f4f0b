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
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, TextIO

import numpy

from .. import backend
from ..errors import ShapeError
from ..graph.gmodule import gModule
from ..module import Module

__all__ = ["summary", "Summary", "SummaryRow", "ParamInfo", "module_line", "is_trainable",
           "format_count", "format_bytes", "format_shape"]

Shape = Any  # tuple of ints, or a (nested) list of them for modules that output lists


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------
@dataclass
class ParamInfo:
    """One parameter as the summary shows it.

    Attributes:
        name: the full name, as :meth:`Module.named_parameters` gives it (``i2h_forget.weight``).
        shape: the array's shape.
        dtype: the array's dtype, as text (``"float32"``).
        count: number of elements.
        nbytes: bytes of the array.
        trainable: whether backward accumulates its gradient (see :func:`is_trainable`).
        shared_with: for an array already listed under an earlier name, that first name; the
            parameter is then not counted again in the totals. None for the first occurrence.
        also: for the first occurrence of a shared array, the later names it appears under.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    count: int
    nbytes: int
    trainable: bool = True
    shared_with: str | None = None
    also: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        """Elements this occurrence adds to the totals (0 when it shares an earlier array)."""
        return 0 if self.shared_with else self.count


@dataclass
class SummaryRow:
    """One node of a graph (or one member of a container) in the summary.

    Attributes:
        path: dotted path from the model, the prefix of its parameter names (``block.proj``).
        name: the node's name in its graph: the annotation, else ``<ModuleType><index>``; a
            container member's number (``"1"``) as ``named_parameters`` uses it.
        depth: nesting level, 0 for the model's own nodes.
        index: 1-based position among its siblings (topological order in a graph).
        number: the position from the top, dotted for nested rows (``"3.2"``: the second node
            inside the third).
        module: the module on one line (``nn.Linear(20 -> 10)``).
        module_type: the module's class name (``"Linear"``).
        container: ``"graph"`` (a gModule), ``"sequence"`` (Sequential), ``"tree"`` (another
            module with members) or None for a leaf.
        inputs: names of the sibling nodes this node reads (graph nodes only).
        table: whether the node's module receives a list (it was called on a list of nodes).
        input_slot: for a graph input node, its position in the gModule's inputs.
        output_slots: for a graph output node, its position(s) in the gModule's outputs.
        output_shape: shape of the output (a list of shapes for a list output), None if unknown.
        per_step: the row is inside the step cell of a recurrent module (``lstm.LSTM``'s
            ``layer1``...): ``output_shape`` is that of one time step, ``(batch, features)``,
            learnt by running the cell once on zeros of one step's inputs (see :func:`summary`).
        params: the module's own parameters (not its members').
        subtree_params: parameters counted in this row and all rows nested in it.
        subtree_trainable: the trainable part of ``subtree_params``.
        graph_attributes: Graphviz attributes from ``node.annotate`` (pictures use them).
        description: the node's description from ``node.annotate`` (a tooltip in pictures).
    """

    path: str
    name: str
    depth: int
    index: int
    module: str
    module_type: str
    number: str = ""
    container: str | None = None
    inputs: list[str] = field(default_factory=list)
    table: bool = False
    input_slot: int | None = None
    output_slots: list[int] = field(default_factory=list)
    output_shape: Shape = None
    per_step: bool = False
    params: list[ParamInfo] = field(default_factory=list)
    subtree_params: int = 0
    subtree_trainable: int = 0
    graph_attributes: dict[str, str] = field(default_factory=dict)
    description: str | None = None

    @property
    def num_params(self) -> int:
        """Parameters of this module itself, shared arrays counted at their first name only."""
        return sum(p.counted for p in self.params)

    @property
    def num_params_trainable(self) -> int:
        """The trainable part of :attr:`num_params`."""
        return sum(p.counted for p in self.params if p.trainable)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (shapes become lists)."""
        out = asdict(self)
        out["output_shape"] = _shape_to_json(self.output_shape)
        for p in out["params"]:
            p["shape"] = list(p["shape"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SummaryRow":
        """The row back from :meth:`to_dict`."""
        data = dict(data)
        data["params"] = [ParamInfo(**{**p, "shape": tuple(p["shape"])}) for p in data["params"]]
        data["output_shape"] = _shape_from_json(data.get("output_shape"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def _shape_to_json(shape: Shape) -> Any:
    if shape is None:
        return None
    if isinstance(shape, tuple):
        return list(shape)
    return [_shape_to_json(s) for s in shape]


def _shape_from_json(value: Any) -> Shape:
    # A shape is a list of ints; a list output is a list of shapes.
    if value is None:
        return None
    if all(isinstance(v, int) for v in value):
        return tuple(value)
    return [_shape_from_json(v) for v in value]


# --------------------------------------------------------------------------------------------
# The summary object
# --------------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What :func:`summary` returns: the rows, the totals, and the table as ``str(summary)``.

    Attributes:
        rows: one :class:`SummaryRow` per node, in topological order, nested rows after their
            container (up to the ``depth`` asked for).
        total_params: parameter elements, each shared array counted once
            (``model.num_parameters()``).
        trainable_params: the part of ``total_params`` whose gradients backward accumulates.
        total_bytes: bytes of the parameters, shared arrays counted once.
        grad_bytes: bytes of the parameter gradients.
        activation_bytes: bytes of the node outputs a forward keeps for backward (each array
            once; outputs held by modules outside the rows, such as per-step clones, are not
            seen, nor the one-step shapes of :attr:`SummaryRow.per_step` rows), None when
            unknown.
        shared: parameter names that share an array listed earlier (not counted again).
        model: the model on one line.
        input_shapes: the shapes given to :func:`summary`, if any.
        dtype: the model's floating dtype.
        device: the model's device.
        shapes_from: ``"input_shapes"`` (a forward on zeros), ``"last forward"`` (outputs
            cached by the last forward) or None (unknown).
        depth: the ``depth`` given to :func:`summary` (rows deeper were left out).
        container: how the model holds its rows: ``"graph"`` (gModule), ``"sequence"``
            (Sequential), ``"tree"`` (other members) or None (a single module).
        output_shape: the shape of the model's output (a list of shapes for several), when known.
    """

    rows: list[SummaryRow]
    total_params: int
    trainable_params: int
    total_bytes: int
    grad_bytes: int = 0
    activation_bytes: int | None = None
    shared: int = 0
    model: str = ""
    input_shapes: Any = None
    dtype: str = ""
    device: str = ""
    shapes_from: str | None = None
    depth: int | None = None
    container: str | None = None
    output_shape: Shape = None

    @property
    def non_trainable_params(self) -> int:
        """Parameter elements backward leaves alone (frozen modules)."""
        return self.total_params - self.trainable_params

    def parameters(self) -> Iterator[ParamInfo]:
        """Every parameter occurrence, in the order of ``named_parameters`` (sharers included)."""
        for row in self.rows:
            yield from row.params

    def table(self, depth: int | None = None) -> str:
        """The summary as a text table, rows nested deeper than ``depth`` folded into their parent.

        Args:
            depth: show rows down to this nesting level (default: the summary's own ``depth``).
        Returns:
            The table, followed by the totals.
        """
        return _format_table(self, self.depth if depth is None else depth)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"Summary({len(self.rows)} rows, total_params={self.total_params}, "
                f"trainable_params={self.trainable_params}, total_bytes={self.total_bytes})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, read back by :meth:`from_dict` (checkpoints store it)."""
        out = {k: v for k, v in asdict(self).items() if k != "rows"}
        out["input_shapes"] = _shape_to_json(_normalise_shapes(self.input_shapes))
        out["output_shape"] = _shape_to_json(self.output_shape)
        out["rows"] = [row.to_dict() for row in self.rows]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Summary":
        """The summary back from :meth:`to_dict`."""
        data = dict(data)
        data["rows"] = [SummaryRow.from_dict(r) for r in data.get("rows", [])]
        data["input_shapes"] = _shape_from_json(data.get("input_shapes"))
        data["output_shape"] = _shape_from_json(data.get("output_shape"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# --------------------------------------------------------------------------------------------
# Building the rows
# --------------------------------------------------------------------------------------------
def is_trainable(module: Module) -> bool:
    """Whether backward accumulates ``module``'s parameter gradients.

    A module is frozen the Lua way, by replacing its gradient accumulation with a no-op on the
    instance (Lua: ``module.accGradParameters = function() end``; here
    ``module.acc_grad_parameters = lambda *args, **kwargs: None``), which the engine honours. A
    module whose class never accumulates (keeps :class:`Module`'s no-op) is not trainable either.

    Args:
        module: any module.

    Returns:
        False for a frozen module, True otherwise.
    """
    if "acc_grad_parameters" in vars(module):
        return False
    return type(module).acc_grad_parameters is not Module.acc_grad_parameters


def module_line(module: Module) -> str:
    """The module on one line: ``nn.Linear(20 -> 10)``, ``nn.gModule(3 -> 2, 24 nodes)``."""
    if isinstance(module, gModule):
        return f"nn.gModule({module.n_inputs} -> {module.n_outputs}, {len(module.nodes)} nodes)"
    text = repr(module).splitlines()[0].rstrip()
    if text.endswith("{"):
        text = f"{text[:-1].rstrip()}({len(module.children())} members)"
    return text


def _container_kind(module: Module) -> str | None:
    if isinstance(module, gModule):
        return "graph"
    if not module.children():
        return None
    if type(module).__name__ == "Sequential":
        return "sequence"
    return "tree"


def _shape_of(value: Any) -> Shape:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_shape_of(v) for v in value]
    shape = getattr(value, "shape", None)
    return None if shape is None else tuple(int(s) for s in shape)


def _arrays_in(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _arrays_in(v)
    elif backend.is_array(value):
        yield value


def _step_cells(module: Module) -> list[gModule]:
    """The step cells of a recurrent module (``lstm.LSTM``, ``lstm.RNN``), else ``[]``.

    Such a module lists one prototype cell graph per layer as its children; the prototypes own
    the parameters but never run (per-step clones or a fused executor do), so their nodes hold
    no outputs. The engine does not import ``lstm``: the module is recognised by the attributes
    of ``lstm.Recurrent`` that describe one step (``cells``, ``batch_first`` and
    ``step_inputs(batch)``, the zero inputs of one step for each layer's cell).
    """
    cells = getattr(module, "cells", None)
    needed = ("batch_first", "step_inputs")
    if not isinstance(cells, list) or not all(hasattr(module, a) for a in needed):
        return []
    children = {id(c) for c in module.children()}
    if not all(isinstance(c, gModule) and id(c) in children for c in cells):
        return []
    return list(cells)


def _step_batch(module: Module) -> int | None:
    """The batch size of a recurrent module's last forward (its output ``[outputs, h_n...]``)."""
    output = module.output
    outputs = output[0] if isinstance(output, (list, tuple)) and output else output
    shape = getattr(outputs, "shape", None)
    if shape is None or len(shape) != 3:
        return None
    return int(shape[0] if module.batch_first else shape[1])


def _run_step_cells(module: Module, cells: list[gModule]) -> list[gModule]:
    """Run each step cell that holds no outputs once on zeros of one time step's inputs.

    The inputs are the module's ``step_inputs(batch)``, with the batch of the module's last
    forward. A cell runs in
    evaluation mode (dropout draws nothing from the random generators), its modes restored
    afterwards; a forward leaves parameters and gradients alone.

    Returns:
        The cells that ran: the caller clears their state (``clear_state``) once their rows are
        made. A cell that refuses the zeros (a user-modified graph) keeps unknown shapes.
    """
    batch = _step_batch(module) if cells else None
    if batch is None:
        return []
    ran = []
    for cell, step_input in zip(cells, module.step_inputs(batch)):
        if cell.output is not None:  # it holds outputs already (someone ran it): keep those
            continue
        modes = [(m, m.train) for m in cell.modules()]
        cell.evaluate()
        try:
            cell.forward(step_input)
            ran.append(cell)
        except Exception:  # noqa: BLE001 - best effort: the rows keep unknown shapes
            cell.clear_state()
        finally:
            for m, mode in modes:
                m.train = mode
    return ran


class _Walker:
    """Walks the module tree in ``named_parameters`` order, making rows and counting once."""

    def __init__(self, use_outputs: bool):
        self.rows: list[SummaryRow] = []
        self.first: dict[int, ParamInfo] = {}  # id(array) -> its first occurrence
        self.use_outputs = use_outputs
        self.outputs: dict[int, Any] = {}  # id -> array, for activation bytes

    def own_params(self, module: Module, prefix: str) -> list[ParamInfo]:
        trainable = is_trainable(module)
        infos = []
        for name, p, _ in module._own_named_parameters():
            dtype = numpy.dtype(p.dtype)
            info = ParamInfo(name=prefix + name, shape=tuple(int(s) for s in p.shape),
                             dtype=dtype.name, count=int(p.size),
                             nbytes=int(p.size) * dtype.itemsize, trainable=trainable)
            first = self.first.get(id(p))
            if first is None:
                self.first[id(p)] = info
            else:
                info.shared_with = first.name
                first.also.append(info.name)
            infos.append(info)
        return infos

    def members(self, module: Module) -> list[dict[str, Any]]:
        """The rows-to-be of ``module``'s direct members, with what the graph knows of them."""
        if isinstance(module, gModule):
            vals = getattr(module, "_vals", None)
            in_slots = {id(n): k for k, n in enumerate(module.input_nodes)}
            out_slots: dict[int, list[int]] = {}
            for k, n in enumerate(module.output_nodes):
                out_slots.setdefault(id(n), []).append(k)
            members = []
            for i, node in enumerate(module.nodes):
                output = vals[i] if vals is not None else node.module.output
                members.append(dict(
                    name=module.node_name(node), module=node.module,
                    inputs=[module.node_name(p) for p in node.inputs], table=node.table,
                    input_slot=in_slots.get(id(node)), output_slots=out_slots.get(id(node), []),
                    output=output, graph_attributes=dict(node.graph_attributes),
                    description=node.description))
            return members
        return [dict(name=name, module=child, output=child.output)
                for name, child in module.named_children()]

    def add(self, member: dict[str, Any], path: str, depth: int, number: str,
            per_step: bool = False) -> SummaryRow:
        module: Module = member["module"]
        index = int(number.rsplit(".", 1)[-1])
        output = member.get("output") if self.use_outputs else None
        if not per_step:  # one step's outputs on zeros are not what a forward keeps
            for a in _arrays_in(output):
                self.outputs[id(a)] = a
        row = SummaryRow(
            path=path, name=member["name"], depth=depth, index=index, number=number,
            module=module_line(module), module_type=type(module).__name__,
            container=_container_kind(module), inputs=list(member.get("inputs", [])),
            table=bool(member.get("table", False)), input_slot=member.get("input_slot"),
            output_slots=list(member.get("output_slots", [])), output_shape=_shape_of(output),
            per_step=per_step,
            graph_attributes={str(k): str(v)
                              for k, v in member.get("graph_attributes", {}).items()},
            description=member.get("description"))
        self.rows.append(row)
        row.params = self.own_params(module, path + ".")
        total, trainable = self.add_members(module, path, depth + 1, number, per_step)
        row.subtree_params = row.num_params + total
        row.subtree_trainable = row.num_params_trainable + trainable
        return row

    def add_members(self, module: Module, path: str, depth: int, number: str,
                    per_step: bool = False) -> tuple[int, int]:
        """Rows for ``module``'s members (``path``, ``number``: the parent's, ``""`` at the top).

        The step cells of a recurrent module run once on zeros of one step's inputs first, so
        their rows show per-step shapes (see :func:`_run_step_cells`); their state is cleared
        once the rows are made.

        Returns:
            ``(params, trainable)`` counted in the members' rows and below.
        """
        cells = _step_cells(module)
        ran = _run_step_cells(module, cells) if self.use_outputs else []
        total = trainable = 0
        try:
            for k, child in enumerate(self.members(module)):
                sub = self.add(child, f"{path}.{child['name']}" if path else child["name"], depth,
                               f"{number}.{k + 1}" if number else str(k + 1),
                               per_step or any(child["module"] is c for c in cells))
                total += sub.subtree_params
                trainable += sub.subtree_trainable
        finally:
            for cell in ran:
                cell.clear_state()
        return total, trainable

    def walk(self, model: Module) -> None:
        members = self.members(model)
        if not members or model._param_names:
            # A leaf, or a container that holds parameters itself: one row for the model.
            row = SummaryRow(path="", name=type(model).__name__, depth=0, index=1,
                             number="0" if members else "1",
                             module=module_line(model), module_type=type(model).__name__,
                             container=None,
                             output_shape=_shape_of(model.output) if self.use_outputs else None)
            self.rows.append(row)
            row.params = self.own_params(model, "")
            row.subtree_params = row.num_params
            row.subtree_trainable = sum(p.counted for p in row.params if p.trainable)
            if not members:
                for a in _arrays_in(model.output if self.use_outputs else None):
                    self.outputs[id(a)] = a
        self.add_members(model, "", 0, "")


def _is_shape(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(
        isinstance(d, (int, numpy.integer)) and not isinstance(d, bool) for d in value)


def _normalise_shapes(shapes: Any) -> Any:
    """``10`` -> ``(10,)``; a shape stays a tuple; a list of shapes becomes a list of tuples."""
    if shapes is None:
        return None
    if isinstance(shapes, (int, numpy.integer)) and not isinstance(shapes, bool):
        return (int(shapes),)
    if _is_shape(shapes):
        return tuple(int(d) for d in shapes)
    if isinstance(shapes, (list, tuple)):
        return [_normalise_shapes(s) for s in shapes]
    raise TypeError(f"input_shapes must be a shape (a tuple of ints) or a list of shapes, "
                    f"got {type(shapes).__name__}")


def _zeros(shapes: Any, xp: Any, dtype: Any) -> Any:
    if isinstance(shapes, tuple):
        return xp.zeros(shapes, dtype=dtype)
    return [_zeros(s, xp, dtype) for s in shapes]


def _forward_on_zeros(model: Module, shapes: Any, dtype: Any) -> None:
    """Run ``model`` on zeros in evaluation mode (no dropout noise), restoring every mode."""
    xp = backend.array_module(model.device)
    x = _zeros(shapes, xp, numpy.dtype(dtype) if dtype is not None else model.dtype)
    modes = [(m, m.train) for m in model.modules()]
    model.evaluate()
    try:
        model.forward(x)
    except Exception as exc:
        raise ShapeError(
            f"summary: the model does not accept inputs of shape(s) {_fmt_shape(shapes)} "
            f"(a forward on zeros failed; the batch dimension, if any, is part of each shape):\n"
            f"{exc}"
        ) from exc
    finally:
        for m, mode in modes:
            m.train = mode


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
    shapes = _normalise_shapes(input_shapes)
    ran = shapes is not None
    if ran:
        _forward_on_zeros(model, shapes, dtype)
    has_outputs = ran or model.output is not None
    walker = _Walker(use_outputs=has_outputs)
    output_shape = _shape_of(model.output) if has_outputs else None
    try:
        walker.walk(model)
        for a in _arrays_in(model.output if has_outputs else None):
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
        depth=depth, container=_container_kind(model), output_shape=output_shape)
    if print_table:
        print(result.table(), file=file or sys.stdout)
    return result


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------
def format_count(n: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{n:,}"


def format_bytes(n: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def format_shape(shape: Shape) -> str:
    """``(4, 10)`` -> ``"(4, 10)"``; shapes -> ``"[(4, 10), (4, 10)]"``; None -> ``""``."""
    if shape is None:
        return ""
    if isinstance(shape, tuple):
        return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    return "[" + ", ".join(format_shape(s) for s in shape) + "]"


_fmt_shape = format_shape

#: Marks the output shape of a :attr:`SummaryRow.per_step` row in the table; a footnote says why.
PER_STEP_MARK = "*"


def _row_lines(row: SummaryRow, folded: bool) -> list[dict[str, str]]:
    """The text cells of one row: a first line, then one line per further parameter."""
    source = ""
    if row.input_slot is not None:
        source = f"input {row.input_slot + 1}"
    elif row.inputs:
        source = ", ".join(row.inputs)
        source = f"({source})" if row.table else source
    output = format_shape(row.output_shape)
    if output and row.per_step:
        output += " " + PER_STEP_MARK
    first = {"#": row.number or str(row.index), "node": "  " * row.depth + row.name,
             "module": row.module, "from": source, "output": output}
    lines: list[dict[str, str]] = []
    for p in row.params:
        cells = {"parameter": p.name, "shape": format_shape(p.shape),
                 "params": format_count(p.count) if not p.shared_with else "(0)",
                 "train": "yes" if p.trainable else "no",
                 "shared with": (p.shared_with if p.shared_with
                                 else ("also " + ", ".join(p.also) if p.also else ""))}
        lines.append(cells)
    inner = row.subtree_params - row.num_params
    inner_trainable = row.subtree_trainable - row.num_params_trainable
    if row.container and inner:
        lines.append({"parameter": "(inside)" if folded else "(in the rows below)",
                      "params": format_count(inner),
                      "train": ("yes" if inner_trainable == inner
                                else "no" if inner_trainable == 0 else "partly")})
    if not lines:
        return [first]
    lines[0] = {**first, **lines[0]}
    return lines


def _format_table(s: Summary, depth: int | None) -> str:
    rows = [r for r in s.rows if depth is None or r.depth <= depth]
    cell_lines: list[dict[str, str]] = []
    any_folded = False
    for i, row in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        folded = bool(row.container) and not (nxt is not None and nxt.depth > row.depth)
        any_folded = any_folded or (folded and row.subtree_params > row.num_params)
        cell_lines.extend(_row_lines(row, folded))
    columns = ["#", "node", "module"]
    if any(r.inputs or r.input_slot is not None for r in rows):
        columns.append("from")
    if any(r.output_shape is not None for r in rows):
        columns.append("output")
    columns += ["parameter", "shape", "params", "train"]
    if any(c.get("shared with") for c in cell_lines):
        columns.append("shared with")
    right = {"params"}
    widths = {c: max([len(c)] + [len(line.get(c, "")) for line in cell_lines]) for c in columns}

    def fmt(cells: dict[str, str]) -> str:
        parts = [cells.get(c, "").rjust(widths[c]) if c in right
                 else cells.get(c, "").ljust(widths[c]) for c in columns]
        return "  ".join(parts).rstrip()

    header = fmt({c: c for c in columns})
    rule = "-" * len(header)
    out = [f"Summary of {s.model}", rule, header, rule]
    out += [fmt(c) for c in cell_lines]
    out.append(rule)
    out.append(f"Parameters: {format_count(s.total_params)} "
               f"(trainable {format_count(s.trainable_params)}, "
               f"non-trainable {format_count(s.non_trainable_params)})"
               + (f"; {s.shared} shared name(s) counted once" if s.shared else ""))
    memory = (f"Memory: parameters {format_bytes(s.total_bytes)}, "
              f"gradients {format_bytes(s.grad_bytes)}")
    if s.activation_bytes is not None:
        memory += f", node outputs of a forward {format_bytes(s.activation_bytes)}"
    out.append(memory)
    if s.output_shape is not None:
        out.append(f"Model output: {format_shape(s.output_shape)}")
    where = f"dtype {s.dtype} on {s.device}" if s.dtype else ""
    if s.shapes_from == "input_shapes":
        out.append(f"Output shapes from a forward on zeros of {format_shape(s.input_shapes)}; "
                   f"{where}")
    elif s.shapes_from == "last forward":
        out.append(f"Output shapes from the model's last forward; {where}")
    else:
        out.append(f"Output shapes unknown: pass input_shapes=... to summary(); {where}")
    if any(r.per_step and r.output_shape is not None for r in rows):
        out.append(f"{PER_STEP_MARK} per time step: rows inside a recurrent layer's step cell show "
                   f"the shapes of one step (the cell run once on zeros of one step's inputs).")
    if any_folded:
        out.append("Rows nested deeper than the depth asked for are folded into their "
                   "container's row ('(inside)').")
    return "\n".join(out)
