"""Plumbing shared by the example scripts, so that each script reads as its model and its data.

What lives here, in the order a script uses it:

* :func:`make_parser` - the flags every example has: ``--device``, ``--seed``, ``--out``,
  ``--resume``, ``--no-progress``; :func:`finish_args` lets ``--resume`` restore the saved run's
  settings (flags given on the command line win, except the architecture's: those are refused
  when they differ from the checkpoint's, naming the flag).
* :func:`select_device` - the one place that decides between NumPy and CuPy, and says clearly why
  ``--device cuda`` cannot be used when it cannot.
* :func:`positive_int` and friends - argument types that refuse careless values (``--batch-size
  0``, ``--limit-train -5``) with a message naming the flag.
* :func:`run_fit` - :func:`nngraph_py.train.fit` (the library's loop: progress, checkpoints,
  resume, Ctrl-C) with a command line's exits: status 130 after Ctrl-C, a message on NaN.
* :func:`summary_line`, :func:`write_json`, :func:`new_figure` - results: one final line, a
  metrics file and PNG plots (matplotlib with the Agg backend: no display needed).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

# The examples run as scripts (``python examples/mnist_lstm.py``): make the repository's packages
# importable from a checkout even without ``pip install -e .``.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

import numpy as np  # noqa: E402

from nngraph_py import backend, train  # noqa: E402
from nngraph_py.checkpoint import CheckpointError  # noqa: E402
from nngraph_py.train import History  # noqa: E402

__all__ = [
    "REPO_ROOT", "make_parser", "finish_args", "select_device", "checkpoint_meta", "run_fit",
    "positive_int", "nonnegative_int", "positive_float", "nonnegative_float", "fraction",
    "summary_line", "write_json", "new_figure", "save_figure", "smooth",
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
                args: argparse.Namespace,
                architecture: Sequence[str] = ()) -> argparse.Namespace:
    """With ``--resume``, take the run's settings from the checkpoint; flags given now win.

    So ``--resume runs/x/checkpoint.npz`` alone continues the same run, and
    ``--resume runs/x/checkpoint.npz --epochs 10`` extends it. The flags in ``architecture``
    (``"hidden"``, ``"layers"``...) shape the model: one given with a value other than the
    checkpoint's is refused, naming the flag, since the saved weights cannot fit another model.
    """
    if args.resume is None:
        return args
    saved = checkpoint_meta(args.resume).get("config", {})
    given = _explicit_flags(parser, argv)
    flags = {a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings}
    for key in architecture:
        if key in given and key in saved and getattr(args, key) != saved[key]:
            raise SystemExit(f"error: {flags.get(key, key)} {getattr(args, key)} differs from "
                             f"the checkpoint's {saved[key]!r} ({args.resume}): the architecture "
                             f"cannot change when resuming; drop {flags.get(key, key)}, or start "
                             f"a new run (without --resume)")
    path_flags = {a.dest for a in parser._actions if a.type is Path}
    for key, value in saved.items():
        if key in given or key in _SESSION_FLAGS or not hasattr(args, key):
            continue
        setattr(args, key, Path(value) if key in path_flags and value is not None else value)
    if "out" not in given:  # keep writing next to the checkpoint being resumed
        args.out = Path(args.resume).parent
    return args


def _number(kind: type, test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


#: argparse types that refuse careless values: ``--batch-size 0``, ``--limit-train -5``, a NaN rate.
positive_int = _number(int, lambda v: v >= 1, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
nonnegative_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


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
# Training: nngraph_py.train.fit, with the command line's exits
# ------------------------------------------------------------------------------------------------
def checkpoint_meta(path: Path) -> dict[str, Any]:
    """The metadata of a checkpoint written by :func:`nngraph_py.train.fit` (``"run"``,
    ``"config"``), without loading the model; a missing or unreadable file ends the program."""
    if not Path(path).is_file():
        raise SystemExit(f"error: --resume {path}: no such checkpoint file")
    try:
        return train.run_meta(path)
    except CheckpointError as exc:
        raise SystemExit(f"error: --resume {path}: {exc}") from exc


def run_fit(model: Any, criterion: Any, optimizer: Any, batches: Any, **kwargs: Any) -> History:
    """:func:`nngraph_py.train.fit`, with a command line's endings: Ctrl-C (after the checkpoint)
    exits with status 130 and the command that continues; a NaN or infinite loss exits with the
    library's message (the step, the checkpoint kept) and status 1."""
    try:
        return train.fit(model, criterion, optimizer, batches, **kwargs)
    except CheckpointError as exc:
        raise SystemExit(f"error: --resume: {exc}") from None
    except train.TrainingInterrupted as exc:
        if exc.checkpoint:
            print(f"continue with: --resume {exc.checkpoint}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except train.NonFiniteError as exc:
        raise SystemExit(f"error: {exc}") from None


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
