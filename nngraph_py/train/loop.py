"""The training loop: :func:`fit`, what it hands its callbacks (:class:`Loop`) and its checkpoints.

Lua Torch had no loop in the library (char-rnn's ``train.lua`` and every example wrote their own
``for i = 1, iterations do ... optim.adam(feval, params, config) end``); Keras' ``model.fit`` and
Lightning's ``Trainer.fit`` did. :func:`fit` is that loop for any module, criterion and
:class:`~nngraph_py.optim.Optimizer`:

* one step is ``zero_grad``; forward, loss, backward (yours with ``forward_backward=``); the
  callbacks' ``on_after_backward`` (gradient clipping); a finiteness check; ``optimizer.step()``;
* it evaluates at the end of every epoch (or every ``eval_every`` steps), records the metrics
  in a :class:`~nngraph_py.train.history.History` and hands them to the callbacks (checkpoints,
  early stopping, learning-rate reduction, loggers);
* a checkpoint written by the loop holds the model, the optimizer, the run's position, the random
  generators and the callbacks' state, so ``fit(..., resume=path)`` continues bitwise exactly;
* Ctrl-C finishes the current step, saves a checkpoint and raises :class:`TrainingInterrupted`;
* a loss or gradient that is NaN or infinite stops the run before the optimizer applies it
  (:class:`NonFiniteError`, naming the step) or skips the step (``on_nonfinite="skip"``); a
  checkpoint is never written from non-finite parameters or optimizer state.
"""
from __future__ import annotations

import inspect as _inspect
import itertools
import math
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, cast

import numpy

from .. import backend
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..errors import NNGraphError
from .history import History, TrainState
from .progress import Progress, format_value

__all__ = ["fit", "Loop", "NonFiniteError", "TrainingInterrupted", "TrainingError",
           "save_run", "load_run", "run_meta", "rng_state", "set_rng_state", "nonfinite_count"]

#: Key of the loop's own metadata in a checkpoint's user metadata.
RUN_KEY = "run"


class TrainingError(NNGraphError, ValueError):
    """:func:`fit` was called with arguments it cannot train with (the message says which)."""


class NonFiniteError(NNGraphError, FloatingPointError):
    """A loss, gradient, parameter or optimizer buffer became NaN or infinite.

    Attributes:
        step: the global step (1-based) at which the values went bad, or ``None`` at a save.
        what: ``"loss"``, ``"gradient"``, ``"parameters"`` or ``"optimizer state"``.
        checkpoint: the last good checkpoint (kept as it was), or ``None``.
    """

    def __init__(self, message: str, step: int | None = None, what: str = "",
                 checkpoint: str | None = None):
        super().__init__(message)
        self.step = step
        self.what = what
        self.checkpoint = checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`fit` between two steps, after it saved a checkpoint.

    A ``KeyboardInterrupt``: uncaught, it ends the program as Ctrl-C does.

    Attributes:
        checkpoint: the checkpoint written (``fit(..., resume=checkpoint)`` continues), or
            ``None`` without a :class:`~nngraph_py.train.ModelCheckpoint` or ``interrupt_path``.
        history: the run's history up to the interruption.
    """

    def __init__(self, checkpoint: str | None, history: History):
        where = f"checkpoint saved to {checkpoint}" if checkpoint else "no checkpoint saved"
        super().__init__(f"training interrupted at step {history.state.global_step}: {where}")
        self.checkpoint = checkpoint
        self.history = history


# ------------------------------------------------------------------------------------------------
# Random generators and finiteness
# ------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The library's host generators as JSON values: NumPy's global one (dropout masks on the
    CPU draw from it) and :func:`~nngraph_py.backend.host_rng` (initial weights)."""
    name, keys, pos, has_gauss, cached = numpy.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached), "host": backend.host_rng().bit_generator.state}


def set_rng_state(saved: Mapping[str, Any], seed: int = 0, global_step: int = 0) -> None:
    """Restore :func:`rng_state`. CuPy's generator cannot be read back: it is reseeded from
    ``seed`` and ``global_step``, so a resumed GPU run is reproducible but not identical."""
    numpy.random.set_state((saved["name"], numpy.asarray(saved["keys"], dtype=numpy.uint32),
                            saved["pos"], saved["has_gauss"], saved["cached_gaussian"]))
    if "host" in saved:
        backend.host_rng().bit_generator.state = saved["host"]
    if backend.cuda_available():
        import cupy

        cupy.random.seed((seed * 1_000_003 + global_step) % (2 ** 32))


def nonfinite_count(array: Any) -> int:
    """How many elements of an array (any backend) are NaN or infinite."""
    xp = backend.get_array_module(array)
    return int(array.size - int(xp.count_nonzero(xp.isfinite(array))))


def _all_finite(array: Any) -> bool:
    xp = backend.get_array_module(array)
    return bool(xp.isfinite(array).all())


def _first_nonfinite(model: Any, optimizer: Any) -> tuple[str, str] | None:
    """``(what, detail)`` for the first non-finite parameter or optimizer buffer, or None."""
    named = list(model.named_parameters())
    for name, p in named:
        if not _all_finite(p):
            total = sum(int(q.size) for _, q in named)
            all_bad = sum(nonfinite_count(q) for _, q in named)
            return "parameters", (f"{all_bad:,} of {total:,} parameter values are NaN or "
                                  f"infinite (first: {name})")
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            if backend.is_array(value):
                if not _all_finite(value):
                    return "optimizer state", (f"optimizer buffer {key!r} has "
                                               f"{nonfinite_count(value):,} NaN or infinite "
                                               f"values")
            elif isinstance(value, float) and not math.isfinite(value):
                return "optimizer state", f"optimizer setting {key!r} is {value}"
    return None


# ------------------------------------------------------------------------------------------------
# Checkpoints of a run
# ------------------------------------------------------------------------------------------------
def save_run(path: str | Path, model: Any, optimizer: Any, state: TrainState,
             config: Mapping[str, Any] | None = None,
             callbacks: Mapping[str, Any] | None = None) -> str:
    """Save everything a run needs to continue exactly: model, optimizer, position, generators.

    Refuses to write non-finite parameters or optimizer state (the file on disk, a good
    checkpoint, is left as it was).

    Args:
        path: the ``.npz`` file (written atomically; its directory is created).
        model: the module.
        optimizer: the :class:`~nngraph_py.optim.Optimizer` (or ``None``).
        state: the :class:`TrainState`.
        config: your settings (JSON values), returned by :func:`run_meta` as ``"config"``.
        callbacks: the callbacks' ``state_dict()``s by key.

    Returns:
        ``path`` as a string.

    Raises:
        NonFiniteError: a parameter or optimizer buffer is NaN or infinite.
    """
    path = str(path)
    bad = _first_nonfinite(model, optimizer)
    if bad is not None:
        raise NonFiniteError(f"not saving {path}: {bad[1]} (at step {state.global_step}); the "
                             f"file on disk is left as it was", what=bad[0], checkpoint=path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    meta = {RUN_KEY: asdict(state), "config": dict(config or {}), "rng": rng_state(),
            "callbacks": dict(callbacks or {})}
    try:
        save_checkpoint(path, model, optimizer, meta)
    except CheckpointError as exc:
        # save_checkpoint's own refusal of NaN/Inf arrays (checkpoint.NonFiniteError), should
        # a value slip past the check above (an optimizer counter, say)
        if type(exc).__name__ != "NonFiniteError":
            raise
        raise NonFiniteError(f"not saving {path} at step {state.global_step}: {exc}",
                             what="optimizer state", checkpoint=path) from exc
    return path


def run_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint written by :func:`save_run` (``"run"``, ``"config"``...),
    read without a model."""
    return dict(load_checkpoint(str(path)).user)


def load_run(path: str | Path, model: Any, optimizer: Any, seed: int = 0
             ) -> tuple[TrainState, dict[str, Any]]:
    """Load a :func:`save_run` checkpoint into ``model`` and ``optimizer``; restore the generators.

    Returns:
        ``(state, meta)``: where the run stopped, and the checkpoint's user metadata.

    Raises:
        CheckpointError: the file is missing, unreadable, or does not match the model.
        TrainingError: the file is a checkpoint, but not one of a training run.
    """
    meta = dict(load_checkpoint(str(path), model=model, optimizer=optimizer).user)
    if RUN_KEY not in meta:
        raise TrainingError(f"{path}: a checkpoint without a training run's state (it was not "
                            f"written by nngraph_py.train.fit); load it with load_checkpoint and "
                            f"start a new run")
    state = TrainState(**meta[RUN_KEY])
    if "rng" in meta:
        set_rng_state(meta["rng"], seed, state.global_step)
    return state, meta


# ------------------------------------------------------------------------------------------------
# Ctrl-C
# ------------------------------------------------------------------------------------------------
class _InterruptFlag:
    """While active, the first Ctrl-C only sets a flag, checked between steps (so a checkpoint
    is never written from the middle of a parameter update); a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step, then saving a checkpoint "
              "(press Ctrl-C again to quit without saving)", file=sys.stderr)

    def __enter__(self) -> "_InterruptFlag":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: Ctrl-C keeps its default behaviour
            self._previous = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------
class Loop:
    """What callbacks see of a running :func:`fit`.

    Attributes:
        model, criterion, optimizer: as given to :func:`fit`.
        state: the :class:`TrainState` (epoch, step, global_step, losses, history).
        history: the :class:`History` :func:`fit` returns.
        epochs: the epoch to stop after; ``max_steps``: the step limit (0: none).
        steps_per_epoch: batches per epoch, or ``None`` while unknown.
        loss: the loss of the last step; ``grad_norm``: the gradient norm a clipping callback
            measured in this step (or ``None``).
        metrics: the last evaluation's record.
        stop_training: set it to end the run after the current step (``stop_reason`` says why).
        checkpoint: the last checkpoint written (path) and ``checkpoint_step`` its step.
        config: the settings stored in every checkpoint.
    """

    def __init__(self, model: Any, criterion: Any, optimizer: Any, state: TrainState,
                 epochs: int, max_steps: int, config: Mapping[str, Any],
                 callbacks: Sequence[Any], progress: Progress | None = None):
        self.model = model
        self.criterion = criterion
        self.optimizer = optimizer
        self.state = state
        self.history = History(state)
        self.epochs = epochs
        self.max_steps = max_steps
        self.steps_per_epoch: int | None = None
        self.config = dict(config)
        self.callbacks = list(callbacks)
        self.loss = float("nan")
        self.grad_norm: float | None = None
        self.metrics: dict[str, Any] = {}
        self.stop_training = False
        self.stop_reason: str | None = None
        self.checkpoint: str | None = None
        self.checkpoint_step: int | None = None
        self.progress = progress
        self.resumed = False
        #: The distributed :class:`~nngraph_py.distributed.World` of a data-parallel run, or None.
        self.world: Any = None

    @property
    def is_root(self) -> bool:
        """Whether this process prints and writes files (always, unless data-parallel)."""
        return self.world is None or self.world.is_root

    # ---- for callbacks ------------------------------------------------------------------------
    @property
    def epoch_done(self) -> bool:
        """Whether the current step completed an epoch."""
        return self.state.step == 0 and self.state.global_step > 0

    def stop(self, reason: str) -> None:
        """End the run after this step (early stopping); ``reason`` goes into the history."""
        self.stop_training = True
        self.stop_reason = reason
        self.history.stop_reason = reason

    def log(self, text: str) -> None:
        """Print a line without breaking the progress bar (on the root process only)."""
        if not self.is_root:
            return
        if self.progress is not None:
            self.progress.write(text)
        else:
            print(text)

    def callback_states(self) -> dict[str, Any]:
        """Every callback's ``state_dict()``, by :func:`_callback_keys`."""
        return {key: cb.state_dict() for key, cb in zip(_callback_keys(self.callbacks),
                                                        self.callbacks)
                if hasattr(cb, "state_dict")}

    def save(self, path: str | Path) -> str:
        """Write a resumable checkpoint of the run now (see :func:`save_run`); in a
        data-parallel run the root alone writes (every process holds the same state)."""
        if self.is_root:
            written = save_run(path, self.model, self.optimizer, self.state, self.config,
                               self.callback_states())
        else:
            written = str(path)
        self.checkpoint, self.checkpoint_step = written, self.state.global_step
        self.history.checkpoint = written
        return written

    @property
    def finished(self) -> bool:
        """Whether the run has reached ``epochs``, ``max_steps`` or a stop request."""
        s = self.state
        return (s.epoch >= self.epochs or bool(self.max_steps and s.global_step >= self.max_steps)
                or self.stop_training)


def _callback_keys(callbacks: Sequence[Any]) -> list[str]:
    """``ClassName`` for the first callback of a class, ``ClassName#2`` for the second..."""
    seen: dict[str, int] = {}
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        keys.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return keys


def _call(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def _takes_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = _inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in params)


def _epoch_source(source: Any, epoch: int, name: str) -> Iterable[Any]:
    """The batches of ``epoch`` from an iterable or a callable (``epoch -> batches`` or
    ``() -> batches``)."""
    if callable(source) and not hasattr(source, "__iter__"):
        return source(epoch) if _takes_argument(source) else source()
    if iter(source) is source and epoch > 0:
        raise TrainingError(f"fit: {name} is an iterator, which gives one pass only; give a list "
                            f"of batches, or a function returning a fresh iterator per epoch "
                            f"(lambda epoch: batches(x, y, 32, shuffle=True, rng=epoch))")
    return source


def _with_last(items: Iterator[Any]) -> Iterator[tuple[Any, bool]]:
    """``(item, is_last)`` pairs, looking one item ahead."""
    try:
        current = next(items)
    except StopIteration:
        return
    for following in items:
        yield current, False
        current = following
    yield current, True


def _to_device(x: Any, device: str) -> Any:
    if backend.is_array(x) or isinstance(x, numpy.ndarray):
        return backend.to_device(x, device)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device) for v in x)
    return x


def _batch_size(target: Any) -> int:
    while isinstance(target, (list, tuple)) and target:
        target = target[0]
    shape = getattr(target, "shape", None)
    return int(shape[0]) if shape else 1


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise TrainingError(f"fit: {name} must be {what}, got {value!r}")
    return int(value)


def fit(model: Any, criterion: Any, optimizer: Any, train: Any, epochs: int = 1,
        val: Any = None, callbacks: Sequence[Any] = (), progress: Any = True, *,
        metrics: Mapping[str, Callable[[Any, Any], float]] | None = None,
        evaluate: Callable[[Loop], Mapping[str, Any]] | None = None,
        forward_backward: Callable[[Any], Any] | None = None,
        eval_every: int = 0, max_steps: int = 0, resume: str | Path | None = None,
        config: Mapping[str, Any] | None = None, on_nonfinite: str = "raise",
        max_skips: int = 10, interrupt_path: str | Path | None = None, seed: int = 0,
        desc: str = "train", log_every: int = 0, print_every: int = 1,
        world: Any = None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs (Keras' ``model.fit``; Lua: the loop of
    char-rnn's ``train.lua`` around ``optim.adam(feval, params, config)``).

    Args:
        model: the module (a :class:`~nngraph_py.nn.gModule` or any :class:`Module`).
        criterion: a criterion (``forward(output, target)``, ``backward(output, target)``);
            unused with ``forward_backward``.
        optimizer: an :class:`~nngraph_py.optim.Optimizer` bound to ``model``.
        train: the training batches, ``(input, target)`` pairs: a list (or any re-iterable), or
            a function returning a fresh iterable per epoch, ``epoch -> batches`` or
            ``() -> batches``. For an exact resume the same epoch must give the same batches:
            draw the order from a generator seeded by the epoch
            (``lambda epoch: batches(x, y, 32, shuffle=True, rng=epoch)``).
        epochs: the epoch to stop after (counted from the start of the run, also when resumed).
        val: validation batches, as ``train``: their mean loss is ``val_loss`` (and each
            ``metrics`` function gives ``val_<name>``), computed in evaluation mode.
        callbacks: :class:`~nngraph_py.train.Callback` objects (checkpoints, early stopping...).
        progress: ``True``: a tqdm bar on a terminal, plain lines when the output is a file;
            ``"bar"``, ``"lines"``; ``False``: one line per evaluation only.
        metrics: ``{name: fn(output, target) -> float}`` averaged over ``val``.
        evaluate: ``loop -> {name: value}``: your own metrics at every evaluation.
        forward_backward: ``batch -> loss`` or ``(loss, samples)``: your own forward and backward
            for a batch (the gradient buffer is zeroed before; the optimizer step comes after).
        eval_every: evaluate every this many steps (0: at the end of every epoch).
        max_steps: stop after this many steps in all (0: no limit).
        resume: a checkpoint written by this loop: model, optimizer, position, generators and
            callback state are restored and training continues from the very next step.
        config: your settings (JSON values), stored in every checkpoint.
        on_nonfinite: ``"raise"`` (stop with :class:`NonFiniteError`) or ``"skip"`` (drop the
            step; :class:`NonFiniteError` after ``max_skips`` in a row).
        interrupt_path: where Ctrl-C saves when no :class:`ModelCheckpoint` is given.
        seed: reseeds CuPy's generator on resume (its state cannot be saved).
        desc: the progress label.
        log_every: steps between plain progress lines (0: about 20 over the run).
        print_every: print every this many evaluations' line (the last one always).
        world: the :class:`~nngraph_py.distributed.World` of a data-parallel run (default: the
            optimizer's, when it is a :class:`~nngraph_py.distributed.DistributedOptimizer`).
            With several processes, every process gives the same global batches; each trains
            on its shard of every batch (and validates on its shard of every ``val`` batch), the
            gradients are averaged before ``on_after_backward`` (so clipping sees the global
            batch's gradient) and the loss is the global batch's; a Ctrl-C on any process stops
            all at the same step. Only the root prints, writes checkpoints and runs callbacks
            marked ``root_only`` (the loggers). ``evaluate`` runs on every process.

    Returns:
        The run's :class:`~nngraph_py.train.History`.

    Raises:
        TrainingError: bad arguments (``epochs <= 0``, an empty epoch, an iterator for several
            epochs...).
        NonFiniteError: the loss or gradient became NaN/Inf (``on_nonfinite="raise"``).
        TrainingInterrupted: Ctrl-C, after saving a checkpoint.

    Example:
        >>> history = fit(model, nn.MSECriterion(), optim.Adam(model, lr=0.01),  # doctest: +SKIP
        ...               lambda epoch: batches(x, y, 32, shuffle=True, rng=epoch), epochs=20,
        ...               val=[(x_val, y_val)], callbacks=[ModelCheckpoint("runs/best.npz")])
        >>> history["val_loss"][-1]                                            # doctest: +SKIP
    """
    epochs = _check_count("epochs", epochs, 1)
    eval_every = _check_count("eval_every", eval_every, 0)
    max_steps = _check_count("max_steps", max_steps, 0)
    max_skips = _check_count("max_skips", max_skips, 1)
    print_every = _check_count("print_every", print_every, 1)
    if on_nonfinite not in ("raise", "skip"):
        raise TrainingError(f"fit: on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
    if forward_backward is None and criterion is None:
        raise TrainingError("fit: give a criterion, or your own forward_backward")
    callbacks = sorted(callbacks, key=lambda cb: getattr(cb, "order", 0))
    device = getattr(model, "device", "cpu")
    world = cast(Any, world if world is not None else getattr(optimizer, "world", None))
    parallel = world is not None and world.size > 1
    if parallel:
        from .. import distributed

        if not hasattr(optimizer, "average"):
            raise TrainingError(f"fit: a world of {world.size} processes needs the optimizer "
                                f"wrapped in nngraph_py.distributed.DistributedOptimizer, got "
                                f"{type(optimizer).__name__}")
        if not world.is_root:
            callbacks = [cb for cb in callbacks if not getattr(cb, "root_only", False)]
            progress = False

    state = TrainState()
    resumed_meta: dict[str, Any] = {}
    if resume is not None:
        state, resumed_meta = load_run(resume, model, optimizer, seed)
    loop = Loop(model, criterion, optimizer, state, epochs, max_steps, config or {}, callbacks)
    loop.resumed = resume is not None
    loop.world = world
    if resume is not None:
        loop.checkpoint, loop.checkpoint_step = str(resume), state.global_step
        saved = resumed_meta.get("callbacks", {})
        for key, cb in zip(_callback_keys(callbacks), callbacks):
            if key in saved and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(saved[key])

    def default_forward_backward(batch: Any) -> tuple[float, int]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TrainingError(f"fit: a batch must be an (input, target) pair, got "
                                f"{type(batch).__name__}"
                                + (f" of length {len(batch)}" if hasattr(batch, "__len__")
                                   else "") + "; or pass forward_backward=")
        x, y = _to_device(batch[0], device), _to_device(batch[1], device)
        out = model.forward(x)
        loss = criterion.forward(out, y)
        model.backward(x, criterion.backward(out, y))
        return float(loss), _batch_size(y)

    step_fn = forward_backward or default_forward_backward

    def validate() -> dict[str, Any]:
        model.evaluate()
        try:
            total, count = 0.0, 0
            sums = {name: 0.0 for name in (metrics or {})}
            for batch in _epoch_source(val, 0, "val"):
                if parallel:  # this process's shard; the sums are combined below
                    batch = distributed.shard_batch(batch, world)
                    if distributed.batch_length(batch) == 0:
                        continue
                x, y = _to_device(batch[0], device), _to_device(batch[1], device)
                out = model.forward(x)
                n = _batch_size(y)
                if criterion is not None:
                    total += float(criterion.forward(out, y)) * n
                for name, fn in (metrics or {}).items():
                    sums[name] += float(fn(out, y)) * n
                count += n
        finally:
            model.training()
        if parallel:
            total, count, *values = world.sum([total, count, *sums.values()])
            sums = dict(zip(sums, values))
        if not count:
            raise TrainingError("fit: val gave no batches")
        record = {"val_loss": total / count} if criterion is not None else {}
        record.update({f"val_{name}": value / count for name, value in sums.items()})
        return record

    last_eval_step = state.history[-1]["global_step"] if state.history else 0

    def run_eval() -> None:
        nonlocal last_eval_step
        per_epoch = loop.steps_per_epoch
        recent = [v for v in state.losses[last_eval_step:] if math.isfinite(v)]
        epoch: float | int = state.epoch
        if state.step and per_epoch:
            epoch = round(state.epoch + state.step / per_epoch, 3)
        record: dict[str, Any] = {
            "epoch": epoch,
            "global_step": state.global_step, "lr": float(optimizer.lr),
            "train_loss": float(numpy.mean(recent)) if recent else float("nan"),
            "elapsed_s": round(state.elapsed_s, 2)}
        if val is not None:
            record.update(validate())
        if evaluate is not None:
            record.update(evaluate(loop))
        state.history.append(record)
        last_eval_step = state.global_step
        loop.metrics = record
        shown = "  ".join(f"{k} {format_value(v)}" for k, v in record.items()
                          if k not in ("global_step", "elapsed_s"))
        if len(state.history) % print_every == 0 or loop.finished:
            loop.log(f"[{desc}] step {state.global_step}  {shown}")
        _call(callbacks, "on_evaluate", loop, record)

    total = None
    progress_bar = Progress(progress, total=None, initial=state.global_step, desc=desc,
                            log_every=log_every) if progress else None
    loop.progress = progress_bar

    def interrupted() -> None:
        path = None
        target = next((cb.path for cb in callbacks if hasattr(cb, "path")
                       and getattr(cb, "saves_on_interrupt", False)), interrupt_path)
        if target is not None:
            if loop.checkpoint_step == state.global_step and loop.checkpoint == str(target):
                path = str(target)  # already saved at this very step
            else:
                path = loop.save(target)
        _call(callbacks, "on_interrupt", loop)
        if progress_bar is not None:
            progress_bar.close()
        if loop.is_root:
            print(f"\ninterrupted at epoch {state.epoch + 1}, step {state.step} of it "
                  f"({state.global_step} steps): "
                  + (f"checkpoint saved to {path}; continue with resume={path}" if path
                     else "no checkpoint (give a ModelCheckpoint callback or interrupt_path)"),
                  file=sys.stderr)
        raise TrainingInterrupted(path, loop.history)

    def bad_values(what: str, detail: str) -> NonFiniteError:
        where = f"step {state.global_step + 1} (epoch {state.epoch + 1}, batch {state.step + 1})"
        kept = (f"the last checkpoint, {loop.checkpoint} (step {loop.checkpoint_step}), is kept "
                f"as it was" if loop.checkpoint else "no checkpoint was written")
        return NonFiniteError(f"training stopped: {detail} at {where}; {kept}. Try a lower "
                              f"learning rate or gradient clipping, or on_nonfinite='skip'",
                              step=state.global_step + 1, what=what, checkpoint=loop.checkpoint)

    _call(callbacks, "on_train_begin", loop)
    skipped_in_row = 0
    stop_agreed = False  # data-parallel: a Ctrl-C seen by any process, agreed at the last step

    def stop_requested(flag: _InterruptFlag) -> bool:
        return stop_agreed if parallel else flag.requested
    try:
        with _InterruptFlag() as flag:
            while not loop.finished:
                source = _epoch_source(train, state.epoch, "train")
                length = len(source) if hasattr(source, "__len__") else None  # type: ignore
                if length is not None:
                    loop.steps_per_epoch = length
                    if length == 0:
                        raise TrainingError(f"fit: train gave no batches for epoch "
                                            f"{state.epoch + 1}")
                if loop.steps_per_epoch and progress_bar is not None and total is None:
                    total = epochs * loop.steps_per_epoch
                    if max_steps:
                        total = min(total, max_steps)
                    progress_bar.total = total
                    if progress_bar._bar is not None:
                        progress_bar._bar.total = total
                        progress_bar._bar.refresh()
                if progress_bar is not None:
                    progress_bar.set_description(f"{desc} epoch {state.epoch + 1}/{epochs}")
                batches = itertools.islice(iter(source), state.step, None)
                any_batch = False
                _call(callbacks, "on_epoch_begin", loop)
                for batch, is_last in _with_last(batches):
                    any_batch = True
                    _call(callbacks, "on_step_begin", loop)
                    started = time.perf_counter()
                    optimizer.zero_grad()
                    loop.grad_norm = None
                    if parallel:
                        batch = distributed.shard_batch(batch, world)
                    result = step_fn(batch)
                    loss, samples = (result if isinstance(result, tuple)
                                     else (result, _batch_size(batch[1]) if isinstance(
                                         batch, (tuple, list)) and len(batch) == 2 else 1))
                    loss = float(loss)
                    if parallel:  # the global batch's gradient and loss, on every process
                        loss, samples, stop_agreed = distributed.sync_step(
                            optimizer, loss, int(samples), flag.requested)
                    loop.loss = loss
                    _call(callbacks, "on_after_backward", loop)
                    problem = None
                    if not math.isfinite(loss):
                        problem = ("loss", f"the loss is {loss}")
                    elif not _all_finite(optimizer.grads):
                        problem = ("gradient", f"{nonfinite_count(optimizer.grads):,} gradient "
                                               f"values are NaN or infinite")
                    if problem is not None:
                        if on_nonfinite == "raise" or skipped_in_row + 1 >= max_skips:
                            raise bad_values(*problem)
                        skipped_in_row += 1
                        state.skipped.append(state.global_step + 1)
                        optimizer.zero_grad()
                        loop.log(f"[{desc}] skipped step {state.global_step + 1}: "
                                 f"{problem[1]}")
                    else:
                        skipped_in_row = 0
                        optimizer.step()
                        if not _all_finite(optimizer.params):
                            raise bad_values("parameters", "the update made "
                                             f"{nonfinite_count(optimizer.params):,} parameter "
                                             f"values NaN or infinite")
                    seconds = time.perf_counter() - started
                    state.elapsed_s += seconds
                    state.step += 1
                    state.global_step += 1
                    state.losses.append(loss)
                    if is_last:
                        loop.steps_per_epoch = state.step
                        state.epoch += 1
                        state.step = 0
                    if progress_bar is not None:
                        progress_bar.update(loss, samples, seconds)
                    _call(callbacks, "on_step_end", loop)
                    ends = loop.finished
                    if (eval_every and state.global_step % eval_every == 0) or (
                            not eval_every and is_last) or ends:
                        run_eval()
                    if is_last:
                        _call(callbacks, "on_epoch_end", loop)
                    if stop_requested(flag):
                        interrupted()
                    if loop.finished:
                        break
                if not any_batch:
                    if state.step:
                        raise TrainingError(f"fit: epoch {state.epoch + 1} gave only "
                                            f"{state.step} batches now, but the run stopped "
                                            f"after batch {state.step} of it: the batches "
                                            f"differ from the saved run's")
                    raise TrainingError(f"fit: train gave no batches for epoch "
                                        f"{state.epoch + 1}")
                if stop_requested(flag):
                    interrupted()
        _call(callbacks, "on_train_end", loop)
    finally:
        if progress_bar is not None:
            progress_bar.close()
    return loop.history
