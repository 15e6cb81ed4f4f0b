"""Sampling from a char-rnn checkpoint loaded from ``.t7`` (Lua: char-rnn's ``sample.lua``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy

from .. import backend
from ..errors import InputError

__all__ = ["sample_char_rnn", "char_rnn_state", "CharRnnSample"]


@dataclass
class CharRnnSample:
    """What :func:`sample_char_rnn` returns.

    Attributes:
        text: the primetext followed by the sampled characters (as ``sample.lua`` prints them).
        indices: the 0-based vocabulary index of each sampled character.
        log_probs: ``(steps, vocab)`` log-probabilities the model gave, one row per forward
            (the primetext's characters, then each sampled character), as Lua's ``prediction``.
    """

    text: str
    indices: list[int] = field(default_factory=list)
    log_probs: Any = None


def _check_checkpoint(checkpoint: Any) -> tuple[Any, dict, dict]:
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("protos"), dict) \
            or "rnn" not in checkpoint["protos"] or not isinstance(checkpoint.get("vocab"), dict) \
            or not isinstance(checkpoint.get("opt"), dict):
        raise InputError("expected a char-rnn checkpoint as nngraph_py.torch7.load returns it: a "
                         "dict with 'protos' (holding 'rnn'), 'vocab' and 'opt'")
    return checkpoint["protos"]["rnn"], checkpoint["vocab"], checkpoint["opt"]


def char_rnn_state(checkpoint: dict, batch: int = 1) -> list[Any]:
    """The zero initial state of a char-rnn model: per layer ``c, h`` (LSTM) or ``h`` (GRU, RNN),
    each ``(batch, rnn_size)`` in the model's dtype (Lua: ``current_state`` in ``sample.lua``)."""
    rnn, _, opt = _check_checkpoint(checkpoint)
    per_layer = 2 if opt.get("model", "lstm") == "lstm" else 1
    xp = backend.array_module(rnn._device)
    return [xp.zeros((batch, int(opt["rnn_size"])), dtype=rnn._dtype)
            for _ in range(per_layer * int(opt["num_layers"]))]


def sample_char_rnn(checkpoint: dict, length: int = 2000, primetext: str = "",
                    greedy: bool = True, temperature: float = 1.0, seed: int = 123) -> CharRnnSample:
    """Generate text from a char-rnn checkpoint (Lua: ``th sample.lua CHECKPOINT``).

    Greedy sampling (``greedy=True``, Lua's ``-sample 0``) reproduces ``th sample.lua CHECKPOINT
    -gpuid -1 -sample 0 -primetext TEXT -length N`` character for character: the primetext is
    fed one byte at a time from a zero state, then the most likely character (the first on ties,
    as Torch's ``max``) is fed back ``length`` times. Without primetext the first character is
    the argmax of a uniform distribution: vocabulary index 1, as in Lua. With ``greedy=False``
    characters are drawn from ``softmax(log_probs / temperature)`` with NumPy's generator seeded
    by ``seed`` (not Torch's generator: the draws differ from Lua's).

    ``checkpoint["vocab"]`` maps characters to char-rnn's 1-based indices; the model is fed the
    0-based ``vocab[c] - 1``.

    Args:
        checkpoint: the dict :func:`nngraph_py.torch7.load` returns for a char-rnn ``.t7``.
        length: how many characters to generate.
        primetext: text to condition on (every character must be in the vocabulary).
        greedy: argmax (True) or random sampling (False).
        temperature: the sampling temperature (random sampling only).
        seed: the generator's seed (random sampling only).
    Returns:
        A :class:`CharRnnSample` with the text, the indices and the per-step log-probabilities.
    Raises:
        InputError: the checkpoint is not a char-rnn one, or a primetext character is not in
            the vocabulary.
    """
    rnn, vocab, _ = _check_checkpoint(checkpoint)
    ivocab = {int(i) - 1: c for c, i in vocab.items()}
    n_vocab = len(ivocab)
    prime = primetext.encode("utf-8", "surrogateescape").decode("latin-1")
    byte_vocab = {c.encode("utf-8", "surrogateescape").decode("latin-1"): int(i) - 1
                  for c, i in vocab.items()}
    missing = sorted({c for c in prime if c not in byte_vocab})
    if missing:
        raise InputError(f"primetext characters {missing!r} are not in the checkpoint's "
                         f"vocabulary of {n_vocab} characters")
    rnn.evaluate()
    xp = backend.array_module(rnn._device)
    state = char_rnn_state(checkpoint)
    n_state = len(state)
    rows: list[Any] = []
    out_bytes = bytearray(prime.encode("latin-1"))

    def step(index: int) -> Any:
        nonlocal state
        outputs = rnn.forward([xp.asarray([index], dtype=xp.int64)] + state)
        state = [xp.array(s, copy=True) for s in outputs[:n_state]]
        rows.append(backend.to_numpy(outputs[-1])[0].copy())
        return outputs[-1]

    prediction = None
    for ch in prime:
        prediction = step(byte_vocab[ch])
    if prediction is None:
        prediction = numpy.full((1, n_vocab), 1.0 / n_vocab)
    rng = numpy.random.default_rng(seed)
    indices: list[int] = []
    for _ in range(int(length)):
        logp = backend.to_numpy(prediction)[0].astype(numpy.float64)
        if greedy:
            index = int(numpy.argmax(logp))
        else:
            scaled = logp / float(temperature)
            probs = numpy.exp(scaled - scaled.max())
            index = int(rng.choice(n_vocab, p=probs / probs.sum()))
        indices.append(index)
        prediction = step(index)
        out_bytes += ivocab[index].encode("utf-8", "surrogateescape")
    text = bytes(out_bytes).decode("utf-8", "replace")
    return CharRnnSample(text=text, indices=indices,
                         log_probs=numpy.stack(rows) if rows else numpy.zeros((0, n_vocab)))
