"""Checkpoints that never execute code on load: ``.npz`` arrays plus JSON metadata, one file.

Lua's ``torch.save`` and PyTorch's ``torch.save`` serialise objects (PyTorch through pickle, which
runs code when loaded; hence ``torch.load(weights_only=True)`` and safetensors). Here a checkpoint
holds only data:

* ``param/<name>``: every parameter, by its :meth:`Module.named_parameters` name
  (``param/i2h_forget.weight``); an array shared by clones is stored once, under its first name;
* ``grad/<name>``: their gradients, when asked for;
* ``optim/<key>``: the arrays of an optimizer's ``state_dict()`` (its numbers go in the metadata);
* ``__meta__.json``: UTF-8 JSON stored as a uint8 array: the format version, the model's repr and
  its :func:`~nngraph_py.inspect.summary.summary` as data (so ``python -m nngraph_py.inspect``
  describes and draws the model from the file alone), the name, shape and dtype of every array,
  the optimizer's numbers and the caller's own metadata.

Files are read with ``numpy.load(allow_pickle=False)``: an object array (a pickle) is refused.
They are written atomically: to a temporary file in the same directory, flushed to disk, then
renamed over the target (``os.replace``), so a crash mid-write leaves the previous checkpoint as it
was. Loading into a model checks every name, shape and dtype first and copies nothing unless all
match; the copy is made into the model's live arrays, so views from ``get_parameters`` stay valid.

Example:
    >>> save_checkpoint("runs/mlp.npz", mlp, optimizer, {"epoch": 3})     # doctest: +SKIP
    >>> ck = load_checkpoint("runs/mlp.npz", model=mlp, optimizer=optimizer)  # doctest: +SKIP
    >>> ck.user["epoch"]                                                   # doctest: +SKIP
    3
"""
from __future__ import annotations

import datetime
import difflib
import json
import os
import tempfile
import zipfile
import zlib
from typing import Any, Mapping, NamedTuple

import numpy

from . import backend
from .errors import NNGraphError
from .module import Module

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError",
           "CheckpointNotFound", "FORMAT", "META_KEY"]

#: The format written in ``meta["format"]``; readers refuse other major versions.
FORMAT = "nngraph_py.checkpoint/1"
#: The entry holding the JSON metadata.
META_KEY = "__meta__.json"


class CheckpointError(NNGraphError, ValueError):
    """A checkpoint cannot be read, or does not match the model or optimizer it is loaded into."""


class CheckpointNotFound(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


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
            entries.append({"key": key, "shape": list(host.shape), "dtype": host.dtype.name})
        else:
            scalars[key] = _json_scalar(key, value)
            if isinstance(value, tuple):
                tuples.append(key)
    return {"type": kind, "scalars": scalars, "tuples": tuples, "arrays": entries}, arrays


def _file_mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o644


def _write_atomically(path: str, arrays: dict[str, numpy.ndarray]) -> None:
    """Write an npz to a temporary file beside ``path``, sync it, then rename it over ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez(f, **arrays)
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
                    input_shapes: Any = None) -> str:
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

    Returns:
        ``path``.

    Raises:
        CheckpointError: ``meta`` or the optimizer state holds something that is not data.
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
        params_meta.append({"name": name, "shape": list(host.shape), "dtype": host.dtype.name})
        if grads:
            arrays["grad/" + name] = numpy.ascontiguousarray(backend.to_numpy(g))
    optimizer_info = None
    if optimizer_state is not None:
        optimizer_info, optim_arrays = _split_optimizer_state(optimizer_state)
        arrays.update(optim_arrays)
    description = summary(model, input_shapes=input_shapes, print_table=False)
    document = {
        "format": FORMAT,
        "library": {"name": "nngraph_py", "version": __version__},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"type": type(model).__name__, "repr": repr(model), "device": model.device,
                  "dtype": numpy.dtype(model.dtype).name, "summary": description.to_dict()},
        "parameters": params_meta,
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
    arrays[META_KEY] = numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8)
    _write_atomically(path, arrays)
    return path


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def _read(path: str) -> Checkpoint:
    """Read and check a checkpoint file on its own (no model)."""
    if not os.path.exists(path):
        raise CheckpointNotFound(f"checkpoint {path} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path} is a directory, not a file")
    arrays: dict[str, numpy.ndarray] = {}
    key = None
    try:
        z = numpy.load(path, allow_pickle=False)
        if not hasattr(z, "files"):  # numpy.load gives an array for a .npy file
            raise CheckpointError(f"{path} is a single .npy array, not an nngraph_py "
                                  f"checkpoint (.npz with {META_KEY})")
        try:
            for key in z.files:
                arrays[key] = z[key]
        finally:
            z.close()
    except CheckpointError:
        raise
    except ValueError as exc:
        text = str(exc)
        if "allow_pickle" in text or "pickle" in text.lower():
            where = f"its entry {key!r} is" if key is not None else "it is"
            raise CheckpointError(
                f"refused to load {path}: {where} pickled Python data, which can execute code "
                f"when loaded; nngraph_py checkpoints hold only plain arrays and JSON"
            ) from exc
        raise CheckpointError(f"cannot read checkpoint {path}: the file is corrupt "
                              f"({exc})") from exc
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, KeyError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated or not an .npz archive "
            f"({type(exc).__name__}: {exc}); was it still being written, or copied incompletely?"
        ) from exc
    raw = arrays.pop(META_KEY, None)
    if raw is None:
        raise CheckpointError(f"{path} is an .npz archive but not an nngraph_py checkpoint: it "
                              f"has no {META_KEY} entry (entries: {sorted(arrays)[:5]}...)")
    try:
        meta = json.loads(bytes(raw.astype(numpy.uint8)).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: its metadata is not valid JSON "
                              f"({exc})") from exc
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("nngraph_py.checkpoint/"):
            raise CheckpointError(f"{path} has format {fmt!r}; this version of nngraph_py reads "
                                  f"{FORMAT!r} (upgrade nngraph_py to read it)")
        raise CheckpointError(f"{path} is not an nngraph_py checkpoint (format {fmt!r}, expected "
                              f"{FORMAT!r})")
    # The file must hold what its metadata lists.
    listed = [("param/" + p["name"], p) for p in meta["parameters"]]
    if meta.get("grads"):
        listed += [("grad/" + p["name"], p) for p in meta["parameters"]]
    for entry in (meta.get("optimizer") or {}).get("arrays", []):
        listed.append(("optim/" + entry["key"], entry))
    for key, entry in listed:
        array = arrays.get(key)
        if array is None:
            raise CheckpointError(f"checkpoint {path} is corrupt: its metadata lists {key!r} but "
                                  f"the file has no such array")
        if list(array.shape) != list(entry["shape"]) or array.dtype.name != entry["dtype"]:
            raise CheckpointError(
                f"checkpoint {path} is corrupt: {key!r} is {array.dtype.name}{tuple(array.shape)} "
                f"but its metadata says {entry['dtype']}{tuple(entry['shape'])}")
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
    ck = _read(path)
    if model is not None:
        if not isinstance(model, Module):
            raise TypeError(f"load_checkpoint: model must be a module, got {type(model).__name__}")
        _raise_first(path, "model", _model_mismatches(ck, model))
    if optimizer is not None:
        _raise_first(path, "optimizer", _optimizer_mismatches(ck, optimizer))
        try:
            optimizer.load_state_dict(ck.optimizer_state)
        except Exception as exc:
            raise CheckpointError(f"checkpoint {path}: the optimizer refused its state ({exc}); "
                                  f"the model was not changed") from exc
    if model is not None:
        params = ck.params
        grads = ck.grads
        for (name, p), (_, g) in zip(model.named_parameters(), model.named_grad_parameters()):
            p[...] = backend.to_device(params[name], backend.device_of(p))
            if name in grads:
                g[...] = backend.to_device(grads[name], backend.device_of(g))
    return ck
