"""Optimizers on flat parameter buffers, in Lua ``optim``'s style and as objects.

Functional, Lua's contract (``x, {fx} = optim.sgd(feval, x, config, state)``)::

    params, grads = model.get_parameters()
    config, state = {"learning_rate": 2e-3}, {}
    def feval(x):
        grads.fill(0)
        loss = ...                      # forward and backward fill grads
        return loss, grads
    for batch in batches:
        optim.adam(feval, params, config, state)

Objects, for scripts written the PyTorch way::

    opt = optim.Adam(model, lr=2e-3)    # calls model.get_parameters() once
    opt.zero_grad(); loss = ...; optim.clip_grad_norm(opt.grads, 5.0); opt.step()

Both run the same in-place update; see each rule's module for Lua's formula and where PyTorch's
differs.
"""
from nngraph_py.optim.adam import Adam, adam
from nngraph_py.optim.clip import clip_grad_norm, clip_grad_value
from nngraph_py.optim.optimizer import Optimizer
from nngraph_py.optim.rmsprop import RMSProp, rmsprop
from nngraph_py.optim.schedule import (CosineDecay, InverseDecay, Schedule, StepDecay,
                                       cosine_decay, inverse_decay, step_decay)
from nngraph_py.optim.sgd import SGD, sgd

__all__ = [
    "sgd", "adam", "rmsprop",
    "Optimizer", "SGD", "Adam", "RMSProp",
    "clip_grad_norm", "clip_grad_value",
    "Schedule", "StepDecay", "CosineDecay", "InverseDecay",
    "step_decay", "cosine_decay", "inverse_decay",
]
