"""Checkpoint format: plain npz, Keras names and shapes, loading by name with clear errors."""

import json
import os

import numpy as np
import pytest

from kerascli.config.loader import parse_yaml_text
from kerascli.config.schema import resolve_config
from kerascli.errors import CheckpointError
from kerascli.runs.atomic import atomic_write, atomic_write_text
from kerascli.runs.checkpoint import apply_weights, load_checkpoint, save_checkpoint
from kerascli.train.session import build_session

MLP = """
name: ckpt
data: {dataset: synthetic_classification, samples: 40, features: 5, classes: 3}
model:
  input_shape: [5]
  layers:
    - {type: Dense, units: 4, activation: relu}
    - {type: BatchNormalization}
    - {type: Dense, units: 3, activation: softmax}
compile: {optimizer: adam, loss: sparse_categorical_crossentropy}
"""


def session(text=MLP, **weights):
    spec = resolve_config(parse_yaml_text(text, "cfg.yaml"))
    return build_session(spec)


def test_checkpoint_layout(tmp_path):
    s = session()
    s.trainer.optimizer.step(s.model.param_buffer, np.ones_like(s.model.grad_buffer))
    path = str(tmp_path / "c.npz")
    save_checkpoint(path, s.model, s.trainer.optimizer, s.spec.to_dict(), epoch=3)
    with np.load(path) as z:  # plain numpy, pickle off by default
        keys = set(z.files)
        assert z["dense/kernel"].shape == (5, 4) and z["dense/bias"].shape == (4,)
        assert z["dense_1/kernel"].shape == (4, 3)
        for w in ("gamma", "beta", "moving_mean", "moving_variance"):
            assert z[f"batch_normalization/{w}"].shape == (4,)
        assert str(z["_format"]) == "kerascli-checkpoint-1"
        assert json.loads(str(z["_config"]))["name"] == "ckpt"
        assert int(z["_epoch"]) == 3
        assert int(z["_optimizer/iterations"]) == 1
        assert z["_optimizer/m/dense/kernel"].shape == (5, 4)
        assert "_rng/dense" in keys
        assert all(z[k].dtype != object for k in keys)


def test_hand_written_weights_give_hand_computed_predictions(tmp_path):
    rng = np.random.default_rng(0)
    text = MLP.replace("    - {type: BatchNormalization}\n", "")
    w1, b1 = rng.normal(size=(5, 4)), rng.normal(size=4)
    w2, b2 = rng.normal(size=(4, 3)), rng.normal(size=3)
    path = tmp_path / "w.npz"
    np.savez(path, **{"dense/kernel": w1, "dense/bias": b1, "dense_1/kernel": w2, "dense_1/bias": b2})
    s = session(model_with_weights(path, text))
    x = rng.normal(size=(6, 5)).astype(np.float32)
    h = np.maximum(x @ w1 + b1, 0)
    z = h @ w2 + b2
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(s.trainer.predict(x, 4), expected, rtol=1e-4, atol=1e-6)


def model_with_weights(path, text=MLP):
    return text.replace("compile:", f"  weights: {path}\ncompile:")


def test_weights_key_is_model_weights(tmp_path):
    s = session()
    path = tmp_path / "w.npz"
    save_checkpoint(str(path), s.model, None, {}, 0)
    spec = resolve_config(parse_yaml_text(model_with_weights(path), "cfg.yaml"))
    assert spec.model.weights == str(path)
    other = build_session(spec)
    np.testing.assert_array_equal(other.model.param_buffer, s.model.param_buffer)


def test_missing_and_mismatched_weights(tmp_path):
    s = session()
    weights = s.model.get_weights()
    del weights["dense_1/bias"]
    with pytest.raises(CheckpointError, match="missing 'dense_1/bias' for layer 'dense_1' \\(it has dense_1/kernel\\)"):
        apply_weights(s.model, weights, "w.npz")
    weights = s.model.get_weights()
    weights["dense/kernel"] = np.zeros((5, 7))
    before = s.model.param_buffer.copy()
    with pytest.raises(CheckpointError, match="'dense/kernel' for layer 'dense' has shape \\(5, 7\\), the model expects \\(5, 4\\)"):
        apply_weights(s.model, weights, "w.npz")
    np.testing.assert_array_equal(s.model.param_buffer, before)  # nothing half-loaded
    weights = s.model.get_weights()
    weights["dense/bias"] = np.full(4, np.nan)
    with pytest.raises(CheckpointError, match="NaN"):
        apply_weights(s.model, weights, "w.npz")


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(str(tmp_path / "none.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        load_checkpoint(str(bad))
    obj = tmp_path / "obj.npz"
    np.savez(obj, **{"dense/kernel": np.array([None], dtype=object)})
    with pytest.raises(CheckpointError, match="need pickle to read; refused"):
        load_checkpoint(str(obj))
    s = session()
    good = tmp_path / "good.npz"
    save_checkpoint(str(good), s.model, None, {}, 0)
    data = good.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(str(tmp_path / "cut.npz"))


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = str(tmp_path / "f.txt")
    atomic_write_text(path, "old")

    def explode(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, explode)
    assert open(path).read() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]
