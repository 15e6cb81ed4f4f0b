"""A minimal byte-level mutator for fuzzing file readers (used when tests/fuzz/mutate.py, the
project's shared one, is not there): bit flips, byte overwrites with boundary values, chunk
deletions, duplications and truncations, and 4-/8-byte integers replaced with extreme values."""
from __future__ import annotations

import random
import struct
from typing import Iterator

_EXTREMES = [0, 1, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 15, 255, 7, 8]


def mutations(data: bytes, *, seed: int = 0, count: int = 200) -> Iterator[tuple[str, bytes]]:
    """``count`` mutated copies of ``data``, each with a description of what was changed."""
    rng = random.Random(seed)
    n = len(data)
    for _ in range(count):
        kind = rng.randrange(6)
        pos = rng.randrange(max(n, 1))
        buf = bytearray(data)
        if kind == 0 and n:
            bit = rng.randrange(8)
            buf[pos] ^= 1 << bit
            desc = f"flip bit {bit} at {pos}"
        elif kind == 1 and n:
            buf[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x01])
            desc = f"byte {pos} = {buf[pos]:#x}"
        elif kind == 2 and n:
            length = rng.randrange(1, 64)
            del buf[pos:pos + length]
            desc = f"delete {length} bytes at {pos}"
        elif kind == 3 and n:
            length = rng.randrange(1, 64)
            buf[pos:pos] = data[pos:pos + length]
            desc = f"duplicate {length} bytes at {pos}"
        elif kind == 4:
            buf = buf[:pos]
            desc = f"truncate to {pos}"
        else:
            value = rng.choice(_EXTREMES)
            pos -= pos % 4
            if rng.random() < 0.5:
                buf[pos:pos + 4] = struct.pack("<i", value)
                desc = f"int32 at {pos} = {value}"
            else:
                buf[pos:pos + 8] = struct.pack("<q", value * rng.choice([1, 2 ** 32]))
                desc = f"int64 at {pos} = extreme"
        yield desc, bytes(buf)
