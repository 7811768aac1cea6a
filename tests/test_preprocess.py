"""Feature-wise preprocessing fitted on the training split (data.normalize, augmentation's featurewise_*):
the statistics against numpy and Keras' ImageDataGenerator, stored in every checkpoint and applied by
evaluate and predict, and the errors when they are missing or conflicting."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from test_augment import DIGITS  # an npz digits config with room for more data keys

from kerascli.cli import cli
from kerascli.data import augment
from kerascli.data.pipeline import BatchSplit, Split, split_indices
from kerascli.data.preprocess import Standardizer, standardized_split
from kerascli.runs.checkpoint import checksum

AUGMENT = {key: param.default for key, param in augment.PARAMS.items()}


def standardizer(normalize=None, **augmentation):
    return Standardizer.from_config({"normalize": normalize, "augmentation": {**AUGMENT, **augmentation}})


@pytest.mark.parametrize("method", ["standardize", "minmax"])
def test_statistics_fitted_batch_by_batch_are_numpys_over_the_whole_split(rng, method):
    x = rng.normal(3.0, 5.0, size=(103, 4)).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature: divided by 1
    s = standardizer(method)
    s.fit(Split(x, np.zeros(103)), batch_size=10)
    offset, scale = s.stats["input"]
    whole = x.astype(np.float64)
    if method == "standardize":
        np.testing.assert_allclose(offset, whole.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(scale[[0, 1, 3]], whole.std(axis=0)[[0, 1, 3]], rtol=1e-12)
    else:
        np.testing.assert_array_equal(offset, whole.min(axis=0))
        np.testing.assert_allclose(scale[[0, 1, 3]], np.ptp(whole, axis=0)[[0, 1, 3]], rtol=1e-12)
    assert scale[2] == 1.0
    out = s.apply(x)
    assert out.dtype == np.float32 and out is not x
    if method == "standardize":
        np.testing.assert_allclose(out.mean(axis=0), [0, 0, 0, 0], atol=1e-5)
        np.testing.assert_allclose(out.std(axis=0)[[0, 1, 3]], 1, rtol=1e-5)
    else:
        np.testing.assert_allclose(out.min(axis=0), [0, 0, 0, 0], atol=1e-6)
        np.testing.assert_allclose(out.max(axis=0)[[0, 1, 3]], 1, rtol=1e-6)


def test_featurewise_is_keras_image_data_generator_s(rng):
    """rescale, then featurewise centring and std normalisation per channel, fitted as ImageDataGenerator.fit
    fits (on the rescaled images) and applied as its standardize applies them."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    pytest.importorskip("scipy")
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    x = rng.uniform(0, 255, (12, 5, 6, 3)).astype(np.float32)
    for center, std in ((True, False), (False, True), (True, True)):
        keras = ImageDataGenerator(rescale=1 / 255, featurewise_center=center, featurewise_std_normalization=std)
        keras.fit(x)
        expected = np.stack([keras.standardize(image.copy()) for image in x])
        s = standardizer(rescale=1 / 255, featurewise_center=center, featurewise_std_normalization=std)
        s.fit(Split(x, np.zeros(12)), batch_size=5)
        np.testing.assert_allclose(s.apply(x), expected, rtol=1e-5, atol=1e-5)
    grey = x[..., 0]  # (N, H, W): one channel, statistics over every value
    s = standardizer(featurewise_center=True, featurewise_std_normalization=True)
    s.fit(Split(grey, np.zeros(12)), batch_size=5)
    assert s.stats["input"][0].shape == (1,)
    np.testing.assert_allclose(s.apply(grey), (grey - grey.mean()) / (grey.std() + 1e-6), rtol=1e-4, atol=1e-5)


def test_several_inputs_and_batch_by_batch_splits(rng):
    a, b = rng.normal(size=(30, 3)), rng.normal(10, 2, size=(30, 2))
    s = standardizer("standardize")
    s.fit(Split({"a": a, "b": b}, np.zeros(30)), batch_size=7)
    assert set(s.stats) == {"a", "b"}
    np.testing.assert_allclose(s.stats["b"][0], b.mean(axis=0), rtol=1e-12)
    batches = [(a[i:i + 8], np.zeros(len(a[i:i + 8]))) for i in range(0, 30, 8)]
    split = BatchSplit(batches, np.arange(4), lambda x, y, where: (x, y), 8, "train")
    s = standardizer("minmax")
    s.fit(split, batch_size=8)
    np.testing.assert_array_equal(s.stats["input"][0], a.min(axis=0))
    wrapped = standardized_split(split, s)
    got = np.concatenate([x for x, _, _ in wrapped.batches(8)])
    np.testing.assert_allclose(got, (a - a.min(axis=0)) / np.ptp(a, axis=0), rtol=1e-12)
    assert wrapped.steps(8) == 4 and wrapped.head(2, 8).steps(8) == 2


@pytest.mark.parametrize("method", ["standardize", "minmax"])
def test_statistics_are_stored_with_the_run_and_used_by_evaluate_and_predict(tmp_path, method):
    """A run with data.normalize trains, evaluates and predicts exactly as a run on inputs normalized
    beforehand with the training split's statistics; those statistics are in every checkpoint."""
    from kerascli.data.datasets import Digits

    x, y = Digits.load({})
    x = x.astype(np.float32)
    np.savez(tmp_path / "raw.npz", x=x, y=y)
    runner = CliRunner()

    def train(name, data, extra):
        config = tmp_path / f"{name}.yaml"
        config.write_text(DIGITS.format(name=name, path=tmp_path / data, augmentation=extra))
        result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
        assert result.exit_code == 0, result.output
        return tmp_path / "runs" / name

    run = train("normalized", "raw.npz", f", normalize: {method}")
    with np.load(run / "checkpoints" / "last.npz") as z:
        offset, scale = z["_preprocessing/input/offset"], z["_preprocessing/input/scale"]
    train_rows = x[split_indices(len(x), {"shuffle": True, "test_split": 0.2, "validation_split": 0.1}, 7)["train"]]
    t = train_rows.astype(np.float64)
    if method == "standardize":
        np.testing.assert_allclose(offset, t.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(scale, np.where(t.std(axis=0) > 0, t.std(axis=0), 1), rtol=1e-12)
    else:
        np.testing.assert_array_equal(offset, t.min(axis=0))
        np.testing.assert_array_equal(scale, np.where(np.ptp(t, axis=0) > 0, np.ptp(t, axis=0), 1))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["preprocessing"]["method"] == f"normalize: {method}"
    assert summary["preprocessing"]["inputs"]["input"]["offset"] == offset.tolist()

    ready = (x - offset.astype(np.float32)) / scale.astype(np.float32)
    np.savez(tmp_path / "ready.npz", x=ready, y=y)
    plain = train("plain", "ready.npz", "")
    assert json.loads((plain / "summary.json").read_text())["evaluation"] == summary["evaluation"]
    np.save(tmp_path / "raw.npy", x[:40])
    np.save(tmp_path / "ready.npy", ready[:40])
    for r, inputs, data in ((run, "raw.npy", "raw.npz"), (plain, "ready.npy", "ready.npz")):
        result = runner.invoke(cli, ["predict", str(r), str(tmp_path / inputs), "-o", str(r / "p.npy")])
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli, ["evaluate", str(r), "--data", str(tmp_path / data), "--json"])
        assert result.exit_code == 0, result.output
        (r / "data_loss.txt").write_text(str(json.loads(result.stdout)["loss"]))
    np.testing.assert_array_equal(np.load(run / "p.npy"), np.load(plain / "p.npy"))
    assert (run / "data_loss.txt").read_text() == (plain / "data_loss.txt").read_text()


def test_a_checkpoint_without_its_statistics_is_refused(tmp_path):
    from kerascli.data.datasets import Digits

    x, y = Digits.load({})
    np.savez(tmp_path / "raw.npz", x=x, y=y)
    config = tmp_path / "c.yaml"
    config.write_text(DIGITS.format(name="n", path=tmp_path / "raw.npz", augmentation=", normalize: standardize"))
    runner = CliRunner()
    assert runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"]).exit_code == 0
    path = tmp_path / "runs" / "n" / "checkpoints" / "last.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("_preprocessing/")}
    arrays["_checksum"] = np.array(checksum(arrays))
    stripped = tmp_path / "stripped.npz"
    np.savez(stripped, **arrays)
    assert zipfile.is_zipfile(stripped)
    np.save(tmp_path / "in.npy", x[:5])
    result = runner.invoke(cli, ["predict", str(stripped), str(tmp_path / "in.npy"), "-o", str(tmp_path / "o.npy")])
    assert result.exit_code != 0
    assert "holds no preprocessing statistics" in result.output and "stripped.npz" in result.output
    assert "Traceback" not in result.output and not os.path.exists(tmp_path / "o.npy")


def test_bad_normalize_settings_are_config_errors(tmp_path):
    from kerascli.data.datasets import Digits

    x, y = Digits.load({})
    np.savez(tmp_path / "raw.npz", x=x, y=y)
    runner = CliRunner()
    for extra, expected in ((", normalize: zscore", "data.normalize"),
                            (", normalize: minmax, augmentation: {featurewise_center: true}", "keep one")):
        config = tmp_path / "c.yaml"
        config.write_text(DIGITS.format(name="bad", path=tmp_path / "raw.npz", augmentation=extra))
        result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
        assert result.exit_code == 2, result.output
        assert expected in result.output and "Traceback" not in result.output
