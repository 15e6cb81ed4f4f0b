"""The airline passengers series and the forecasting helpers."""

import numpy as np
import pytest

from nngraph_py.data import (
    MinMaxScaler,
    load_air_passengers,
    make_windows,
    seasonal_naive_rmse,
    train_test_split_last,
)

# Yearly totals of R's AirPassengers (aggregate(AirPassengers)), 1949..1960.
YEAR_TOTALS = [1520, 1676, 2042, 2364, 2700, 2867, 3408, 3939, 4421, 4572, 5140, 5714]


def test_series_is_the_box_jenkins_airline_data():
    months, values = load_air_passengers()
    assert len(months) == len(values) == 144 and values.dtype == np.float64
    assert months[0] == "1949-01" and months[-1] == "1960-12"
    assert months == [f"{year}-{month:02d}" for year in range(1949, 1961) for month in range(1, 13)]
    assert values[:12].tolist() == [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118]
    assert values[-12:].tolist() == [417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432]
    assert values.reshape(12, 12).sum(axis=1).tolist() == YEAR_TOTALS
    # summary(AirPassengers) and sd(AirPassengers) in R
    assert (values.min(), np.median(values), values.max()) == (104, 265.5, 622)
    assert values.mean() == pytest.approx(280.2986, abs=1e-4)
    assert values.std(ddof=1) == pytest.approx(119.9663, abs=1e-4)


def test_seasonal_naive_rmse_for_1960_is_the_published_baseline():
    _, values = load_air_passengers()
    rmse = seasonal_naive_rmse(values)
    assert abs(rmse - 50.7083) < 1e-3
    expected = np.sqrt(np.mean((values[-12:] - values[-24:-12]) ** 2))
    assert rmse == pytest.approx(expected)


def test_seasonal_naive_uses_only_training_values_beyond_one_season():
    series = np.arange(30, dtype=np.float64)
    # Training part 0..11; its last season repeated over 18 test steps: 0..11, 0..5.
    # Errors: 12 for the first 12 steps, 24 for the next 6.
    expected = np.sqrt((12 * 12**2 + 6 * 24**2) / 18)
    assert seasonal_naive_rmse(series, n_test=18, season=12) == pytest.approx(expected)
    with pytest.raises(ValueError, match="season <= 6"):
        seasonal_naive_rmse(np.arange(10.0), n_test=4, season=12)


def test_train_test_split_last():
    _, values = load_air_passengers()
    train, test = train_test_split_last(values)
    assert train.shape == (132,) and test.shape == (12,)
    assert test[0] == 417 and train[-1] == 405
    with pytest.raises(ValueError, match="1 <= n_test < 144"):
        train_test_split_last(values, n_test=144)


def test_make_windows_matches_the_seed_loop():
    _, values = load_air_passengers()
    X, y = make_windows(values, 60)
    assert X.shape == (84, 60) and y.shape == (84,)
    X_ref, y_ref = [], []
    for i in range(60, len(values)):  # the seed's loop
        X_ref.append(values[i - 60:i])
        y_ref.append(values[i])
    np.testing.assert_array_equal(X, np.array(X_ref))
    np.testing.assert_array_equal(y, np.array(y_ref))
    X[0, 0] = -1.0  # a copy, not a view into the series
    assert values[0] == 112


@pytest.mark.parametrize("window", [0, 144])
def test_make_windows_rejects_impossible_windows(window):
    with pytest.raises(ValueError, match="1 <= window < len"):
        make_windows(np.arange(144.0), window)


def test_scaler_round_trip_and_fit_on_train_only():
    _, values = load_air_passengers()
    train, test = train_test_split_last(values)
    scaler = MinMaxScaler(feature_range=(-1, 1)).fit(train)
    assert (scaler.data_min_, scaler.data_max_) == (104, 559)  # the test year's 622 is unseen
    scaled_train = scaler.transform(train)
    assert scaled_train.min() == -1.0 and scaled_train.max() == 1.0
    scaled_test = scaler.transform(test)
    assert scaled_test.max() > 1.0  # test values may leave the range: no leakage
    np.testing.assert_allclose(scaler.inverse_transform(scaled_test), test, rtol=1e-12)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(values)), values, rtol=1e-12)


def test_scaler_per_column_constant_feature_and_errors():
    x = np.array([[0.0, 5.0], [10.0, 5.0]])
    scaler = MinMaxScaler((0, 1))
    np.testing.assert_array_equal(scaler.fit_transform(x), [[0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(scaler.inverse_transform([[0.5, 0.0]]), [[5.0, 5.0]])
    assert repr(scaler) == "MinMaxScaler(feature_range=(0.0, 1.0))"
    with pytest.raises(RuntimeError, match="call fit"):
        MinMaxScaler().transform(x)
    with pytest.raises(ValueError, match="low < high"):
        MinMaxScaler((1, -1))


# ---------------------------------------------------------------------- a CSV of one's own (issue 12, item 9)
from nngraph_py.data import DataFormatError  # noqa: E402

SHIPPED = load_air_passengers()


def _csv(tmp_path, text):
    path = tmp_path / "air.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("value,problem", [("", "is empty"), ("abc", "'abc': not a number"),
                                           ("nan", "'nan': NaN"), ("inf", "'inf': infinite"),
                                           ("-Infinity", "infinite"), ("1e999", "infinite"),
                                           ("1_000", "not a number")])
def test_bad_values_name_the_line(tmp_path, value, problem):
    # Before: float('nan') and float('inf') were accepted, an empty value gave a raw ValueError.
    path = _csv(tmp_path, f"Month,Passengers\n1949-01,112\n1949-02,{value}\n1949-03,132\n")
    with pytest.raises(DataFormatError, match=rf"air\.csv:3: the Passengers value for 1949-02 "
                                              rf".*{problem}"):
        load_air_passengers(path)


def test_trailing_blank_lines_are_accepted_and_the_shipped_file_reads_back(tmp_path):
    months, values = SHIPPED
    text = "Month,Passengers\r\n" + "".join(f"{m},{int(v)}\r\n" for m, v in zip(months, values))
    for tail in ("", "\n", "\n\n  \n"):
        got_months, got_values = load_air_passengers(_csv(tmp_path, text + tail))
        assert got_months == months
        np.testing.assert_array_equal(got_values, values)


def test_structural_errors_name_the_line(tmp_path):
    for text, match in [("Month,Passengers\n1949-01,112\n\n1949-03,132\n", r":3: .*a blank line"),
                        ("Month,Passengers\n1949-01,112,7\n", r":2: expected 2 columns"),
                        ("Date,Value\n1949-01,112\n", r":1: expected the header"),
                        ("", r":1: expected the header"),
                        ("Month,Passengers\n", "no data rows"),
                        ("Month,Passengers\n49-1,112\n", r":2: month '49-1'")]:
        with pytest.raises(DataFormatError, match=match):
            load_air_passengers(_csv(tmp_path, text))
    path = tmp_path / "bin.csv"
    path.write_bytes(b"Month,Passengers\n1949-01,1\xff2\n")
    with pytest.raises(DataFormatError, match=r"bin\.csv:2: not UTF-8"):
        load_air_passengers(path)
