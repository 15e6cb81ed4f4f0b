"""Clones that share parameters (char-rnn's ``util/model_utils.clone_many_times``).

Unrolling a recurrent cell over ``T`` steps needs ``T`` copies of it, each keeping its own
activations for backward, all reading the same weights and accumulating into the same gradients.
Lua did ``cell:clone('weight', 'bias', 'gradWeight', 'gradBias')``. Here the copy is
:func:`nngraph_py.module.clone_tree`, the implementation behind ``Module.clone``: shared arrays
are never copied, cached outputs are dropped, a ``gModule``'s nodes are copied together with its
modules, and the clones stay in one sharing group so that ``get_parameters`` (an optimizer) keeps
them sharing.
"""
from __future__ import annotations

from typing import Callable

from nngraph_py.module import Module, clone_tree

__all__ = ["clone_module", "clone_sharing", "clone_many_times", "share_parameters"]


def _parameter_attrs(module: Module) -> list[str]:
    """Attribute names of ``module``'s own parameters and their gradients."""
    names = []
    for name in module._param_names:
        names += [name, "grad_" + name]
    return names


def _copy(module: Module, shared: Callable[[Module], list[str]]) -> Module:
    # The one clone implementation (Module.clone uses it too): no deepcopy recursion over the
    # graph, fresh nodes for every gModule, sharing kept through get_parameters.
    return clone_tree(module, shared)


def clone_module(module: Module, *shared_names: str) -> Module:
    """A deep copy of ``module``; the attributes named in ``shared_names`` are shared, not copied.

    ``Module.clone``'s contract (Lua: ``module:clone(...)``), for modules that contain graphs:
    the copy of a ``gModule`` gets copies of its nodes, wired to the copied modules.

    Args:
        module: the module to copy.
        shared_names: attribute names to share, e.g. ``"weight", "bias", "grad_weight",
            "grad_bias"``.

    Returns:
        The new module, attached to no outer graph node.
    """
    return _copy(module, lambda m: [n for n in shared_names if hasattr(m, n)])


def clone_sharing(module: Module) -> Module:
    """A deep copy of ``module`` sharing every registered parameter and its gradient.

    Lua's ``cell:clone('weight', 'bias', 'gradWeight', 'gradBias')``, for any parameter name.

    Args:
        module: the prototype (typically a cell ``gModule``).

    Returns:
        The new module, attached to no outer graph node.
    """
    return _copy(module, _parameter_attrs)


def clone_many_times(module: Module, n: int) -> list[Module]:
    """``n`` clones of ``module`` sharing its parameters and gradients (char-rnn's helper).

    Args:
        module: the prototype.
        n: how many clones.

    Returns:
        A list of ``n`` new modules.
    """
    return [clone_sharing(module) for _ in range(n)]


def share_parameters(clone: Module, prototype: Module) -> None:
    """Point ``clone``'s parameters and gradients at ``prototype``'s again, with its device,
    dtype and mode.

    Needed after the prototype's arrays were replaced (``get_parameters`` makes them views of one
    flat buffer; ``to`` converts them). The two modules must have the same structure.

    Args:
        clone: a module made by :func:`clone_sharing` from ``prototype``.
        prototype: the module that owns the arrays.
    """
    for proto_m, clone_m in zip(prototype.modules(), clone.modules()):
        for attr in _parameter_attrs(proto_m):
            setattr(clone_m, attr, getattr(proto_m, attr))
        clone_m._device = proto_m._device
        clone_m._dtype = proto_m._dtype
        clone_m.train = proto_m.train
        clone_m._after_parameters_replaced()
