"""Callbacks of :func:`~nngraph_py.train.fit`: small objects with a few hooks each.

Keras' ``keras.callbacks`` and Lightning's ``Callback`` are the models; the hooks here are

===================== ==============================================================
``on_train_begin``    once, before the first step (after a resume restored the state)
``on_epoch_begin``    before an epoch's first step (or the first step left of it)
``on_step_begin``     before the step's forward (learning-rate schedules)
``on_after_backward`` after backward, before the finiteness check and the optimizer
                      step (gradient clipping)
``on_step_end``       after the step (checkpoints every N steps, per-step logging)
``on_evaluate``       after each evaluation, with its record (checkpoints keeping the
                      best, early stopping, plateau, loggers)
``on_epoch_end``      after an epoch's last step and its evaluation
``on_interrupt``      on Ctrl-C, after the interrupt checkpoint
``on_train_end``      once, when the run ends normally
===================== ==============================================================

Each receives the :class:`~nngraph_py.train.loop.Loop` (model, optimizer, state, metrics).
A callback with ``state_dict()``/``load_state_dict()`` has that state saved in every checkpoint
and restored on resume, so early stopping and best-keeping continue where they were.
Callbacks run in ``order`` (lower first); checkpoints run last, so that what they save includes
the other callbacks' updates of the same evaluation.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from .loop import Loop, TrainingError

__all__ = ["Callback", "ModelCheckpoint", "EarlyStopping", "ReduceLROnPlateau",
           "GradientClipping", "LRSchedule", "JSONLinesLogger", "CSVLogger", "TensorBoardLogger",
           "LambdaCallback"]


class Callback:
    """Base class: every hook does nothing. Override the ones you need."""

    #: Callbacks run in increasing ``order``.
    order = 0
    #: In a data-parallel :func:`~nngraph_py.train.fit`, run on the root process only (loggers
    #: writing files); other callbacks run on every process, which see the same metrics.
    root_only = False

    def on_train_begin(self, loop: Loop) -> None:
        """Before the first step."""

    def on_epoch_begin(self, loop: Loop) -> None:
        """Before an epoch's first step."""

    def on_step_begin(self, loop: Loop) -> None:
        """Before a step's forward."""

    def on_after_backward(self, loop: Loop) -> None:
        """Gradients are in ``loop.optimizer.grads``; the optimizer step comes next."""

    def on_step_end(self, loop: Loop) -> None:
        """After a step (``loop.loss`` is its loss)."""

    def on_evaluate(self, loop: Loop, record: dict[str, Any]) -> None:
        """After an evaluation, ``record`` being its metrics."""

    def on_epoch_end(self, loop: Loop) -> None:
        """After an epoch's last step and its evaluation."""

    def on_interrupt(self, loop: Loop) -> None:
        """On Ctrl-C, after the interrupt checkpoint."""

    def on_train_end(self, loop: Loop) -> None:
        """When the run ends normally."""


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_step_end=lambda loop: ...)``."""

    def __init__(self, **hooks: Callable[..., None]):
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TrainingError(f"LambdaCallback: unknown hook {name!r}")
            setattr(self, name, fn)


def _check_mode(owner: str, mode: str) -> str:
    if mode not in ("min", "max"):
        raise TrainingError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
    return mode


class _Monitor:
    """Tracks the best value of a metric: lower (``min``) or higher (``max``) by ``min_delta``."""

    def __init__(self, owner: str, monitor: str, mode: str, min_delta: float):
        self.owner = owner
        self.monitor = monitor
        self.mode = _check_mode(owner, mode)
        if not min_delta >= 0:
            raise TrainingError(f"{owner}: min_delta must be >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        self.best: float | None = None

    def value(self, record: Mapping[str, Any]) -> float | None:
        if self.monitor not in record:
            known = ", ".join(sorted(record))
            raise TrainingError(f"{self.owner}: the monitored metric {self.monitor!r} is not in "
                                f"the evaluation's record ({known}); give val= to fit for "
                                f"val_loss, or monitor one of these")
        value = record[self.monitor]
        return float(value) if value is not None else None

    def improved(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class ModelCheckpoint(Callback):
    """Save resumable checkpoints: every ``every_steps`` steps and/or at every evaluation, and
    keep the best one by a monitored metric (Keras' ``ModelCheckpoint``).

    The latest state always goes to ``path`` (so Ctrl-C and ``resume=path`` use it); with
    ``monitor``, an evaluation that improves the metric is also saved to ``best_path``. A
    checkpoint is never written from non-finite values: the previous file stays.

    Args:
        path: the latest checkpoint (``.npz``).
        every_steps: also save every this many steps (0: not by steps).
        every_eval: save at every evaluation (the end of each epoch by default).
        monitor: a metric of the evaluation record (``"val_loss"``); ``None``: no best-keeping.
        mode: ``"min"`` (lower is better) or ``"max"``.
        best_path: where the best goes (default: ``best.npz`` beside ``path``).
        min_delta: how much better counts as better.
        at_end: save when the run ends.

    Attributes:
        best: the best monitored value so far; ``best_step`` its step.
    """

    order = 100
    saves_on_interrupt = True

    def __init__(self, path: str | os.PathLike, every_steps: int = 0, every_eval: bool = True,
                 monitor: str | None = None, mode: str = "min",
                 best_path: str | os.PathLike | None = None, min_delta: float = 0.0,
                 at_end: bool = True):
        if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 0:
            raise TrainingError(f"ModelCheckpoint: every_steps must be an integer >= 0, got "
                                f"{every_steps!r}")
        self.path = str(path)
        self.every_steps = every_steps
        self.every_eval = every_eval
        self.at_end = at_end
        self._monitor = (_Monitor("ModelCheckpoint", monitor, mode, min_delta)
                         if monitor else None)
        self.best_path = str(best_path) if best_path else str(Path(self.path).with_name(
            "best" + (Path(self.path).suffix or ".npz")))
        self.best_step: int | None = None
        self.saved_steps: list[int] = []

    @property
    def best(self) -> float | None:
        return self._monitor.best if self._monitor else None

    def _save_latest(self, loop: Loop) -> None:
        if loop.checkpoint == self.path and loop.checkpoint_step == loop.state.global_step:
            return
        loop.save(self.path)
        self.saved_steps.append(loop.state.global_step)

    def on_step_end(self, loop: Loop) -> None:
        if self.every_steps and loop.state.global_step % self.every_steps == 0:
            self._save_latest(loop)

    def on_evaluate(self, loop: Loop, record: dict[str, Any]) -> None:
        if self._monitor is not None:
            value = self._monitor.value(record)
            if self._monitor.improved(value):
                self._monitor.best, self.best_step = value, loop.state.global_step
                keep = loop.checkpoint, loop.checkpoint_step
                loop.save(self.best_path)
                loop.checkpoint, loop.checkpoint_step = keep
                loop.log(f"[checkpoint] {self._monitor.monitor} {value:.4g}: best so far, "
                         f"saved to {self.best_path}")
        if self.every_eval:
            self._save_latest(loop)

    def on_train_end(self, loop: Loop) -> None:
        if self.at_end:
            self._save_latest(loop)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self._monitor is not None:
            self._monitor.best = state.get("best")
        self.best_step = state.get("best_step")


class EarlyStopping(Callback):
    """Stop when a monitored metric has not improved for ``patience`` evaluations (Keras'
    ``EarlyStopping``).

    Args:
        monitor: the metric (default ``"val_loss"``).
        patience: evaluations without improvement before stopping.
        mode: ``"min"`` or ``"max"``.
        min_delta: the smallest change that counts as an improvement.
    """

    order = 10

    def __init__(self, monitor: str = "val_loss", patience: int = 5, mode: str = "min",
                 min_delta: float = 0.0):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise TrainingError(f"EarlyStopping: patience must be an integer >= 0, got "
                                f"{patience!r}")
        self._monitor = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.patience = patience
        self.wait = 0
        self.stopped_step: int | None = None

    @property
    def best(self) -> float | None:
        return self._monitor.best

    def on_evaluate(self, loop: Loop, record: dict[str, Any]) -> None:
        value = self._monitor.value(record)
        if self._monitor.improved(value):
            self._monitor.best = value
            self.wait = 0
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_step = loop.state.global_step
            loop.stop(f"early stopping: {self._monitor.monitor} has not improved on "
                      f"{self.best} for {self.wait} evaluations")
            loop.log(f"[early stopping] {loop.stop_reason}")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._monitor.best, self.wait = state.get("best"), int(state.get("wait", 0))


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when a metric stops improving for ``patience``
    evaluations (Keras' and PyTorch's ``ReduceLROnPlateau``).

    The new rate is the optimizer's own ``lr``, saved with it in checkpoints. Do not combine
    with :class:`LRSchedule`, which sets the rate at every step.

    Args:
        monitor: the metric (default ``"val_loss"``).
        factor: in (0, 1).
        patience: evaluations without improvement before reducing.
        min_lr: the rate never goes below this.
        cooldown: evaluations to wait after a reduction before counting again.
        mode, min_delta: as :class:`EarlyStopping`.
    """

    order = 20

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 min_lr: float = 0.0, cooldown: int = 0, mode: str = "min",
                 min_delta: float = 0.0):
        if not 0 < factor < 1:
            raise TrainingError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise TrainingError(f"ReduceLROnPlateau: patience must be an integer >= 0, got "
                                f"{patience!r}")
        if not min_lr >= 0:
            raise TrainingError(f"ReduceLROnPlateau: min_lr must be >= 0, got {min_lr!r}")
        self._monitor = _Monitor("ReduceLROnPlateau", monitor, mode, min_delta)
        self.factor, self.patience, self.min_lr = float(factor), patience, float(min_lr)
        self.cooldown = int(cooldown)
        self.wait = 0
        self.cooldown_left = 0
        self.reductions: list[tuple[int, float]] = []

    def on_evaluate(self, loop: Loop, record: dict[str, Any]) -> None:
        value = self._monitor.value(record)
        if self._monitor.improved(value):
            self._monitor.best = value
            self.wait = 0
            return
        if self.cooldown_left:
            self.cooldown_left -= 1
            return
        self.wait += 1
        if self.wait > self.patience:
            old = float(loop.optimizer.lr)
            new = max(old * self.factor, self.min_lr)
            if new < old:
                loop.optimizer.lr = new
                self.reductions.append((loop.state.global_step, new))
                loop.log(f"[plateau] {self._monitor.monitor} flat for {self.wait} evaluations: "
                         f"lr {old:.3g} -> {new:.3g}")
            self.wait = 0
            self.cooldown_left = self.cooldown

    def state_dict(self) -> dict[str, Any]:
        return {"best": self._monitor.best, "wait": self.wait,
                "cooldown_left": self.cooldown_left,
                "reductions": [list(r) for r in self.reductions]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._monitor.best = state.get("best")
        self.wait = int(state.get("wait", 0))
        self.cooldown_left = int(state.get("cooldown_left", 0))
        self.reductions = [(int(s), float(lr)) for s, lr in state.get("reductions", [])]


class GradientClipping(Callback):
    """Rescale the gradient to a global L2 norm of at most ``max_norm`` before each step
    (:func:`~nngraph_py.optim.clip_grad_norm`; char-rnn's ``grad_clip`` clamps values instead:
    ``by="value"``).

    The norm before clipping is ``loop.grad_norm`` (and ``grad_norm`` in logs).
    """

    order = -10

    def __init__(self, max_norm: float, by: str = "norm"):
        if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not (
                max_norm > 0 and math.isfinite(max_norm)):
            raise TrainingError(f"GradientClipping: max_norm must be a positive finite number, "
                                f"got {max_norm!r} (a negative norm would flip the gradient)")
        if by not in ("norm", "value"):
            raise TrainingError(f"GradientClipping: by must be 'norm' or 'value', got {by!r}")
        self.max_norm = float(max_norm)
        self.by = by

    def on_after_backward(self, loop: Loop) -> None:
        from ..optim import clip_grad_norm, clip_grad_value

        if self.by == "norm":
            loop.grad_norm = clip_grad_norm(loop.optimizer.grads, self.max_norm)
        else:
            clip_grad_value(loop.optimizer.grads, self.max_norm)


class LRSchedule(Callback):
    """Set the learning rate before every step from the global step: ``lr_at(step)``.

    Args:
        lr_at: a function ``step -> lr``, or an :class:`~nngraph_py.optim.Schedule`
            (``optim.CosineDecay(optimizer, total_steps)``), whose ``lr_at`` is used.

    The rate is a pure function of the step, so a resumed run follows the same schedule.
    """

    order = -20

    def __init__(self, lr_at: Any):
        fn = getattr(lr_at, "lr_at", lr_at)
        if not callable(fn):
            raise TrainingError(f"LRSchedule: expected a function step -> lr or a Schedule, got "
                                f"{type(lr_at).__name__}")
        self.lr_at = fn

    def on_step_begin(self, loop: Loop) -> None:
        lr = float(self.lr_at(loop.state.global_step))
        if not (lr >= 0 and math.isfinite(lr)):
            raise TrainingError(f"LRSchedule: the schedule gave lr {lr} at step "
                                f"{loop.state.global_step}")
        loop.optimizer.lr = lr


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep the lines of records up to ``last_step`` (those a resumed checkpoint knows)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("global_step", 0) <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, AttributeError):
            continue
    path.write_text("".join(line + "\n" for line in kept))


class JSONLinesLogger(Callback):
    """Append every evaluation record to a JSON-lines file (one object per line).

    A new run starts the file afresh; a resumed run keeps the lines up to the checkpoint's step.
    """

    order = 50
    root_only = True  # a data-parallel run: the root process alone writes

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_train_begin(self, loop: Loop) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if loop.resumed:
            _truncate_jsonl(self.path, loop.state.global_step)
        else:
            self.path.write_text("")

    def on_evaluate(self, loop: Loop, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")


class CSVLogger(Callback):
    """Write every evaluation record to a CSV file, one row each (columns: every metric seen).

    The file is rewritten from the run's history at each evaluation, so it always has one header
    and a resumed run continues it.
    """

    order = 50
    root_only = True  # a data-parallel run: the root process alone writes

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_evaluate(self, loop: Loop, record: dict[str, Any]) -> None:
        rows = loop.state.history
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _plain(v) for k, v in row.items()})
        os.replace(tmp, self.path)


class TensorBoardLogger(Callback):
    """TensorBoard event files: every evaluation's metrics, and the training loss (and gradient
    norm, when clipped) every ``every_steps`` steps. Needs ``tensorboardX`` (or PyTorch's
    ``torch.utils.tensorboard``).

    View with ``tensorboard --logdir LOGDIR``.
    """

    order = 50
    root_only = True  # a data-parallel run: the root process alone writes

    def __init__(self, logdir: str | os.PathLike, every_steps: int = 10):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            try:
                from torch.utils.tensorboard import SummaryWriter  # type: ignore[no-redef]
            except ImportError as exc:
                raise ImportError("TensorBoardLogger needs tensorboardX: pip install "
                                  "tensorboardX") from exc
        self._writer_class = SummaryWriter
        self.logdir = str(logdir)
        self.every_steps = max(1, int(every_steps))
        self.writer: Any = None

    def on_train_begin(self, loop: Loop) -> None:
        # purge_step drops events a crashed session wrote after the checkpoint being resumed.
        self.writer = self._writer_class(self.logdir, purge_step=loop.state.global_step or None)

    def on_step_end(self, loop: Loop) -> None:
        step = loop.state.global_step
        if self.writer is not None and step % self.every_steps == 0:
            self.writer.add_scalar("train/loss_step", loop.loss, step)
            self.writer.add_scalar("train/lr", float(loop.optimizer.lr), step)
            if loop.grad_norm is not None:
                self.writer.add_scalar("train/grad_norm", loop.grad_norm, step)

    def on_evaluate(self, loop: Loop, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if key in ("global_step", "epoch") or not isinstance(value, (int, float)):
                continue
            self.writer.add_scalar(f"eval/{key}", float(value), record["global_step"])
        self.writer.flush()

    def _close(self, loop: Loop) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    on_train_end = _close
    on_interrupt = _close
