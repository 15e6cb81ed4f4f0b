"""Inspecting models: summary tables, statistics, training watches, graph pictures, a command line.

``summary(model, input_shapes)`` prints one row per node (name, module, output shape, parameters
by their ``named_parameters`` names, trainable, shared-with) and totals; ``stats`` /
``grad_stats`` give norm, mean, std, min, max and NaN/Inf counts per parameter; ``Watch`` records
them during training and plots them; ``to_dot`` / ``save`` draw the forward and backward graphs;
``python -m nngraph_py.inspect CHECKPOINT`` does all of it from a checkpoint file
(:mod:`nngraph_py.checkpoint`), its own metadata summarised by ``describe_meta``.

(Lua: ``print(model)``, ``graph.dot``; Keras: ``model.summary()``, ``plot_model``; PyTorch:
``print(model)``, torchinfo.)

Example:
    >>> from nngraph_py import nn, inspect
    >>> x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    >>> z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(20, 10)(x3)])])
    >>> mlp = nn.gModule([x1, x2, x3], [z])
    >>> inspect.summary(mlp, [(10,), (10,), (20,)], print_table=False).total_params
    210
"""
from .metadata import brief, describe_meta
from .picture import GraphvizMissing, graphviz_available, save, summary_to_dot, to_dot
from .stats import (ParamStats, array_stats, format_stats, grad_stats, snapshot, stats,
                    update_ratio)
from .summary import ParamInfo, Summary, SummaryRow, is_trainable, summary
from .watch import MatplotlibMissing, Watch

__all__ = [
    "summary", "Summary", "SummaryRow", "ParamInfo", "is_trainable",
    "stats", "grad_stats", "array_stats", "snapshot", "update_ratio", "format_stats",
    "ParamStats", "Watch", "MatplotlibMissing",
    "to_dot", "save", "summary_to_dot", "GraphvizMissing", "graphviz_available",
    "describe_meta", "brief",
]
