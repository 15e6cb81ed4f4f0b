"""The recipe executors of the graph compiler, under their historical name.

They live in :mod:`nngraph_py.compile.recipes` (one compiler, in the engine); this module
re-exports them for code written against ``lstm.fast``.
"""
from nngraph_py.compile.recipes import (  # noqa: F401 - re-exports
    FusedGRULayer, FusedLSTM, FusedLSTMLayer, RecipeCell, RecipeMismatch, _step_backward,
    _step_forward, match_gru_cell, match_lstm_cell)

__all__ = ["RecipeMismatch", "RecipeCell", "match_lstm_cell", "match_gru_cell", "FusedLSTMLayer",
           "FusedGRULayer", "FusedLSTM"]
