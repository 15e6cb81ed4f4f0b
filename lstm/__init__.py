"""Recurrent networks built the nngraph way: the LSTM recipe as a graph, unrolled over time.

>>> from nngraph_py import nn
>>> from lstm import lstm_cell, LSTM
>>> x, prev_c, prev_h = nn.Identity()(), nn.Identity()(), nn.Identity()()
>>> next_c, next_h = lstm_cell(x, prev_c, prev_h, input_size=400, rnn_size=400)
>>> cell = nn.gModule([x, prev_c, prev_h], [next_c, next_h])
>>> LSTM(10, 20, 2)
nn.LSTM(10 -> 20, layers=2)

``cell.py`` holds the recipes (``lstm_cell``, ``gru_cell``, ``rnn_cell``), ``model.py`` the
stacked (and bidirectional) models over whole sequences (``LSTM``, ``GRU``, ``RNN``, with
``lengths``), ``recurrence.py`` ``Recurrence`` (any user cell run over time), ``tbptt.py``
truncated BPTT with a carried state, ``torch_compat.py`` PyTorch's weight layout. The executors
that run cells fast are the graph compiler's (:mod:`nngraph_py.compile`); ``fast.py``,
``accel.py`` and ``clones.py`` re-export the engine's under their historical names.
"""
from .cell import (GRU_GATES, LSTM_GATES, gru_cell, lstm_cell, make_gru_cell, make_lstm_cell,
                   make_rnn_cell, rnn_cell)
from .clones import clone_many_times, clone_sharing
from .model import GRU, LSTM, RNN, Recurrent
from .recurrence import Recurrence
from .tbptt import TruncatedBPTT
from .torch_compat import load_torch_state_dict, to_torch_state_dict, torch_keys

__all__ = [
    "lstm_cell", "rnn_cell", "gru_cell", "make_lstm_cell", "make_rnn_cell", "make_gru_cell",
    "LSTM_GATES", "GRU_GATES",
    "LSTM", "GRU", "RNN", "Recurrent", "Recurrence", "TruncatedBPTT",
    "clone_sharing", "clone_many_times",
    "to_torch_state_dict", "load_torch_state_dict", "torch_keys",
]
