"""char-rnn checkpoints written by char-rnn's train.lua (LSTM, GRU with dropout, RNN): their
layout, greedy sampling against ``th sample.lua``, per-step probabilities against Lua, and
further training here."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy
import pytest

from nngraph_py import nn, optim, torch7
from nngraph_py.checkpoint import load_checkpoint, save_checkpoint

from t7_helpers import ARTIFACTS, fixture, max_diff

MODELS = ["lstm", "gru", "rnn"]
TH = "/opt/luatorch/bin/th"


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return request.param, torch7.load(fixture(f"char_rnn_{request.param}.t7"))


def test_checkpoint_layout(model):
    kind, ck = model
    assert set(ck) >= {"protos", "opt", "vocab", "train_losses", "val_losses", "epoch", "i"}
    assert isinstance(ck["protos"]["rnn"], nn.gModule)
    assert isinstance(ck["protos"]["criterion"], nn.ClassNLLCriterion)
    assert ck["opt"]["model"] == kind and ck["opt"]["rnn_size"] == 16
    vocab = ck["vocab"]
    assert sorted(vocab.values()) == list(range(1, len(vocab) + 1))  # 1-based, as written
    assert all(isinstance(c, str) and len(c) == 1 for c in vocab)
    assert isinstance(ck["train_losses"], list) and len(ck["train_losses"]) == ck["i"]
    assert all(isinstance(x, float) for x in ck["train_losses"])
    rnn = ck["protos"]["rnn"]
    per_layer = 2 if kind == "lstm" else 1
    assert rnn.n_inputs == 1 + per_layer * 2 and rnn.n_outputs == per_layer * 2 + 1
    if kind == "gru":
        assert any(isinstance(m, nn.Dropout) and m.p == 0.1 for m in rnn.modules())


def _text(name: str) -> str:
    with open(fixture(name), "rb") as f:
        return f.read().decode("latin-1").rstrip("\n")


@pytest.mark.parametrize("prime, suffix, length", [("The ", "The", 200), ("", "noprime", 100)])
def test_greedy_sampling_reproduces_th_sample_lua(model, prime, suffix, length):
    kind, ck = model
    out = torch7.sample_char_rnn(ck, length=length, primetext=prime)
    assert out.text == _text(f"char_rnn_{kind}_sample_{suffix}.txt")
    assert len(out.indices) == length


def test_per_step_log_probabilities_match_lua(model):
    kind, ck = model
    ref = torch7.load(fixture(f"char_rnn_{kind}_steps.t7"))
    out = torch7.sample_char_rnn(ck, length=200, primetext=ref["primetext"])
    assert out.text == ref["text"]
    assert [i + 1 for i in out.indices] == [int(i) for i in ref["indices"]]
    assert out.log_probs.shape == ref["log_probs"].shape
    assert max_diff(out.log_probs, ref["log_probs"]) < 1e-12  # float64 both sides


def test_random_sampling_is_seeded_and_respects_the_vocabulary(model):
    _, ck = model
    a = torch7.sample_char_rnn(ck, length=30, greedy=False, temperature=0.8, seed=5)
    b = torch7.sample_char_rnn(ck, length=30, greedy=False, temperature=0.8, seed=5)
    assert a.text == b.text and set(a.text) <= set(ck["vocab"])


def test_unknown_primetext_character_is_refused(model):
    _, ck = model
    with pytest.raises(Exception, match="not in the checkpoint"):
        torch7.sample_char_rnn(ck, length=1, primetext="\u20ac")


def test_the_shared_artifact_checkpoint_loads():
    path = os.path.join(ARTIFACTS, "char_rnn_cv_lm_lstm_epoch1.00_3.3352.t7")
    if not os.path.exists(path):
        pytest.skip("shared artifacts not present")
    ck = torch7.load(path)
    assert ck["opt"]["rnn_size"] == 16 and abs(ck["val_loss"] - 3.3352) < 1e-3


@pytest.mark.skipif(not os.path.exists(TH), reason="Lua Torch not installed")
def test_against_live_th_sample_lua(tmp_path):
    """With Lua installed: run char-rnn's sample.lua itself on the fixture."""
    shared = os.path.join(ARTIFACTS, "..", "scripts", "th-relative.sh")
    if not os.path.exists(shared):
        pytest.skip("th-relative.sh not present")
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(fixture("char_rnn_gru.t7"), work / "ck.t7")
    res = subprocess.run(["bash", shared, str(work), "sample.lua", "ck.t7", "-gpuid", "-1",
                          "-sample", "0", "-primetext", "Tho", "-length", "60", "-verbose", "0"],
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    lua = res.stdout.decode("latin-1").rstrip("\n")
    ck = torch7.load(fixture("char_rnn_gru.t7"))
    assert torch7.sample_char_rnn(ck, length=60, primetext="Tho").text == lua


def test_a_loaded_checkpoint_trains_further_and_saves(tmp_path):
    """Backward through the loaded gModule over a few steps of TBPTT-free training, an optimizer
    on its flat parameters, the loss going down, then save_checkpoint / load_checkpoint."""
    ck = torch7.load(fixture("char_rnn_rnn.t7"))
    rnn, crit = ck["protos"]["rnn"], ck["protos"]["criterion"]
    rnn.training()
    text = _text("char_rnn_rnn_sample_noprime.txt") + " MARCIUS: the the"
    vocab = ck["vocab"]
    ids = numpy.array([vocab[c] - 1 for c in text if c in vocab], dtype=numpy.int64)
    x, y = ids[:-1], ids[1:]
    opt = optim.Adam(rnn, lr=1e-2)  # flattens the loaded weights (get_parameters)
    state0 = torch7.char_rnn_state(ck, batch=len(x))

    def loss_and_grad():
        opt.zero_grad()
        outs = rnn.forward([x] + state0)
        loss = crit.forward(outs[-1], y)
        g = crit.backward(outs[-1], y)
        rnn.backward([x] + state0, [None] * (len(outs) - 1) + [g])
        return loss

    first = loss_and_grad()
    for _ in range(30):
        opt.step()
        last = loss_and_grad()
    assert last < first - 0.1
    path = tmp_path / "further.ckpt"
    save_checkpoint(str(path), rnn, opt)
    again = torch7.load(fixture("char_rnn_rnn.t7"))["protos"]["rnn"]
    load_checkpoint(str(path), again)
    assert max_diff(again.forward([x] + state0), rnn.forward([x] + state0)) == 0.0
