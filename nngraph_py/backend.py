"""Array backends: one place that knows about NumPy, CuPy and the strict test module.

Lua Torch switched devices with ``module:type('torch.CudaTensor')``; here a *device* is a short
name and every array op asks this module for the array module (``xp``) of its input, as Chainer's
``get_array_module`` does. Modules never import numpy for arithmetic on their arrays.

Devices:
    ``"cpu"``    NumPy arrays (the default).
    ``"cuda"``   CuPy arrays, when CuPy and a GPU are present.
    ``"strict"`` NumPy underneath, but every array is a :class:`StrictArray` that refuses to be
                 handed to NumPy directly (``np.exp(a)``, ``np.asarray(a)``) or silently copied to
                 the host. Tests run modules and graphs on it to prove they are device-agnostic.
"""
from __future__ import annotations

import threading
from typing import Any, Iterable

import numpy

from .errors import ArgumentError, NNGraphError

__all__ = [
    "DeviceError",
    "StrayNumpyCall",
    "StrictArray",
    "strict",
    "get_array_module",
    "device_of",
    "to_device",
    "to_numpy",
    "is_array",
    "is_floating",
    "cuda_available",
    "cuda_unavailable_reason",
    "get_default_dtype",
    "set_default_dtype",
    "manual_seed",
    "new_parameter",
    "array_module",
    "host_rng",
    "DEVICES",
]

DEVICES = ("cpu", "cuda", "strict")


class DeviceError(NNGraphError, RuntimeError):
    """An array is on the wrong device, or a device is not available."""


class StrayNumpyCall(NNGraphError, RuntimeError):
    """A strict array was handed to NumPy directly instead of through the backend's array module."""


# --------------------------------------------------------------------------------------------
# Optional CuPy
# --------------------------------------------------------------------------------------------
_cupy: Any = None
_cupy_reason: str | None = None


def _load_cupy() -> Any:
    global _cupy, _cupy_reason
    if _cupy is not None or _cupy_reason is not None:
        return _cupy
    try:
        import cupy  # type: ignore

        if cupy.cuda.runtime.getDeviceCount() < 1:
            _cupy_reason = "CuPy is installed but no CUDA device is visible"
        else:
            _cupy = cupy
    except ImportError:
        _cupy_reason = "CuPy is not installed (pip install 'nngraph_py[cuda]')"
    except Exception as exc:  # pragma: no cover - depends on the machine's driver
        _cupy_reason = f"CuPy could not reach a GPU: {exc}"
    return _cupy


def cuda_available() -> bool:
    """Whether the ``"cuda"`` device can be used (CuPy installed and a GPU visible)."""
    return _load_cupy() is not None


def cuda_unavailable_reason() -> str:
    """A sentence saying why ``"cuda"`` is unavailable (empty when it is available)."""
    _load_cupy()
    return _cupy_reason or ""


# --------------------------------------------------------------------------------------------
# The strict array module
# --------------------------------------------------------------------------------------------
_allow = threading.local()


def _unwrap(obj: Any) -> Any:
    if type(obj) is StrictArray:
        return obj._a
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj: Any) -> Any:
    if isinstance(obj, numpy.ndarray):
        return StrictArray(obj)
    if isinstance(obj, numpy.generic):  # NumPy's scalar results: 0-d device arrays, as CuPy
        return StrictArray(numpy.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _strict_call(fn: Any, args: tuple, kwargs: dict) -> Any:
    out = kwargs.get("out")
    result = fn(*_unwrap(args), **_unwrap(kwargs))
    if type(out) is StrictArray and result is out._a:
        return out
    return _wrap(result)


class StrictArray:
    """A NumPy array that only the strict array module may operate on.

    It behaves like a device array (CuPy's ``ndarray``): arithmetic operators, indexing and the
    usual methods work, but ``numpy.exp(a)``, ``numpy.asarray(a)`` or any other direct NumPy call
    raises :class:`StrayNumpyCall`, exactly where CuPy code would break or silently copy to the
    host. Use :func:`to_numpy` for an explicit host copy.
    """

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs refuse this type (operators are defined below)

    def __init__(self, array: numpy.ndarray):
        self._a = array

    # NumPy's protocols: refuse silent conversion and stray calls.
    def __array__(self, *args: Any, **kwargs: Any) -> numpy.ndarray:
        raise StrayNumpyCall(
            "a strict (device) array was converted to a host NumPy array implicitly; "
            "use the backend's array module (get_array_module) or nngraph_py.backend.to_numpy"
        )

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        raise StrayNumpyCall(
            f"numpy.{getattr(func, '__name__', func)} was called on a strict (device) array; "
            "ask the backend for the array module: xp = get_array_module(x)"
        )

    # Attributes and methods are those of the wrapped array.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # __array_interface__, __array_struct__, __dlpack__...
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *a, **k: _strict_call(attr, a, k)
        return _wrap(attr)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_a":
            object.__setattr__(self, name, value)
        elif name == "shape":
            self._a.shape = value
        else:
            raise AttributeError(f"cannot set attribute {name!r} of a StrictArray")

    @property
    def T(self) -> "StrictArray":
        return StrictArray(self._a.T)

    @property
    def shape(self) -> tuple:
        return self._a.shape

    @property
    def dtype(self) -> numpy.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterable:
        return (_wrap(x) for x in self._a)

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_unwrap(key)] = _unwrap(value)

    # Scalars may leave the device explicitly, as CuPy allows (float(x), x.item()).
    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __repr__(self) -> str:
        return "strict" + repr(self._a)

    def __round__(self, ndigits: int | None = None) -> Any:
        if self._a.ndim == 0:
            return round(self._a.item(), ndigits)
        return _wrap(self._a.round(ndigits or 0))

    def __format__(self, spec: str) -> str:  # f"{loss:.3f}" on a 0-d result, as CuPy allows
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __deepcopy__(self, memo: dict) -> "StrictArray":
        return StrictArray(self._a.copy())

    def __copy__(self) -> "StrictArray":
        return StrictArray(self._a)

    def __reduce__(self) -> Any:
        raise StrayNumpyCall("strict arrays cannot be pickled; convert with to_numpy first")


def _binary(name: str) -> Any:
    def op(self: StrictArray, other: Any) -> Any:
        if isinstance(other, numpy.ndarray) and other.ndim > 0:
            raise StrayNumpyCall(
                f"a host NumPy array of shape {other.shape} was combined with a strict (device) "
                "array; move it to the device first"
            )
        return _wrap(getattr(self._a, name)(_unwrap(other)))

    op.__name__ = name
    return op


def _inplace(name: str) -> Any:
    def op(self: StrictArray, other: Any) -> StrictArray:
        if isinstance(other, numpy.ndarray) and other.ndim > 0:
            raise StrayNumpyCall("a host NumPy array was combined with a strict (device) array")
        getattr(self._a, name)(_unwrap(other))
        return self

    op.__name__ = name
    return op


def _unary(name: str) -> Any:
    def op(self: StrictArray) -> Any:
        return _wrap(getattr(self._a, name)())

    op.__name__ = name
    return op


for _n in ("add", "sub", "mul", "truediv", "floordiv", "pow", "matmul", "mod",
           "lt", "le", "gt", "ge", "eq", "ne", "and", "or", "xor"):
    setattr(StrictArray, f"__{_n}__", _binary(f"__{_n}__"))
    if _n not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(StrictArray, f"__r{_n}__", _binary(f"__r{_n}__"))
        setattr(StrictArray, f"__i{_n}__", _inplace(f"__i{_n}__"))
for _n in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_n}__", _unary(f"__{_n}__"))
StrictArray.__hash__ = None  # type: ignore[assignment]


class _StrictNamespace:
    """NumPy's namespace seen through the strict wrapper (``strict.exp``, ``strict.random``...)."""

    def __init__(self, target: Any, name: str):
        self._target = target
        self.__name__ = name

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if isinstance(attr, type(numpy)):
            sub = _StrictNamespace(attr, f"{self.__name__}.{name}")
            setattr(self, name, sub)
            return sub
        if isinstance(attr, type) or not callable(attr):
            return attr  # dtypes (strict.float32), constants (strict.pi), classes
        if isinstance(attr, numpy.ufunc):
            return _StrictUfunc(attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            return _strict_call(attr, args, kwargs)

        call.__name__ = name
        return call

    def __repr__(self) -> str:
        return f"<strict array module over {self._target.__name__}>"


class _StrictUfunc:
    def __init__(self, ufunc: numpy.ufunc):
        self._u = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _strict_call(self._u, args, kwargs)

    def __getattr__(self, name: str) -> Any:  # reduce, accumulate, at, outer
        method = getattr(self._u, name)
        return lambda *a, **k: _strict_call(method, a, k)


#: The strict array module: NumPy's API over :class:`StrictArray` (see the module docstring).
strict = _StrictNamespace(numpy, "strict")
strict.ndarray = StrictArray  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------
def is_array(x: Any) -> bool:
    """Whether ``x`` is an array of any backend (NumPy, CuPy or strict)."""
    if isinstance(x, (numpy.ndarray, StrictArray)):
        return True
    return _cupy is not None and isinstance(x, _cupy.ndarray)


def device_of(x: Any) -> str:
    """The device name of an array: ``"cpu"``, ``"cuda"`` or ``"strict"``."""
    if type(x) is StrictArray:
        return "strict"
    if isinstance(x, numpy.ndarray):
        return "cpu"
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return "cuda"
    raise ArgumentError(f"expected an array, got {type(x).__name__}")


def get_array_module(x: Any) -> Any:
    """The array module of ``x`` (``numpy``, ``cupy`` or :data:`strict`), as Chainer's."""
    if type(x) is StrictArray:
        return strict
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy
    return numpy


def array_module(device: str) -> Any:
    """The array module that creates arrays on ``device``."""
    if device == "cpu":
        return numpy
    if device == "strict":
        return strict
    if device == "cuda":
        cp = _load_cupy()
        if cp is None:
            raise DeviceError(f"device 'cuda' is unavailable: {cuda_unavailable_reason()}")
        return cp
    raise DeviceError(f"unknown device {device!r}; expected one of {DEVICES}")


def to_numpy(x: Any) -> numpy.ndarray:
    """An explicit host copy (or view, on the CPU) of an array of any backend."""
    if type(x) is StrictArray:
        return x._a
    if isinstance(x, numpy.ndarray):
        return x
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return numpy.asarray(x)


def to_device(x: Any, device: str | None = None, dtype: Any = None) -> Any:
    """``x`` on ``device`` (unchanged device when None), floating arrays cast to ``dtype``.

    Integer and boolean arrays keep their dtype. Returns ``x`` itself when nothing changes.
    """
    src = device_of(x) if is_array(x) else "cpu"
    device = device or src
    if dtype is not None and is_floating(x):
        dtype = numpy.dtype(dtype)
    else:
        dtype = None
    if device == src:
        if dtype is None or x.dtype == dtype:
            return x
        return x.astype(dtype)
    host = to_numpy(x)
    if dtype is not None:
        host = host.astype(dtype, copy=False)
    if device == "cpu":
        return host
    if device == "strict":
        return StrictArray(numpy.array(host, copy=True))
    return array_module(device).asarray(host)


def is_floating(x: Any) -> bool:
    """Whether an array has a floating dtype."""
    return numpy.dtype(x.dtype).kind == "f"


# --------------------------------------------------------------------------------------------
# Defaults: dtype and random numbers
# --------------------------------------------------------------------------------------------
_default_dtype = numpy.dtype(numpy.float32)
_host_rng = numpy.random.default_rng(0)


def get_default_dtype() -> numpy.dtype:
    """The floating dtype new parameters are created with (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype new parameters are created with (Lua's ``torch.setdefaulttensortype``)."""
    global _default_dtype
    dt = numpy.dtype(dtype)
    if dt.kind != "f":
        raise ArgumentError(f"the default dtype must be floating, got {dt}")
    _default_dtype = dt


def host_rng() -> numpy.random.Generator:
    """The generator parameter initialisation draws from (host side, then moved to the device)."""
    return _host_rng


def new_parameter(shape: tuple) -> numpy.ndarray:
    """A zero host array of the default dtype, for a module's constructor to fill and register."""
    return numpy.zeros(shape, dtype=_default_dtype)


def manual_seed(seed: int) -> None:
    """Seed every generator the library uses (Lua's ``torch.manualSeed``)."""
    global _host_rng
    _host_rng = numpy.random.default_rng(seed)
    numpy.random.seed(seed % (2**32))
    if _cupy is not None:
        _cupy.random.seed(seed)
