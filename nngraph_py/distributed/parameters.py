"""Start every process from the same model: broadcast parameters, buffers and optimizer state.

Buffers are a module's non-trainable state that must travel with its parameters (a batch
normalization's running mean and variance). A module lists them by attribute name in
``_buffer_names``; they are updated in place, so a broadcast into them is seen by the module.
"""
from __future__ import annotations

from typing import Any, Iterator

from nngraph_py import backend
from nngraph_py.distributed.world import DistributedError, World, init
from nngraph_py.errors import InputError

__all__ = ["broadcast_parameters", "broadcast_optimizer_state", "named_buffers"]

Array = Any


def _buffer_slots(model: Any) -> list[tuple[str, Any, str]]:
    """``(dotted name, module, attribute)`` of every buffer, each module and array once."""
    slots: list[tuple[str, Any, str]] = []
    seen_modules: set[int] = set()
    seen_arrays: set[int] = set()

    def walk(module: Any, prefix: str) -> None:
        if id(module) in seen_modules:
            return
        seen_modules.add(id(module))
        for attr in getattr(module, "_buffer_names", ()):
            value = getattr(module, attr, None)
            if backend.is_array(value):
                if id(value) in seen_arrays:
                    continue
                seen_arrays.add(id(value))
            slots.append((prefix + attr, module, attr))
        named_children = getattr(module, "named_children", None)
        for child_name, child in (named_children() if callable(named_children) else []):
            walk(child, f"{prefix}{child_name}.")

    walk(model, "")
    return slots


def named_buffers(model: Any) -> Iterator[tuple[str, Any]]:
    """``(dotted name, value)`` of every buffer of ``model`` and its children (see the module
    docstring), in the order of :meth:`Module.named_parameters`' walk."""
    for name, module, attr in _buffer_slots(model):
        yield name, getattr(module, attr)


def _parameters_of(model: Any) -> list[tuple[str, Array]]:
    if callable(getattr(model, "named_parameters", None)):
        return list(model.named_parameters())
    if isinstance(model, (list, tuple)) and all(backend.is_array(a) for a in model):
        return [(f"[{i}]", a) for i, a in enumerate(model)]
    raise InputError(f"broadcast_parameters: expected a module (with named_parameters()) or a "
                     f"list of arrays, got {type(model).__name__}")


def _describe(value: Any) -> tuple:
    if backend.is_array(value):
        return (tuple(int(s) for s in value.shape), str(value.dtype), backend.device_of(value))
    return (type(value).__name__,)


def _signature(params: list[tuple[str, Array]], buffers: list[tuple[str, Any, str]],
               root: int) -> dict[str, Any]:
    return {"root": root,
            "entries": [("parameter", name, _describe(a)) for name, a in params]
            + [("buffer", name, _describe(getattr(m, attr))) for name, m, attr in buffers]}


def _count(signature: dict[str, Any]) -> str:
    entries = signature["entries"]
    params = [e for e in entries if e[0] == "parameter"]
    elements = sum(_size(e[2]) for e in params)
    return (f"{len(params)} parameter arrays of {elements:,} elements and "
            f"{len(entries) - len(params)} buffers")


def _size(description: tuple) -> int:
    if len(description) < 3:
        return 0
    size = 1
    for s in description[0]:
        size *= s
    return size


def _show(description: tuple) -> str:
    if len(description) == 3:
        shape, dtype, device = description
        return f"{shape} {dtype} on {device}"
    return f"a {description[0]}"


def _first_difference(mine: list, theirs: list, rank: int, root: int) -> str:
    for k in range(max(len(mine), len(theirs))):
        a = mine[k] if k < len(mine) else None
        b = theirs[k] if k < len(theirs) else None
        if a == b:
            continue
        if a is None and b is not None:
            return f"rank {root} has no {b[0]} {k + 1}, rank {rank} has {b[1]!r} {_show(b[2])}"
        if b is None and a is not None:
            return f"rank {rank} has no {a[0]} {k + 1}, rank {root} has {a[1]!r} {_show(a[2])}"
        if a is not None and b is not None:
            return (f"{a[0]} {k + 1} is {a[1]!r} {_show(a[2])} on rank {root}, "
                    f"{b[1]!r} {_show(b[2])} on rank {rank}")
    return "none found"


def check_same(world: World, signature: Any, what: str, root: int = 0) -> None:
    """Allgather ``signature`` and raise :class:`DistributedError` on every process unless all
    are equal to the root's; the message names the first process that differs and how.

    ``signature`` is a dict with ``root`` and ``entries`` (``(kind, name, description)``), as
    :func:`broadcast_parameters` makes, or any comparable value with a readable ``str``.
    """
    signatures = world.allgather(signature)
    reference = signatures[root]
    for rank, other in enumerate(signatures):
        if other == reference:
            continue
        if isinstance(reference, dict) and reference.get("root") != other.get("root"):
            raise DistributedError(
                f"{what}: the processes were called with different roots: rank {root} with "
                f"root={reference.get('root')}, rank {rank} with root={other.get('root')}; pass "
                f"the same root on every process")
        if isinstance(reference, dict):
            detail = (f"rank {root} (the root) has {_count(reference)}, rank {rank} has "
                      f"{_count(other)}; first difference: "
                      f"{_first_difference(reference['entries'], other['entries'], rank, root)}")
        else:
            detail = f"rank {root} (the root) has {reference}, rank {rank} has {other}"
        raise DistributedError(f"{what}: the {world.size} processes do not hold the same "
                               f"model: {detail}. Build the same model on every process.")


def broadcast_parameters(model: Any, root: int = 0, world: World | None = None) -> Any:
    """Make every process hold the root's parameters and buffers (Lua: torchmpi's
    ``mpinn.synchronizeParameters``; Horovod's ``broadcast_parameters``).

    The values are written into the existing arrays, so flat buffers from ``get_parameters`` and
    an optimizer built on them stay valid. Before anything is sent, the processes compare their
    models (names, shapes, dtypes, devices of parameters and buffers) and all raise the same
    :class:`DistributedError` when they differ, instead of hanging or mixing weights.

    Args:
        model: a module (its ``named_parameters()`` and buffers), or a list of arrays.
        root: the rank whose values are kept.
        world: the world (default: :func:`init`'s).

    Returns:
        ``model``.

    Raises:
        DistributedError: the processes hold different models (on every process).

    Example:
        >>> from nngraph_py import nn, distributed
        >>> model = nn.Linear(3, 2)
        >>> distributed.broadcast_parameters(model) is model   # one process: nothing to do
        True
    """
    world = init() if world is None else world
    world._check_root(root, "broadcast_parameters")
    if world.size == 1:
        return model
    params = _parameters_of(model)
    buffers = _buffer_slots(model)
    check_same(world, _signature(params, buffers, root), "broadcast_parameters", root)

    arrays = [a for _, a in params] + [getattr(m, attr) for _, m, attr in buffers
                                       if backend.is_array(getattr(m, attr))]
    _broadcast_arrays(world, arrays, root)
    others = [(m, attr) for _, m, attr in buffers if not backend.is_array(getattr(m, attr))]
    if others:  # plain numbers (counters), None
        values = world.broadcast_object([getattr(m, attr) for m, attr in others], root)
        if world.rank != root:
            for (m, attr), value in zip(others, values):
                setattr(m, attr, value)
    return model


def _broadcast_arrays(world: World, arrays: list[Array], root: int) -> None:
    """Broadcast ``arrays`` in place, packed into one message per (device, dtype)."""
    groups: dict[tuple[str, str], list[Array]] = {}
    for a in arrays:
        groups.setdefault((backend.device_of(a), str(a.dtype)), []).append(a)
    for (_, dtype), group in sorted(groups.items()):
        xp = backend.get_array_module(group[0])
        total = sum(int(a.size) for a in group)
        if world.rank == root:
            packed = xp.concatenate([a.reshape(-1) for a in group])
        else:
            packed = xp.empty((total,), dtype=group[0].dtype)
        world.broadcast_(packed, root)
        if world.rank != root:
            offset = 0
            for a in group:
                n = int(a.size)
                a[...] = packed[offset:offset + n].reshape(a.shape)
                offset += n


def _optimizer_signature(optimizer: Any) -> str:
    p = optimizer.params
    return (f"{type(optimizer).__name__} over {int(p.size):,} {p.dtype} parameters on "
            f"{backend.device_of(p)}")


def broadcast_optimizer_state(optimizer: Any, root: int = 0, world: World | None = None) -> Any:
    """Make every process's optimizer state (moments, step counters, hyper-parameters) the
    root's, e.g. after the root alone has loaded a checkpoint (Horovod's
    ``broadcast_optimizer_state``).

    Args:
        optimizer: an optimizer of :mod:`nngraph_py.optim`, or a :class:`DistributedOptimizer`.
        root: the rank whose state is kept.
        world: the world (default: :func:`init`'s).

    Returns:
        ``optimizer``.

    Raises:
        DistributedError: the optimizers differ in kind or number of parameters (on every
            process).
    """
    world = init() if world is None else world
    world._check_root(root, "broadcast_optimizer_state")
    if world.size == 1:
        return optimizer
    inner = getattr(optimizer, "optimizer", optimizer)
    params = inner.params
    check_same(world, _optimizer_signature(inner), "broadcast_optimizer_state", root)
    state = inner.state_dict() if world.rank == root else {}
    layout = {k: (("array",) + _describe(v)[:2] if backend.is_array(v) else ("value", v))
              for k, v in state.items()}
    layout = world.broadcast_object(layout if world.rank == root else None, root)
    xp = backend.get_array_module(params)
    received: dict[str, Any] = {}
    for key in sorted(layout):
        kind = layout[key]
        if kind[0] == "value":
            received[key] = kind[1]
            continue
        buffer = state[key] if world.rank == root else xp.empty(kind[1], dtype=kind[2])
        received[key] = world.broadcast_(buffer, root)
    if world.rank != root:
        inner.load_state_dict(received)
    return optimizer
