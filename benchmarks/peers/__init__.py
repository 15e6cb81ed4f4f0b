"""The benchmarked implementations, one file per framework, loaded by key.

Keys (in table order): ``nngraph-recipe``, ``nngraph-optimized`` (ours, :mod:`.ours`),
``nngraph-numba`` (ours with the optional compiled kernels, :mod:`.ours_numba`),
``torch-lstm``, ``torch-cell`` (:mod:`.torch_peers`), ``chainer-nstep``, ``chainer-lstm``
(:mod:`.chainer_peers`). A framework is imported only by :func:`load`, in the child process that
measures it, so that one peer's import never weighs on another's memory figures.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PEERS", "LABELS", "REFERENCE", "load"]

#: key -> (module, class) of every peer, in the order of the tables.
PEERS = {
    "nngraph-recipe": ("ours", "NNGraphRecipe"),
    "nngraph-optimized": ("ours", "NNGraphOptimized"),
    "nngraph-numba": ("ours_numba", "NNGraphNumba"),
    "torch-lstm": ("torch_peers", "TorchLSTM"),
    "torch-cell": ("torch_peers", "TorchLSTMCellLoop"),
    "chainer-nstep": ("chainer_peers", "ChainerNStepLSTM"),
    "chainer-lstm": ("chainer_peers", "ChainerLSTMLoop"),
}

#: The names printed in the tables (the same as each class's ``label``; kept here so that the
#: parent process can print them without importing any framework).
LABELS = {
    "nngraph-recipe": "nngraph recipe (graph)",
    "nngraph-optimized": "nngraph optimized (FusedLSTM)",
    "nngraph-numba": "nngraph optimized + numba kernels",
    "torch-lstm": "PyTorch nn.LSTM",
    "torch-cell": "PyTorch LSTMCell loop",
    "chainer-nstep": "Chainer L.NStepLSTM",
    "chainer-lstm": "Chainer L.LSTM loop",
}

#: The peer the ratios are taken against.
REFERENCE = "torch-lstm"


def load(key: str) -> Any:
    """The peer class of ``key``, importing its framework.

    Raises:
        KeyError: an unknown key.
        ImportError: the framework is not installed (or does not import); the message says why.
    """
    if key not in PEERS:
        raise KeyError(f"unknown peer {key!r}; known: {', '.join(PEERS)}")
    module, cls = PEERS[key]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
