"""The summary's data: :class:`ParamInfo` (one parameter), :class:`SummaryRow` (one node) and
:class:`Summary` (rows and totals), with their JSON form (checkpoints store it, the command line
reads it back). Built by :func:`nngraph_py.inspect.summary.summary`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from .shapes import Shape, normalise_shapes
from .summary_table import format_table

__all__ = ["ParamInfo", "SummaryRow", "Summary"]


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
        return format_table(self, self.depth if depth is None else depth)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (f"Summary({len(self.rows)} rows, total_params={self.total_params}, "
                f"trainable_params={self.trainable_params}, total_bytes={self.total_bytes})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, read back by :meth:`from_dict` (checkpoints store it)."""
        out = {k: v for k, v in asdict(self).items() if k != "rows"}
        out["input_shapes"] = _shape_to_json(normalise_shapes(self.input_shapes))
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
