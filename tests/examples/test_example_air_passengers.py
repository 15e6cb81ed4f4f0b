"""Smoke tests of examples/air_passengers.py: a few full-batch steps on the shipped series."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import air_passengers  # noqa: E402

TINY = ["--epochs", "3", "--hidden", "8", "--no-progress"]


def test_holdout_forecasts_1960_beside_the_baseline(tmp_path: Path) -> None:
    metrics = air_passengers.main(["--out", str(tmp_path)] + TINY)
    assert metrics["test_months"] == [f"1960-{m:02d}" for m in range(1, 13)]
    assert metrics["seasonal_naive_rmse"] == pytest.approx(50.71, abs=0.01)
    assert len(metrics["forecast_recursive"]) == 12
    assert np.isfinite(metrics["test_rmse_one_step"])
    assert np.isfinite(metrics["test_rmse_recursive"])
    for name in ("checkpoint.npz", "metrics.json", "forecast.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_seed_setting_without_holdout(tmp_path: Path) -> None:
    metrics = air_passengers.main(["--out", str(tmp_path), "--no-holdout"] + TINY)
    assert "test_rmse_one_step" not in metrics
    assert metrics["final_train_mse_scaled"] > 0


def test_seasonal_difference_and_resume(tmp_path: Path) -> None:
    air_passengers.main(["--out", str(tmp_path), "--seasonal-diff", "--window", "24"] + TINY)
    metrics = air_passengers.main(["--resume", str(tmp_path / "checkpoint.npz"), "--epochs", "5",
                                   "--no-progress"])
    assert metrics["epochs"] == 5 and metrics["config"]["seasonal_diff"]
    assert len(metrics["history"]) == 5


def test_runs_on_the_strict_backend(tmp_path: Path) -> None:
    metrics = air_passengers.main(["--out", str(tmp_path), "--device", "strict"] + TINY)
    assert np.isfinite(metrics["test_rmse_recursive"])
