"""A checkpoint's own metadata on a few lines: long lists, tables and generator states summarised.

The examples store a training run in a checkpoint's metadata (``examples/common.py``'s
``save_run``): the loss of every step, one dict per evaluation, the settings and NumPy's random
generator (624 integers). Printed as is that is tens of kilobytes; :func:`describe_meta` keeps
numbers and short strings whole and shortens the rest (Lua's ``print`` of a table shows its
address; torchinfo and Keras print no metadata at all):

* a long list of numbers: ``list of 1692 floats: first 2.303, last 0.1234, min 0.09, max 2.31``;
* a long list of dicts: ``list of 12 dicts, last {epoch: 12, test_acc: 97.43}``;
* a random generator's state: ``<rng state: MT19937, pos 624>``;
* a long string: its beginning and its length.

``describe_meta(meta, full=True)`` gives everything, one JSON line per key
(``python -m nngraph_py.inspect CHECKPOINT --full-meta``).

Example:
    >>> meta = {"epoch": 3, "run": {"losses": [2 - i / 1000 for i in range(1692)],
    ...                             "history": [{"epoch": 3, "acc": 0.9}] * 30}}
    >>> for line in describe_meta(meta):
    ...     print(line)
    epoch=3
    run: losses=list of 1692 floats: first 2.0, last 0.309, min 0.309, max 2.0,
      history=list of 30 dicts, last {epoch: 3, acc: 0.9}
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping

__all__ = ["describe_meta", "brief", "rng_label"]

#: How many characters a value may take before it is summarised.
BRIEF_WIDTH = 60
#: Line width of :func:`describe_meta`'s lines.
LINE_WIDTH = 96


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> str:
    # Short floats whole (0.01, 0.0), long ones to 4 significant digits (2.3075499 -> 2.308).
    if isinstance(value, float) and len(repr(value)) > 7 and math.isfinite(value):
        return f"{value:.4g}"
    return repr(value)


def rng_label(value: Any) -> str | None:
    """``"<rng state: MT19937, pos 624>"`` when ``value`` looks like a random generator's state.

    Recognised: NumPy's legacy ``get_state()`` as a dict (``name``, ``keys``, ``pos``...) or as a
    list (``["MT19937", [624 ints], pos, ...]``), and a ``Generator.bit_generator.state`` dict
    (``bit_generator``, ``state``).

    Returns:
        The label, or None for any other value.
    """
    if isinstance(value, Mapping):
        if "keys" in value and "pos" in value:
            return f"<rng state: {value.get('name', '?')}, pos {value['pos']}>"
        if "bit_generator" in value and "state" in value:
            return f"<rng state: {value['bit_generator']}>"
    elif (isinstance(value, (list, tuple)) and len(value) >= 3 and isinstance(value[0], str)
          and isinstance(value[1], (list, tuple)) and len(value[1]) > 16
          and all(_is_number(k) for k in value[1])):
        return f"<rng state: {value[0]}, pos {value[2]}>"
    return None


def _kind(items: list[Any]) -> str:
    """``"floats"``, ``"ints"``, ``"numbers"``, ``"strings"``, ``"dicts"``, ``"lists"`` or
    ``"items"``."""
    if all(isinstance(v, float) for v in items):
        return "floats"
    if all(_is_number(v) for v in items):
        return "ints" if all(isinstance(v, int) for v in items) else "numbers"
    for kind, cls in (("strings", str), ("dicts", Mapping), ("lists", (list, tuple))):
        if all(isinstance(v, cls) for v in items):
            return kind
    return "items"


def _plural(n: int, kind: str) -> str:
    return f"{n} {kind[:-1] if n == 1 else kind}"


def _compact_dict(value: Mapping, width: int) -> str:
    """``{a: 1, b: 2}``; when that exceeds ``width``, the first item, ``... 3 more ...`` and
    as many of the last items as fit (a history entry names its step first and its metrics
    last)."""
    parts = [f"{k}: {brief(v, max(width // 2, 12))}" for k, v in value.items()]
    whole = "{" + ", ".join(parts) + "}"
    if len(whole) <= width:
        return whole
    tail: list[str] = []
    used = 2 + len(parts[0]) + len(", ... 99 more ...")
    for part in reversed(parts[1:]):
        if used + len(part) + 2 > width:
            break
        tail.insert(0, part)
        used += len(part) + 2
    skipped = len(parts) - 1 - len(tail)
    return "{" + ", ".join([parts[0], f"... {skipped} more ..."] + tail) + "}"


def brief(value: Any, width: int = BRIEF_WIDTH) -> str:
    """``value`` in about ``width`` characters: whole when short, else a summary.

    Args:
        value: a JSON value (number, string, bool, None, list, dict).
        width: the room it may take.

    Returns:
        Numbers (floats to 4 significant digits), booleans, None and short strings whole;
        lists and dicts whole when they fit, else their kind, length and a few items; a random
        generator's state as :func:`rng_label` gives it.
    """
    label = rng_label(value)
    if label is not None:
        return label
    if value is None or isinstance(value, bool):
        return repr(value)
    if _is_number(value):
        return _number(value)
    if isinstance(value, str):
        if len(value) + 2 <= width:
            return repr(value)
        return repr(value[:max(width - 20, 8)] + "...") + f" ({len(value)} chars)"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return _compact_dict(value, width)
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            return "[]"
        if 3 * len(items) <= width:  # else it cannot fit: at least a character and ", " each
            whole = "[" + ", ".join(brief(v, width) for v in items) + "]"
            if len(whole) <= width:
                return whole
        kind = _kind(items)
        head = f"list of {_plural(len(items), kind)}"
        if kind in ("floats", "ints", "numbers"):
            finite = [v for v in items if math.isfinite(v)]
            text = f"{head}: first {_number(items[0])}, last {_number(items[-1])}"
            if finite:
                text += f", min {_number(min(finite))}, max {_number(max(finite))}"
            if len(finite) < len(items):
                text += f", {len(items) - len(finite)} not finite"
            return text
        if len(items) == 1:
            return "[" + brief(items[0], width - 2) + "]"
        # The last entry (the latest evaluation of a history) may take the whole width again.
        return f"{head}, last {brief(items[-1], width)}"
    return repr(value)[:width]


def _wrap(key: str | None, parts: list[str], width: int) -> list[str]:
    """``key: part, part, ...`` (or the parts alone) broken between parts into lines of about
    ``width``; continuation lines are indented two spaces."""
    lines, line = [], "" if key is None else f"{key}:"
    for k, part in enumerate(parts):
        if k == 0:
            line += part if key is None else " " + part
        elif len(line) + 2 + len(part) > width:
            lines.append(line + ",")
            line = "  " + part
        else:
            line += ", " + part
    lines.append(line)
    return lines


def describe_meta(meta: Mapping[str, Any], full: bool = False,
                  width: int = LINE_WIDTH) -> list[str]:
    """The lines that describe a checkpoint's own metadata (``Checkpoint.user``).

    Args:
        meta: the metadata given to ``save_checkpoint``.
        full: every value whole, one JSON line per key; else summarised (see the module doc):
            consecutive plain values share a line (``epoch=3, note='ok'``), a dict gets a line
            of its own (``run: epoch=3, losses=list of 1692 floats: ...``).
        width: the line width to keep to (a line can exceed it when one item alone does).

    Returns:
        The lines, without a leading indent; continuation lines are indented two spaces.
    """
    if full:
        return [f"{key}: {json.dumps(value, default=repr)}" for key, value in meta.items()]
    lines: list[str] = []
    plain: list[str] = []
    for key, value in meta.items():
        if isinstance(value, Mapping) and value and rng_label(value) is None:
            if plain:
                lines += _wrap(None, plain, width)
                plain = []
            lines += _wrap(str(key), [f"{k}={brief(v, width - len(str(k)) - 4)}"
                                      for k, v in value.items()], width)
        else:
            plain.append(f"{key}={brief(value, width - len(str(key)) - 4)}")
    if plain:
        lines += _wrap(None, plain, width)
    return lines
