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
                 outputs: set[int], min_size: int = 1,
                 groups: Sequence[Sequence[int]] = ()) -> list[tuple[list[int], list[int]]]:
    """Element-wise regions among ``candidates`` (plan indices).

    Args:
        plan: the graph's plan.
        candidates: nodes that may be fused.
        same_shape: ``same_shape(a, b)``: whether nodes ``a`` and ``b`` have one shape and dtype.
        outputs: nodes whose values leave the graph (always exposed).
        min_size: smaller regions are left out (a region of one node still computes into a
            planned buffer instead of a fresh array).
        groups: the other multi-node entries (Linear groups), which run as one too.

    Each region is convex on its own; several can still read each other (A -> Linear -> B and
    B -> Linear -> A), which leaves no order to run them in: such regions are split into their
    nodes until the fused entries have an order.

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
    regions = _break_cycles(plan, [r for r in regions if r], groups)
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


def _break_cycles(plan: Sequence[Any], regions: list[set[int]],
                  groups: Sequence[Sequence[int]]) -> list[set[int]]:
    """Split regions (largest first among those left unordered) until regions, groups and
    single nodes have a topological order."""
    regions = [set(r) for r in regions]
    while True:
        entry: dict[int, tuple[str, int]] = {}
        for k, g in enumerate(groups):
            for i in g:
                entry[i] = ("group", k)
        for k, r in enumerate(regions):
            for i in r:
                entry[i] = ("region", k)
        for i in range(len(plan)):
            entry.setdefault(i, ("node", i))
        stuck = _unordered(plan, entry)
        if not stuck:
            return regions
        culprits = [k for kind, k in stuck if kind == "region" and len(regions[k]) > 1]
        if not culprits:  # cannot happen: groups and single nodes follow the graph's order
            raise GraphError("the fused entries have no order")
        k = max(culprits, key=lambda c: len(regions[c]))
        regions = regions[:k] + [{i} for i in sorted(regions[k])] + regions[k + 1:]


def _unordered(plan: Sequence[Any], entry_of: dict[int, tuple[str, int]]) -> list[tuple[str, int]]:
    """The entries Kahn's algorithm cannot order (empty when the entries are acyclic)."""
    deps: dict[tuple[str, int], set[tuple[str, int]]] = {e: set() for e in entry_of.values()}
    for i, e in entry_of.items():
        for p in plan[i].parents:
            if p in entry_of and entry_of[p] != e:
                deps[e].add(entry_of[p])
    users: dict[tuple[str, int], list[tuple[str, int]]] = {e: [] for e in deps}
    for e, ds in deps.items():
        for d in ds:
            users[d].append(e)
    count = {e: len(ds) for e, ds in deps.items()}
    ready = [e for e, c in count.items() if c == 0]
    done = 0
    while ready:
        e = ready.pop()
        done += 1
        for u in users[e]:
            count[u] -= 1
            if count[u] == 0:
                ready.append(u)
    return [e for e, c in count.items() if c > 0]


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
