"""Pictures of a model's forward and backward graphs, with shapes and parameter counts.

Lua drew ``graph.dot(mlp.fg, 'MLP', 'mlp')``: boxes with the node's name. Here each box also shows
the module, the output shape (the gradient's, in the backward graph) and the parameter count, and
says which parameters a box shares with another. Nested gModules and Sequentials are drawn as
clusters around their own nodes (down to ``depth``; deeper ones are one box with their count), so
an LSTM cell inside a bigger graph still shows its recipe.

The picture is drawn from the rows of :func:`~nngraph_py.inspect.summary.summary`, not from the
live nodes, so the same picture comes from a model or from a checkpoint file alone (the command
line's ``--dot``). The look follows :func:`nngraph_py.graph.dot.to_dot` (inputs as ovals, outputs
with a double border, ``annotate``'s ``graph_attributes`` applied), and rendering goes through its
:func:`~nngraph_py.graph.dot.render`.
"""
from __future__ import annotations

import os
import re
from typing import Any

from ..graph.dot import GraphvizMissing, graphviz_available, render
from ..module import Module
from .summary import Summary, SummaryRow, format_count, format_shape, summary

__all__ = ["to_dot", "save", "GraphvizMissing", "graphviz_available"]

_INPUT_FILL = "#dbe9f6"
_OUTPUT_FILL = "#e3f2d9"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_quote(str(v))}" for k, v in attrs.items())


class _Tree:
    """The summary rows as a tree: which rows are clusters, their members, edge end points."""

    def __init__(self, s: Summary):
        self.rows = s.rows
        self.root_kind = s.container
        self.children: dict[int | None, list[int]] = {None: []}
        stack: list[int] = []
        for i, row in enumerate(self.rows):
            while stack and self.rows[stack[-1]].depth >= row.depth:
                stack.pop()
            parent = stack[-1] if stack else None
            self.children.setdefault(parent, []).append(i)
            self.children.setdefault(i, [])
            stack.append(i)

    def kind(self, parent: int | None) -> str | None:
        return self.root_kind if parent is None else self.rows[parent].container

    def is_cluster(self, i: int) -> bool:
        return bool(self.children.get(i))

    def entry(self, i: int, slot: int) -> tuple[int, int | None]:
        """The plain node an edge into row ``i`` (its input ``slot``) ends at.

        Returns:
            ``(node, cluster)``: ``cluster`` is the row to clip the edge at (Graphviz ``lhead``)
            when the edge cannot point at one member (a tree container), else None.
        """
        members = self.children.get(i)
        if not members:
            return i, None
        kind = self.rows[i].container
        target, clip = members[0], None
        if kind == "graph":
            target = next((m for m in members if self.rows[m].input_slot == slot), members[0])
        elif kind != "sequence":
            clip = i
        node, inner = self.entry(target, slot if kind == "graph" else 0)
        return node, clip if clip is not None else inner

    def exit(self, i: int, slot: int | None) -> tuple[int, int | None]:
        """The plain node an edge out of row ``i`` (its output ``slot``) starts at, and the
        cluster to clip it at (Graphviz ``ltail``) when it cannot start at one member."""
        members = self.children.get(i)
        if not members:
            return i, None
        kind = self.rows[i].container
        target, clip = members[-1], None
        if kind == "graph":
            outs = [m for m in members if self.rows[m].output_slots]
            if slot is None and len(outs) > 1:
                clip = i  # the whole list of outputs flows out
            wanted = slot if slot is not None else 0
            target = next((m for m in outs if wanted in self.rows[m].output_slots),
                          outs[0] if outs else members[-1])
        elif kind != "sequence":
            target, clip = members[0], i
        node, inner = self.exit(target, None)
        return node, clip if clip is not None else inner


def _selected_slot(row: SummaryRow) -> int | None:
    # A SelectTable(i) node reads output i of a node with several outputs (node:split()).
    if row.module_type == "SelectTable":
        match = re.search(r"\((-?\d+)\)", row.module)
        if match:
            return int(match.group(1))
    return None


def _label(row: SummaryRow, which: str, folded: bool) -> list[str]:
    lines = [row.name]
    if row.module.replace("nn.", "") != row.name:
        lines.append(row.module)
    if row.output_shape is not None:
        lines.append(("out " if which == "forward" else "grad ") + format_shape(row.output_shape)
                     + (" per step" if row.per_step else ""))
    count = row.subtree_params if folded else row.num_params
    if count:
        frozen = row.subtree_trainable < row.subtree_params if folded else not all(
            p.trainable for p in row.params)
        lines.append(f"{format_count(count)} params" + (" (frozen)" if frozen else ""))
    shared = sorted({p.shared_with.rsplit(".", 1)[0] or p.shared_with
                     for p in row.params if p.shared_with})
    if shared:
        lines.append("shares " + ", ".join(shared))
    return lines


def summary_to_dot(s: Summary, which: str = "forward", title: str | None = None) -> str:
    """DOT text of the graph described by a :class:`Summary` (live model or checkpoint).

    Args:
        s: the summary.
        which: ``"forward"`` or ``"backward"`` (edges reversed, shapes are gradients').
        title: the picture's label (default: the model on one line).

    Returns:
        The DOT source.
    """
    if which not in ("forward", "backward"):
        raise ValueError(f"which must be 'forward' or 'backward', got {which!r}")
    tree = _Tree(s)
    title = title or f"{s.model} ({which})"
    out = [f"digraph {_quote(which)} {{", "  rankdir=TB; compound=true;",
           f"  label={_quote(title)}; labelloc=t; fontname=\"Helvetica\";",
           '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];',
           '  edge [fontname="Helvetica", fontsize=10];']

    def emit(parent: int | None, indent: str) -> None:
        for i in tree.children.get(parent, []):
            row = s.rows[i]
            if tree.is_cluster(i):
                label = "\n".join(_label(row, which, folded=True))
                out.append(f"{indent}subgraph cluster_n{i} {{")
                out.append(f"{indent}  label={_quote(label)}; style=\"rounded,dashed\"; "
                           f"color=\"#888888\"; fontname=\"Helvetica\";")
                emit(i, indent + "  ")
                out.append(f"{indent}}}")
                continue
            folded = bool(row.container)
            attrs: dict[str, Any] = {"label": "\n".join(_label(row, which, folded))}
            if row.input_slot is not None:
                attrs.update(shape="oval", fillcolor=_INPUT_FILL)
            if row.output_slots:
                attrs.update(peripheries="2", fillcolor=_OUTPUT_FILL)
            if folded:
                attrs.update(style="rounded,filled,bold")
            if row.description:
                attrs["tooltip"] = row.description
            attrs.update(row.graph_attributes)
            out.append(f"{indent}n{i} [{_attrs(attrs)}];")

    emit(None, "  ")

    def edge(src: int, src_slot: int | None, dst: int, dst_slot: int, label: str | None) -> None:
        a, tail = tree.exit(src, src_slot)
        b, head = tree.entry(dst, dst_slot)
        attrs: dict[str, Any] = {}
        if label is not None:
            attrs["label"] = label
        if which == "backward":
            a, b, tail, head = b, a, head, tail
        if tail is not None:
            attrs["ltail"] = f"cluster_n{tail}"
        if head is not None:
            attrs["lhead"] = f"cluster_n{head}"
        body = f" [{_attrs(attrs)}]" if attrs else ""
        out.append(f"  n{a} -> n{b}{body};")

    for parent, members in tree.children.items():
        kind = tree.kind(parent)
        if kind == "graph":
            by_name = {s.rows[m].name: m for m in members}
            for m in members:
                row = s.rows[m]
                for pos, name in enumerate(row.inputs):
                    src = by_name.get(name)
                    if src is None:
                        continue
                    label = str(pos) if row.table and len(row.inputs) > 1 else None
                    edge(src, _selected_slot(row), m, pos if row.table else 0, label)
        elif kind == "sequence":
            for a, b in zip(members, members[1:]):
                edge(a, None, b, 0, None)
    out.append("}")
    return "\n".join(out) + "\n"


def to_dot(model: Module | Summary, input_shapes: Any = None, which: str = "forward",
           dtype: Any = None, depth: int | None = None, title: str | None = None) -> str:
    """DOT text of a model's forward or backward graph, each box with name, module, shape, count.

    (Lua: ``graph.dot(g.fg, title)`` / ``graph.dot(g.bg, title)``; Keras: ``plot_model``;
    PyTorch: torchviz.)

    Args:
        model: a gModule, Sequential or any module, or a :class:`Summary` (e.g. from a
            checkpoint).
        input_shapes: shapes of the inputs, to show every output shape (see
            :func:`~nngraph_py.inspect.summary.summary`); without them, shapes of the last forward
            if the model holds them.
        which: ``"forward"`` (data flow) or ``"backward"`` (gradient flow: edges reversed).
        dtype: dtype of the zero inputs used with ``input_shapes``.
        depth: draw nested gModules / containers as clusters down to this level; deeper ones are
            one box with their parameter count (default: all levels).
        title: the picture's label.

    Returns:
        The DOT source (render it with Graphviz, or use :func:`save`).
    """
    if isinstance(model, Summary):
        s = model
        if depth is not None:
            s = Summary(**{**vars(model), "rows": [r for r in model.rows if r.depth <= depth]})
    else:
        s = summary(model, input_shapes=input_shapes, dtype=dtype, depth=depth, print_table=False)
    return summary_to_dot(s, which=which, title=title)


def save(model: Module | Summary, path: str, input_shapes: Any = None, which: str = "forward",
         dtype: Any = None, depth: int | None = None, title: str | None = None) -> str:
    """Write the picture of a model's graph: ``.dot`` always works, ``.svg``/``.png``/``.pdf``
    need Graphviz.

    Args:
        model: as for :func:`to_dot`.
        path: the file; its extension picks the format.
        input_shapes, which, dtype, depth, title: as for :func:`to_dot`.

    Returns:
        ``path``.

    Raises:
        GraphvizMissing: an image format was asked for and the Graphviz ``dot`` program is not
            installed; the DOT text is then written beside ``path`` (``.dot``), and the message
            says where and how to install Graphviz.
    """
    source = to_dot(model, input_shapes=input_shapes, which=which, dtype=dtype, depth=depth,
                    title=title)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if fmt == "dot" or fmt == "gv":
        return render(source, path, fmt="dot")
    if not graphviz_available():
        dot_path = os.path.splitext(path)[0] + ".dot"
        render(source, dot_path, fmt="dot")
        raise GraphvizMissing(
            f"cannot draw {path}: the Graphviz 'dot' program is not installed (Debian/Ubuntu: "
            f"apt-get install graphviz; macOS: brew install graphviz; conda: conda install "
            f"graphviz). The DOT text was written to {dot_path}; render it later with "
            f"'dot -T{fmt} {dot_path} -o {path}'"
        )
    return render(source, path, fmt=fmt)
