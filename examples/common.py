"""Plumbing shared by the example scripts, so that each script reads as its model and its data.

What lives here, in the order a script uses it:

* :func:`make_parser` - the flags every example has: ``--device``, ``--seed``, ``--out``,
  ``--resume``, ``--no-progress``; :func:`finish_args` lets ``--resume`` restore the saved run's
  settings (flags given on the command line win).
* :func:`select_device` - the one place that decides between NumPy and CuPy, and says clearly why
  ``--device cuda`` cannot be used when it cannot.
* :class:`RunState`, :func:`save_run`, :func:`resume_run` - a checkpoint holds the model, the
  optimizer's buffers, where training stopped (epoch, step) and the random generators.
* :func:`fit` - the training loop: a tqdm bar with the loss and samples/s, a checkpoint after every
  epoch, and Ctrl-C saving a checkpoint before exiting with status 130.
* :func:`summary_line`, :func:`write_json`, :func:`new_figure` - results: one final line, a
  metrics file and PNG plots (matplotlib with the Agg backend: no display needed).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

# The examples run as scripts (``python examples/mnist_lstm.py``): make the repository's packages
# importable from a checkout even without ``pip install -e .``.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

import numpy as np  # noqa: E402

from nngraph_py import backend  # noqa: E402
from nngraph_py.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

__all__ = [
    "REPO_ROOT", "make_parser", "finish_args", "select_device", "RunState", "save_run",
    "resume_run", "checkpoint_meta", "lr_schedule", "fit", "summary_line",
    "write_json", "new_figure", "save_figure", "smooth",
]

#: Exit status of a run stopped by Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------
def make_parser(name: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the flags every example shares.

    Args:
        name: the example's name; outputs go to ``runs/<name>/`` by default.
        description: the ``--help`` text (the script's docstring).

    Returns:
        The parser; the script adds its own flags.
    """
    parser = argparse.ArgumentParser(
        prog=f"{name}.py", description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_argument_group("run")
    group.add_argument("--device", choices=("cpu", "cuda", "strict"), default="cpu",
                       help="cpu (NumPy), cuda (CuPy on a GPU), or strict (NumPy behind a "
                            "wrapper that fails on any call a GPU array would refuse: checks "
                            "GPU readiness on a CPU) (default: %(default)s)")
    group.add_argument("--seed", type=int, default=1,
                       help="seed of every random generator (default: %(default)s)")
    group.add_argument("--out", type=Path, default=None,
                       help=f"output directory: checkpoint, plots, metrics "
                            f"(default: runs/{name}/...)")
    group.add_argument("--resume", type=Path, default=None, metavar="CHECKPOINT",
                       help="continue the run saved in CHECKPOINT (its settings are restored; "
                            "flags given here override them, e.g. a larger --epochs)")
    group.add_argument("--no-progress", action="store_true",
                       help="no progress bar: only a line per evaluation")
    return parser


#: Flags that describe the session, not the run: never restored from a checkpoint.
_SESSION_FLAGS = ("resume", "device", "no_progress", "out")


def _explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """The destinations of the flags actually written on the command line."""
    quiet = copy.deepcopy(parser)
    for action in quiet._actions:  # argparse has no public way to suppress every default
        action.default = argparse.SUPPRESS
        action.required = False
    return set(vars(quiet.parse_known_args(argv)[0]))


def finish_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                args: argparse.Namespace) -> argparse.Namespace:
    """With ``--resume``, take the run's settings from the checkpoint; flags given now win.

    So ``--resume runs/x/checkpoint.npz`` alone continues the same run, and
    ``--resume runs/x/checkpoint.npz --epochs 10`` extends it.
    """
    if args.resume is None:
        return args
    saved = checkpoint_meta(args.resume).get("config", {})
    given = _explicit_flags(parser, argv)
    path_flags = {a.dest for a in parser._actions if a.type is Path}
    for key, value in saved.items():
        if key in given or key in _SESSION_FLAGS or not hasattr(args, key):
            continue
        setattr(args, key, Path(value) if key in path_flags and value is not None else value)
    if "out" not in given:  # keep writing next to the checkpoint being resumed
        args.out = Path(args.resume).parent
    return args


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings as JSON values (paths as strings), to store in checkpoints and metrics."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


# ------------------------------------------------------------------------------------------------
# Device
# ------------------------------------------------------------------------------------------------
def select_device(name: str) -> str:
    """Check that ``name`` can be used and say which array library runs the example.

    Args:
        name: ``"cpu"``, ``"cuda"`` or ``"strict"``.

    Returns:
        ``name``.

    Raises:
        SystemExit: for ``"cuda"`` without CuPy or a GPU, with the reason and the fix.
    """
    if name == "cuda":
        if not backend.cuda_available():
            raise SystemExit(f"error: --device cuda is not available here: "
                             f"{backend.cuda_unavailable_reason()}. Run on the CPU with "
                             f"--device cpu (the default).")
        import cupy  # noqa: F401 - present: cuda_available() imported it

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"device: cuda (CuPy {cupy.__version__}, {gpu})")
    elif name == "strict":
        print("device: strict (NumPy behind nngraph_py's strict array wrapper)")
    else:
        print(f"device: cpu (NumPy {np.__version__}, {os.cpu_count()} cores)")
    return name


def default_out(name: str, *parts: str) -> Path:
    """``runs/<name>/<part>-<part>...`` under the current directory."""
    return Path("runs") / name / "-".join(p for p in parts if p) if parts else Path("runs") / name


# ------------------------------------------------------------------------------------------------
# Run state and checkpoints
# ------------------------------------------------------------------------------------------------
@dataclass
class RunState:
    """Where a training run is: what a checkpoint needs besides the model and the optimizer.

    Attributes:
        epoch: epochs completed.
        step: batches completed in the current (unfinished) epoch.
        global_step: optimizer steps taken since the start of the run.
        elapsed_s: training time so far, summed over resumed sessions.
        losses: the training loss of every step.
        history: one dict per evaluation (``epoch``, ``step``, the example's metrics).
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    elapsed_s: float = 0.0
    losses: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


def _rng_state() -> dict[str, Any]:
    """NumPy's global generator (dropout masks draw from it on the CPU) as JSON values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached)}


def _set_rng_state(saved: dict[str, Any], seed: int, global_step: int) -> None:
    np.random.set_state((saved["name"], np.asarray(saved["keys"], dtype=np.uint32), saved["pos"],
                         saved["has_gauss"], saved["cached_gaussian"]))
    if backend.cuda_available():
        # CuPy's generator state cannot be read back; continue from a seed that depends on the
        # step, so a resumed run is reproducible (though not bit-identical to an unbroken one).
        import cupy

        cupy.random.seed((seed * 1_000_003 + global_step) % (2 ** 32))


def save_run(path: Path, model: Any, optimizer: Any, state: RunState,
             config: dict[str, Any]) -> Path:
    """Save model, optimizer state, run state, settings and random generators to ``path``.

    Args:
        path: the checkpoint file (``.npz``; its directory is created).
        model: the module whose parameters are saved.
        optimizer: an :class:`~nngraph_py.optim.Optimizer` (its ``state_dict`` is saved).
        state: where the run is.
        config: the run's settings (:func:`config_of`), restored by ``--resume``.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"run": asdict(state), "config": config, "rng": _rng_state()}
    save_checkpoint(str(path), model, optimizer.state_dict(), meta)
    return path


def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint saved by :func:`save_run`, without loading the model."""
    if not Path(path).is_file():
        raise SystemExit(f"error: --resume {path}: no such checkpoint file")
    return _meta_of(load_checkpoint(str(path)))


def _meta_of(loaded: Any) -> dict[str, Any]:
    return loaded.user  # the ``meta`` given to save_checkpoint


def resume_run(path: Path, model: Any, optimizer: Any, seed: int) -> RunState:
    """Load a checkpoint of :func:`save_run` into ``model`` and ``optimizer``; restore the RNG.

    Returns:
        The :class:`RunState` to continue from.
    """
    meta = _meta_of(load_checkpoint(str(path), model=model, optimizer=optimizer))
    state = RunState(**meta["run"])
    if "rng" in meta:
        _set_rng_state(meta["rng"], seed, state.global_step)
    print(f"resumed {path}: epoch {state.epoch}, step {state.step} of it "
          f"({state.global_step} steps, {state.elapsed_s:.0f} s of training so far)")
    return state


# ------------------------------------------------------------------------------------------------
# The training loop
# ------------------------------------------------------------------------------------------------
def lr_schedule(optimizer: Any, kind: str, base_lr: float, total_steps: int,
                min_lr: float = 0.0, step_size: int = 0,
                gamma: float = 1.0) -> Callable[[int], float]:
    """A ``global_step -> lr`` function for :func:`fit` that also sets ``optimizer.lr``.

    The rate is a pure function of the step, so a resumed run follows the same schedule.

    Args:
        optimizer: an :class:`~nngraph_py.optim.Optimizer`.
        kind: ``"none"`` (constant ``base_lr``), ``"cosine"`` (half a cosine to ``min_lr`` at
            ``total_steps``) or ``"step"`` (times ``gamma`` every ``step_size`` steps).
        base_lr: the rate at step 0.
        total_steps: the length of the run in steps (for ``"cosine"``).
    """
    from nngraph_py import optim

    def set_lr(step: int) -> float:
        if kind == "cosine":
            lr = optim.cosine_decay(base_lr, step, max(total_steps, 1), min_lr)
        elif kind == "step":
            lr = optim.step_decay(base_lr, step, max(step_size, 1), gamma)
        elif kind == "none":
            lr = base_lr
        else:
            raise ValueError(f"unknown schedule {kind!r}: use none, cosine or step")
        optimizer.lr = lr
        return lr

    return set_lr


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


def fit(*, state: RunState, epochs: int, epoch_batches: Callable[[int], Sequence[Any]],
        train_step: Callable[[Any], tuple[float, int]], save: Callable[[RunState], Path],
        evaluate: Callable[[RunState], dict[str, Any]] | None = None,
        set_lr: Callable[[int], float] | None = None, eval_every: int = 0,
        max_steps: int = 0, print_every: int = 1, progress: bool = True,
        desc: str = "train") -> RunState:
    """Train from ``state`` until ``epochs`` epochs (or ``max_steps`` steps) are done.

    Every epoch ends with ``evaluate`` and a checkpoint. Ctrl-C saves a checkpoint after the
    current step and exits with status 130; ``--resume`` then continues from that very step
    (``epoch_batches`` must give the same batches for the same epoch: draw the order from a
    generator seeded with the epoch).

    Args:
        state: where to start (a fresh :class:`RunState`, or one from :func:`resume_run`).
        epochs: the epoch to stop after.
        epoch_batches: ``epoch -> batches`` (the same number every epoch); each batch is handed
            to ``train_step``.
        train_step: ``batch -> (loss, samples in the batch)``; it runs forward, backward and
            the optimizer step.
        save: ``state -> checkpoint path``; called after every epoch, on Ctrl-C and at the end.
        evaluate: ``state -> metrics`` (a dict of numbers), recorded in ``state.history``.
        set_lr: ``global_step -> lr``, called before every step (a schedule); its value is
            recorded with the metrics.
        eval_every: evaluate (and save) every this many steps instead of at epoch ends.
        max_steps: stop after this many steps in all (0: no limit).
        print_every: print every this many evaluations (the last one always).
        progress: show a tqdm bar; otherwise only the evaluation lines.
        desc: the bar's label.

    Returns:
        ``state``, updated.
    """
    from tqdm.auto import tqdm

    per_epoch = len(epoch_batches(state.epoch))
    total = epochs * per_epoch if not max_steps else min(epochs * per_epoch, max_steps)
    bar = tqdm(total=total, initial=min(state.global_step, total), disable=not progress,
               unit="step", dynamic_ncols=True)
    lr = float("nan")
    evaluations = 0

    def run_eval(last: bool) -> None:
        nonlocal evaluations
        metrics = evaluate(state) if evaluate is not None else {}
        record = {"epoch": round(state.epoch + state.step / per_epoch, 3),
                  "global_step": state.global_step, **({"lr": lr} if set_lr else {}),
                  "elapsed_s": round(state.elapsed_s, 2), **metrics}
        state.history.append(record)
        evaluations += 1
        if last or evaluations % print_every == 0:
            shown = "  ".join(f"{k} {_fmt(v)}" for k, v in record.items() if k != "global_step")
            (tqdm.write if progress else print)(f"[{desc}] {shown}")

    def interrupted() -> None:
        bar.close()
        path = save(state)
        print(f"\ninterrupted at epoch {state.epoch + 1}, step {state.step}: checkpoint saved "
              f"to {path}\ncontinue with: --resume {path}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED)

    def finished() -> bool:
        return state.epoch >= epochs or bool(max_steps and state.global_step >= max_steps)

    smooth_loss = rate = None
    with _InterruptFlag() as flag:
        while not finished():
            batches = epoch_batches(state.epoch)
            bar.set_description(f"{desc} epoch {state.epoch + 1}/{epochs}")
            for batch in batches[state.step:]:
                if set_lr is not None:
                    lr = set_lr(state.global_step)
                started = time.perf_counter()
                loss, samples = train_step(batch)
                seconds = time.perf_counter() - started
                state.elapsed_s += seconds
                state.step += 1
                state.global_step += 1
                state.losses.append(float(loss))
                if not math.isfinite(loss):
                    bar.close()
                    raise SystemExit(f"error: the loss is {loss} at step {state.global_step} "
                                     f"(the last checkpoint is kept as it was); try a smaller "
                                     f"--lr or gradient clipping (--clip)")
                smooth_loss = loss if smooth_loss is None else 0.95 * smooth_loss + 0.05 * loss
                speed = samples / max(seconds, 1e-9)
                rate = speed if rate is None else 0.9 * rate + 0.1 * speed
                bar.set_postfix({"loss": f"{smooth_loss:.4f}", "samples/s": f"{rate:,.0f}"},
                                refresh=False)
                bar.update(1)
                if flag.requested:
                    interrupted()
                if state.step == len(batches):  # the epoch is complete
                    state.epoch += 1
                    state.step = 0
                if eval_every and state.global_step % eval_every == 0 or (
                        not eval_every and state.step == 0) or finished():
                    run_eval(last=finished())
                    save(state)
                if finished():
                    break
            if flag.requested:
                interrupted()
    bar.close()
    return state


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
def summary_line(name: str, **fields: Any) -> str:
    """Print and return the run's final line: ``RESULT <name>: key value, ...``."""
    line = f"RESULT {name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in fields.items())
    print(line)
    return line


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (NumPy numbers converted), creating the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def plain(value: Any) -> Any:
        if isinstance(value, (np.integer,)):
            return int(value)
        if isinstance(value, (np.floating,)):
            return float(value)
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    path.write_text(json.dumps(data, indent=1, default=plain) + "\n")
    return path


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Any, Any]:
    """A matplotlib figure drawn off-screen (Agg backend) and its axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0] if ncols > 1 else axes[0, 0]


def save_figure(fig: Any, path: Path) -> Path:
    """Save a figure as PNG and free it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def smooth(values: Sequence[float], weight: float | None = None) -> np.ndarray:
    """Exponential moving average of a noisy curve (bias-corrected, as TensorBoard's).

    Args:
        values: the curve.
        weight: the EMA's decay; by default it spans about a thirtieth of the curve.
    """
    if weight is None:
        weight = min(0.99, max(0.0, 1.0 - 30.0 / max(len(values), 1)))
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * float(v)
        out.append(avg / (1 - weight ** i))
    return np.asarray(out)
