"""Graphviz pictures of a gModule's forward and backward graphs (Lua: ``graph.dot(g.fg, ...)``).

:func:`to_dot` writes DOT text with no dependency; :func:`render` turns it into SVG/PNG with the
``dot`` program when Graphviz is installed and says how to install it otherwise.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Callable, Iterable

from ..errors import ArgumentError, NNGraphError

__all__ = ["to_dot", "render", "save_dot", "graphviz_available", "GraphvizMissing"]


class GraphvizMissing(NNGraphError, RuntimeError):
    """The Graphviz ``dot`` program is not installed."""


def graphviz_available() -> bool:
    """Whether the Graphviz ``dot`` program is on the PATH."""
    return shutil.which("dot") is not None


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(model: Any, which: str = "forward", highlight: Any = None,
           extra_label: Callable[[Any], Iterable[str]] | None = None, title: str | None = None) -> str:
    """DOT text of a gModule's forward (``"forward"``) or backward (``"backward"``) graph.

    Each box shows the node's name, module and ``description`` (Lua puts the description in the
    label too); inputs are drawn as ovals, outputs with a double border. The tooltip is the
    description, else the node's debug label (where it was made; ``<label>-i`` for split
    outputs) as Lua's. Node
    ``graph_attributes`` (from ``annotate``) are applied beside these, a ``tooltip`` among them
    replacing the default one.

    Args:
        model: a gModule.
        which: ``"forward"`` (edges from producer to consumer) or ``"backward"`` (reversed, as
            gradients flow).
        highlight: a node to draw in red (used by the debug mode on errors).
        extra_label: a function ``node -> lines`` adding text to each box (shapes, parameter
            counts).
        title: the graph's label.
    Returns:
        The DOT source.
    """
    if which not in ("forward", "backward"):
        raise ArgumentError(f"which must be 'forward' or 'backward', got {which!r}")
    inputs = {id(n) for n in model.input_nodes}
    outputs = {id(n) for n in model.output_nodes}
    ids = {id(n): f"n{i}" for i, n in enumerate(model.nodes)}
    lines = [f"digraph {_quote(title or which)} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")
    for name, node in zip(model._names, model.nodes):
        first = repr(node.module).splitlines()[0]
        label = [name] if name == first.replace("nn.", "") else [name, first]
        if node.description:
            label.append(node.description)  # Lua: the description is part of the label
        if extra_label is not None:
            label.extend(extra_label(node))
        attrs = {"label": "\n".join(label), "tooltip": node.description or node.debug_label}
        if id(node) in inputs:
            attrs.update(shape="oval", fillcolor="#dbe9f6")
        if id(node) in outputs:
            attrs.update(peripheries="2", fillcolor="#e3f2d9")
        # The user's attributes sit beside the label (a tooltip replaces only the tooltip).
        attrs.update({k: v for k, v in node.graph_attributes.items() if k != "label"})
        if highlight is not None and node is highlight:
            attrs.update(color="red", fillcolor="#ffd6d6", penwidth="3", fontcolor="red")
        body = ", ".join(f"{k}={_quote(str(v))}" for k, v in attrs.items())
        lines.append(f"  {ids[id(node)]} [{body}];")
    for node in model.nodes:
        for pos, parent in enumerate(node.inputs):
            src, dst = ids[id(parent)], ids[id(node)]
            if which == "backward":
                src, dst = dst, src
            label = f' [label="{pos}"]' if node.table and len(node.inputs) > 1 else ""
            lines.append(f"  {src} -> {dst}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot_source: str, path: str, fmt: str | None = None) -> str:
    """Render DOT text to ``path`` with Graphviz (format from the extension: svg, png, pdf).

    Raises:
        GraphvizMissing: when the ``dot`` program is not installed (the message says how to
            install it; the DOT text itself can always be written with :func:`to_dot`).
    """
    fmt = fmt or os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    if fmt == "dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot_source)
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(
            f"cannot write {path}: the Graphviz 'dot' program is not installed "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz); "
            "write DOT text instead with a .dot path"
        )
    proc = subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot_source.encode(),
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise GraphvizMissing(f"Graphviz failed to write {path}: {proc.stderr.decode().strip()}")
    return path


def save_dot(model: Any, base_path: str, highlight: Any = None, which: str = "forward") -> str:
    """Write ``base_path.dot`` and, when Graphviz is installed, ``base_path.svg``.

    Returns:
        The path of the most useful file written (the SVG when there is one).
    """
    source = to_dot(model, which=which, highlight=highlight)
    dot_path = render(source, base_path + ".dot")
    if graphviz_available():
        try:
            return render(source, base_path + ".svg")
        except RuntimeError:
            return dot_path
    return dot_path
