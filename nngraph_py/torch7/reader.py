"""A reader for Lua Torch's serialization format (Lua: ``torch.load`` / ``File:readObject``).

The format (torch7's ``File.lua`` and ``generic/Tensor.c``): every value starts with an int type
code; numbers are doubles, strings a length and bytes; tables, Torch objects and functions carry
an index, and an index seen before is a back-reference to the same object. A Torch object is a
version string (``"V 1"``), a class name, then either its own payload (tensors: dimension count,
sizes, strides, 1-based storage offset and the storage object; storages: a length and the raw
elements) or a table of its fields. The ASCII variant writes the same values as text, one per
line, with raw bytes for strings.

This module turns a file into plain Python values and :class:`TorchObject` records; turning
``nn`` classes into the library's modules is :mod:`nngraph_py.torch7.convert`. The parser is
iterative (an explicit stack, no Python recursion), refuses any declared size larger than what
is left of the file, and never runs Lua code: functions are refused (or kept as inert
:class:`LuaFunction` records when ``strict=False``).
"""
from __future__ import annotations

import math
import re
import struct
from typing import Any, Callable

import numpy

from ..errors import NNGraphError

__all__ = ["Torch7Error", "TorchObject", "LuaFunction", "TableKey", "parse", "TENSOR_DTYPES",
           "MAX_DEPTH"]

#: The deepest nesting of tables and objects accepted (the parser itself does not recurse).
MAX_DEPTH = 100_000
#: The most dimensions a tensor may declare.
MAX_TENSOR_DIMS = 64

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
TYPE_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION, TYPE_RECUR_FUNCTION = 6, 7, 8

#: Element type of each Torch tensor/storage kind (CUDA kinds are stored like their CPU twins).
TENSOR_DTYPES: dict[str, numpy.dtype] = {}
for _prefix, _dt in (("Double", "<f8"), ("Float", "<f4"), ("Half", "<f2"), ("Long", "<i8"),
                     ("Int", "<i4"), ("Short", "<i2"), ("Char", "i1"), ("Byte", "u1")):
    TENSOR_DTYPES[_prefix] = numpy.dtype(_dt)
_CUDA_KINDS = {"Cuda": "Float", "CudaDouble": "Double", "CudaHalf": "Half", "CudaLong": "Long",
               "CudaInt": "Int", "CudaShort": "Short", "CudaChar": "Char", "CudaByte": "Byte"}
_CLASS_RE = re.compile(r"^torch\.(Cuda(?:Double|Half|Long|Int|Short|Char|Byte)?|Double|Float|"
                       r"Half|Long|Int|Short|Char|Byte)(Tensor|Storage)$")


class Torch7Error(NNGraphError, ValueError):
    """A ``.t7`` file cannot be read: malformed, truncated, an unknown class, a Lua function.

    Attributes:
        offset: the byte offset in the file where the problem was met (None when not known).
        class_name: the Torch class involved, if any.
    """

    def __init__(self, message: str, offset: int | None = None, class_name: str | None = None):
        super().__init__(message)
        self.offset = offset
        self.class_name = class_name


class TorchObject:
    """A Torch object of a class this library does not turn into anything else.

    Attributes:
        torch_typename: the Lua class name, e.g. ``"nn.SpatialConvolution"``.
        fields: the object's fields (a dict, as its Lua table), or None before they are read.
        version: the serialization version number of the class (``"V 1"`` -> 1).
        offset: the byte offset where the object starts in the file.
    """

    def __init__(self, torch_typename: str, version: int = 0, offset: int = 0):
        self.torch_typename = torch_typename
        self.fields: Any = None
        self.version = version
        self.offset = offset

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields")
        if isinstance(fields, dict) and name in fields:
            return fields[name]
        raise AttributeError(f"{self.__dict__.get('torch_typename', 'TorchObject')} object has "
                             f"no field {name!r}")

    def __getitem__(self, key: Any) -> Any:
        return self.fields[key]

    def __repr__(self) -> str:
        keys = sorted(str(k) for k in self.fields) if isinstance(self.fields, dict) else []
        return f"<TorchObject {self.torch_typename} fields={keys}>"


class LuaFunction:
    """An inert record of a serialized Lua function (``strict=False`` only; never run).

    Attributes:
        bytecode: the dumped bytecode, as bytes.
        upvalues: the serialized upvalues.
    """

    def __init__(self, bytecode: bytes):
        self.bytecode = bytecode
        self.upvalues: Any = None

    def __repr__(self) -> str:
        return f"<LuaFunction, {len(self.bytecode)} bytes of bytecode, not loaded>"


class TableKey:
    """A Lua table or object used as a table key (Python dicts and lists are not hashable).

    Equality is identity, as in Lua. ``value`` is the table or object.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TableKey) and other.value is self.value

    def __repr__(self) -> str:
        return f"TableKey({type(self.value).__name__} at {id(self.value):#x})"


def _decode(raw: bytes) -> str:
    """Lua strings are bytes: UTF-8 where valid, other bytes kept by ``surrogateescape``."""
    return raw.decode("utf-8", "surrogateescape")


def _number(x: float) -> int | float:
    """Lua numbers are doubles: integral ones come back as ``int``, others as ``float``."""
    if math.isfinite(x) and x == int(x) and abs(x) <= 2 ** 53 and not (x == 0 and math.copysign(1, x) < 0):
        return int(x)
    return x


# ---------------------------------------------------------------------------------------------
# Low-level input: binary and ASCII
# ---------------------------------------------------------------------------------------------
class _Input:
    def __init__(self, data: bytes, long_size: int):
        self.data = data
        self.pos = 0
        self.long_size = long_size
        # tensors with the same storage, offset, sizes and strides come back as one array, so
        # weights shared in Lua (clone('weight', ...)) are shared here by identity too
        self.views: dict[tuple, Any] = {}

    def fail(self, message: str, offset: int | None = None) -> Torch7Error:
        at = self.pos if offset is None else offset
        return Torch7Error(f"{message} (at byte offset {at} of {len(self.data)})", offset=at)

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def check_count(self, n: int, unit: int, what: str) -> None:
        """Refuse a declared count whose payload cannot fit in what is left of the file."""
        if n < 0:
            raise self.fail(f"negative {what} {n}")
        if n * unit > self.remaining():
            raise self.fail(f"{what} {n} declares more data than the {self.remaining()} bytes left "
                            f"in the file")


class _BinaryInput(_Input):
    def _take(self, n: int, what: str) -> bytes:
        if n > self.remaining():
            raise self.fail(f"file ends inside {what}: needs {n} bytes, {self.remaining()} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def read_int(self) -> int:
        return struct.unpack("<i", self._take(4, "an int"))[0]

    def read_long(self) -> int:
        fmt = "<q" if self.long_size == 8 else "<i"
        return struct.unpack(fmt, self._take(self.long_size, "a long"))[0]

    def read_longs(self, n: int) -> list[int]:
        self.check_count(n, self.long_size, "long count")
        fmt = f"<{n}{'q' if self.long_size == 8 else 'i'}"
        return list(struct.unpack(fmt, self._take(n * self.long_size, "longs")))

    def read_double(self) -> float:
        return struct.unpack("<d", self._take(8, "a double"))[0]

    def read_bytes(self, n: int) -> bytes:
        self.check_count(n, 1, "byte count")
        return self._take(n, "a string")

    def read_array(self, dtype: numpy.dtype, n: int) -> numpy.ndarray:
        self.check_count(n, dtype.itemsize, "storage size")
        raw = self._take(n * dtype.itemsize, "storage data")
        return numpy.frombuffer(raw, dtype=dtype, count=n).astype(dtype.newbyteorder("="))


_SPACE = b" \t\n\r\x0b\x0c"


class _AsciiInput(_Input):
    """Torch's ASCII mode: numbers as text (``%d``, ``%ld``, ``%.17g``) each followed by a newline,
    arrays space-separated, raw bytes for chars followed by a newline."""

    _MAX_TOKEN = 64  # a printed number is never longer

    def _token(self, what: str) -> bytes:
        data, pos = self.data, self.pos
        n = len(data)
        while pos < n and data[pos] in _SPACE:
            pos += 1
        end = pos
        while end < n and end - pos <= self._MAX_TOKEN and data[end] not in _SPACE:
            end += 1
        if end == pos:
            raise self.fail(f"file ends where {what} was expected", pos)
        if end - pos > self._MAX_TOKEN:
            raise self.fail(f"{what} expected, found a token longer than {self._MAX_TOKEN} "
                            f"characters", pos)
        self.pos = end
        self._eat_newline()
        return data[pos:end]

    def _eat_newline(self) -> None:
        if self.pos < len(self.data) and self.data[self.pos] == 0x0A:
            self.pos += 1

    def _int(self, what: str) -> int:
        start = self.pos
        tok = self._token(what)
        try:
            return int(tok)
        except ValueError:
            raise self.fail(f"{what} expected, found {tok[:20]!r}", start) from None

    def read_int(self) -> int:
        value = self._int("an int")
        if not -2 ** 31 <= value < 2 ** 31:
            raise self.fail(f"int {value} out of range")
        return value

    def read_long(self) -> int:
        value = self._int("a long")
        if not -2 ** 63 <= value < 2 ** 63:
            raise self.fail(f"long {value} out of range")
        return value

    def _tokens(self, n: int, what: str) -> list[bytes]:
        self.check_count(n, 1, what)
        if n == 0:
            return []
        window = self.data[self.pos:self.pos + n * (self._MAX_TOKEN + 2)]
        parts = window.split(None, n)
        if len(parts) < n:
            raise self.fail(f"file ends inside {what}: {len(parts)} of {n} values")
        if len(parts) > n:
            consumed = len(window) - len(parts[n])
            # the split also ate the whitespace before the next value; give it back
            while consumed > 0 and window[consumed - 1] in _SPACE:
                consumed -= 1
        else:
            consumed = len(window.rstrip())
        self.pos += consumed
        self._eat_newline()
        return parts[:n]

    def read_longs(self, n: int) -> list[int]:
        start = self.pos
        try:
            return [int(t) for t in self._tokens(n, "long count")]
        except ValueError:
            raise self.fail("longs expected", start) from None

    def read_double(self) -> float:
        start = self.pos
        tok = self._token("a double")
        try:
            return float(tok)
        except ValueError:
            raise self.fail(f"a double expected, found {tok[:20]!r}", start) from None

    def read_bytes(self, n: int) -> bytes:
        self.check_count(n, 1, "byte count")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        if n:
            self._eat_newline()
        return out

    def read_array(self, dtype: numpy.dtype, n: int) -> numpy.ndarray:
        if dtype.itemsize == 1:  # chars and bytes are raw in ASCII mode too
            return numpy.frombuffer(self.read_bytes(n), dtype=dtype).copy()
        start = self.pos
        tokens = self._tokens(n, "storage size")
        try:
            if dtype.kind == "f":
                values = numpy.array([float(t) for t in tokens], dtype=numpy.float64)
                with numpy.errstate(over="ignore"):  # out of float32 range: inf, as C's scanf
                    return values.astype(dtype.newbyteorder("="))
            ints = [int(t) for t in tokens]
        except ValueError:
            raise self.fail("storage elements expected", start) from None
        info = numpy.iinfo(dtype)
        if ints and (min(ints) < info.min or max(ints) > info.max):
            raise self.fail(f"storage element out of range for {dtype}", start)
        return numpy.array(ints, dtype=dtype.newbyteorder("="))


def is_ascii(data: bytes) -> bool:
    """Whether ``data`` looks like Torch's ASCII format (a type code written as text)."""
    head = data[:16]
    return len(head) >= 2 and head[:1] in (b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8") \
        and head[1:2] in (b"\n", b"\r")


# ---------------------------------------------------------------------------------------------
# The parser: an explicit stack of frames
# ---------------------------------------------------------------------------------------------
class _TableFrame:
    __slots__ = ("index", "table", "left", "key", "has_key", "offset", "cyclic")

    def __init__(self, index: int, left: int, offset: int):
        self.index = index
        self.table: dict = {}
        self.left = left
        self.key: Any = None
        self.has_key = False
        self.offset = offset
        self.cyclic = False


class _ObjectFrame:
    """A Torch object waiting for its fields table (or a tensor waiting for its storage)."""
    __slots__ = ("index", "obj", "tensor", "offset")

    def __init__(self, index: int, obj: Any, offset: int, tensor: tuple | None = None):
        self.index = index
        self.obj = obj
        self.offset = offset
        self.tensor = tensor


class _FunctionFrame:
    __slots__ = ("index", "func", "offset")

    def __init__(self, index: int, func: LuaFunction, offset: int):
        self.index = index
        self.func = func
        self.offset = offset


_PENDING = object()  # marks an index whose object is being read (a cycle back to it)

Converter = Callable[[TorchObject], Any]


def parse(data: bytes, strict: bool = True, convert: Converter | None = None,
          long_size: int = 8, ascii: bool | None = None, exact: bool = False) -> Any:
    """Read one serialized object from ``data``.

    Args:
        data: the file's bytes.
        strict: refuse Lua functions (always refused from being run; with False they come back
            as :class:`LuaFunction` records) and let ``convert`` refuse unknown classes.
        convert: called on each Torch object (not tensors or storages) once its fields are read;
            returns what the object becomes (a module, or the object itself).
        long_size: bytes in a C long of the writing machine (8; 4 for files saved with ``b32``).
        ascii: the format; None detects it.
        exact: refuse bytes left over after the object (Lua ignores them).
    Returns:
        The value.
    Raises:
        Torch7Error: on any malformed input.
    """
    if ascii is None:
        ascii = is_ascii(data)
    inp: _Input = _AsciiInput(data, long_size) if ascii else _BinaryInput(data, long_size)
    memo: dict[int, Any] = {}
    stack: list[Any] = []
    result: list[Any] = []

    def deliver(value: Any) -> None:
        """Hand a finished value to the frame on top of the stack (or make it the result)."""
        while True:
            if not stack:
                result.append(value)
                return
            top = stack[-1]
            if isinstance(top, _TableFrame):
                if not top.has_key:
                    top.key, top.has_key = value, True
                    return
                key = top.key
                top.has_key = False
                top.left -= 1
                if key is not None:  # Lua never stores a nil key; a corrupt file may
                    top.table[_as_key(key)] = value
                if top.left > 0:
                    return
                stack.pop()
                value = _finish_table(top, memo)
                continue
            if isinstance(top, _ObjectFrame):
                stack.pop()
                if top.tensor is not None:
                    value = _finish_tensor(inp, top, value)
                    memo[top.index] = value
                    continue
                obj = top.obj
                obj.fields = value
                value = obj
                if convert is not None:
                    try:
                        value = convert(obj)
                    except Torch7Error:
                        raise
                    except Exception as exc:  # noqa: BLE001 - reported with class and offset
                        raise Torch7Error(
                            f"cannot convert Torch class {obj.torch_typename} at byte offset "
                            f"{top.offset}: {type(exc).__name__}: {exc}",
                            offset=top.offset, class_name=obj.torch_typename) from exc
                memo[top.index] = value
                continue
            if isinstance(top, _FunctionFrame):
                stack.pop()
                top.func.upvalues = value
                value = top.func
                continue
            raise AssertionError("unknown frame")

    while True:
        if len(stack) > MAX_DEPTH:
            raise inp.fail(f"values nested deeper than {MAX_DEPTH}")
        start = inp.pos
        kind = inp.read_int()
        if kind == TYPE_NIL:
            deliver(None)
        elif kind == TYPE_NUMBER:
            deliver(_number(inp.read_double()))
        elif kind == TYPE_BOOLEAN:
            deliver(inp.read_int() == 1)
        elif kind == TYPE_STRING:
            deliver(_decode(inp.read_bytes(inp.read_int())))
        elif kind in (TYPE_TABLE, TYPE_TORCH, TYPE_RECUR_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION,
                      TYPE_FUNCTION):
            if kind == TYPE_FUNCTION:
                index = None  # the oldest format: functions without an index
            else:
                index = inp.read_int()
                if index in memo:
                    value = memo[index]
                    if value is _PENDING:
                        value = _cycle_placeholder(stack, index, inp)
                    deliver(value)
                    if not stack and result:
                        break
                    continue
            if kind in (TYPE_FUNCTION, TYPE_RECUR_FUNCTION, LEGACY_TYPE_RECUR_FUNCTION):
                if strict:
                    raise Torch7Error(
                        f"a Lua function (bytecode) is stored at byte offset {start}: refused, "
                        f"functions in .t7 files are never run (load with strict=False to skip "
                        f"it as an inert LuaFunction record)", offset=start)
                func = LuaFunction(inp.read_bytes(inp.read_int()))
                if index is not None:
                    memo[index] = func
                stack.append(_FunctionFrame(index or 0, func, start))
            elif kind == TYPE_TABLE:
                assert index is not None
                size = inp.read_int()
                inp.check_count(size, 2 * (1 if ascii else 4), "table size")
                frame = _TableFrame(index, size, start)
                memo[index] = _PENDING
                if size == 0:
                    deliver(_finish_table(frame, memo))
                else:
                    stack.append(frame)
            else:
                assert index is not None
                _start_torch_object(inp, index, start, memo, stack, deliver)
        else:
            raise inp.fail(f"unknown type code {kind}", start)
        if not stack and result:
            break
    if exact and inp.pos != len(data):
        raise inp.fail(f"{len(data) - inp.pos} bytes left after the object")
    return result[0]


def _as_key(key: Any) -> Any:
    if isinstance(key, (dict, list, TorchObject, LuaFunction)) or not _hashable(key):
        return TableKey(key)
    return key


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _finish_table(frame: _TableFrame, memo: dict) -> Any:
    """A Lua table: a list when its keys are exactly 1..n (and nothing referred to it while it
    was being read), else a dict."""
    table = frame.table
    n = len(table)
    value: Any = table
    if n and not frame.cyclic and all(type(k) is int for k in table):
        if min(table) == 1 and max(table) == n:
            value = [table[i] for i in range(1, n + 1)]
    memo[frame.index] = value
    return value


def _cycle_placeholder(stack: list, index: int, inp: _Input) -> Any:
    """A back-reference to an object still being read: return the object under construction."""
    for frame in stack:
        if frame.index != index:
            continue
        if isinstance(frame, _TableFrame):
            frame.cyclic = True  # it must stay the dict the reference points to
            return frame.table
        if isinstance(frame, _ObjectFrame) and frame.tensor is None:
            return frame.obj
        if isinstance(frame, _FunctionFrame):
            return frame.func
    raise inp.fail(f"a tensor refers to itself (object index {index})")


def _start_torch_object(inp: _Input, index: int, start: int, memo: dict, stack: list,
                        deliver: Callable[[Any], None]) -> None:
    version_str = _decode(inp.read_bytes(inp.read_int()))
    match = re.match(r"^V (.*)$", version_str)
    if match:
        try:
            version = int(float(match.group(1)))
        except (ValueError, OverflowError):
            raise inp.fail(f"bad version string {version_str[:40]!r}", start) from None
        class_name = _decode(inp.read_bytes(inp.read_int()))
    else:
        version, class_name = 0, version_str
    tm = _CLASS_RE.match(class_name)
    if tm:
        kind = _CUDA_KINDS.get(tm.group(1), tm.group(1))
        dtype = TENSOR_DTYPES[kind]
        if tm.group(2) == "Storage":
            size = inp.read_long()
            value = inp.read_array(dtype, size)
            memo[index] = value
            deliver(value)
            return
        ndim = inp.read_int()
        if not 0 <= ndim <= MAX_TENSOR_DIMS:
            raise inp.fail(f"{class_name} with {ndim} dimensions", start)
        sizes = inp.read_longs(ndim)
        strides = inp.read_longs(ndim)
        offset = inp.read_long() - 1
        memo[index] = _PENDING
        stack.append(_ObjectFrame(index, None, start, (class_name, dtype, sizes, strides, offset)))
        return
    obj = TorchObject(class_name, version, start)
    memo[index] = _PENDING
    stack.append(_ObjectFrame(index, obj, start))


def _finish_tensor(inp: _Input, frame: _ObjectFrame, storage: Any) -> numpy.ndarray:
    """A tensor as a view of its storage's array, with Torch's sizes, strides and offset."""
    assert frame.tensor is not None
    class_name, dtype, sizes, strides, offset = frame.tensor
    where = f"{class_name} at byte offset {frame.offset}"
    if any(s < 0 for s in sizes):
        raise Torch7Error(f"{where}: negative size in {sizes}", frame.offset, class_name)
    # A zero stride lets a tensor have more elements than its storage (Lua's expand); still,
    # no tensor may claim more elements than a generous multiple of the file's size.
    limit = 16 * len(inp.data) + 1024
    if math.prod(s for s in sizes if s) > limit:
        raise Torch7Error(f"{where}: sizes {sizes} declare more than {limit} elements, "
                          f"implausible for a file of {len(inp.data)} bytes", frame.offset,
                          class_name)
    if len(sizes) == 0 or any(s == 0 for s in sizes):
        return numpy.zeros(tuple(sizes) if sizes else (0,), dtype=dtype.newbyteorder("="))
    if storage is None:
        raise Torch7Error(f"{where}: a tensor of size {sizes} without a storage", frame.offset,
                          class_name)
    if not isinstance(storage, numpy.ndarray) or storage.ndim != 1 or \
            storage.dtype != dtype.newbyteorder("="):
        raise Torch7Error(f"{where}: its storage is not a {dtype} storage", frame.offset,
                          class_name)
    if any(s < 0 for s in strides):
        raise Torch7Error(f"{where}: negative stride in {strides}", frame.offset, class_name)
    last = offset + sum((n - 1) * s for n, s in zip(sizes, strides))
    if offset < 0 or last >= storage.shape[0]:
        raise Torch7Error(f"{where}: sizes {sizes}, strides {strides} and offset {offset + 1} "
                          f"reach element {last + 1} of a storage of {storage.shape[0]}",
                          frame.offset, class_name)
    key = (id(storage), offset, tuple(sizes), tuple(strides))
    view = inp.views.get(key)
    if view is None:
        item = storage.itemsize
        view = numpy.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(sizes), strides=tuple(s * item for s in strides),
            writeable=True)
        inp.views[key] = view
    return view
