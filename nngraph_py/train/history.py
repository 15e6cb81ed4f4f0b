"""What a training run records: :class:`TrainState` (where it is) and :class:`History` (metrics).

Keras' ``model.fit`` returns a ``History`` whose ``history`` maps a metric to its per-epoch values;
Lightning keeps the loop's position (epoch, global step) in its trainer so a checkpoint can
resume it. Here both live in plain dataclasses that a checkpoint stores as JSON.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["TrainState", "History"]


@dataclass
class TrainState:
    """Where a training run is: what a checkpoint needs besides the model and the optimizer.

    Attributes:
        epoch: epochs completed.
        step: batches completed in the current (unfinished) epoch.
        global_step: optimizer steps taken (or skipped on non-finite values) since the start.
        elapsed_s: training time so far, summed over resumed sessions (evaluation excluded).
        losses: the training loss of every step.
        history: one dict per evaluation (``epoch``, ``global_step``, ``lr``, the metrics).
        skipped: steps skipped because their loss or gradient was not finite.
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    elapsed_s: float = 0.0
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


class History:
    """The metrics of a run, as :func:`~nngraph_py.train.fit` returns them (Keras' ``History``).

    ``history["val_loss"]`` is the list of a metric's values, one per evaluation (at each epoch's
    end by default, every ``eval_every`` steps otherwise); ``history.records`` the evaluations as
    dicts; ``history.losses`` the loss of every training step.

    Attributes:
        state: the run's :class:`TrainState` (shared, not copied).
        stop_reason: why training ended before ``epochs`` (early stopping...), or ``None``.
        checkpoint: the last checkpoint written, or ``None``.
    """

    def __init__(self, state: TrainState):
        self.state = state
        self.stop_reason: str | None = None
        self.checkpoint: str | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        """One dict per evaluation."""
        return self.state.history

    @property
    def losses(self) -> list[float]:
        """The training loss of every step."""
        return self.state.losses

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """The evaluations made at the end of an epoch (per-epoch metrics)."""
        return [r for r in self.records if float(r["epoch"]).is_integer()]

    def __getitem__(self, metric: str) -> list[Any]:
        """The values of ``metric`` over the evaluations that recorded it."""
        values = [r[metric] for r in self.records if metric in r]
        if not values:
            known = sorted({k for r in self.records for k in r})
            raise KeyError(f"History: no metric {metric!r}; recorded: {known}")
        return values

    def __contains__(self, metric: object) -> bool:
        return any(metric in r for r in self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def best(self, metric: str, mode: str = "min") -> dict[str, Any]:
        """The evaluation with the lowest (``mode="min"``) or highest value of ``metric``."""
        rows = [r for r in self.records if metric in r and _finite(r[metric])]
        if not rows:
            raise KeyError(f"History: no finite value of {metric!r}")
        pick = min if mode == "min" else max
        return pick(rows, key=lambda r: r[metric])

    @property
    def last(self) -> dict[str, Any]:
        """The latest evaluation (an empty dict before any)."""
        return self.records[-1] if self.records else {}

    def __repr__(self) -> str:
        metrics = sorted({k for r in self.records for k in r} - {"epoch", "global_step"})
        return (f"History({len(self.records)} evaluations, {self.state.global_step} steps, "
                f"metrics {metrics})")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
