"""nngraph_py.train.fit and its callbacks, one by one, on a small regression."""
from __future__ import annotations

import csv
import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest

from nngraph_py import backend, nn, optim, train
from nngraph_py.data import batches


def _setup(seed: int = 0, dropout: float = 0.2, lr: float = 0.01):
    """A small MLP with dropout (so the random generators matter), Adam, and 64 examples."""
    backend.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, 1))
    optimizer = optim.Adam(model, lr=lr)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True).astype(np.float32)
    return model, optimizer, x, y


def _epochs(x, y, size=16):
    return lambda epoch: list(batches(x, y, size, shuffle=True, rng=epoch))


def _scripted(values):
    """An ``evaluate`` giving the metric ``m`` from ``values``, one per evaluation."""
    it = iter(values)
    return lambda loop: {"m": next(it)}


def test_fit_trains_and_returns_per_epoch_history() -> None:
    model, opt, x, y = _setup()
    history = train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=5, val=[(x, y)],
                        progress=False,
                        metrics={"mae": lambda out, t: float(np.abs(out - t).mean())})
    assert len(history) == 5 and [r["epoch"] for r in history.epochs] == [1, 2, 3, 4, 5]
    assert history["val_loss"][-1] < history["val_loss"][0]
    assert len(history.losses) == 20 and history.state.global_step == 20
    assert "val_mae" in history and history.best("val_loss")["epoch"] == 5


def test_checkpoint_every_n_steps_and_best_keeping(tmp_path: Path) -> None:
    model, opt, x, y = _setup()
    ck = train.ModelCheckpoint(tmp_path / "last.npz", every_steps=3, every_eval=False,
                               monitor="m", mode="max")
    train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=4, progress=False,
              evaluate=_scripted([0.5, 0.9, 0.7, 0.8]), callbacks=[ck])
    assert ck.saved_steps == [3, 6, 9, 12, 15, 16]  # every 3 steps, then at the end
    assert ck.best == 0.9 and ck.best_step == 8
    best = train.run_meta(tmp_path / "best.npz")
    assert best["run"]["global_step"] == 8
    assert train.run_meta(tmp_path / "last.npz")["run"]["global_step"] == 16
    assert best["callbacks"]["ModelCheckpoint"]["best"] == 0.9


def test_early_stopping_after_patience() -> None:
    model, opt, x, y = _setup()
    stop = train.EarlyStopping(monitor="m", patience=2)
    history = train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=20, progress=False,
                        evaluate=_scripted([1.0, 0.8, 0.9, 0.85, 0.81, 0.1, 0.1]),
                        callbacks=[stop])
    assert len(history) == 5 and history.state.epoch == 5  # 0.8 at 2, then 3 without better
    assert stop.best == 0.8 and "early stopping" in history.stop_reason


def test_reduce_lr_on_plateau() -> None:
    model, opt, x, y = _setup()
    plateau = train.ReduceLROnPlateau(monitor="m", factor=0.5, patience=1, min_lr=0.003)
    history = train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=7, progress=False,
                        evaluate=_scripted([1.0, 1.0, 1.0, 0.5, 0.6, 0.6, 0.6]),
                        callbacks=[plateau])
    # lr recorded at each evaluation (before the callback acts on it)
    assert history["lr"] == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.003])
    assert plateau.reductions == [(12, 0.005), (24, 0.003)]


def test_gradient_clipping_and_its_checks() -> None:
    model, opt, x, y = _setup()
    norms = []
    clip = train.GradientClipping(0.01)
    spy = train.LambdaCallback(on_after_backward=lambda loop: norms.append(
        float(np.linalg.norm(loop.optimizer.grads))))
    train.fit(model, nn.MSECriterion(), opt, [(x, y)], epochs=3, progress=False,
              callbacks=[clip, spy])
    assert max(norms) <= 0.01 + 1e-6  # spy (order 0) runs after the clipping (order -10)
    for bad in (-1, 0, float("nan"), float("inf")):
        with pytest.raises(train.TrainingError, match="max_norm must be a positive"):
            train.GradientClipping(bad)


def test_lr_schedule_sets_the_rate_from_the_step() -> None:
    model, opt, x, y = _setup()
    seen = []
    train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=2, progress=False,
              callbacks=[train.LRSchedule(lambda step: optim.cosine_decay(0.1, step, 8)),
                         train.LambdaCallback(on_step_begin=lambda loop: seen.append(
                             loop.optimizer.lr))])
    assert seen[0] == pytest.approx(0.1) and seen[4] == pytest.approx(0.05)


def _interrupting(at_step: int):
    def hook(loop):
        if loop.state.global_step + 1 == at_step:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C arriving during this step
    return train.LambdaCallback(on_step_begin=hook)


@pytest.mark.parametrize("every_eval", [True, False])
def test_ctrl_c_saves_and_resume_is_bitwise_exact(tmp_path: Path, every_eval: bool) -> None:
    crit = nn.MSECriterion()
    model, opt, x, y = _setup()
    kwargs = dict(epochs=3, progress=False, val=[(x, y)])
    plateau = train.ReduceLROnPlateau(patience=0, factor=0.5)
    unbroken = train.fit(model, crit, opt, _epochs(x, y), callbacks=[
        plateau, train.ModelCheckpoint(tmp_path / "a.npz", every_eval=every_eval)], **kwargs)
    reference = model.get_parameters()[0].copy()

    model, opt, x, y = _setup()
    path = tmp_path / "b.npz"
    with pytest.raises(train.TrainingInterrupted) as info:
        train.fit(model, crit, opt, _epochs(x, y), callbacks=[
            train.ReduceLROnPlateau(patience=0, factor=0.5), _interrupting(6),
            train.ModelCheckpoint(path, every_eval=every_eval)], **kwargs)
    assert info.value.checkpoint == str(path)
    run = train.run_meta(path)["run"]
    assert (run["global_step"], run["epoch"], run["step"]) == (6, 1, 2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler put back

    model, opt, x, y = _setup(seed=99)  # other weights and generators: all from the checkpoint
    np.random.seed(5)
    resumed = train.fit(model, crit, opt, _epochs(x, y), resume=path, callbacks=[
        train.ReduceLROnPlateau(patience=0, factor=0.5),
        train.ModelCheckpoint(path, every_eval=every_eval)], **kwargs)
    assert resumed.losses == unbroken.losses  # bitwise: the same floats
    assert resumed.records == [dict(r, elapsed_s=r2["elapsed_s"]) for r, r2 in
                               zip(unbroken.records, resumed.records)]
    np.testing.assert_array_equal(model.get_parameters()[0], reference)


def test_nan_stops_before_the_update_and_keeps_the_good_checkpoint(tmp_path: Path) -> None:
    model, opt, x, y = _setup(dropout=0.0)
    crit = nn.MSECriterion()
    path = tmp_path / "ck.npz"
    calls = {"n": 0}

    def forward_backward(batch):
        calls["n"] += 1
        out = model.forward(batch[0])
        loss = crit.forward(out, batch[1])
        model.backward(batch[0], crit.backward(out, batch[1]))
        if calls["n"] == 7:
            opt.grads[3] = np.nan  # the gradient goes bad at step 7
        return float(loss), len(batch[0])

    with pytest.raises(train.NonFiniteError, match=r"NaN or infinite at step 7 \(epoch 2, "
                                                   r"batch 3\).*ck.npz \(step 4\)") as info:
        train.fit(model, crit, opt, _epochs(x, y), epochs=3, progress=False,
                  forward_backward=forward_backward, callbacks=[train.ModelCheckpoint(path)])
    assert info.value.step == 7 and info.value.what == "gradient"
    assert train.run_meta(path)["run"]["global_step"] == 4  # the epoch-1 checkpoint, untouched
    assert np.isfinite(model.get_parameters()[0]).all()  # the bad step was not applied


def test_nan_loss_can_be_skipped(tmp_path: Path) -> None:
    model, opt, x, y = _setup(dropout=0.0)
    crit = nn.MSECriterion()
    bad_steps = {3, 4}
    step = {"n": 0}

    def forward_backward(batch):
        step["n"] += 1
        out = model.forward(batch[0])
        loss = crit.forward(out, batch[1])
        model.backward(batch[0], crit.backward(out, batch[1]))
        return (float("inf") if step["n"] in bad_steps else float(loss)), 16

    history = train.fit(model, crit, opt, _epochs(x, y), epochs=2, progress=False,
                        forward_backward=forward_backward, on_nonfinite="skip")
    assert history.state.skipped == [3, 4] and history.state.global_step == 8
    assert math.isfinite(history["train_loss"][0])  # the mean leaves the skipped steps out
    with pytest.raises(train.NonFiniteError, match="the loss is inf at step 4"):
        step["n"] = 0
        train.fit(model, crit, opt, _epochs(x, y), epochs=2, progress=False,
                  forward_backward=forward_backward, on_nonfinite="skip", max_skips=2)


def test_huge_learning_rate_is_caught_and_nothing_non_finite_is_saved(tmp_path: Path) -> None:
    """Issue 12 item 5: ``--lr 1e9`` used to write a checkpoint of non-finite weights."""
    model, opt, x, y = _setup(dropout=0.0)
    opt = optim.SGD(model, lr=1e30)
    path = tmp_path / "ck.npz"
    with pytest.raises(train.NonFiniteError) as info:
        train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=5, progress=False,
                  callbacks=[train.ModelCheckpoint(path, every_steps=1)])
    assert info.value.step is not None and "at step" in str(info.value)
    if path.exists():
        meta = train.run_meta(path)
        assert meta["run"]["global_step"] < info.value.step
    model.get_parameters()[0][0] = np.nan
    with pytest.raises(train.NonFiniteError, match="not saving .*1 of 41 parameter values"):
        train.save_run(tmp_path / "other.npz", model, opt, train.TrainState())
    assert not (tmp_path / "other.npz").exists()


def test_loggers_write_jsonl_csv_and_tensorboard(tmp_path: Path) -> None:
    model, opt, x, y = _setup()
    callbacks = [train.JSONLinesLogger(tmp_path / "log.jsonl"),
                 train.CSVLogger(tmp_path / "log.csv")]
    pytest.importorskip("tensorboardX")
    callbacks.append(train.TensorBoardLogger(tmp_path / "tb", every_steps=2))
    train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=3, val=[(x, y)],
              progress=False, callbacks=callbacks)
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in lines] == [4, 8, 12] and "val_loss" in lines[0]
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(r["global_step"]) for r in rows] == [4, 8, 12]
    assert float(rows[-1]["val_loss"]) == pytest.approx(lines[-1]["val_loss"])
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_progress_in_a_log_has_no_carriage_returns(capsys) -> None:
    model, opt, x, y = _setup()
    train.fit(model, nn.MSECriterion(), opt, _epochs(x, y), epochs=2, progress=True,
              log_every=3)
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    lines = [line for line in captured.out.splitlines() if "samples/s" in line]
    assert len(lines) == 3 and "left" in lines[0] and "step 3/8" in lines[0]
    assert "step 8/8" in lines[-1]


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"epochs": -1}, "epochs must be a positive integer"),
    ({"eval_every": -5}, "eval_every must be an integer >= 0"),
    ({"on_nonfinite": "ignore"}, "on_nonfinite must be"),
])
def test_careless_arguments_are_refused(kwargs, message: str) -> None:
    model, opt, x, y = _setup()
    with pytest.raises(train.TrainingError, match=message):
        train.fit(model, nn.MSECriterion(), opt, [(x, y)], progress=False,
                  **{"epochs": 1, **kwargs})


def test_an_iterator_is_one_pass_only() -> None:
    model, opt, x, y = _setup()
    with pytest.raises(train.TrainingError, match="iterator, which gives one pass only"):
        train.fit(model, nn.MSECriterion(), opt, batches(x, y, 16), epochs=2, progress=False)
    history = train.fit(model, nn.MSECriterion(), opt, batches(x, y, 16), epochs=1,
                        progress=False)
    assert history.state.global_step == 4


def test_monitoring_a_missing_metric_says_what_there_is() -> None:
    model, opt, x, y = _setup()
    with pytest.raises(train.TrainingError, match="'val_loss' is not in .*give val="):
        train.fit(model, nn.MSECriterion(), opt, [(x, y)], progress=False,
                  callbacks=[train.EarlyStopping()])


def test_train_is_an_attribute_of_the_package():
    """``import nngraph_py; nngraph_py.train.fit`` (the issue's name) works without importing
    the subpackage by hand (it raised AttributeError)."""
    import nngraph_py

    assert nngraph_py.train.fit is not None and "train" in nngraph_py.__all__
