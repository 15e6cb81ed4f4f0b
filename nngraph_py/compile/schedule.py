"""Which nodes the compiler fuses, and in which order the fused entries run.

Shared by :func:`nngraph_py.compile.compile` (a gModule) and the time-loop compiler (a cell per
step): element-wise *regions* are formed greedily over the plan (a node joins the regions of
its fusable parents when the union stays convex: no path leaves the region and comes back), and
the plan's entries (regions, Linear groups, single nodes) are ordered topologically.

No Lua Torch original.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..errors import GraphError

__all__ = ["consumers_of", "form_regions", "order_entries"]


def consumers_of(plan: Sequence[Any]) -> list[list[int]]:
    """For each plan index, the plan indices of the nodes reading it."""
    out: list[list[int]] = [[] for _ in plan]
    for i, step in enumerate(plan):
        for p in step.parents:
            out[p].append(i)
    return out


def form_regions(plan: Sequence[Any], candidates: set[int], same_shape: Any,
                 outputs: set[int], min_size: int = 1) -> list[tuple[list[int], list[int]]]:
    """Element-wise regions among ``candidates`` (plan indices).

    Args:
        plan: the graph's plan.
        candidates: nodes that may be fused.
        same_shape: ``same_shape(a, b)``: whether nodes ``a`` and ``b`` have one shape and dtype.
        outputs: nodes whose values leave the graph (always exposed).
        min_size: smaller regions are left out (a region of one node still computes into a
            planned buffer instead of a fresh array).

    Returns:
        ``[(members, exposed)]``: each region's members in plan order and those whose values are
        needed outside it.
    """
    anc: list[set[int]] = []
    for step in plan:
        s: set[int] = set()
        for p in step.parents:
            s |= anc[p]
            s.add(p)
        anc.append(s)
    region_of: dict[int, int] = {}
    regions: list[set[int]] = []
    for i in sorted(candidates):
        joined: set[int] = {i}
        for p in plan[i].parents:
            if p in region_of and same_shape(p, i):
                trial = joined | regions[region_of[p]]
                ext = {q for m in trial for q in plan[m].parents if q not in trial}
                if not any(anc[q] & trial for q in ext):
                    joined = trial
        rid = len(regions)
        regions.append(joined)
        for m in joined:
            if m in region_of and region_of[m] != rid:
                regions[region_of[m]] = set()
            region_of[m] = rid
    consumers = consumers_of(plan)
    out = []
    for members in regions:
        if len(members) < max(1, min_size):
            continue
        nodes = sorted(members)
        exposed = [i for i in nodes
                   if i in outputs or any(c not in members for c in consumers[i])]
        out.append((nodes, exposed))
    return out


def order_entries(plan: Sequence[Any], entry_of: dict[int, tuple[str, int]],
                  who: str) -> list[tuple[str, int]]:
    """A topological order of the entries (``(kind, index)``; each node of ``entry_of`` belongs
    to one), the entries sorted by their first node where the order is free.

    Raises:
        GraphError: the entries have no order (a fused entry both feeds and reads another).
    """
    deps: dict[tuple[str, int], set[tuple[str, int]]] = {e: set() for e in entry_of.values()}
    first: dict[tuple[str, int], int] = {}
    for i, e in entry_of.items():
        first[e] = min(first.get(e, i), i)
        for p in plan[i].parents:
            if p in entry_of and entry_of[p] != e:
                deps[e].add(entry_of[p])
    order: list[tuple[str, int]] = []
    done: set[tuple[str, int]] = set()
    pending = sorted(deps, key=lambda e: first[e])
    while pending:
        for e in pending:
            if deps[e] <= done:
                order.append(e)
                done.add(e)
                pending.remove(e)
                break
        else:  # cannot happen for convex regions; refuse rather than run wrongly
            raise GraphError(f"{who}: no order of the fused entries")
    return order
