"""A restricted unpickler for pickles that hold only NumPy arrays.

Plain :func:`pickle.load` runs whatever callable a pickle names: a file whose
``__reduce__`` returns ``(os.system, ("rm -rf ~",))`` executes that command on
load. Dataset pickles such as the classic ``mnist.pkl.gz`` only ever need a few
NumPy constructors, so :class:`ArrayUnpickler` resolves exactly those globals
and refuses every other one with :class:`UnsafePickleError` *before* anything
is called.

Containers (tuple, list, dict), numbers, ``str`` and ``bytes`` are built by
pickle opcodes, not by globals, so they need no allowance. The globals that are
allowed:

* ``numpy.ndarray``, ``numpy.dtype``, and from ``numpy._core.multiarray`` (or
  its NumPy 1.x spelling ``numpy.core.multiarray``) ``_reconstruct`` and
  ``scalar``: what ``ndarray.__reduce__`` emits for protocols 0-4 and for NumPy
  scalars;
* ``numpy._core.numeric._frombuffer``: what ``ndarray.__reduce_ex__`` emits for
  contiguous arrays under protocol 5;
* ``builtins`` ``set``, ``frozenset``, ``complex``, ``bytes``, ``bytearray``
  (protocols 0-2 rebuild empty ``bytes`` and all sets through them; Python 2
  pickles spell the module ``__builtin__``);
* ``_codecs.encode``, which protocols 0-2 use to rebuild ``bytes``; it is
  wrapped so that only the ``latin1`` encoding pickle itself writes is accepted.

The closest Lua Torch equivalent is ``torch.load`` on a ``'binary'`` file, which
likewise only rebuilds tensors and tables.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
from typing import Any, BinaryIO, Union

import numpy as np

try:  # NumPy >= 2 (and the forward-compatible alias in late 1.x)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1.x without numpy._core
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

__all__ = ["UnsafePickleError", "ArrayUnpickler", "load_arrays_pickle", "loads_arrays_pickle"]

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]


class UnsafePickleError(pickle.UnpicklingError):
    """Raised when a pickle names a global that is not an allowed NumPy constructor."""


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that accepts only what pickle writes for ``bytes``."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(
            f"refusing _codecs.encode({type(obj).__name__}, {encoding!r}): pickles of bytes "
            "only ever use encode(str, 'latin1')"
        )
    return obj.encode("latin1", errors)


# (module, name) -> the object to hand back. Both the NumPy 2 module paths
# (numpy._core.*) and the NumPy 1 ones (numpy.core.*) appear in real pickles;
# each resolves to the object of the NumPy that is installed, and no numpy.core
# module is imported (NumPy 2 warns on that import).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _latin1_encode,
}
for _prefix in ("numpy._core", "numpy.core"):
    _ALLOWED[(f"{_prefix}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_prefix}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_prefix}.numeric", "_frombuffer")] = _numeric._frombuffer  # type: ignore[attr-defined]

# Python 2 module names that pickle's own fix_imports would translate.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that resolves only NumPy array constructors.

    Any other global (``os.system``, ``builtins.eval``, a user class) raises
    :class:`UnsafePickleError` naming it, before the pickle can call it.

    Args:
        file: a binary file object positioned at the start of a pickle.
        encoding: how to decode Python 2 ``str`` objects; ``'latin1'`` (the
            default) is what NumPy arrays pickled under Python 2 need.

    Example:
        >>> import io, pickle, numpy as np
        >>> blob = pickle.dumps((np.arange(3), np.ones(2, np.float32)))
        >>> ArrayUnpickler(io.BytesIO(blob)).load()[0]
        array([0, 1, 2])
    """

    def __init__(self, file: BinaryIO, *, encoding: str = "latin1") -> None:
        super().__init__(file, encoding=encoding)

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed object for ``module.name`` or raise :class:`UnsafePickleError`."""
        key = (_PY2_MODULES.get(module, module), name)
        try:
            return _ALLOWED[key]
        except KeyError:
            raise UnsafePickleError(
                f"forbidden global {module}.{name} in pickle: only NumPy arrays, dtypes "
                "and plain Python containers may be loaded (refusing to call it)"
            ) from None


def _open_maybe_gzip(fileobj: BinaryIO) -> BinaryIO:
    """Wrap ``fileobj`` in a gzip reader when it starts with the gzip magic bytes."""
    if not fileobj.seekable():  # e.g. a pipe: buffer it so the magic bytes can be re-read
        fileobj = io.BytesIO(fileobj.read())
    head = fileobj.read(2)
    fileobj.seek(-len(head), io.SEEK_CUR)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fileobj, mode="rb")  # type: ignore[return-value]
    return fileobj


def load_arrays_pickle(path_or_fileobj: PathOrFile) -> Any:
    """Load a pickle of NumPy arrays without running arbitrary code.

    Gzip-compressed input (``.pkl.gz``) is detected by its magic bytes, so the
    file name does not matter. Python 2 pickles (the classic ``mnist.pkl.gz``)
    load too: their ``str`` payloads are decoded as latin1, as NumPy requires.

    Args:
        path_or_fileobj: a path, or a binary file object (an open file,
            ``io.BytesIO``; a non-seekable stream is read into memory first).

    Returns:
        The unpickled object: arrays nested in tuples, lists and dicts.

    Raises:
        UnsafePickleError: the pickle names any global other than the NumPy
            constructors listed in this module's docstring.

    Example:
        >>> import numpy as np, pickle, io
        >>> x, y = load_arrays_pickle(io.BytesIO(pickle.dumps((np.zeros(2), np.ones(1)))))
        >>> x.shape, y.shape
        ((2,), (1,))
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, "rb") as raw:
            return ArrayUnpickler(_open_maybe_gzip(raw)).load()
    return ArrayUnpickler(_open_maybe_gzip(path_or_fileobj)).load()


def loads_arrays_pickle(data: bytes) -> Any:
    """Like :func:`load_arrays_pickle` for a pickle held in memory.

    Args:
        data: the pickle bytes, gzip-compressed or not.

    Returns:
        The unpickled object.
    """
    return load_arrays_pickle(io.BytesIO(data))

