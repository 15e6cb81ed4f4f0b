"""nngraph_py: Lua Torch's ``nn`` + ``nngraph`` in Python, on NumPy (CPU) and CuPy (GPU).

>>> from nngraph_py import nn
>>> x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
>>> z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(20, 10)(x3)])])
>>> mlp = nn.gModule([x1, x2, x3], [z])
"""
from . import backend, checkpoint, distributed, inspect, nn, optim, train
from .backend import (cuda_available, device_of, get_array_module, get_default_dtype, manual_seed,
                      set_default_dtype, to_device, to_numpy)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .errors import GraphBuildError, GraphError, InputError, NNGraphError, ShapeError
from .gradcheck import GradcheckError, gradcheck
from .graph import set_debug

__version__ = "0.1.0"

__all__ = [
    "nn", "backend", "optim", "inspect", "checkpoint", "gradcheck", "GradcheckError", "set_debug",
    "distributed", "train",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
    "get_array_module", "to_device", "to_numpy", "device_of", "cuda_available", "manual_seed",
    "get_default_dtype", "set_default_dtype",
    "NNGraphError", "InputError", "ShapeError", "GraphError", "GraphBuildError",
]
