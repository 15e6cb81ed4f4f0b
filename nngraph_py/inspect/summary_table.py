"""The summary as a text table: one line per node and per further parameter, columns sized to
their contents, then the totals and footnotes (Keras' ``model.summary()`` layout).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .shapes import format_shape

if TYPE_CHECKING:  # the rows module imports this one
    from .summary_rows import Summary, SummaryRow

__all__ = ["format_count", "format_bytes", "format_shape", "format_table", "PER_STEP_MARK"]


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


#: Marks the output shape of a :attr:`SummaryRow.per_step` row in the table; a footnote says why.
PER_STEP_MARK = "*"


def _row_lines(row: "SummaryRow", folded: bool) -> list[dict[str, str]]:
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


def format_table(s: "Summary", depth: int | None) -> str:
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
