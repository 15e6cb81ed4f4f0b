"""A restricted unpickler for pickles that hold only NumPy arrays.

Plain :func:`pickle.load` runs whatever callable a pickle names: a file whose
``__reduce__`` returns ``(os.system, ("rm -rf ~",))`` executes that command on
load. Dataset pickles such as the classic ``mnist.pkl.gz`` only ever need a few
NumPy constructors, so :class:`ArrayUnpickler` resolves exactly those globals
and refuses every other one with :class:`UnsafePickleError` *before* anything
is called.

Resolving only safe names is not enough: ``numpy.ndarray(shape, dtype, buffer,
offset)`` called with a negative offset reads and writes outside its buffer, and
``bytearray(2_000_000_000)`` allocates 2 GB from a 28-byte pickle. So no allowed
name is the real callable. Each one is a checking stand-in that accepts only the
arguments NumPy's own pickles pass, and every size is checked against the bytes
actually present:

* ``numpy.ndarray`` resolves to a marker that cannot be called; it is only
  accepted as the first argument of ``_reconstruct``;
* ``numpy._core.multiarray._reconstruct`` (or its NumPy 1.x spelling
  ``numpy.core.multiarray``) builds only the empty ``(0,)`` array that
  ``ndarray.__reduce__`` starts from (protocols 0-4); the array's state, set by
  the pickle's ``BUILD``, must then be ``(1, shape, dtype, fortran, data)`` with
  exactly ``prod(shape) * itemsize`` bytes of data;
* ``numpy._core.numeric._frombuffer``, what protocol 5 emits (the data in-band as
  a ``bytearray``), needs a buffer of exactly ``prod(shape) * itemsize`` bytes;
* ``numpy._core.multiarray.scalar`` needs exactly ``itemsize`` bytes;
* ``numpy.dtype`` accepts simple dtypes only (booleans, numbers, bytes and
  unicode strings, void, datetimes): no object, structured or sub-array dtypes,
  and a dtype's ``BUILD`` state must be the one NumPy writes for it;
* ``builtins`` ``set``, ``frozenset``, ``complex``, ``bytes``, ``bytearray``
  (protocols 0-2 rebuild empty ``bytes``, ``bytearray`` and sets through them;
  Python 2 pickles spell the module ``__builtin__``) take data, never a size;
* ``_codecs.encode``, which protocols 0-2 use to rebuild ``bytes``, accepts
  only the ``latin1`` encoding pickle itself writes.

``BUILD`` is refused on anything but arrays and dtypes, ``NEWOBJ`` and
``NEWOBJ_EX`` (which array pickles never use) are refused, and out-of-band
buffers (protocol 5's ``buffer_callback``) are not accepted. Reading is bounded:
a length field can never make the reader allocate more than is in the file, and
the (decompressed) pickle may not exceed ``max_bytes`` (by default the larger of
256 MiB and 100 times the file's size on disk), so a gzip bomb is refused too.

Every failure is a :class:`PickleFormatError` naming the file (a
:class:`~nngraph_py.data.errors.DataFormatError` and a
:class:`pickle.UnpicklingError`); a refused global or argument is its subclass
:class:`UnsafePickleError`.

The closest Lua Torch equivalent is ``torch.load`` on a ``'binary'`` file, which
likewise only rebuilds tensors and tables.
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import os
import pickle
import struct
from typing import Any, BinaryIO, Union

import numpy as np

from nngraph_py.data.errors import DataFormatError

try:  # NumPy >= 2 (and the forward-compatible alias in late 1.x)
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy 1.x without numpy._core
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

__all__ = ["PickleFormatError", "UnsafePickleError", "ArrayUnpickler", "load_arrays_pickle",
           "loads_arrays_pickle", "DEFAULT_MIN_BYTES", "DEFAULT_INFLATION"]

PathOrFile = Union[str, "os.PathLike[str]", BinaryIO]

#: The (decompressed) size any pickle may have, whatever its size on disk.
DEFAULT_MIN_BYTES = 256 * 1024 * 1024
#: How many times its size on disk a gzip-compressed pickle may inflate to (mnist.pkl.gz: 13x).
DEFAULT_INFLATION = 100
#: Bytes read at once when a length field asks for more (a claimed length allocates nothing).
_CHUNK = 16 * 1024 * 1024
#: NumPy's limit on the number of dimensions.
_MAX_DIMS = 64
#: dtype kinds a pickle may hold: booleans, integers, floats, complex, bytes, unicode, void,
#: datetimes and time deltas (never 'O', objects).
_KINDS = set("biufcSUVMm")


class PickleFormatError(DataFormatError, pickle.UnpicklingError):
    """A pickle is truncated, malformed or too large; the message names the file and the problem."""


class UnsafePickleError(PickleFormatError):
    """A pickle names a global or passes arguments that an array pickle never does (refused
    before anything is called)."""


class _NdarrayType:
    """What ``numpy.ndarray`` resolves to: a marker for ``_reconstruct``, not a callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # numpy.ndarray(shape, dtype, buffer, offset) with a negative offset reads out of bounds.
        raise UnsafePickleError("refusing to call numpy.ndarray(...) from a pickle (a buffer and "
                                "offset can reach outside the data); NumPy's array pickles "
                                "rebuild arrays through _reconstruct or _frombuffer")


_NDARRAY = _NdarrayType()


def _refuse(what: str) -> UnsafePickleError:
    return UnsafePickleError(f"refusing {what}: NumPy's array pickles never do this")


def _check_dtype(dtype: Any, where: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise _refuse(f"{where} with dtype {type(dtype).__name__} (not a numpy.dtype)")
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.kind not in _KINDS:
        raise _refuse(f"{where} with dtype {dtype!r} (only plain numbers, booleans, strings, "
                      f"void and datetimes may be loaded: no objects, fields or sub-arrays)")
    return dtype


def _check_shape(shape: Any, where: str) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > _MAX_DIMS or not all(
            type(n) is int and n >= 0 for n in shape):
        raise _refuse(f"{where} with shape {shape!r:.80} (expected a tuple of at most "
                      f"{_MAX_DIMS} non-negative ints)")
    return shape


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _as_data(data: Any, where: str) -> Any:
    """Array bytes as pickled: bytes, a bytearray (protocol 5) or, from Python 2, a latin1 str."""
    if isinstance(data, str):
        return data.encode("latin1")
    if isinstance(data, (bytes, bytearray)):
        return data
    if isinstance(data, pickle.PickleBuffer):
        return data.raw()
    raise _refuse(f"{where} with data of type {type(data).__name__}")


# ---- the stand-ins for the allowed globals ---------------------------------------------------
def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """``ndarray.__reduce__``'s first step: always the empty ``(0,)`` array, filled by BUILD."""
    if subtype is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise _refuse(f"_reconstruct({subtype!r:.40}, {shape!r:.40}, {typecode!r:.40}) "
                      f"(arrays are rebuilt from _reconstruct(numpy.ndarray, (0,), b'b'))")
    return _multiarray._reconstruct(np.ndarray, (0,), b"b")  # type: ignore[return-value]


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Protocol 5's array: exactly ``prod(shape) * itemsize`` bytes of ``buf``."""
    where = "_frombuffer"
    dtype = _check_dtype(dtype, where)
    shape = _check_shape(shape, where)
    if order not in ("C", "F"):
        raise _refuse(f"{where} with order {order!r:.20}")
    data = _as_data(buf, where)
    need = _nbytes(shape, dtype)
    if len(data) != need or (dtype.itemsize == 0 and math.prod(shape) != 0):
        raise UnsafePickleError(f"array data of {len(data)} bytes for shape {shape} {dtype} "
                                f"(which needs {need}): refusing it")
    return np.frombuffer(data, dtype=dtype, count=math.prod(shape)).reshape(shape, order=order)


def _scalar(dtype: Any, data: Any = None) -> Any:
    """A NumPy scalar from exactly ``itemsize`` bytes."""
    dtype = _check_dtype(dtype, "scalar")
    raw = _as_data(data, "scalar")
    if len(raw) != dtype.itemsize:
        raise UnsafePickleError(f"a {dtype} scalar needs {dtype.itemsize} bytes, the pickle "
                                f"gives {len(raw)}: refusing it")
    return _multiarray.scalar(dtype, raw)


def _dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """``numpy.dtype(spec, align, copy)`` for a simple dtype named by a short string."""
    if isinstance(spec, bytes):
        spec = spec.decode("latin1")
    if not isinstance(spec, str) or len(spec) > 32 or not spec.isascii() \
            or align not in (0, 1) or copy not in (0, 1):
        raise _refuse(f"numpy.dtype({spec!r:.40}, {align!r:.20}, {copy!r:.20})")
    try:
        dtype = np.dtype(spec, align=bool(align), copy=True)
    except (TypeError, ValueError) as exc:
        raise _refuse(f"numpy.dtype({spec!r}) ({exc})") from None
    return _check_dtype(dtype, f"numpy.dtype({spec!r})")


def _expected_dtype_state(dtype: np.dtype, state: tuple) -> tuple:
    """The state NumPy writes for the dtype ``state`` describes (so a made-up one is refused)."""
    version, endian, elsize = state[0], state[1], state[5]
    if endian not in ("<", ">", "|", "=") or type(elsize) is not int:
        raise ValueError("bad endianness or size")
    char = dtype.char
    if dtype.kind in "SUV":
        if elsize < 0 or (dtype.kind == "U" and elsize % 4):
            raise ValueError("bad size")
        n = elsize // 4 if dtype.kind == "U" else elsize
        spec = f"{endian if dtype.kind == 'U' else '|'}{char}{n}"
    elif dtype.kind in "Mm":
        if version != 4 or len(state) != 9:
            raise ValueError("datetime state without its unit")
        meta = state[8]
        unit, count = meta[1][0], meta[1][1]
        unit = unit.decode("ascii") if isinstance(unit, bytes) else unit
        if not isinstance(unit, str) or not unit.isalpha() or type(count) is not int:
            raise ValueError("bad unit")
        spec = f"{endian}{char}8" + ("" if unit == "generic" else f"[{count}{unit}]")
    else:
        spec = endian + dtype.str[1:]
    expected = np.dtype(spec)
    _check_dtype(expected, "dtype state")
    return expected.__reduce__()[2]  # type: ignore[return-value]


def _build_dtype(dtype: np.dtype, state: Any) -> None:
    try:
        if not isinstance(state, tuple) or len(state) not in (8, 9):
            raise ValueError("not a dtype state")
        expected = _expected_dtype_state(dtype, state)
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeError) as exc:
        raise _refuse(f"dtype state {state!r:.120} for {dtype} ({exc})") from None
    if tuple(state) != tuple(expected):
        raise _refuse(f"dtype state {state!r:.120} for {dtype} (NumPy writes {expected!r})")
    dtype.__setstate__(expected)
    _check_dtype(dtype, "dtype state")


def _build_array(array: np.ndarray, state: Any) -> None:
    """``ndarray.__setstate__`` after checking that the data fills exactly the shape."""
    where = "array state"
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _refuse(f"{where} {state!r:.80}")
    if len(state) == 5:
        if state[0] != 1:
            raise _refuse(f"{where} version {state[0]!r:.20}")
        state = state[1:]
    shape, dtype, fortran, data = state
    shape = _check_shape(shape, where)
    dtype = _check_dtype(dtype, where)
    if fortran not in (0, 1):
        raise _refuse(f"{where} with fortran flag {fortran!r:.20}")
    raw = _as_data(data, where)
    need = _nbytes(shape, dtype)
    if len(raw) != need or (dtype.itemsize == 0 and math.prod(shape) != 0):
        raise UnsafePickleError(f"array data of {len(raw)} bytes for shape {shape} {dtype} "
                                f"(which needs {need}): refusing it")
    array.__setstate__((1, shape, dtype, bool(fortran), bytes(raw)))  # type: ignore[arg-type]


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that accepts only what pickle writes for ``bytes``."""
    if not isinstance(obj, str) or not isinstance(encoding, str) or errors != "strict":
        raise _refuse(f"_codecs.encode({type(obj).__name__}, {encoding!r:.20}, {errors!r:.20})")
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = ""
    if name != "iso8859-1":
        raise UnsafePickleError(
            f"refusing _codecs.encode({type(obj).__name__}, {encoding!r}): pickles of bytes "
            "only ever use encode(str, 'latin1')"
        )
    return obj.encode("latin1")


def _data_arg(name: str, args: tuple) -> Any:
    """The argument of ``bytes(...)`` / ``bytearray(...)``: data or a latin1 str, never a size."""
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return args[0]
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin-1", "latin1"):
        return args[0].encode("latin1")
    raise _refuse(f"builtins.{name}(" + ", ".join(f"{type(a).__name__}" for a in args)
                  + ") (only bytes(), bytearray(bytes) or bytearray(str, 'latin-1'); a size "
                    "would allocate memory the file does not hold)")


def _bytes(*args: Any) -> bytes:
    return bytes(_data_arg("bytes", args))


def _bytearray(*args: Any) -> bytearray:
    return bytearray(_data_arg("bytearray", args))


def _set_of(kind: type, name: str) -> Any:
    def build(*args: Any) -> Any:
        if not args:
            return kind()
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            return kind(args[0])
        raise _refuse(f"builtins.{name} of {type(args[0]).__name__}")
    return build


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (real, imag)):
        raise _refuse(f"builtins.complex({type(real).__name__}, {type(imag).__name__})")
    return complex(real, imag)


# (module, name) -> the stand-in. Both the NumPy 2 module paths (numpy._core.*) and the NumPy 1
# ones (numpy.core.*) appear in real pickles; no numpy.core module is imported (NumPy 2 warns).
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("builtins", "set"): _set_of(set, "set"),
    ("builtins", "frozenset"): _set_of(frozenset, "frozenset"),
    ("builtins", "complex"): _complex,
    ("builtins", "bytes"): _bytes,
    ("builtins", "bytearray"): _bytearray,
    ("_codecs", "encode"): _latin1_encode,
}
for _prefix in ("numpy._core", "numpy.core"):
    _ALLOWED[(f"{_prefix}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_prefix}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_prefix}.numeric", "_frombuffer")] = _frombuffer

# Python 2 module names that pickle's own fix_imports would translate.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _BoundedReader:
    """A file's ``read``/``readline`` that never allocate more than the data present, and stop
    at ``limit`` bytes in all."""

    def __init__(self, file: BinaryIO, limit: int, name: str) -> None:
        self._file = file
        self._left = limit
        self._limit = limit
        self._name = name

    def _take(self, n: int) -> None:
        self._left -= n
        if self._left < 0:
            raise PickleFormatError(
                f"{self._name}: the pickle is larger than {self._limit} bytes (decompressed); "
                f"refusing it (pass max_bytes= to load_arrays_pickle to allow more)")

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left + 1
        if n <= _CHUNK:
            data = self._file.read(n)
            self._take(len(data))
            return data
        parts = []
        got = 0
        while got < n:
            part = self._file.read(min(_CHUNK, n - got))
            if not part:
                break
            self._take(len(part))
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def readline(self) -> bytes:
        line = self._file.readline(min(self._left + 1, 1 << 62))
        self._take(len(line))
        return line


class ArrayUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """An unpickler that rebuilds only NumPy arrays, dtypes, scalars and plain containers.

    Any other global (``os.system``, ``builtins.eval``, a user class) raises
    :class:`UnsafePickleError` naming it, before the pickle can call it; so does an
    allowed name called with arguments NumPy's own pickles never pass (see the
    module docstring). It is pickle's pure-Python unpickler with the few opcodes
    that could allocate or mutate beyond the data guarded.

    Args:
        file: a binary file object positioned at the start of a pickle.
        encoding: how to decode Python 2 ``str`` objects; ``'latin1'`` (the
            default) is what NumPy arrays pickled under Python 2 need.
        max_bytes: the most bytes the pickle may have (default: no limit beyond
            the file's own size).
        name: how errors name the file.

    Example:
        >>> import io, pickle, numpy as np
        >>> blob = pickle.dumps((np.arange(3), np.ones(2, np.float32)))
        >>> ArrayUnpickler(io.BytesIO(blob)).load()[0]
        array([0, 1, 2])
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: BinaryIO, *, encoding: str = "latin1",
                 max_bytes: int | None = None, name: str = "pickle") -> None:
        reader = _BoundedReader(file, max_bytes if max_bytes is not None else 1 << 62, name)
        super().__init__(reader, encoding=encoding)  # type: ignore[arg-type]

    def find_class(self, module: str, name: str) -> Any:
        """Return the allowed stand-in for ``module.name`` or raise :class:`UnsafePickleError`."""
        key = (_PY2_MODULES.get(module, module), name)
        try:
            return _ALLOWED[key]
        except (KeyError, TypeError):
            raise UnsafePickleError(
                f"forbidden global {module!s:.80}.{name!s:.80} in pickle: only NumPy arrays, "
                f"dtypes and plain Python containers may be loaded (refusing to call it)"
            ) from None

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, np.ndarray):
            _build_array(inst, state)
        elif isinstance(inst, np.dtype):
            _build_dtype(inst, state)
        else:
            raise _refuse(f"BUILD on a {type(inst).__name__}")
    dispatch[pickle.BUILD[0]] = load_build  # type: ignore[assignment]

    def load_newobj(self) -> None:
        raise _refuse("NEWOBJ (calling a class's __new__)")
    dispatch[pickle.NEWOBJ[0]] = load_newobj  # type: ignore[assignment]
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj  # type: ignore[assignment]

    def load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        data = self.read(n)  # only what is there: a claimed length allocates nothing
        if len(data) != n:
            raise PickleFormatError(f"BYTEARRAY8 claims {n} bytes, {len(data)} remain: truncated")
        self.append(bytearray(data))
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8  # type: ignore[assignment]


def _open_maybe_gzip(fileobj: BinaryIO) -> tuple[BinaryIO, int, bool]:
    """``(reader, size on disk, compressed)``: ``fileobj``, wrapped in a gzip reader when it
    starts with the gzip magic bytes."""
    if not fileobj.seekable():  # e.g. a pipe: buffer it so the magic bytes can be re-read
        fileobj = io.BytesIO(fileobj.read())
    here = fileobj.tell()
    size = fileobj.seek(0, io.SEEK_END) - here
    fileobj.seek(here)
    head = fileobj.read(2)
    fileobj.seek(here)
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fileobj, mode="rb"), size, True  # type: ignore[return-value]
    return fileobj, size, False


def _load(fileobj: BinaryIO, name: str, max_bytes: int | None) -> Any:
    try:
        stream, on_disk, compressed = _open_maybe_gzip(fileobj)
        if max_bytes is None:
            max_bytes = max(DEFAULT_MIN_BYTES, DEFAULT_INFLATION * on_disk) if compressed \
                else on_disk
        unpickler = ArrayUnpickler(stream, max_bytes=max_bytes, name=name)
        result = unpickler.load()
        if compressed:
            # The unpickler stops at STOP; gzip checks its CRC only at the end of the stream.
            # Read to the end (within max_bytes) so that corrupted data is not loaded unchecked.
            while unpickler._file_read(_CHUNK):  # type: ignore[attr-defined]
                pass
    except PickleFormatError as exc:
        text = str(exc)
        if not text.startswith(name + ":"):
            raise type(exc)(f"{name}: {text}") from None
        raise
    except (Exception, RecursionError) as exc:  # truncated, garbage, a bad gzip stream, ...
        kind = "truncated" if isinstance(exc, EOFError) else "not a readable pickle of arrays"
        raise PickleFormatError(f"{name}: {kind} ({type(exc).__name__}: {str(exc):.200})") \
            from None
    return result  # bytes after STOP are ignored, as pickle.load ignores them


def load_arrays_pickle(path_or_fileobj: PathOrFile, *, max_bytes: int | None = None) -> Any:
    """Load a pickle of NumPy arrays without running arbitrary code.

    Gzip-compressed input (``.pkl.gz``) is detected by its magic bytes, so the
    file name does not matter. Python 2 pickles (the classic ``mnist.pkl.gz``)
    load too: their ``str`` payloads are decoded as latin1, as NumPy requires.

    Args:
        path_or_fileobj: a path, or a binary file object (an open file,
            ``io.BytesIO``; a non-seekable stream is read into memory first).
        max_bytes: the largest (decompressed) pickle accepted; default: the
            file's size, or for gzip input the larger of
            :data:`DEFAULT_MIN_BYTES` and :data:`DEFAULT_INFLATION` times it.

    Returns:
        The unpickled object: arrays nested in tuples, lists and dicts.

    Raises:
        UnsafePickleError: the pickle names any global other than the NumPy
            constructors listed in this module's docstring, or passes them
            arguments (sizes, offsets, states) that NumPy's pickles never do.
        PickleFormatError: the file is truncated, not a pickle, or too large.

    Example:
        >>> import numpy as np, pickle, io
        >>> x, y = load_arrays_pickle(io.BytesIO(pickle.dumps((np.zeros(2), np.ones(1)))))
        >>> x.shape, y.shape
        ((2,), (1,))
    """
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        name = os.fspath(path_or_fileobj)
        with open(path_or_fileobj, "rb") as raw:
            return _load(raw, name, max_bytes)
    name = str(getattr(path_or_fileobj, "name", "") or "pickle")
    return _load(path_or_fileobj, name, max_bytes)


def loads_arrays_pickle(data: bytes, *, max_bytes: int | None = None) -> Any:
    """Like :func:`load_arrays_pickle` for a pickle held in memory.

    Args:
        data: the pickle bytes, gzip-compressed or not.
        max_bytes: as for :func:`load_arrays_pickle`.

    Returns:
        The unpickled object.
    """
    return load_arrays_pickle(io.BytesIO(data), max_bytes=max_bytes)
