"""The graph compiler (issue 16): graphs and cells run by execution plans built once per shapes.

>>> from nngraph_py.compile import compile
>>> fast = compile(graph)          # same parameters, names, summary and checkpoints as graph

:func:`compile` runs a gModule (:mod:`nngraph_py.compile.graph`); :func:`compile_sequence` runs a
cell over time (:mod:`nngraph_py.compile.sequence`), which is what :class:`lstm.LSTM`,
:class:`lstm.GRU`, :class:`lstm.RNN` and :class:`lstm.Recurrence` use. The element-wise regions
of both are generated code (:mod:`nngraph_py.compile.elementwise`).
"""
from .graph import CompiledGraph, compile
from .sequence import CellSignature, CompileError, SequenceExecutor, compile_sequence

__all__ = ["compile", "CompiledGraph", "compile_sequence", "CellSignature", "SequenceExecutor",
           "CompileError"]
