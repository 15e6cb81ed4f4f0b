"""Mutations of a file's bytes for fuzzing readers: flips, truncations, edits of length fields.

Any reader of an untrusted format can reuse it (the checkpoint, pickle, IDX and CSV readers here;
the Torch7 reader)::

    from tests.fuzz.mutate import mutations      # or: from mutate import mutations

    for what, data in mutations(original, seed=0, count=200):
        try:
            result = read(data)
        except MyFormatError:
            continue                              # refused with the library's own error
        assert result == expected, what           # or: a clean load of the original values

Each mutation is deterministic for a given ``seed`` and described by a short string
(``"flip bit 3 of byte 1187"``) to reproduce a failure: ``dict(mutations(data, seed=s))[what]``.
The mix aims at what breaks parsers: single bit flips anywhere, bytes set to 0x00/0xff/0x7f/0x80,
truncation at any length (0, inside the header, one short of the end), little- and big-endian
length fields overwritten with 0, 1, -1, 2**31 - 1, 2**32 - 1 and friends, bytes inserted,
deleted and duplicated, and a block of the file repeated.
"""
from __future__ import annotations

import random
from typing import Iterator

__all__ = ["mutations", "INTERESTING_INTEGERS"]

#: Values written over 1, 2, 4 or 8 bytes: the sizes and offsets that break readers.
INTERESTING_INTEGERS = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                        0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF,
                        0xFFFFFFFFFFFFFFFF)


def _int_bytes(value: int, width: int, order: str) -> bytes:
    return (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)  # type: ignore[arg-type]


def _one(data: bytes, rng: random.Random, hot: int) -> tuple[str, bytes]:
    """One random mutation; offsets favour the first ``hot`` bytes (headers) half of the time."""
    n = len(data)

    def offset(extra: int = 0) -> int:
        limit = max(1, n - extra)
        if rng.random() < 0.5:
            return rng.randrange(min(limit, hot))
        return rng.randrange(limit)

    kind = rng.randrange(9)
    if n == 0 or kind == 0:
        cut = rng.choice([0, 1, n // 2, max(0, n - 1), rng.randrange(n + 1), offset()])
        return f"truncate to {cut} bytes", data[:cut]
    if kind in (1, 2):
        i, bit = offset(), rng.randrange(8)
        return f"flip bit {bit} of byte {i}", data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]
    if kind == 3:
        i, value = offset(), rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        return f"set byte {i} to {value:#04x}", data[:i] + bytes([value]) + data[i + 1:]
    if kind == 4:
        width = rng.choice([1, 2, 4, 8])
        order = rng.choice(["little", "big"])
        value = rng.choice(INTERESTING_INTEGERS + (n, n + 1, -1, -n))
        i = offset(width)
        new = _int_bytes(value, width, order)
        return (f"write {value} as {width}-byte {order}-endian at {i}",
                data[:i] + new + data[i + width:])
    if kind == 5:
        i, length = offset(), rng.choice([1, 2, 7, 64])
        junk = bytes(rng.randrange(256) for _ in range(length))
        return f"insert {length} bytes at {i}", data[:i] + junk + data[i:]
    if kind == 6:
        i, length = offset(), rng.choice([1, 3, 16, 512])
        return f"delete {length} bytes at {i}", data[:i] + data[i + length:]
    if kind == 7:
        i, length = offset(), rng.choice([1, 8, 100])
        return f"duplicate {length} bytes at {i}", data[:i + length] + data[i:]
    start, length = offset(), rng.choice([16, 256, 4096])
    block = data[start:start + length]
    return (f"repeat bytes {start}..{start + len(block)} 3 times",
            data[:start] + block * 3 + data[start:])


def mutations(data: bytes, *, seed: int = 0, count: int = 200,
              hot: int = 512) -> Iterator[tuple[str, bytes]]:
    """Yield ``count`` mutated copies of ``data`` with a description of each.

    Args:
        data: the original bytes (a real, valid file).
        seed: the random seed; the same seed yields the same mutations.
        count: how many to yield (duplicates of the original are skipped, not counted).
        hot: half of the offsets fall in the first ``hot`` bytes, where headers are.

    Yields:
        ``(description, mutated_bytes)``; the mutated bytes always differ from ``data``.
    """
    rng = random.Random(seed)
    made = tries = 0
    while made < count and tries < 20 * count:
        tries += 1
        what, mutated = _one(data, rng, hot)
        if mutated == data:
            continue
        made += 1
        yield what, mutated
