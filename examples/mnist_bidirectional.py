"""MNIST read row by row by a bidirectional recurrent layer (PyTorch: ``nn.GRU(...,
bidirectional=True)``): one cell reads the rows top to bottom, a second bottom to top, and the
classifier sees both final states.

    rows (batch, 28, 28) -> GRU(28 -> 64, bidirectional) -> [h_forward, h_backward] (batch, 128)
                         -> Linear(128 -> 10) -> CrossEntropyCriterion

One epoch by default (600 steps of 100 images); --max-batches N stops earlier.

Examples:
  python examples/mnist_bidirectional.py
  python examples/mnist_bidirectional.py --cell lstm --hidden 128
  python examples/mnist_bidirectional.py --unidirectional          # the same model, one direction
  python examples/mnist_bidirectional.py --epochs 2
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from row_classifier import (accuracy, add_model_arguments, add_training_arguments, build,
                            seed_and_load, train)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--unidirectional", action="store_true",
                        help="one direction only (the baseline)")
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    data = seed_and_load(args)
    test_x, test_y = data.test_images, data.test_labels
    if args.limit_test:
        test_x, test_y = test_x[:args.limit_test], test_y[:args.limit_test]
    model, recurrent = build(args.cell, args.hidden, args.layers, not args.unidirectional)
    model = model.to(args.device)
    print(model)
    print(f"{model.num_parameters():,} parameters")
    train_x, train_y = data.train_images, data.train_labels
    if args.limit_train:
        train_x, train_y = train_x[:args.limit_train], train_y[:args.limit_train]
    run = train(model, recurrent, train_x, train_y, None,
                batch_size=args.batch_size, lr=args.lr, epochs=args.epochs,
                max_batches=args.max_batches, seed=args.seed, device=args.device)
    acc = accuracy(model, recurrent, test_x, test_y, None, args.device)
    direction = "unidirectional" if args.unidirectional else "bidirectional"
    print(f"mnist_bidirectional: {args.cell} {direction} hidden {args.hidden}, {run['steps']} "
          f"steps of {args.batch_size}: test accuracy {acc:.2f} % of {len(test_x)} "
          f"(train {run['train_time_s']:.0f} s, last 50 steps' loss "
          f"{np.mean(run['losses'][-50:]):.4f})")
    return {"test_accuracy": acc, **run}


if __name__ == "__main__":
    main(sys.argv[1:])
