"""Variable-length sequences with ``lengths``: MNIST digits cut to a random number of rows.

Each training and test image keeps only its top ``L`` rows, ``L`` drawn uniformly in
[--min-rows, 28]; the rest is padding (zeros). The batch is one ``(batch, 28, 28)`` array and the
lengths go to the recurrent layer (``set_lengths``, the way to give them to a layer inside a
graph), with PyTorch's packed-sequence semantics: ``h_n`` is each image's state after its own
last row, padded steps neither change the state nor receive gradient.

    rows (batch, 28, 28) + lengths (batch,) -> GRU(28 -> 64) -> h_n -> Linear(64 -> 10)

``--no-lengths`` trains the same model on the same padded arrays without lengths (the state runs
on through the padding), ``--pad noise`` fills the padding with random pixels instead of zeros
(padding that looks like data), ``--bidirectional`` adds the reverse direction (which then
starts at each image's last valid row).

Examples:
  python examples/variable_length.py
  python examples/variable_length.py --no-lengths
  python examples/variable_length.py --pad noise               # and with --no-lengths
  python examples/variable_length.py --bidirectional --cell lstm
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from row_classifier import (accuracy, add_model_arguments, add_training_arguments, build,
                            seed_and_load, train)


def truncate(images: np.ndarray, min_rows: int, seed: int,
             pad: str = "zeros") -> tuple[np.ndarray, np.ndarray]:
    """Keep each image's top ``L`` rows (``L`` uniform in [min_rows, 28]); below them zeros, or
    with ``pad="noise"`` uniform random pixels (padding that looks like data)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_rows, 29, size=len(images))
    keep = (np.arange(28)[None, :] < lengths[:, None])[:, :, None]
    filler = (rng.random(images.shape, dtype=np.float32) if pad == "noise"
              else np.zeros_like(images))
    return np.where(keep, images, filler).astype(images.dtype), lengths


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--no-lengths", action="store_true",
                        help="run over the padding as if it were data (the baseline)")
    parser.add_argument("--min-rows", type=int, default=8)
    parser.add_argument("--pad", choices=("zeros", "noise"), default="zeros",
                        help="what fills the rows past each length (default: %(default)s)")
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.min_rows <= 28:
        parser.error(f"--min-rows must lie in [1, 28], got {args.min_rows}")
    data = seed_and_load(args)
    train_x, train_y = data.train_images, data.train_labels
    if args.limit_train:
        train_x, train_y = train_x[:args.limit_train], train_y[:args.limit_train]
    train_x, train_len = truncate(train_x, args.min_rows, args.seed, args.pad)
    test_x, test_len = truncate(data.test_images, args.min_rows, args.seed + 1, args.pad)
    test_y = data.test_labels
    if args.limit_test:
        test_x, test_len, test_y = (a[:args.limit_test] for a in (test_x, test_len, test_y))
    use = not args.no_lengths
    model, recurrent = build(args.cell, args.hidden, args.layers, args.bidirectional)
    model = model.to(args.device)
    print(model)
    print(f"{model.num_parameters():,} parameters; rows kept per image: {args.min_rows}..28 "
          f"(mean {train_len.mean():.1f}), padded with {args.pad}; lengths "
          f"{'given' if use else 'NOT given'}")
    run = train(model, recurrent, train_x, train_y, train_len if use else None,
                batch_size=args.batch_size, lr=args.lr, epochs=args.epochs,
                max_batches=args.max_batches, seed=args.seed, device=args.device)
    acc = accuracy(model, recurrent, test_x, test_y, test_len if use else None, args.device)
    print(f"variable_length: {args.cell}{' bidirectional' if args.bidirectional else ''} hidden "
          f"{args.hidden}, {args.pad} padding, lengths {'given' if use else 'not given'}, "
          f"{run['steps']} steps of "
          f"{args.batch_size}: test accuracy {acc:.2f} % of {len(test_x)} truncated digits "
          f"(train {run['train_time_s']:.0f} s, last 50 steps' loss "
          f"{np.mean(run['losses'][-50:]):.4f})")
    return {"test_accuracy": acc, **run}


if __name__ == "__main__":
    main(sys.argv[1:])
