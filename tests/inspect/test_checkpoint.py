"""Checkpoints: round trips, atomic writes, and every way a file can be wrong."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy
import pytest

from inspect_models import lstm_cell_model, nested_model, seed_mlp, shared_model
from nngraph_py import backend, checkpoint, nn
from nngraph_py.checkpoint import (FORMAT, META_KEY, Checkpoint, CheckpointError,
                                   CheckpointNotFound, load_checkpoint, save_checkpoint)


def host_params(model):
    return {n: backend.to_numpy(p).copy() for n, p in model.named_parameters()}


def assert_params_equal(model, expected):
    got = host_params(model)
    assert list(got) == list(expected)
    for name in got:
        numpy.testing.assert_array_equal(got[name], expected[name])


def scramble(model):
    for _, p in model.named_parameters():
        p[...] = 7.0


def test_round_trip_on_every_backend(tmp_path, device):
    model = lstm_cell_model().to(device)
    saved = host_params(model)
    path = save_checkpoint(str(tmp_path / "cell.npz"), model, meta={"epoch": 3, "loss": 1.5})
    scramble(model)
    ck = load_checkpoint(path, model=model)
    assert_params_equal(model, saved)
    assert backend.device_of(model.parameters()[0][0]) == device
    assert ck.user == {"epoch": 3, "loss": 1.5}
    assert list(ck.params) == list(saved)
    meta, arrays = ck  # unpacks as (meta, arrays)
    assert meta["format"] == FORMAT and "param/i2h_forget.weight" in arrays
    assert meta["model"]["type"] == "gModule" and "i2h_forget" in meta["model"]["repr"]
    assert ck.summary().total_params == model.num_parameters()


def test_loading_copies_in_place_so_flat_views_stay_valid(tmp_path):
    model = seed_mlp()
    flat, _ = model.get_parameters()
    saved = flat.copy()
    path = save_checkpoint(str(tmp_path / "m.npz"), model)
    flat[...] = 0
    weight_before = model.parameters()[0][0]
    load_checkpoint(path, model=model)
    numpy.testing.assert_array_equal(flat, saved)
    assert model.parameters()[0][0] is weight_before


def test_file_layout_is_plain_arrays_and_json(tmp_path):
    model = shared_model()
    path = save_checkpoint(str(tmp_path / "m.npz"), model, grads=True)
    with numpy.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        assert z[META_KEY].dtype == numpy.uint8
    # the shared array is stored once, under its first name
    assert keys == {META_KEY, "param/left.weight", "param/left.bias", "grad/left.weight",
                    "grad/left.bias"}
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())


def test_shared_parameters_restore_every_sharer(tmp_path):
    model = shared_model()
    saved = host_params(model)
    path = save_checkpoint(str(tmp_path / "m.npz"), model)
    fresh = shared_model()
    load_checkpoint(path, model=fresh)
    assert_params_equal(fresh, saved)
    modules = {fresh.node_name(n): n.module for n in fresh.nodes}
    assert modules["right"].weight is modules["left"].weight  # still shared after the load
    numpy.testing.assert_array_equal(modules["right"].weight, saved["left.weight"])


def test_gradients_are_saved_and_restored(tmp_path, rng):
    model = seed_mlp().double()
    x = [rng.standard_normal(s) for s in ((2, 10), (2, 10), (2, 20))]
    model.forward(x)
    model.backward(x, rng.standard_normal((2, 10)))
    grads = {n: g.copy() for n, g in model.named_grad_parameters()}
    path = save_checkpoint(str(tmp_path / "m.npz"), model, grads=True)
    fresh = seed_mlp().double()
    ck = load_checkpoint(path, model=fresh)
    assert list(ck.grads) == list(grads)
    for (name, g) in fresh.named_grad_parameters():
        numpy.testing.assert_array_equal(g, grads[name])
    assert load_checkpoint(save_checkpoint(str(tmp_path / "n.npz"), model)).grads == {}


def test_optimizer_state_round_trip_resumes_identically(tmp_path, rng):
    optim = pytest.importorskip("nngraph_py.optim", reason="nngraph_py.optim is not available yet")
    x = [rng.standard_normal(s).astype("float32") for s in ((2, 10), (2, 10), (2, 20))]

    def step(model, opt):
        opt.zero_grad()
        out = model.forward(x)
        model.backward(x, out)
        opt.step()

    model = seed_mlp()
    opt = optim.Adam(model, lr=0.01)
    for _ in range(3):
        step(model, opt)
    path = save_checkpoint(str(tmp_path / "m.npz"), model, opt, {"step": 3})
    ck = load_checkpoint(path)
    assert ck.meta["optimizer"]["type"] == "Adam"
    assert ck.optimizer_state["t"] == 3 and ck.optimizer_state["m"].shape == (210,)
    model2 = seed_mlp()
    opt2 = optim.Adam(model2, lr=0.5)
    load_checkpoint(path, model=model2, optimizer=opt2)
    assert opt2.lr == 0.01
    step(model, opt)
    step(model2, opt2)
    assert_params_equal(model2, host_params(model))


def test_optimizer_state_as_a_dict_with_tuples(tmp_path):
    state = {"lr": 0.1, "betas": (0.9, 0.99), "t": numpy.int64(4), "buf": numpy.ones(210, "f4")}
    path = save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), state)
    got = load_checkpoint(path).optimizer_state
    assert got["betas"] == (0.9, 0.99) and got["t"] == 4 and got["lr"] == 0.1
    numpy.testing.assert_array_equal(got["buf"], numpy.ones(210, "f4"))


def test_numpy_scalars_in_meta_become_numbers(tmp_path):
    meta = {"loss": numpy.float32(0.25), "epoch": numpy.int64(3), "tags": ("a", "b")}
    path = save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), meta=meta)
    assert load_checkpoint(path).user == {"loss": 0.25, "epoch": 3, "tags": ["a", "b"]}


def test_data_only_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), meta={"f": lambda: 0})
    with pytest.raises(CheckpointError, match="'hook'"):
        save_checkpoint(str(tmp_path / "m.npz"), seed_mlp(), {"hook": object()})
    assert not os.listdir(tmp_path)


# ------------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------------
def test_a_failure_mid_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model = seed_mlp()
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, model, meta={"version": 1})
    before = open(path, "rb").read()
    real_savez = numpy.savez

    def crash(file, **arrays):
        real_savez(file, **arrays)
        file.truncate(100)  # half the archive is on disk...
        raise OSError("disk full")  # ...when the write fails

    monkeypatch.setattr(checkpoint.numpy, "savez", crash)
    scramble(model)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, meta={"version": 2})
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert load_checkpoint(path).user == {"version": 1}
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def test_overwrite_keeps_the_file_mode(tmp_path):
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, seed_mlp())
    os.chmod(path, 0o640)
    save_checkpoint(path, seed_mlp())
    assert os.stat(path).st_mode & 0o777 == 0o640


# ------------------------------------------------------------------------------------------------
# Files that cannot be read
# ------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.npz")
    with pytest.raises(CheckpointNotFound, match="nope.npz does not exist") as info:
        load_checkpoint(path)
    assert isinstance(info.value, FileNotFoundError)


def test_truncated_file_names_the_file_and_leaves_the_model(tmp_path):
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, lstm_cell_model())
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    model = lstm_cell_model()
    before = host_params(model)
    with pytest.raises(CheckpointError, match=r"m\.npz.*truncated"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_empty_and_garbage_files(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.npz"):
        load_checkpoint(str(empty))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(CheckpointError, match="garbage.npz"):
        load_checkpoint(str(garbage))


class _Boom:
    """Unpickling this would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_bearing_npz_is_refused_and_never_runs(tmp_path):
    marker = str(tmp_path / "pwned")
    path = str(tmp_path / "evil.npz")
    meta = numpy.frombuffer(b'{"format": "nngraph_py.checkpoint/1"}', numpy.uint8)
    obj = numpy.empty(1, dtype=object)
    obj[0] = _Boom(marker)
    numpy.savez(path, **{META_KEY: meta, "param/w": obj})
    with pytest.raises(CheckpointError, match="pickled"):
        load_checkpoint(path)
    assert not os.path.exists(marker)


def test_plain_pickle_file_is_refused_and_never_runs(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps(_Boom(marker)))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(str(path))
    assert not os.path.exists(marker)


def test_npz_that_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / "other.npz")
    numpy.savez(path, w=numpy.ones(3))
    with pytest.raises(CheckpointError, match="not an nngraph_py checkpoint"):
        load_checkpoint(path)
    single = str(tmp_path / "single.npy")
    numpy.save(single, numpy.ones(3))
    with pytest.raises(CheckpointError, match="single .npy"):
        load_checkpoint(single)


def _rewrite(path, edit_meta=None, drop=None):
    """Rewrite a checkpoint with edited metadata or an array left out."""
    import json

    with numpy.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays[META_KEY]).decode())
    if edit_meta:
        edit_meta(meta)
    arrays[META_KEY] = numpy.frombuffer(json.dumps(meta).encode(), numpy.uint8)
    if drop:
        del arrays[drop]
    numpy.savez(path, **arrays)


def test_other_format_version_and_inconsistent_file(tmp_path):
    path = str(tmp_path / "m.npz")
    save_checkpoint(path, seed_mlp())
    _rewrite(path, edit_meta=lambda m: m.update(format="nngraph_py.checkpoint/2"))
    with pytest.raises(CheckpointError, match="checkpoint/2"):
        load_checkpoint(path)
    save_checkpoint(path, seed_mlp())
    _rewrite(path, drop="param/Linear1.bias")
    with pytest.raises(CheckpointError, match="corrupt.*param/Linear1.bias"):
        load_checkpoint(path)


# ------------------------------------------------------------------------------------------------
# Files that do not match the model: the first mismatch is named, nothing is copied
# ------------------------------------------------------------------------------------------------
def _saved(tmp_path, model):
    return save_checkpoint(str(tmp_path / "saved.npz"), model)


def test_wrong_name(tmp_path):
    path = _saved(tmp_path, lstm_cell_model())
    x = nn.Identity()().annotate(name="x")
    prev_c, prev_h = nn.Identity()(), nn.Identity()()
    # Same sizes, every node named differently: the recipe with a prefix on every name.
    try:
        from lstm.cell import lstm_cell
    except ImportError:
        pytest.skip("lstm.cell is not available yet")
    c, h = lstm_cell(x, prev_c, prev_h, 5, 4, prefix="l1_")
    renamed = nn.gModule([x, prev_c, prev_h], [c, h])
    before = host_params(renamed)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model=renamed)
    text = str(info.value)
    assert "saved.npz" in text and "'l1_i2h_input.weight' is not in the checkpoint" in text
    assert "'i2h_input.weight'" in text and "nothing was loaded" in text
    assert_params_equal(renamed, before)


def test_wrong_name_without_lstm(tmp_path):
    path = _saved(tmp_path, seed_mlp())
    x1, x2, x3 = nn.Identity()(), nn.Identity()(), nn.Identity()()
    proj = nn.Linear(20, 10)(x3).annotate(name="proj")
    model = nn.gModule([x1, x2, x3], [nn.CAddTable()([x1, nn.CMulTable()([x2, proj])])])
    before = host_params(model)
    with pytest.raises(CheckpointError,
                       match=r"parameter 'proj.weight' is not in the checkpoint.*Linear1"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_wrong_shape(tmp_path):
    path = _saved(tmp_path, lstm_cell_model(5, 4))
    model = lstm_cell_model(5, 3)
    before = host_params(model)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model=model)
    text = str(info.value)
    first = next(iter(before))
    assert f"parameter '{first}' has shape (4, 5) in the checkpoint but (3, 5) in the model" in text
    assert "15 more mismatch(es)" in text
    assert_params_equal(model, before)


def test_wrong_dtype(tmp_path):
    path = _saved(tmp_path, seed_mlp())
    model = seed_mlp().double()
    before = host_params(model)
    with pytest.raises(CheckpointError,
                       match=r"'Linear1.weight' is float32 in the checkpoint but float64 .*"
                             r"model.to\(dtype='float32'\)"):
        load_checkpoint(path, model=model)
    assert_params_equal(model, before)


def test_extra_parameter_in_the_checkpoint(tmp_path):
    path = _saved(tmp_path, nested_model())
    x, y = nn.Identity()(), nn.Identity()()
    model = nn.gModule([x, y], [nn.CMulTable()([x, y])])
    with pytest.raises(CheckpointError, match="checkpoint's parameter 'block.proj.weight' is not"):
        load_checkpoint(path, model=model)


def test_optimizer_mismatch_leaves_model_and_optimizer_untouched(tmp_path):
    optim = pytest.importorskip("nngraph_py.optim", reason="nngraph_py.optim is not available yet")
    path = _saved(tmp_path, seed_mlp())  # saved without optimizer state
    model = seed_mlp()
    opt = optim.Adam(model)
    before = host_params(model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(path, model=model, optimizer=opt)
    assert_params_equal(model, before)
    other = lstm_cell_model()
    path = save_checkpoint(str(tmp_path / "cell.npz"), seed_mlp(), optim.Adam(other))
    with pytest.raises(CheckpointError, match=r"optimizer array 'm' has shape \(176,\)"):
        load_checkpoint(path, model=model, optimizer=opt)
    assert_params_equal(model, before)


def test_checkpoint_type():
    ck = Checkpoint({"parameters": [], "optimizer": None}, {})
    assert ck.params == {} and ck.optimizer_state is None and ck.user == {}


def test_lstm_model_round_trip_gives_the_same_outputs(tmp_path, rng):
    lstm = pytest.importorskip("lstm", reason="the lstm package is not available yet")
    model = lstm.LSTM(4, 6, 2)
    x = rng.standard_normal((3, 5, 4)).astype("float32")
    expected, _ = model.forward(x)
    path = save_checkpoint(str(tmp_path / "lstm.npz"), model)
    fresh = lstm.LSTM(4, 6, 2)
    fresh.forward(x)  # caches built from the old weights must not survive the load
    load_checkpoint(path, model=fresh)
    got, _ = fresh.forward(x)
    numpy.testing.assert_allclose(got, expected, rtol=1e-6)
    assert "layer2.h2h_cell.bias" in load_checkpoint(path).params
