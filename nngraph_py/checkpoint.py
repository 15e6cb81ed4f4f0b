"""Checkpoints that never execute code on load: ``.npz`` arrays plus JSON metadata, one file.

Lua's ``torch.save`` and PyTorch's ``torch.save`` serialise objects (PyTorch through pickle, which
runs code when loaded; hence ``torch.load(weights_only=True)`` and safetensors). Here a checkpoint
holds only data:

* ``param/<name>``: every parameter, by its :meth:`Module.named_parameters` name
  (``param/i2h_forget.weight``); an array shared by clones is stored once, under its first name;
* ``grad/<name>``: their gradients, when asked for;
* ``buffer/<name>``: every buffer, by its :meth:`Module.named_buffers` name (a batch
  normalization's running statistics), so evaluate mode after a resume is the same model;
* ``optim/<key>``: the arrays of an optimizer's ``state_dict()`` (its numbers go in the metadata);
* ``__meta__.json``: UTF-8 JSON stored as a uint8 array: the format version, the model's repr and
  its :func:`~nngraph_py.inspect.summary.summary` as data (so ``python -m nngraph_py.inspect``
  describes and draws the model from the file alone), the name, shape, dtype and sha256 digest of
  every array, the optimizer's numbers and the caller's own metadata.

Reading trusts nothing in the file. Only the members the metadata lists are opened (an extra
member, a zip bomb say, is never inflated); each ``.npy`` header is parsed here, object (pickled)
and structured dtypes refused, and its declared size compared with the member's before anything
is allocated; every array's sha256 (of its values, C order, little-endian) is checked against the
metadata, so data altered under a valid zip CRC is refused. Files written before digests were
stored (no ``"digest"`` key) load without that check. Any malformed file raises
:class:`CheckpointError` naming the file and the problem, and the model and optimizer are left as
they were.

Files are written atomically: to a temporary file ``.<name>.<pid>.<random>.tmp`` in the same
directory, flushed to disk, then renamed over the target (``os.replace``), so a crash mid-write
leaves the previous checkpoint as it was; the next save or load of that path removes the
temporary files that killed processes left (only names of that pattern whose process is gone).
Parameters or optimizer arrays holding NaN or Inf are not saved (:class:`NonFiniteError`) unless
``allow_nonfinite=True``. Loading into a model checks every name, shape and dtype first and copies
nothing unless all match; the copy is made into the model's live arrays, so views from
``get_parameters`` stay valid.

Example:
    >>> save_checkpoint("runs/mlp.npz", mlp, optimizer, {"epoch": 3})     # doctest: +SKIP
    >>> ck = load_checkpoint("runs/mlp.npz", model=mlp, optimizer=optimizer)  # doctest: +SKIP
    >>> ck.user["epoch"]                                                   # doctest: +SKIP
    3
"""
from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import math
import os
import re
import tempfile
import time
import zipfile
from typing import Any, Iterable, Mapping, NamedTuple

import numpy

from . import backend
from .errors import NNGraphError
from .module import Module

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError",
           "CheckpointNotFound", "NonFiniteError", "OptionMismatchError", "find_nonfinite",
           "check_options", "FORMAT", "META_KEY"]

#: The format written in ``meta["format"]``; readers refuse other major versions.
FORMAT = "nngraph_py.checkpoint/1"
#: The entry holding the JSON metadata.
META_KEY = "__meta__.json"


class CheckpointError(NNGraphError, ValueError):
    """A checkpoint cannot be read, or does not match the model or optimizer it is loaded into."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class NonFiniteError(CheckpointError):
    """:func:`save_checkpoint` refused to write NaN or infinite parameters or optimizer state.

    Attributes:
        arrays: the keys of the arrays holding non-finite values (``"param/Linear1.weight"``,
            ``"optim/m"``), in the order they would have been saved.
    """

    def __init__(self, message: str, arrays: list[str]):
        super().__init__(message)
        self.arrays = arrays


class OptionMismatchError(CheckpointError):
    """A run resumed from a checkpoint asks for a different value of an option that must not
    change (the model's sizes, say); see :func:`check_options`.

    Attributes:
        option: the option's name (``"hidden"``).
        saved: its value in the checkpoint.
        current: the value asked for now.
    """

    def __init__(self, message: str, option: str, saved: Any, current: Any):
        super().__init__(message)
        self.option = option
        self.saved = saved
        self.current = current


class Checkpoint(NamedTuple):
    """What :func:`load_checkpoint` returns; unpacks as ``meta, arrays = load_checkpoint(path)``.

    Attributes:
        meta: the JSON metadata (``meta["format"]``, ``meta["model"]``, ``meta["parameters"]``,
            ``meta["optimizer"]``, ``meta["user"]``).
        arrays: every stored array by its key (``"param/Linear1.weight"``, ``"grad/..."``,
            ``"optim/m"``), as host NumPy arrays.
    """

    meta: dict[str, Any]
    arrays: dict[str, numpy.ndarray]

    @property
    def params(self) -> dict[str, numpy.ndarray]:
        """``{name: array}`` of the parameters, in ``named_parameters`` order."""
        return {p["name"]: self.arrays["param/" + p["name"]] for p in self.meta["parameters"]}

    @property
    def buffers(self) -> dict[str, numpy.ndarray]:
        """``{name: array}`` of the buffers (running statistics), in ``named_buffers`` order."""
        return {b["name"]: self.arrays["buffer/" + b["name"]]
                for b in self.meta.get("buffers", [])}

    @property
    def grads(self) -> dict[str, numpy.ndarray]:
        """``{name: array}`` of the stored gradients (empty when none were saved)."""
        if not self.meta.get("grads"):
            return {}
        return {p["name"]: self.arrays["grad/" + p["name"]] for p in self.meta["parameters"]}

    @property
    def optimizer_state(self) -> dict[str, Any] | None:
        """The optimizer's ``state_dict()`` as saved (numbers and arrays), or None."""
        info = self.meta.get("optimizer")
        if info is None:
            return None
        state: dict[str, Any] = {}
        for key, value in info.get("scalars", {}).items():
            state[key] = tuple(value) if key in info.get("tuples", []) else value
        for entry in info.get("arrays", []):
            state[entry["key"]] = self.arrays["optim/" + entry["key"]]
        return state

    @property
    def user(self) -> dict[str, Any]:
        """The ``meta`` dict given to :func:`save_checkpoint`."""
        return self.meta.get("user") or {}

    def summary(self) -> Any:
        """The model's :class:`~nngraph_py.inspect.summary.Summary`, rebuilt from the metadata."""
        from .inspect.summary import Summary

        return Summary.from_dict(self.meta["model"]["summary"])


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------
def _json_scalar(key: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, numpy.integer)):
        return int(value)
    if isinstance(value, (float, numpy.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json_scalar(key, v) for v in value]
    raise CheckpointError(
        f"optimizer state {key!r} is a {type(value).__name__}; a checkpoint stores arrays and "
        f"plain numbers, strings, booleans or lists of them"
    )


def _json_default(value: Any) -> Any:
    """NumPy scalars in ``meta`` (a loss from ``float32`` math) become plain numbers."""
    if isinstance(value, numpy.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _split_optimizer_state(state: Any) -> tuple[dict[str, Any], dict[str, numpy.ndarray]]:
    """``(json_info, {"optim/<key>": host array})`` of an optimizer or its ``state_dict()``."""
    kind = None
    if hasattr(state, "state_dict") and callable(state.state_dict):
        kind = type(state).__name__
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise CheckpointError(f"optimizer_state must be an optimizer (with state_dict()) or a "
                              f"dict, got {type(state).__name__}")
    scalars: dict[str, Any] = {}
    tuples: list[str] = []
    entries: list[dict[str, Any]] = []
    arrays: dict[str, numpy.ndarray] = {}
    for key, value in state.items():
        key = str(key)
        if backend.is_array(value) or isinstance(value, numpy.ndarray):
            host = numpy.ascontiguousarray(backend.to_numpy(value))
            arrays["optim/" + key] = host
            entries.append({"key": key, "shape": list(host.shape), "dtype": host.dtype.name,
                            "sha256": _digest(host)})
        else:
            scalars[key] = _json_scalar(key, value)
            if isinstance(value, tuple):
                tuples.append(key)
    return {"type": kind, "scalars": scalars, "tuples": tuples, "arrays": entries}, arrays


def _digest(array: numpy.ndarray) -> str:
    """The sha256 of an array's values: its bytes in C order, little-endian (so a header edit that
    reinterprets the same bytes, byte order or memory order, changes the digest)."""
    canonical = numpy.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return hashlib.sha256(canonical.reshape(-1).view(numpy.uint8)).hexdigest()  # type: ignore[arg-type]


def _count_nonfinite(array: Any) -> int:
    """How many entries of a floating (or complex) array are NaN or infinite; 0 for others."""
    if numpy.dtype(array.dtype).kind not in "fc":
        return 0
    xp = backend.get_array_module(array)
    finite = xp.isfinite(array)
    if bool(finite.all()):
        return 0
    return int(finite.size - int(finite.sum()))


def find_nonfinite(model: Module | None = None, optimizer_state: Any = None) -> list[str]:
    """The arrays of a model and of an optimizer's state that hold NaN or infinite values.

    :func:`save_checkpoint` calls it before writing; a training loop can call it after a step to
    say which step went bad (each call scans every array once, on the arrays' own device).

    Args:
        model: a module (its ``named_parameters`` are scanned), or None.
        optimizer_state: an optimizer (its ``state_dict()``) or a state dict, or None.

    Returns:
        The keys as a checkpoint names them: ``"param/<name>"``, ``"optim/<key>"``; empty when
        every value is finite.

    Example:
        >>> find_nonfinite(mlp)                                           # doctest: +SKIP
        []
    """
    bad = []
    if model is not None:
        for name, p in model.named_parameters():
            if _count_nonfinite(p):
                bad.append("param/" + name)
    if optimizer_state is not None:
        state = optimizer_state.state_dict() if callable(
            getattr(optimizer_state, "state_dict", None)) else optimizer_state
        for key, value in state.items():
            if backend.is_array(value) or isinstance(value, numpy.ndarray):
                if _count_nonfinite(value):
                    bad.append(f"optim/{key}")
    return bad


#: Temporary files of a save: ``.<name>.<pid>.<random>.tmp`` beside the target.
_TMP_RE = r"\.{name}\.(?P<pid>[0-9]+)\.[a-z0-9_]{{8}}\.tmp"
#: The naming before the pid was added (``.<name>.<random>.tmp``).
_OLD_TMP_RE = r"\.{name}\.[a-z0-9_]{{8}}\.tmp"
#: An old-style temporary file older than this many seconds is from an interrupted save.
_OLD_TMP_AGE_S = 600.0
#: Temporary files this process is writing right now (other threads' saves).
_ACTIVE_TMP: set[str] = set()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists (another user's), or cannot tell: keep the file
    return True


def _clean_stale_temporaries(path: str) -> list[str]:
    """Remove the temporary files that interrupted saves of ``path`` left beside it.

    Only files of this module's own naming are considered: ``.<name>.<pid>.<random>.tmp`` whose
    process is gone (or is this one, and no save of this process is writing it), and the older
    ``.<name>.<random>.tmp`` once ten minutes old. Errors (a read-only directory) are ignored.

    Returns:
        The paths removed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    name = re.escape(os.path.basename(path))
    new, old = re.compile(_TMP_RE.format(name=name)), re.compile(_OLD_TMP_RE.format(name=name))
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        full = os.path.join(directory, entry)
        match = new.fullmatch(entry)
        if match:
            pid = int(match.group("pid"))
            stale = full not in _ACTIVE_TMP and (pid == os.getpid() or not _pid_alive(pid))
        elif old.fullmatch(entry):
            try:
                stale = time.time() - os.stat(full).st_mtime > _OLD_TMP_AGE_S
            except OSError:
                stale = False
        else:
            continue
        if stale:
            try:
                os.unlink(full)
                removed.append(full)
            except OSError:
                pass
    return removed


def _file_mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o644


def _write_atomically(path: str, arrays: dict[str, numpy.ndarray]) -> None:
    """Write an npz to a temporary file beside ``path``, sync it, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.",
                               suffix=".tmp", dir=directory)
    _ACTIVE_TMP.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        _ACTIVE_TMP.discard(tmp)
    try:  # make the rename itself durable (POSIX); not possible everywhere
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_checkpoint(path: str, model: Module, optimizer_state: Any = None,
                    meta: Mapping[str, Any] | None = None, *, grads: bool = False,
                    input_shapes: Any = None, allow_nonfinite: bool = False) -> str:
    """Save a model's parameters (and optionally an optimizer's state) to one ``.npz`` file.

    (Lua: ``torch.save(path, {model=..., optim_state=...})``; PyTorch:
    ``torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)``; Keras:
    ``model.save_weights``.) Nothing in the file is code; see the module docstring for the layout.

    Args:
        path: the file to write (conventionally ``.npz``); parent directories are created. An
            existing file is replaced only once the new one is completely written.
        model: the module whose ``named_parameters`` are saved.
        optimizer_state: an optimizer (its ``state_dict()`` is taken) or a ``state_dict`` dict:
            arrays are stored as ``optim/<key>``, numbers in the metadata. Optional.
        meta: your own JSON-serialisable metadata (epoch, loss, vocabulary...), returned as
            ``Checkpoint.user``.
        grads: also store the parameter gradients.
        input_shapes: input shapes for the stored summary's output shapes (see
            :func:`~nngraph_py.inspect.summary.summary`; this runs one forward on zeros and
            clears the model's cached state). Without it, the shapes of the model's last
            forward are recorded when it still holds them.
        allow_nonfinite: write even when parameters or optimizer arrays hold NaN or infinite
            values (by default that is refused, so a diverged run never replaces a good
            checkpoint).

    Returns:
        ``path``.

    Raises:
        NonFiniteError: a parameter or optimizer array holds NaN or Inf (its ``arrays`` lists
            them); nothing was written and the file at ``path`` is unchanged.
        CheckpointError: ``meta`` or the optimizer state holds something that is not data, or
            nests deeper than :data:`MAX_META_DEPTH`.
    """
    from . import __version__
    from .inspect.summary import summary

    if not isinstance(model, Module):
        raise TypeError(f"save_checkpoint expects a module, got {type(model).__name__}")
    arrays: dict[str, numpy.ndarray] = {}
    params_meta = []
    for (name, p), (_, g) in zip(model.named_parameters(), model.named_grad_parameters()):
        host = numpy.ascontiguousarray(backend.to_numpy(p))
        arrays["param/" + name] = host
        entry = {"name": name, "shape": list(host.shape), "dtype": host.dtype.name,
                 "sha256": _digest(host)}
        if grads:
            host_g = numpy.ascontiguousarray(backend.to_numpy(g))
            arrays["grad/" + name] = host_g
            entry["grad_sha256"] = _digest(host_g)
        params_meta.append(entry)
    buffers_meta = []
    for name, b in _array_buffers(model):
        host = numpy.ascontiguousarray(backend.to_numpy(b))
        arrays["buffer/" + name] = host
        buffers_meta.append({"name": name, "shape": list(host.shape), "dtype": host.dtype.name,
                             "sha256": _digest(host)})
    optimizer_info = None
    if optimizer_state is not None:
        optimizer_info, optim_arrays = _split_optimizer_state(optimizer_state)
        arrays.update(optim_arrays)
    if not allow_nonfinite:
        bad = [(key, _count_nonfinite(a)) for key, a in arrays.items()
               if key.startswith(("param/", "optim/", "buffer/"))]
        bad = [(key, n) for key, n in bad if n]
        if bad:
            listed = ", ".join(f"{key} ({n} of {arrays[key].size})" for key, n in bad[:8])
            more = f" and {len(bad) - 8} more" if len(bad) > 8 else ""
            raise NonFiniteError(
                f"refusing to save {path}: NaN or infinite values in {listed}{more}; the "
                f"previous checkpoint (if any) is kept. The run has diverged (lower the "
                f"learning rate, clip gradients); pass allow_nonfinite=True to save anyway",
                [key for key, _ in bad])
    description = summary(model, input_shapes=input_shapes, print_table=False)
    document = {
        "format": FORMAT,
        "digest": "sha256",
        "library": {"name": "nngraph_py", "version": __version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"type": type(model).__name__, "repr": repr(model), "device": model.device,
                  "dtype": numpy.dtype(model.dtype).name, "summary": description.to_dict()},
        "parameters": params_meta,
        "buffers": buffers_meta,
        "grads": bool(grads),
        "optimizer": optimizer_info,
        "user": dict(meta) if meta is not None else {},
    }
    try:
        text = json.dumps(document, allow_nan=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"save_checkpoint: the metadata is not JSON-serialisable ({exc}); "
                              f"store arrays in the model or optimizer state, and plain numbers, "
                              f"strings, lists and dicts in meta") from exc
    if _json_depth(document) > MAX_META_DEPTH:
        raise CheckpointError(f"save_checkpoint: the metadata nests deeper than "
                              f"{MAX_META_DEPTH} levels, which load_checkpoint refuses")
    arrays[META_KEY] = numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8)
    _write_atomically(path, arrays)
    return path


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
#: The largest metadata entry read (bytes of JSON).
MAX_META_BYTES = 256 * 1024 * 1024
#: How deeply the JSON metadata may nest (lists and dicts); json itself recurses.
MAX_META_DEPTH = 100
#: A compressed member may inflate to at most this many times the checkpoint file's size
#: (the library writes uncompressed members; a zip bomb is refused before it is inflated).
MAX_INFLATION = 64
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_MAX_NPY_HEADER = 65536


def _corrupt(path: str, problem: str) -> CheckpointError:
    return CheckpointError(f"cannot read checkpoint {path}: {problem}")


def _json_depth(value: Any) -> int:
    """The nesting depth of parsed JSON, without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            depth = max(depth, level)
            if depth > MAX_META_DEPTH:
                return depth
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict)
                                                   else item))
    return depth


def _parse_npy_header(path: str, key: str, raw: bytes) -> tuple[numpy.dtype, tuple, bool, int]:
    """``(dtype, shape, fortran_order, header_length)`` of a ``.npy`` member's first bytes."""
    import ast

    if len(raw) < 10 or raw[:6] != _NPY_MAGIC:
        raise _corrupt(path, f"{key!r} is not a .npy array (bad magic bytes)")
    major = raw[6]
    if major == 1:
        hlen, start = int.from_bytes(raw[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(raw[8:12], "little"), 12
    else:
        raise _corrupt(path, f"{key!r} has .npy format version {major}.{raw[7]} (1 to 3 known)")
    if hlen > _MAX_NPY_HEADER or start + hlen > len(raw):
        raise _corrupt(path, f"{key!r} has a .npy header of {hlen} bytes, longer than the entry "
                             f"or the {_MAX_NPY_HEADER}-byte limit")
    text = raw[start:start + hlen].decode("utf-8" if major == 3 else "latin1", "replace")
    try:
        header = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise _corrupt(path, f"{key!r} has an unreadable .npy header "
                             f"({type(exc).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise _corrupt(path, f"{key!r} has a .npy header without exactly descr, fortran_order "
                             f"and shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str):
        if isinstance(descr, list):
            raise _corrupt(path, f"{key!r} has a structured dtype; checkpoints hold plain arrays")
        raise _corrupt(path, f"{key!r} has a bad dtype in its .npy header")
    try:
        dtype = numpy.dtype(descr)
    except (TypeError, ValueError) as exc:
        raise _corrupt(path, f"{key!r} has an unknown dtype {descr!r:.40} ({exc})") from None
    if dtype.hasobject:
        raise CheckpointError(
            f"refused to load {path}: its entry {key!r} is pickled Python data (an object "
            f"array), which can execute code when loaded; nngraph_py checkpoints hold only plain "
            f"arrays and JSON")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
        raise _corrupt(path, f"{key!r} has dtype {dtype}; checkpoints hold plain arrays")
    if not isinstance(fortran, bool) or not isinstance(shape, tuple) or len(shape) > 32 or \
            not all(type(n) is int and n >= 0 for n in shape):
        raise _corrupt(path, f"{key!r} has a bad shape or order in its .npy header")
    return dtype, shape, fortran, start + hlen


class _Mapped:
    """A read-only file over a memory map: ``read(n)`` returns at most what is there, never
    allocating ``n`` bytes first (a regular file's buffered ``read`` does, for a lying length)."""

    def __init__(self, mapped: Any) -> None:
        self._m = mapped

    def read(self, n: int = -1) -> bytes:
        return self._m.read(n if n is not None and n >= 0 else None)

    def seek(self, offset: int, whence: int = 0) -> int:
        size = len(self._m)
        target = {0: offset, 1: self._m.tell() + offset, 2: size + offset}[whence]
        if target < 0:
            raise OSError(22, "negative seek position")
        self._m.seek(min(target, size))
        return target

    def tell(self) -> int:
        return self._m.tell()

    def seekable(self) -> bool:
        return True


class _ZipReader:
    """The members of a checkpoint's zip archive, read one at a time with every size checked
    before anything is allocated."""

    def __init__(self, path: str, fileobj: Any, size: int) -> None:
        self.path = path
        self.size = size
        self.budget = max(size, 1) * MAX_INFLATION  # bytes that may be inflated in all
        try:
            self.zip = zipfile.ZipFile(fileobj)
            infos = self.zip.infolist()
        except Exception as exc:  # BadZipFile, OSError, struct.error, ValueError, ...
            raise CheckpointError(
                f"cannot read checkpoint {path}: the file is truncated or not an .npz archive "
                f"({type(exc).__name__}: {exc}); was it still being written, or copied "
                f"incompletely?") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if info.filename in self.members:
                raise _corrupt(path, f"the archive holds two entries named {info.filename!r}")
            self.members[info.filename] = info

    def has(self, key: str) -> bool:
        return key + ".npy" in self.members

    def read(self, key: str) -> numpy.ndarray:
        """The array stored under ``key``; its header is checked against the member's size."""
        info = self.members.get(key + ".npy")
        if info is None:
            raise CheckpointError(f"checkpoint {self.path} is corrupt: its metadata lists {key!r} "
                                  f"but the file has no such array")
        if info.compress_type not in _ZIP_METHODS:
            raise _corrupt(self.path, f"{key!r} uses zip compression method "
                                      f"{info.compress_type}, which is not read (stored, "
                                      f"deflate, bzip2 and lzma are)")
        if info.flag_bits & 0x1:
            raise _corrupt(self.path, f"{key!r} is encrypted")
        stored = info.compress_type == zipfile.ZIP_STORED
        if (stored and info.file_size != info.compress_size) or info.file_size > self.budget \
                or (stored and info.file_size > self.size):
            raise _corrupt(self.path, f"{key!r} claims {info.file_size} bytes, more than the "
                                      f"file can hold (a zip bomb or a corrupt directory)")
        self.budget -= info.file_size
        try:
            with self.zip.open(info) as member:
                head = member.read(min(info.file_size, _MAX_NPY_HEADER + 12))
                dtype, shape, fortran, start = _parse_npy_header(self.path, key, head)
                nbytes = math.prod(shape) * dtype.itemsize
                if start + nbytes != info.file_size:
                    raise _corrupt(self.path, f"the header of {key!r} says {dtype}{shape} "
                                              f"({nbytes} bytes) but the entry holds "
                                              f"{info.file_size - start} bytes of data")
                data = head[start:] + member.read(nbytes - (len(head) - start))
                if len(data) != nbytes or member.read(1):
                    raise _corrupt(self.path, f"{key!r} is truncated")
        except CheckpointError:
            raise
        except Exception as exc:  # BadZipFile (bad CRC), zlib.error, EOFError, OSError, ...
            raise CheckpointError(
                f"cannot read checkpoint {self.path}: the file is truncated or corrupt in "
                f"{key!r} ({type(exc).__name__}: {exc})") from None
        array = numpy.frombuffer(data, dtype=dtype, count=math.prod(shape))
        array = array.reshape(shape, order="F" if fortran else "C")
        return numpy.array(array, dtype=dtype.newbyteorder("="), order="C")


def _check_meta(path: str, meta: Any) -> None:
    """Check the structure of the metadata this module reads (a bad file fails here, named)."""
    def bad(what: str) -> CheckpointError:
        return _corrupt(path, f"its metadata is malformed: {what}")

    def entry_ok(entry: Any, name_key: str) -> bool:
        return (isinstance(entry, dict) and isinstance(entry.get(name_key), str)
                and isinstance(entry.get("shape"), list)
                and all(type(n) is int and n >= 0 for n in entry["shape"])
                and isinstance(entry.get("dtype"), str)
                and all(entry.get(k) is None or isinstance(entry[k], str)
                        for k in ("sha256", "grad_sha256")))

    params = meta.get("parameters")
    if not isinstance(params, list) or not all(entry_ok(p, "name") for p in params):
        raise bad("'parameters' must be a list of {name, shape, dtype}")
    names = [p["name"] for p in params]
    if len(set(names)) != len(names):
        raise bad("a parameter is listed twice")
    buffers = meta.get("buffers", [])
    if not isinstance(buffers, list) or not all(entry_ok(b, "name") for b in buffers):
        raise bad("'buffers' must be a list of {name, shape, dtype}")
    if len({b["name"] for b in buffers}) != len(buffers):
        raise bad("a buffer is listed twice")
    if not isinstance(meta.get("grads", False), bool):
        raise bad("'grads' must be true or false")
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("summary"), dict) or not all(
            isinstance(model.get(k), str) for k in ("type", "dtype", "device")):
        raise bad("'model' must hold type, dtype, device and summary")
    if not isinstance(meta.get("user", {}), dict):
        raise bad("'user' must be a dict")
    opt = meta.get("optimizer")
    if opt is not None:
        if not isinstance(opt, dict) or not isinstance(opt.get("scalars", {}), dict) or \
                not isinstance(opt.get("tuples", []), list) or \
                not isinstance(opt.get("arrays", []), list) or \
                not all(entry_ok(e, "key") for e in opt.get("arrays", [])):
            raise bad("'optimizer' must hold scalars, tuples and arrays of {key, shape, dtype}")
    digest = meta.get("digest")
    if digest not in (None, "sha256"):
        raise bad(f"unknown digest {digest!r:.40} (this version verifies 'sha256')")


def _listed(meta: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    listed = [("param/" + p["name"], p) for p in meta["parameters"]]
    if meta.get("grads"):
        listed += [("grad/" + p["name"], {**p, "sha256": p.get("grad_sha256")})
                   for p in meta["parameters"]]
    listed += [("buffer/" + b["name"], b) for b in meta.get("buffers", [])]
    for entry in (meta.get("optimizer") or {}).get("arrays", []):
        listed.append(("optim/" + entry["key"], entry))
    return listed


def _read(path: str, model: Module | None = None) -> Checkpoint:
    """Read and check a checkpoint file; with ``model``, check names, shapes and dtypes against it
    before any array is read."""
    import mmap

    if not os.path.exists(path):
        raise CheckpointNotFound(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory, not a file")
    _clean_stale_temporaries(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise CheckpointError(f"cannot read checkpoint {path}: the file is empty "
                                      f"(was it still being written?)")
            head = f.read(6)
            if head == _NPY_MAGIC:
                raise CheckpointError(f"{path} is a single .npy array, not an nngraph_py "
                                      f"checkpoint (.npz with {META_KEY})")
            if head[:1] == b"\x80" or head[:2] == b"\x1f\x8b":
                raise CheckpointError(
                    f"refused to load {path}: it is pickled Python data (or gzip), which can "
                    f"execute code when loaded; nngraph_py checkpoints hold only plain arrays "
                    f"and JSON")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return _read_archive(path, _ZipReader(path, _Mapped(mapped), size), model)
    except CheckpointError:
        raise
    except (OSError, ValueError, MemoryError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                              f"{exc}") from None


def _read_archive(path: str, archive: _ZipReader, model: Module | None) -> Checkpoint:
    if not archive.has(META_KEY):
        names = sorted(n[:-4] if n.endswith(".npy") else n for n in archive.members)
        raise CheckpointError(f"{path} is an .npz archive but not an nngraph_py checkpoint: it "
                              f"has no {META_KEY} entry (entries: {names[:5]}...)")
    info = archive.members[META_KEY + ".npy"]
    if info.file_size > MAX_META_BYTES:
        raise _corrupt(path, f"its metadata claims {info.file_size} bytes (limit "
                             f"{MAX_META_BYTES})")
    raw = archive.read(META_KEY)
    if raw.dtype != numpy.uint8 or raw.ndim != 1:
        raise _corrupt(path, f"its metadata is {raw.dtype}{raw.shape}, not uint8 JSON text")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise CheckpointError(f"cannot read checkpoint {path}: its metadata is not valid JSON "
                              f"({what})") from None
    if _json_depth(meta) > MAX_META_DEPTH:
        raise _corrupt(path, f"its metadata nests deeper than {MAX_META_DEPTH} levels")
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("nngraph_py.checkpoint/"):
            raise CheckpointError(f"{path} has format {fmt!r}; this version of nngraph_py reads "
                                  f"{FORMAT!r} (upgrade nngraph_py to read it)")
        raise CheckpointError(f"{path} is not an nngraph_py checkpoint (format {fmt!r:.60}, "
                              f"expected {FORMAT!r})")
    _check_meta(path, meta)
    ck = Checkpoint(meta, {})
    if model is not None:  # before reading any array: a wrong file costs no memory
        _raise_first(path, "model", _model_mismatches(ck, model))
    verify = meta.get("digest") == "sha256"
    arrays: dict[str, numpy.ndarray] = {}
    for key, entry in _listed(meta):
        if key in arrays:
            raise _corrupt(path, f"its metadata lists {key!r} twice")
        array = archive.read(key)
        if list(array.shape) != list(entry["shape"]) or array.dtype.name != entry["dtype"]:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: {key!r} is {array.dtype.name}{tuple(array.shape)} "
                f"but its metadata says {entry['dtype']}{tuple(entry['shape'])}")
        if verify:
            if entry.get("sha256") is None:
                raise _corrupt(path, f"{key!r} has no sha256 digest in the metadata")
            if _digest(array) != entry["sha256"]:
                raise CheckpointError(
                    f"checkpoint {path} is corrupt: the data of {key!r} does not match its "
                    f"sha256 digest (the file was altered or damaged after it was written)")
        arrays[key] = array
    return Checkpoint(meta, arrays)


def _describe(shape: Any, dtype: str) -> str:
    return f"{tuple(shape)} {dtype}"


def _model_mismatches(ck: Checkpoint, model: Module) -> list[tuple[str, str]]:
    """``(name, sentence)`` per difference between the checkpoint's parameters and the model's,
    in the model's order, then the checkpoint's extra names."""
    saved = {p["name"]: p for p in ck.meta["parameters"]}
    problems = []
    names = []
    for name, p in model.named_parameters():
        names.append(name)
        entry = saved.get(name)
        dtype = numpy.dtype(p.dtype).name
        shape = tuple(int(s) for s in p.shape)
        if entry is None:
            close = difflib.get_close_matches(name, list(saved), n=1)
            hint = f" (the checkpoint has {close[0]!r}: was a node renamed?)" if close else ""
            problems.append(
                (name, f"the model's parameter {name!r} is not in the checkpoint{hint}"))
        elif tuple(entry["shape"]) != shape:
            problems.append((name, (
                f"parameter {name!r} has shape {tuple(entry['shape'])} in the checkpoint but "
                f"{shape} in the model (was it saved from a model built with other sizes?)")))
        elif entry["dtype"] != dtype:
            problems.append((name, (
                f"parameter {name!r} is {entry['dtype']} in the checkpoint but {dtype} in the "
                f"model (convert the model first: model.to(dtype={entry['dtype']!r}))")))
    model_names = set(names)
    for name in saved:
        if name not in model_names:
            problems.append((name, f"the checkpoint's parameter {name!r} is not in the model"))
    return problems + _buffer_mismatches(ck, model)


def _array_buffers(model: Module) -> list[tuple[str, Any]]:
    """The model's buffers that are arrays (a plain number listed as a buffer cannot be written
    in place, so it is not stored)."""
    return [(name, b) for name, b in model.named_buffers() if backend.is_array(b)]


def _buffer_mismatches(ck: Checkpoint, model: Module) -> list[tuple[str, str]]:
    """Differences between the checkpoint's buffers and the model's. A file written before
    buffers were stored (no ``"buffers"`` key) leaves the model's buffers as they are."""
    if "buffers" not in ck.meta:
        return []
    saved = {b["name"]: b for b in ck.meta["buffers"]}
    problems = []
    mine = dict(_array_buffers(model))
    for name, b in mine.items():
        entry = saved.get(name)
        shape = tuple(int(s) for s in b.shape)
        if entry is None:
            problems.append((name, f"the model's buffer {name!r} is not in the checkpoint"))
        elif tuple(entry["shape"]) != shape:
            problems.append((name, f"buffer {name!r} has shape {tuple(entry['shape'])} in the "
                                   f"checkpoint but {shape} in the model"))
        elif entry["dtype"] != numpy.dtype(b.dtype).name:
            problems.append((name, f"buffer {name!r} is {entry['dtype']} in the checkpoint but "
                                   f"{numpy.dtype(b.dtype).name} in the model"))
    for name in saved:
        if name not in mine:
            problems.append((name, f"the checkpoint's buffer {name!r} is not in the model"))
    return problems


def _optimizer_mismatches(ck: Checkpoint, optimizer: Any) -> list[tuple[str, str]]:
    state = ck.optimizer_state
    if state is None:
        return [("optimizer", "the checkpoint holds no optimizer state (save it with "
                              "save_checkpoint(path, model, optimizer))")]
    problems = []
    saved_type = ck.meta["optimizer"].get("type")
    if saved_type and saved_type != type(optimizer).__name__:
        problems.append(("type", f"the optimizer state was saved from {saved_type}, not "
                                 f"{type(optimizer).__name__}"))
    known = set(getattr(optimizer, "hyper_keys", ())) | set(getattr(optimizer, "state_keys", ()))
    if known:
        unknown = sorted(set(state) - known)
        if unknown:
            problems.append((unknown[0], f"the optimizer state has key(s) {unknown} which "
                                         f"{type(optimizer).__name__} does not know"))
    params = getattr(optimizer, "params", None)
    if params is not None:
        for key, value in state.items():
            if isinstance(value, numpy.ndarray) and tuple(value.shape) != tuple(params.shape):
                problems.append((key, f"optimizer array {key!r} has shape {tuple(value.shape)} "
                                      f"in the checkpoint but the optimizer's parameters have "
                                      f"{tuple(params.shape)}"))
    return problems


def _raise_first(path: str, what: str, problems: list[tuple[str, str]]) -> None:
    if not problems:
        return
    more = ""
    if len(problems) > 1:
        rest = [name for name, _ in problems[1:]]
        listed = ", ".join(rest[:6]) + (", ..." if len(rest) > 6 else "")
        more = f" ({len(rest)} more mismatch(es): {listed})"
    raise CheckpointError(f"checkpoint {path} does not match the {what}: {problems[0][1]}; "
                          f"nothing was loaded{more}")


def load_checkpoint(path: str, model: Module | None = None, optimizer: Any = None) -> Checkpoint:
    """Read a checkpoint and, if given, load it into a model (and optimizer) in place.

    (Lua: ``torch.load``; PyTorch: ``model.load_state_dict(torch.load(path, weights_only=True))``;
    Keras: ``model.load_weights``.) The file is read with ``allow_pickle=False``: nothing in it is
    executed.

    Args:
        path: the file written by :func:`save_checkpoint`.
        model: a model with the same parameter names, shapes and dtypes; its arrays are
            overwritten in place (gradients too, when the checkpoint holds them). Every name,
            shape and dtype is checked before anything is copied.
        optimizer: an optimizer with ``load_state_dict`` (e.g. ``optim.Adam`` over ``model``); its
            state is restored before the model's parameters, after the same checks.

    Returns:
        A :class:`Checkpoint` (``meta, arrays``; ``.params``, ``.grads``, ``.optimizer_state``,
        ``.user``, ``.summary()``).

    Raises:
        CheckpointNotFound: the file does not exist.
        CheckpointError: the file is truncated, corrupt, pickled, of another format, or does not
            match the model / optimizer; the message names the first mismatch, and neither the
            model nor the optimizer has been changed.
    """
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"load_checkpoint: model must be a module, got {type(model).__name__}")
    ck = _read(path, model)
    if optimizer is not None:
        _raise_first(path, "optimizer", _optimizer_mismatches(ck, optimizer))
        before = optimizer.state_dict() if callable(getattr(optimizer, "state_dict", None)) \
            else None
        try:
            optimizer.load_state_dict(ck.optimizer_state)
        except Exception as exc:
            if before is not None:  # put back what a half-done load_state_dict changed
                try:
                    optimizer.load_state_dict(before)
                except Exception:  # pragma: no cover - the optimizer refuses its own state
                    pass
            raise CheckpointError(f"checkpoint {path}: the optimizer refused its state ({exc}); "
                                  f"the model was not changed") from exc
    if model is not None:
        params = ck.params
        grads = ck.grads
        for (name, p), (_, g) in zip(model.named_parameters(), model.named_grad_parameters()):
            p[...] = backend.to_device(params[name], backend.device_of(p))
            if name in grads:
                g[...] = backend.to_device(grads[name], backend.device_of(g))
        for name, b in _array_buffers(model):
            key = "buffer/" + name
            if key in ck.arrays:
                b[...] = backend.to_device(ck.arrays[key], backend.device_of(b))
    return ck


def check_options(checkpoint: Checkpoint | str, current: Mapping[str, Any], keys: Iterable[str],
                  *, section: str = "config", flag_prefix: str = "--") -> None:
    """Refuse to resume with options that differ from the ones a checkpoint was saved with.

    A run resumed with another architecture would otherwise fail deep inside loading with a
    parameter-shape message; this names the option instead (char-rnn's ``-init_from`` takes the
    sizes from the checkpoint for the same reason).

    Args:
        checkpoint: a :class:`Checkpoint` or the path of one.
        current: the options asked for now (``vars(args)``).
        keys: the options that must match (``("hidden", "layers", "model")``); a key missing on
            either side is not compared.
        section: where the checkpoint's ``user`` metadata keeps the options (the examples'
            ``save_run`` stores them under ``"config"``).
        flag_prefix: written before an option's name in the message (``--hidden``).

    Raises:
        OptionMismatchError: the first option that differs, with both values.
        CheckpointError: the checkpoint cannot be read.

    Example:
        >>> check_options("runs/lstm.npz", {"hidden": 256}, ["hidden"])  # doctest: +SKIP
        OptionMismatchError: checkpoint runs/lstm.npz was saved with --hidden 128 but this run
        asks for --hidden 256 ...
    """
    ck = _read(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else checkpoint
    where = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "the checkpoint"
    saved = ck.user.get(section)
    if not isinstance(saved, Mapping):
        return
    for key in keys:
        if key not in saved or key not in current:
            continue
        old, new = saved[key], current[key]
        if isinstance(new, os.PathLike):
            new = os.fspath(new)
        if isinstance(new, tuple):
            new = list(new)
        if old != new:
            flag = flag_prefix + key.replace("_", "-") if flag_prefix else key
            raise OptionMismatchError(
                f"checkpoint {where} was saved with {flag} {old!r} but this run asks for "
                f"{flag} {new!r}; it changes the model, so the checkpoint cannot be resumed "
                f"(drop {flag} to use the saved value, or start a new run)", key, old, new)
