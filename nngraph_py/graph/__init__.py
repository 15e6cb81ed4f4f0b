"""Graphs of modules: nodes, gModule and pictures (Lua: nngraph)."""
from .gmodule import gModule, get_debug, set_debug
from .node import Node

__all__ = ["Node", "gModule", "set_debug", "get_debug"]
