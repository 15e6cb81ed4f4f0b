"""Walking a model for the summary: one row per node (gModule) or member (other containers), in
``named_parameters`` order, each shared array counted once; the step cells of recurrent modules
(found through :meth:`Module.summary_steps`) run once on one step's zeros for per-step shapes.
"""
from __future__ import annotations

from typing import Any

import numpy

from ..graph.gmodule import gModule
from ..module import Module
from .shapes import arrays_in, shape_of
from .summary_rows import ParamInfo, SummaryRow

__all__ = ["is_trainable", "module_line", "container_kind", "step_cells", "run_step_cells",
           "Walker"]


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


def container_kind(module: Module) -> str | None:
    if isinstance(module, gModule):
        return "graph"
    if not module.children():
        return None
    if type(module).__name__ == "Sequential":
        return "sequence"
    return "tree"


def step_cells(module: Module) -> list[tuple[Module, Any]]:
    """``[(cell, step_input)]`` of a module that runs cells over time, else ``[]``.

    Asked through the :meth:`Module.summary_steps` hook (``lstm.LSTM``, ``lstm.GRU``,
    ``lstm.Recurrence``... return their prototype cells, which own the parameters but never run,
    with zeros of one step's input); only cells that are the module's own children are kept.
    """
    hook = getattr(module, "summary_steps", None)
    steps = list(hook()) if callable(hook) else []
    children = {id(c) for c in module.children()}
    return [(cell, x) for cell, x in steps if id(cell) in children]


def run_step_cells(steps: list[tuple[Module, Any]]) -> list[Module]:
    """Run each step cell that holds no outputs once on its step input (see :func:`step_cells`).

    A cell runs in evaluation mode (dropout draws nothing from the random generators), its modes
    restored afterwards; a forward leaves parameters and gradients alone.

    Returns:
        The cells that ran: the caller clears their state (``clear_state``) once their rows are
        made. A cell that refuses the zeros (a user-modified graph) keeps unknown shapes.
    """
    ran = []
    for cell, step_input in steps:
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


class Walker:
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
            for a in arrays_in(output):
                self.outputs[id(a)] = a
        row = SummaryRow(
            path=path, name=member["name"], depth=depth, index=index, number=number,
            module=module_line(module), module_type=type(module).__name__,
            container=container_kind(module), inputs=list(member.get("inputs", [])),
            table=bool(member.get("table", False)), input_slot=member.get("input_slot"),
            output_slots=list(member.get("output_slots", [])), output_shape=shape_of(output),
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
        their rows show per-step shapes (see :func:`run_step_cells`); their state is cleared
        once the rows are made.

        Returns:
            ``(params, trainable)`` counted in the members' rows and below.
        """
        steps = step_cells(module)
        cells = [cell for cell, _ in steps]
        ran = run_step_cells(steps) if self.use_outputs else []
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
                             output_shape=shape_of(model.output) if self.use_outputs else None)
            self.rows.append(row)
            row.params = self.own_params(model, "")
            row.subtree_params = row.num_params
            row.subtree_trainable = sum(p.counted for p in row.params if p.trainable)
            if not members:
                for a in arrays_in(model.output if self.use_outputs else None):
                    self.outputs[id(a)] = a
        self.add_members(model, "", 0, "")
