"""The graph compiler (issue 16): any gModule run by an execution plan built once per shapes.

>>> from nngraph_py.compile import compile
>>> fast = compile(graph)          # same parameters, names, summary and checkpoints as graph

See :mod:`nngraph_py.compile.graph` for the passes and :mod:`nngraph_py.compile.elementwise` for
the generated element-wise functions.
"""
from .graph import CompiledGraph, compile

__all__ = ["compile", "CompiledGraph"]
