"""``python -m nngraph_py.inspect CHECKPOINT``: describe, draw and compare saved models.

Everything comes from the checkpoint file alone (its arrays and its JSON metadata), so no model
code is imported or run, and a file from an untrusted source is safe to inspect. The caller's own
metadata (a training run's losses, history, settings, random generator state) is summarised on a
few lines (:mod:`~nngraph_py.inspect.metadata`); ``--full-meta`` prints it whole.

Exit status: 0 on success (and, with ``--compare``, when no parameter differs), 1 when
``--compare`` finds differences (as ``diff`` and ``cmp``), 2 on errors (unreadable checkpoint,
Graphviz missing for ``--dot``, bad arguments).
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any, Sequence, TextIO

import numpy

from ..checkpoint import Checkpoint, CheckpointError, load_checkpoint
from ..graph.dot import GraphvizMissing
from .metadata import describe_meta
from .picture import save
from .stats import format_stats, stats
from .summary import format_count

__all__ = ["main", "build_parser", "compare", "describe"]


def build_parser() -> argparse.ArgumentParser:
    """The command line's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m nngraph_py.inspect",
        description="Print the summary and parameter statistics of a model saved with "
                    "nngraph_py.checkpoint.save_checkpoint; draw its graph; compare it with "
                    "another checkpoint. Reads the file only (no pickle, no code).",
        epilog="Exit status: 0 ok / no difference, 1 --compare found differences, 2 error.")
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="a .npz checkpoint")
    parser.add_argument("--dot", metavar="OUT",
                        help="draw the graph to OUT (.dot always; .svg/.png/.pdf need Graphviz)")
    parser.add_argument("--which", choices=("forward", "backward"), default="forward",
                        help="which graph --dot draws (default: forward)")
    parser.add_argument("--depth", type=int, default=None,
                        help="show nested modules down to this level (default: all)")
    parser.add_argument("--compare", metavar="OTHER",
                        help="list the parameters that differ from those in OTHER, and by how much")
    parser.add_argument("--tol", type=float, default=0.0,
                        help="with --compare: ignore differences up to this absolute value")
    parser.add_argument("--all", action="store_true",
                        help="with --compare: also list the identical parameters")
    parser.add_argument("--no-stats", action="store_true", help="do not print statistics")
    parser.add_argument("--full-meta", "--meta", action="store_true", dest="full_meta",
                        help="print the checkpoint's own metadata whole (default: long lists, "
                             "histories and random generator states are summarised)")
    parser.add_argument("--onnx", metavar="OUT",
                        help="export the model in CHECKPOINT (a Lua .t7 module or char-rnn "
                             "checkpoint) to the ONNX file OUT (nngraph_py.onnx)")
    parser.add_argument("--input-shape", action="append", default=[], metavar="SHAPE",
                        help="with --onnx: the shape of an input, e.g. 1,20 (once per input; "
                             "not needed for char-rnn checkpoints)")
    return parser


def describe(ck: Checkpoint, path: str, depth: int | None = None, with_stats: bool = True,
             out: TextIO = sys.stdout, full_meta: bool = False) -> None:
    """Print a checkpoint's header, model summary, statistics and optimizer state.

    Args:
        ck: the loaded checkpoint.
        path: its file name (for the header).
        depth: nesting depth of the summary table.
        with_stats: print parameter (and gradient) statistics.
        out: where to print.
        full_meta: print the caller's metadata whole; else long values are summarised
            (:func:`~nngraph_py.inspect.metadata.describe_meta`).
    """
    meta = ck.meta
    lib = meta.get("library", {})
    model = meta["model"]
    print(f"Checkpoint {path}", file=out)
    print(f"  format {meta['format']}, written {meta.get('created', '?')} by "
          f"{lib.get('name', '?')} {lib.get('version', '')}", file=out)
    print(f"  model {model['type']}, {model['dtype']}, saved from device {model['device']}",
          file=out)
    if meta.get("digest"):
        print(f"  data verified against its {meta['digest']} digests", file=out)
    else:
        print("  no digests (written by an older nngraph_py): data not verified", file=out)
    if ck.user:
        print("  meta:" if full_meta else "  meta (summarised; --full-meta prints it whole):",
              file=out)
        for line in describe_meta(ck.user, full=full_meta):
            print("    " + line, file=out)
    print(file=out)
    print(ck.summary().table(depth), file=out)
    if with_stats:
        print(file=out)
        print(format_stats(stats(ck.params), title="Parameter statistics"), file=out)
        if ck.grads:
            print(file=out)
            print(format_stats(stats(ck.grads, kind="grad"), title="Gradient statistics"),
                  file=out)
    state = ck.optimizer_state
    if state is not None:
        info = meta["optimizer"]
        print(file=out)
        print(f"Optimizer {info.get('type') or '(state dict)'}:", file=out)
        for key, value in info.get("scalars", {}).items():
            print(f"  {key} = {value!r}", file=out)
        for entry in info.get("arrays", []):
            print(f"  {entry['key']}: array {tuple(entry['shape'])} {entry['dtype']}", file=out)


def compare(a: Checkpoint, b: Checkpoint, tol: float = 0.0) -> list[dict]:
    """Parameter by parameter differences between two checkpoints.

    Args:
        a: the first checkpoint.
        b: the second.
        tol: absolute differences up to ``tol`` count as equal.

    Returns:
        One dict per parameter name (``a``'s order, then names only in ``b``): ``name``,
        ``status`` (``"same"``, ``"differs"``, ``"only in A"``, ``"only in B"``,
        ``"shape differs"``, ``"dtype differs"``), and for ``"same"``/``"differs"``: ``max_abs``
        (largest absolute difference) and ``rel`` (``||a - b|| / ||a||``).
    """
    pa, pb = a.params, b.params
    rows: list[dict[str, Any]] = []
    for name, x in pa.items():
        y = pb.get(name)
        if y is None:
            rows.append({"name": name, "status": "only in A"})
        elif x.shape != y.shape:
            rows.append({"name": name, "status": "shape differs",
                         "detail": f"{tuple(x.shape)} vs {tuple(y.shape)}"})
        elif x.dtype != y.dtype:
            rows.append({"name": name, "status": "dtype differs",
                         "detail": f"{x.dtype.name} vs {y.dtype.name}"})
        else:
            xa, ya = x.astype(numpy.float64), y.astype(numpy.float64)
            diff = numpy.where(numpy.isnan(xa) & numpy.isnan(ya), 0.0, xa - ya)
            max_abs = float(numpy.abs(diff).max()) if diff.size else 0.0
            norm_a = float(numpy.sqrt(numpy.nansum(xa * xa)))
            norm_d = float(numpy.sqrt((diff * diff).sum()))
            rel = norm_d / norm_a if norm_a > 0 else (float("inf") if norm_d > 0 else 0.0)
            differs = not (max_abs <= tol)  # NaN against a number differs
            rows.append({"name": name, "status": "differs" if differs else "same",
                         "max_abs": max_abs, "rel": rel})
    for name in pb:
        if name not in pa:
            rows.append({"name": name, "status": "only in B"})
    return rows


def _print_compare(rows: list[dict], path_a: str, path_b: str, out: TextIO,
                   show_all: bool = False) -> int:
    print(f"Comparing A = {path_a} with B = {path_b}", file=out)
    shown = [r for r in rows if show_all or r["status"] != "same"]
    n_diff = sum(1 for r in rows if r["status"] != "same")
    if shown:
        width = max([len("parameter")] + [len(r["name"]) for r in shown])
        rule = "-" * (width + 41)
        print(f"{'parameter'.ljust(width)}  {'status':<13}  {'max |A-B|':>10}  "
              f"{'|A-B|/|A|':>10}", file=out)
        print(rule, file=out)
        for r in shown:
            if "max_abs" in r:
                nums = f"{r['max_abs']:>10.4g}  {r['rel']:>10.4g}"
            else:
                nums = r.get("detail", "")
            print(f"{r['name'].ljust(width)}  {r['status']:<13}  {nums}".rstrip(), file=out)
        print(rule, file=out)
    same = len(rows) - n_diff
    if n_diff:
        print(f"{n_diff} of {len(rows)} parameters differ"
              + (f"; {same} identical not listed (--all lists them)" if same and not show_all
                 else ""), file=out)
    else:
        print(f"all {format_count(len(rows))} parameters are identical", file=out)
    return 1 if n_diff else 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        out: standard output (for tests).
        err: standard error.

    Returns:
        The exit status (see the module docstring).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    if args.onnx:  # export instead of describing (helper I's nngraph_py/onnx/cli.py)
        from ..onnx.cli import run as export_onnx

        return export_onnx(args.checkpoint, args.onnx, args.input_shape, out, err)
    # Everything is rendered first, so a malformed file gives one error line and no partial
    # output, and a closed pipe (| head) is met only once, at the end.
    text = io.StringIO()
    status = 0
    try:
        ck = load_checkpoint(args.checkpoint)
        other = load_checkpoint(args.compare) if args.compare else None
        describe(ck, args.checkpoint, depth=args.depth, with_stats=not args.no_stats, out=text,
                 full_meta=args.full_meta)
        if args.dot:
            try:
                written = save(ck.summary(), args.dot, which=args.which, depth=args.depth)
                print(f"\nGraph ({args.which}) written to {written}", file=text)
            except GraphvizMissing as exc:
                _error(err, str(exc))
                status = 2
        if other is not None:
            print(file=text)
            status = status or _print_compare(compare(ck, other, args.tol), args.checkpoint, args.compare,
                                    text, show_all=args.all)
    except CheckpointError as exc:
        return _error(err, str(exc))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        # The metadata passed the reader's checks but not the summary's (a hand-edited file).
        return _error(err, f"cannot describe checkpoint {args.checkpoint}: its metadata is "
                           f"malformed ({type(exc).__name__}: {exc})")
    try:
        out.write(text.getvalue())
        out.flush()
    except BrokenPipeError:
        # The reader went away (| head): not an error of ours. Point stdout at /dev/null so the
        # interpreter's final flush does not print a traceback either.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass
    return status


def _error(err: TextIO, message: str) -> int:
    """Print ``error: message`` on one line; the exit status of an error."""
    print("error: " + " ".join(message.split()), file=err)
    return 2
