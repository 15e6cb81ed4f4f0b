"""Reading and writing IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (``TT`` the element type
code, ``NN`` the number of dimensions), then ``NN`` big-endian uint32 sizes,
then the elements in C order, big-endian. See
http://yann.lecun.com/exdb/mnist/ ("FILE FORMATS FOR THE MNIST DATABASE").
Lua Torch's ``mnist`` rock and torchvision's ``read_sn3_pascalvincent_tensor``
read the same format.

Files whose name ends in ``.gz`` are (de)compressed transparently.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from typing import Union

import numpy as np

from nngraph_py.data.errors import DataFormatError

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

PathLike = Union[str, "os.PathLike[str]"]

#: IDX type code -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}


def _read_bytes(path: PathLike) -> bytes:
    """Return the (decompressed, if ``.gz``) contents of ``path``, naming it on a bad gzip."""
    path = os.fspath(path)
    if not path.endswith(".gz"):
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataFormatError(f"{path}: not a readable gzip file ({err}); re-download it") from err


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (raw or ``.gz``) into a native-endian NumPy array.

    The header is checked against the file: the magic number must start with
    two zero bytes and name a known type code, and the file must hold exactly
    ``prod(dims)`` elements after the header.

    Args:
        path: the IDX file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns:
        An array of shape ``dims`` and the file's element type (``uint8`` for
        MNIST), in native byte order.

    Raises:
        DataFormatError: (a ``ValueError``) naming ``path``, on a bad magic
            number, an unknown type code, a truncated file or trailing bytes.

    Example:
        >>> images = read_idx("t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((10000, 28, 28), dtype('uint8'))
    """
    name = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(f"{name}: truncated IDX file ({len(data)} bytes, the header alone is 4+)")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise DataFormatError(
            f"{name}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000TTNN); "
            "is this an IDX file, or a .gz file without the .gz suffix?"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataFormatError(f"{name}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataFormatError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataFormatError(
            f"{name}: truncated IDX header ({len(data)} bytes, {header_len} needed for {ndim} dims)"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = header_len + math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "trailing bytes in"
        raise DataFormatError(
            f"{name}: {what} IDX file: header says shape {tuple(dims)} of {dtype.name} "
            f"({expected} bytes in all), file has {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Args:
        path: destination file.
        array: at least 1-d, of dtype uint8, int8, int16, int32, float32 or
            float64 (the types IDX can hold).

    Raises:
        ValueError: the dtype or rank cannot be stored in IDX.

    Example:
        >>> write_idx(tmp / "labels-idx1-ubyte.gz", np.array([3, 1, 4], np.uint8))  # doctest: +SKIP
    """
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype} (use uint8/int8/int16/int32/float32/float64)")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs an array with 1 to 255 dims, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)
