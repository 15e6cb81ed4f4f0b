"""The Box-Jenkins airline passengers series and the helpers to forecast it.

144 monthly totals of international airline passengers (thousands), January
1949 to December 1960: series G of Box & Jenkins, *Time Series Analysis*
(1976), R's ``AirPassengers``. It ships with this package as
``air_passengers.csv`` (columns ``Month,Passengers``, months as ``1949-01``).

The helpers follow the usual LSTM forecasting recipe: hold out the last year,
scale with a :class:`MinMaxScaler` fitted on the training part only, cut the
series into sliding windows, and compare against the seasonal naive baseline
(each month predicted by the same month a year earlier: RMSE 50.71 on 1960).
"""

from __future__ import annotations

import csv
import math
import os
import re
from importlib import resources

import numpy as np

from nngraph_py.data.errors import DataFormatError

__all__ = [
    "load_air_passengers",
    "MinMaxScaler",
    "make_windows",
    "train_test_split_last",
    "seasonal_naive_rmse",
]

_CSV_NAME = "air_passengers.csv"
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
#: A plain decimal number (float() would also take "nan", "inf", "1_000" and Unicode digits).
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def load_air_passengers(path: str | os.PathLike[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Load the 144 monthly airline passenger totals shipped with the package.

    Args:
        path: another CSV file of the same layout (a ``Month,Passengers`` header, then one
            ``YYYY-MM,value`` row per month); default: the copy shipped with the package.
            Blank lines at the end of the file are ignored.

    Returns:
        ``(months, values)``: ``months`` like ``["1949-01", ..., "1960-12"]``
        and ``values`` a ``(144,)`` float64 array of thousands of passengers.

    Raises:
        DataFormatError: naming the file and line of a bad header, a row without two columns,
            a month not written ``YYYY-MM``, or a value that is empty, not a number, NaN or
            infinite.

    Example:
        >>> months, values = load_air_passengers()
        >>> months[0], float(values[0]), len(values)
        ('1949-01', 112.0, 144)
    """
    if path is None:
        name = _CSV_NAME
        data = resources.files("nngraph_py.data").joinpath(_CSV_NAME).read_bytes()
    else:
        name = os.fspath(path)
        with open(path, "rb") as f:
            data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataFormatError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from None
    return _parse_csv(text, name)


def _parse_csv(text: str, name: str) -> tuple[list[str], np.ndarray]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():  # trailing blank lines (an editor's final newline)
        lines.pop()
    try:
        rows = list(csv.reader(lines))
    except csv.Error as exc:
        raise DataFormatError(f"{name}: not readable as CSV ({exc})") from None
    if not rows or rows[0] != ["Month", "Passengers"]:
        got = rows[0] if rows else "an empty file"
        raise DataFormatError(f"{name}:1: expected the header Month,Passengers, got {got}")
    months, values = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            what = "a blank line" if not "".join(row).strip() else f"{len(row)} column(s) {row}"
            raise DataFormatError(f"{name}:{line_no}: expected 2 columns Month,Passengers, "
                                  f"got {what}")
        month, raw = row[0].strip(), row[1].strip()
        if not _MONTH.fullmatch(month):
            raise DataFormatError(f"{name}:{line_no}: month {row[0]!r} is not written YYYY-MM")
        if not raw:
            raise DataFormatError(f"{name}:{line_no}: the Passengers value for {month} is empty")
        if not _NUMBER.fullmatch(raw):
            problem = ("NaN" if raw.lower() in ("nan", "+nan", "-nan") else
                       "infinite" if raw.lower().lstrip("+-") in ("inf", "infinity") else
                       "not a number")
            raise DataFormatError(f"{name}:{line_no}: the Passengers value for {month} is "
                                  f"{raw!r}: {problem}")
        value = float(raw)
        if not math.isfinite(value):  # e.g. 1e999
            raise DataFormatError(f"{name}:{line_no}: the Passengers value for {month} is "
                                  f"{raw!r}: infinite")
        months.append(month)
        values.append(value)
    if not values:
        raise DataFormatError(f"{name}: no data rows after the header")
    return months, np.asarray(values, dtype=np.float64)


class MinMaxScaler:
    """Scale features linearly to ``feature_range``; scikit-learn's ``MinMaxScaler``.

    Fit it on the training part only, so that no statistic of the test period
    leaks into the model's inputs; test values may then fall outside the range.
    A 1-d input is one feature; a 2-d input ``(n, features)`` is scaled per
    column. A constant feature is mapped to the lower end of the range.

    Args:
        feature_range: ``(low, high)`` of the transformed data; ``(-1, 1)``
            suits a tanh output.

    Example:
        >>> scaler = MinMaxScaler().fit(np.array([100.0, 200.0, 300.0]))
        >>> scaler.transform(np.array([100.0, 300.0, 400.0]))
        array([-1.,  1.,  2.])
        >>> scaler.inverse_transform(np.array([0.0]))
        array([200.])
    """

    def __init__(self, feature_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        low, high = feature_range
        if not low < high:
            raise ValueError(f"MinMaxScaler: feature_range must have low < high, got {feature_range}")
        self.feature_range = (float(low), float(high))
        self.data_min_: np.ndarray | None = None
        self.data_max_: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"MinMaxScaler(feature_range={self.feature_range})"

    def fit(self, x: np.ndarray) -> MinMaxScaler:
        """Record the per-feature minimum and maximum of ``x``.

        Args:
            x: ``(n,)`` or ``(n, features)`` training data, ``n >= 1``.

        Returns:
            ``self``, so that ``MinMaxScaler().fit(train).transform(test)`` reads well.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim not in (1, 2) or x.shape[0] == 0:
            raise ValueError(f"MinMaxScaler.fit: expected (n,) or (n, features) with n >= 1, got {x.shape}")
        self.data_min_ = x.min(axis=0)
        self.data_max_ = x.max(axis=0)
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data_min_, data_range)``, a zero range (constant feature) replaced by 1."""
        if self.data_min_ is None or self.data_max_ is None:
            raise RuntimeError("MinMaxScaler: call fit(train) before transform / inverse_transform")
        data_range = self.data_max_ - self.data_min_
        return self.data_min_, np.where(data_range == 0, 1.0, data_range)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Map ``x`` with the fitted minimum and maximum to ``feature_range``.

        The training minimum and maximum land exactly on ``low`` and ``high``.

        Args:
            x: array shaped like the data given to :meth:`fit`.

        Returns:
            float64 array of the same shape.
        """
        data_min, data_range = self._fitted()
        low, high = self.feature_range
        return (np.asarray(x, dtype=np.float64) - data_min) / data_range * (high - low) + low

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`: map scaled values back to the data's units.

        Args:
            x: scaled array (e.g. a model's predictions).

        Returns:
            float64 array of the same shape.
        """
        data_min, data_range = self._fitted()
        low, high = self.feature_range
        return (np.asarray(x, dtype=np.float64) - low) / (high - low) * data_range + data_min

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same data."""
        return self.fit(x).transform(x)


def make_windows(series: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a series into sliding windows and the value that follows each.

    For every ``i`` in ``range(window, len(series))``: ``X[k] = series[i-window:i]``
    and ``y[k] = series[i]``.

    Args:
        series: 1-d array of length ``T``.
        window: number of past values per input, ``1 <= window < T``.

    Returns:
        ``(X, y)`` with shapes ``(T - window, window)`` and ``(T - window,)``.

    Example:
        >>> X, y = make_windows(np.arange(5.0), 2)
        >>> X.tolist(), y.tolist()
        ([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]], [2.0, 3.0, 4.0])
    """
    series = np.asarray(series)
    if series.ndim != 1:
        raise ValueError(f"make_windows: expected a 1-d series, got shape {series.shape}")
    if not 1 <= window < len(series):
        raise ValueError(f"make_windows: need 1 <= window < len(series) = {len(series)}, got window={window}")
    n = len(series) - window
    X = np.lib.stride_tricks.sliding_window_view(series, window)[:n].copy()
    y = series[window:].copy()
    return X, y


def train_test_split_last(series: np.ndarray, n_test: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Split off the last ``n_test`` values as the test period (no shuffling: it is a time series).

    Args:
        series: 1-d array of length ``T``.
        n_test: values held out, ``1 <= n_test < T``.

    Returns:
        ``(train, test)``: ``series[:-n_test]`` and ``series[-n_test:]``.
    """
    series = np.asarray(series)
    if not 1 <= n_test < len(series):
        raise ValueError(f"train_test_split_last: need 1 <= n_test < {len(series)}, got {n_test}")
    return series[:-n_test], series[-n_test:]


def seasonal_naive_rmse(series: np.ndarray, n_test: int = 12, season: int = 12) -> float:
    """RMSE of the seasonal naive forecast over the last ``n_test`` values.

    The forecast for a test step repeats the value one season earlier, taken
    from the training part only: with ``n_test <= season`` each 1960 month is
    predicted by the same month of 1959. It is the baseline a forecasting model
    has to beat (50.71 thousand passengers on this data set).

    Args:
        series: 1-d array of length ``T``.
        n_test: held-out values at the end.
        season: period in steps (12 for monthly data), ``season <= T - n_test``.

    Returns:
        The root mean squared error, in the units of ``series``.
    """
    train, test = train_test_split_last(series, n_test)
    if not 1 <= season <= len(train):
        raise ValueError(f"seasonal_naive_rmse: need 1 <= season <= {len(train)} training values, got {season}")
    last_season = train[-season:]
    forecast = np.resize(last_season, n_test)  # repeats the last training season
    return float(np.sqrt(np.mean((np.asarray(test, dtype=np.float64) - forecast) ** 2)))
