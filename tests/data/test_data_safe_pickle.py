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
