"""Read Lua Torch ``.t7`` files: values, tensors, ``nn`` modules, gModules, char-rnn checkpoints.

Lua: ``torch.load``. The reader is the library's own (:mod:`nngraph_py.torch7.reader`), not
PyPI's ``torchfile``: see the README's "From Lua Torch" section for why.

Example:
    >>> from nngraph_py import torch7
    >>> checkpoint = torch7.load("cv/lm_lstm_epoch1.00_3.3352.t7")
    >>> rnn = checkpoint["protos"]["rnn"]             # an nn.gModule
    >>> print(torch7.sample_char_rnn(checkpoint, length=50, primetext="The ").text)
"""
from __future__ import annotations

import os
from typing import Any

from .charrnn import CharRnnSample, char_rnn_state, sample_char_rnn
from .convert import supported_classes
from .reader import LuaFunction, TableKey, Torch7Error, TorchObject

__all__ = ["load", "loads", "Torch7Error", "TorchObject", "LuaFunction", "TableKey",
           "supported_classes", "sample_char_rnn", "char_rnn_state", "CharRnnSample"]


def loads(data: bytes, strict: bool = True) -> Any:
    """Read a serialized Lua Torch object from bytes (see :func:`load`)."""
    from .convert import make_converter
    from .reader import is_ascii, parse

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads expects bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise Torch7Error("empty file: no Torch object in it", offset=0)
    convert = make_converter(strict)
    try:
        return parse(data, strict=strict, convert=convert, long_size=8)
    except Torch7Error as first:
        if is_ascii(data) or first.class_name is not None or "function" in str(first):
            raise
        try:  # a file written with 4-byte longs (torch.save(..., 'b32') or a 32-bit machine)
            return parse(data, strict=strict, convert=convert, long_size=4, exact=True)
        except Torch7Error:
            raise first from None


def load(path: str | os.PathLike, strict: bool = True) -> Any:
    """Read a ``.t7`` file written by Lua Torch's ``torch.save`` (binary or ASCII).

    Values come back as Python values:

    - numbers as ``int`` when integral (Lua has only doubles), else ``float``; strings as ``str``
      (UTF-8, other bytes kept with ``surrogateescape``); booleans; nil as None;
    - tables as ``list`` when their keys are exactly 1..n, else ``dict`` (string keys ``str``,
      integer keys ``int``; a table used as a key is wrapped in :class:`TableKey`). An object
      met twice is the same Python object both times, cycles included;
    - tensors and storages of every Torch type (Double, Float, Half, Long, Int, Short, Char,
      Byte; CUDA ones as their CPU twins) as NumPy arrays: a storage is one array and each
      tensor a view of it with Torch's sizes, strides and offset, so tensors sharing a storage
      share memory (and identical views are one array). An empty tensor is a ``(0,)`` array;
    - ``nn`` objects as the library's modules with their weights (the arrays read, in their
      dtype), :func:`supported_classes` lists them; ``nn.gModule`` is rebuilt with its graph
      (inputs in Lua's order, split nodes, annotations); char-rnn's ``OneHot`` becomes
      ``nn.OneHot``. Lua's 1-based dimensions and indices become 0-based ones (``SplitTable(2)``
      -> ``SplitTable(1)``); a loaded ``OneHot``/``LookupTable`` takes 0-based indices.

    A char-rnn checkpoint (``cv/lm_lstm_epoch*.t7``) is a dict with ``protos`` (``rnn``, the
    gModule, and ``criterion``), ``opt``, ``vocab``, ``train_losses``, ``val_losses``,
    ``val_loss``, ``epoch`` and ``i``. ``vocab`` maps each character to its **1-based** index,
    exactly as char-rnn wrote it; the loaded ``rnn`` takes the library's **0-based** indices,
    ``vocab[c] - 1`` (:func:`sample_char_rnn` does that).

    Args:
        path: the file.
        strict: True: an unknown class raises :class:`Torch7Error`; False: it comes back as a
            :class:`TorchObject` holding its fields (and a gModule holding one stays a
            TorchObject), and Lua functions as inert :class:`LuaFunction` records.
    Returns:
        The object stored in the file.
    Raises:
        Torch7Error: the file is malformed or truncated (with the byte offset), holds an unknown
            class (named, with its offset) or a Lua function: functions are never run. A
            declared size larger than the rest of the file is refused before anything is
            allocated.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        return loads(data, strict=strict)
    except Torch7Error as exc:
        exc.args = (f"{os.fspath(path)}: {exc.args[0]}",) + exc.args[1:]
        raise
