"""Learning-rate schedules: plain functions of the step, and objects that set ``optimizer.lr``.

Lua scripts changed ``optimState.learningRate`` by hand between epochs (char-rnn:
``if epoch >= decay_after then optim_state.learningRate = optim_state.learningRate * decay_rate``),
or let ``optim.sgd`` anneal it with ``learningRateDecay``. Here each schedule is a function
``f(base_lr, step, ...) -> lr`` and a class that applies it to any object with a settable ``lr``
(the :class:`~nngraph_py.optim.Optimizer` subclasses)::

    opt = Adam(model, lr=2e-3)
    schedule = StepDecay(opt, step_size=10, gamma=0.97)
    for epoch in range(epochs):
        train_one_epoch(opt)
        schedule.step()          # lr for the next epoch

:class:`InverseDecay` is Lua's ``learningRateDecay`` (``lr / (1 + n * decay)``) for optimizers
that lack it; do not combine it with ``learning_rate_decay`` in the optimizer, or the decay
applies twice.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["step_decay", "cosine_decay", "inverse_decay", "Schedule", "StepDecay", "CosineDecay",
           "InverseDecay"]


def step_decay(base_lr: float, step: int, step_size: int, gamma: float = 0.1) -> float:
    """``base_lr * gamma ** (step // step_size)``: multiply by ``gamma`` every ``step_size`` steps.

    Args:
        base_lr: the learning rate at step 0.
        step: the number of schedule steps taken (epochs, usually).
        step_size: steps between two decays.
        gamma: the factor of each decay.

    Returns:
        The learning rate at ``step`` (PyTorch's ``StepLR``).
    """
    return base_lr * gamma ** (step // step_size)


def cosine_decay(base_lr: float, step: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Half a cosine from ``base_lr`` at step 0 to ``min_lr`` at ``total_steps``, then flat.

    Args:
        base_lr: the learning rate at step 0.
        step: the number of schedule steps taken.
        total_steps: the step at which ``min_lr`` is reached.
        min_lr: the final learning rate.

    Returns:
        ``min_lr + (base_lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2`` (PyTorch's
        ``CosineAnnealingLR`` without restarts).
    """
    progress = min(step, total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def inverse_decay(base_lr: float, step: int, decay: float) -> float:
    """``base_lr / (1 + step * decay)``, Lua's ``learningRateDecay`` annealing (``optim.sgd``).

    Args:
        base_lr: the learning rate at step 0.
        step: the number of schedule steps taken.
        decay: the decay rate.

    Returns:
        The learning rate at ``step``.
    """
    return base_lr / (1 + step * decay)


class Schedule:
    """Base class: owns the step count and writes ``optimizer.lr`` from :meth:`lr_at`.

    Args:
        optimizer: any object with a settable ``lr``; its current ``lr`` is the base rate.

    Attributes:
        base_lr: the learning rate at step 0.
        last_step: the number of :meth:`step` calls so far.
    """

    def __init__(self, optimizer: Any):
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_step = 0

    def lr_at(self, step: int) -> float:
        """The learning rate after ``step`` schedule steps."""
        raise NotImplementedError

    def step(self) -> float:
        """Advance one step and set the optimizer's learning rate.

        Returns:
            The new learning rate.
        """
        self.last_step += 1
        lr = self.lr_at(self.last_step)
        self.optimizer.lr = lr
        return lr

    def state_dict(self) -> dict[str, float]:
        """``{"base_lr", "last_step"}``, plain numbers for checkpoints."""
        return {"base_lr": self.base_lr, "last_step": self.last_step}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        """Restore :meth:`state_dict` and set the optimizer's learning rate to match."""
        self.base_lr = float(state_dict["base_lr"])
        self.last_step = int(state_dict["last_step"])
        self.optimizer.lr = self.lr_at(self.last_step)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_lr={self.base_lr}, last_step={self.last_step})"


class StepDecay(Schedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps (see :func:`step_decay`).

    Args:
        optimizer: any object with a settable ``lr``.
        step_size: steps between two decays.
        gamma: the factor of each decay.

    Example:
        >>> class Opt: lr = 1.0
        >>> s = StepDecay(Opt(), step_size=2, gamma=0.5)
        >>> [s.step() for _ in range(4)]
        [1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepDecay: step_size must be >= 1, got {step_size}")
        super().__init__(optimizer)
        self.step_size = step_size
        self.gamma = gamma

    def lr_at(self, step: int) -> float:
        return step_decay(self.base_lr, step, self.step_size, self.gamma)


class CosineDecay(Schedule):
    """Cosine annealing from the optimizer's rate to ``min_lr`` in ``total_steps`` (see
    :func:`cosine_decay`).

    Args:
        optimizer: any object with a settable ``lr``.
        total_steps: the step at which ``min_lr`` is reached.
        min_lr: the final learning rate.
    """

    def __init__(self, optimizer: Any, total_steps: int, min_lr: float = 0.0):
        if total_steps < 1:
            raise ValueError(f"CosineDecay: total_steps must be >= 1, got {total_steps}")
        super().__init__(optimizer)
        self.total_steps = total_steps
        self.min_lr = min_lr

    def lr_at(self, step: int) -> float:
        return cosine_decay(self.base_lr, step, self.total_steps, self.min_lr)


class InverseDecay(Schedule):
    """Lua's ``learningRateDecay`` for any optimizer: ``base_lr / (1 + step * decay)`` (see
    :func:`inverse_decay`). Stepped once per optimizer step, it reproduces ``optim.sgd``'s
    annealing.

    Args:
        optimizer: any object with a settable ``lr``.
        decay: the decay rate.
    """

    def __init__(self, optimizer: Any, decay: float):
        super().__init__(optimizer)
        self.decay = decay

    def lr_at(self, step: int) -> float:
        return inverse_decay(self.base_lr, step, self.decay)
