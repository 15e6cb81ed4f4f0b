"""The nngraph tutorial, and the answer to its reader: how to print a model's parameters.

The tutorial ("LSTM details", the reference) builds nngraph's first example, the mlp

    z = x1 + x2 * Linear(20, 10)(x3)

checks ``mlp:forward({h1, h2, h3})`` against the formula, and reads the weights with
``mlp:parameters()``. A reader could not print them, and fed inputs of the wrong sizes. This
script does what the reader wanted:

1. builds the mlp and runs the tutorial's forward check, printed as PASS / FAIL;
2. prints every parameter by name with its values (``named_parameters``), then the summary table;
3. runs the reader's inputs and shows the error the library gives for them;
4. draws the forward and backward graphs (``.dot`` always, ``.svg`` when Graphviz is installed);
5. saves a checkpoint, loads it into a fresh mlp and checks the forward again.

Usage:
    python examples/nngraph_tutorial.py [--out runs/tutorial] [--seed 0]

Then ``python -m nngraph_py.inspect runs/tutorial/mlp.npz`` describes the saved model. Exits with
status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy

try:
    import nngraph_py  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`: use the repository's copy
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nngraph_py import backend, nn  # noqa: E402
from nngraph_py.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from nngraph_py.errors import NNGraphError  # noqa: E402
from nngraph_py.inspect import GraphvizMissing, graphviz_available, save, summary  # noqa: E402

INPUT_SHAPES = [(10,), (10,), (20,)]


def build_mlp() -> nn.gModule:
    """The tutorial's module (Lua)::

        x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
        L = nn.CAddTable()({x1, nn.CMulTable()({x2, nn.Linear(20, 10)(x3)})})
        mlp = nn.gModule({x1, x2, x3}, {L})
    """
    x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    z = nn.CAddTable()([x1, nn.CMulTable()([x2, nn.Linear(20, 10)(x3)])])
    return nn.gModule([x1, x2, x3], [z])


def tutorial_inputs() -> list[numpy.ndarray]:
    """The tutorial's inputs (Lua)::

        h1 = torch.Tensor{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
        h2 = torch.Tensor(10):fill(1)
        h3 = torch.Tensor(20):fill(2)

    (The blog's copy lost the ``h1`` line; these are the values of nngraph's README.)
    """
    return [numpy.arange(1, 11, dtype="float32"), numpy.ones(10, "float32"),
            numpy.full(20, 2, "float32")]


def forward_check(mlp: nn.gModule, inputs: list[numpy.ndarray], tol: float = 1e-5) -> bool:
    """``b = mlp:forward({h1, h2, h3})`` against ``torch.cmul(h2, weight * h3 + bias) + h1``."""
    h1, h2, h3 = inputs
    b = backend.to_numpy(mlp.forward(inputs))
    # Lua's mlp:parameters() returns {weight, bias}, {gradWeight, gradBias}: the reader's
    # mlp:parameters()[1] is the weight. Here parameters() returns the same two lists.
    weight, bias = (backend.to_numpy(p) for p in mlp.parameters()[0])
    result = h2 * (weight @ h3 + bias) + h1
    err = float(numpy.abs(b - result).max())
    ok = err <= tol
    print(f"b      = {numpy.array2string(b, precision=4)}")
    print(f"result = {numpy.array2string(result, precision=4)}")
    print(f"forward check: max |b - result| = {err:.2e} -> {'PASS' if ok else 'FAIL'}")
    return ok


def print_parameters(mlp: nn.gModule) -> None:
    """What the reader asked for: every parameter, by name, with its values."""
    with numpy.printoptions(precision=4, suppress=True, linewidth=110):
        for name, p in mlp.named_parameters():
            print(f"{name}  shape {tuple(p.shape)}  {p.dtype}")
            print(backend.to_numpy(p))
    print()
    summary(mlp, INPUT_SHAPES)


def show_reader_error(mlp: nn.gModule) -> bool:
    """The reader's ``h1 = {1,2,3}, h2 = {1,1,1}, h3 = {1..10}``: sizes the mlp does not take."""
    reader = [numpy.array([1, 2, 3], "float32"), numpy.ones(3, "float32"),
              numpy.arange(1, 11, dtype="float32")]
    try:
        mlp.forward(reader)
    except NNGraphError as exc:
        print(f"{type(exc).__name__}: {exc}")
        print(f"(the mlp takes inputs of shapes {INPUT_SHAPES}, or with a batch dimension first)")
        return True
    print("the reader's inputs were accepted: expected a shape error")
    return False


def draw(mlp: nn.gModule, out: str) -> list[str]:
    """The forward and backward graphs: ``.dot`` always, ``.svg`` when Graphviz is installed."""
    written = []
    for which in ("forward", "backward"):
        base = os.path.join(out, f"mlp_{which}")
        written.append(save(mlp, base + ".dot", INPUT_SHAPES, which=which))
        if graphviz_available():
            try:
                written.append(save(mlp, base + ".svg", INPUT_SHAPES, which=which))
            except (GraphvizMissing, RuntimeError) as exc:
                print(f"(no SVG: {exc})")
    if not graphviz_available():
        print("(Graphviz is not installed: only .dot files were written; "
              "apt-get install graphviz / brew install graphviz to get SVGs)")
    return written


def checkpoint_round_trip(mlp: nn.gModule, out: str) -> bool:
    """Save, load into a fresh mlp, and check both give the same output."""
    path = save_checkpoint(os.path.join(out, "mlp.npz"), mlp, meta={"example": "nngraph_tutorial"},
                           input_shapes=INPUT_SHAPES)
    fresh = build_mlp()
    load_checkpoint(path, model=fresh)
    inputs = tutorial_inputs()
    same = numpy.array_equal(backend.to_numpy(mlp.forward(inputs)),
                             backend.to_numpy(fresh.forward(inputs)))
    print(f"checkpoint {path}: reloaded into a fresh mlp -> {'PASS' if same else 'FAIL'}")
    print(f"  inspect it with: python -m nngraph_py.inspect {path}")
    return same


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tutorial; returns 0 when every check passes, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("runs", "tutorial"),
                        help="directory for the pictures and the checkpoint (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the Linear's weights")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    backend.manual_seed(args.seed)

    mlp = build_mlp()
    print("== 1. the tutorial's forward check")
    ok = forward_check(mlp, tutorial_inputs())
    print("\n== 2. the parameters, by name (what the reader wanted)")
    print_parameters(mlp)
    print("\n== 3. the reader's inputs")
    ok = show_reader_error(mlp) and ok
    print("\n== 4. pictures")
    for path in draw(mlp, args.out):
        print(f"wrote {path}")
    print("\n== 5. checkpoint")
    ok = checkpoint_round_trip(mlp, args.out) and ok
    print(f"\n{'ALL CHECKS PASSED' if ok else 'SOME CHECK FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
