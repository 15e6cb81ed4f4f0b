"""Graphs of modules: nodes, gModule and pictures (Lua: nngraph).

The layers, bottom up: ``graph.node`` (nodes; imports no module code) <- ``module`` (every module
can make a node) <- ``nn`` <- ``graph.gmodule`` (a module made of nodes). ``gModule`` is loaded on
first use here so that importing ``graph.node`` from ``module`` closes no import circle.
"""
from typing import Any

from .node import Node

__all__ = ["Node", "gModule", "set_debug", "get_debug"]


def __getattr__(name: str) -> Any:
    if name in ("gModule", "set_debug", "get_debug"):
        from . import gmodule

        return getattr(gmodule, name)
    raise AttributeError(f"module 'nngraph_py.graph' has no attribute {name!r}")
