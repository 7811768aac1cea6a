"""data.augmentation: the resampling kernels against their numpy twin and against what Keras' ImageDataGenerator
computes (its matrix, scipy.ndimage's resampling), exact results where they must be exact, seeded batches that
a resumed run sees again, and training through the CLI."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from click.testing import CliRunner
from test_reliability import (
    assert_identical,
    final_state,
    resume,
    start,
    step_files,
    wait_for,
)

from kerascli.cli import cli
from kerascli.data import augment
from kerascli.data.pipeline import Split
from kerascli.data.prefetch import PrefetchedSplit
from kerascli.data.preprocess import Standardizer
from kerascli.ops import get_ops
from kerascli.ops.contract import FILL_MODES

BACKENDS = ["cpu", "reference"]
DEFAULTS = {key: param.default for key, param in augment.PARAMS.items()}


def params(**given):
    return {**DEFAULTS, **given}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_flips_and_whole_pixel_shifts_are_exact(rng, backend, dtype):
    ops = get_ops(backend)
    x = rng.normal(size=(3, 5, 7, 2)).astype(dtype)
    identity = np.stack([augment.keras_matrix(5, 7)[:2]] * 3)
    for fill in FILL_MODES.values():
        np.testing.assert_array_equal(ops.affine_resample(x, identity, fill, 0.0, np.empty_like(x)), x)
    flips = np.stack([augment.keras_matrix(5, 7, flip_horizontal=True, flip_vertical=True)[:2]] * 3)
    np.testing.assert_array_equal(ops.affine_resample(x, flips, 1, 0.0, np.empty_like(x)), x[:, ::-1, ::-1])
    # Keras' tx (height_shift_range) moves the content by -tx along the width of a channels-last image
    shifted = np.stack([augment.keras_matrix(5, 7, tx=2)[:2]] * 3)
    out = ops.affine_resample(x, shifted, FILL_MODES["constant"], -1.0, np.empty_like(x))
    np.testing.assert_array_equal(out[:, :, :5], x[:, :, 2:])
    assert (out[:, :, 5:] == -1).all()


def keras_transform_matrix(h, w, theta, tx, ty, shear, zx, zy):
    """Keras' apply_affine_transform's matrix, step for step as Keras writes it (channels-last: row_axis 0,
    col_axis 1): the oracle for kerascli's keras_matrix."""
    theta, shear = np.deg2rad(theta), np.deg2rad(shear)
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    shift = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    shear_matrix = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    zoom = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    m = np.dot(np.dot(np.dot(rotation, shift), shear_matrix), zoom)
    o_x, o_y = float(h) / 2 - 0.5, float(w) / 2 - 0.5
    m = np.dot(np.dot(np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]]), m),
               np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]]))
    m[:, [0, 1]] = m[:, [1, 0]]  # col_axis > row_axis
    m[[0, 1]] = m[[1, 0]]
    return m


def scipy_keras_transform(x, matrix, fill_mode, cval, flip_horizontal, flip_vertical):
    """Keras' apply_transform for one channels-last image: scipy.ndimage.affine_transform of each channel
    through the matrix Keras builds (keras_matrix without the flips), then its flips."""
    ndimage = pytest.importorskip("scipy.ndimage")
    out = np.stack([ndimage.affine_transform(x[..., k], matrix[:2, :2], matrix[:2, 2], order=1, mode=fill_mode,
                                             cval=cval) for k in range(x.shape[-1])], axis=-1)
    if flip_horizontal:
        out = out[:, ::-1]
    if flip_vertical:
        out = out[::-1]
    return out


@pytest.mark.parametrize("fill_mode", list(FILL_MODES))
def test_the_transform_is_keras_imagedatagenerator_s(rng, fill_mode):
    x = rng.uniform(0, 255, size=(9, 8, 3))
    ops = get_ops("cpu")
    for _ in range(6):
        p = dict(theta=rng.uniform(-40, 40), tx=rng.uniform(-2, 2), ty=rng.uniform(-2, 2), shear=rng.uniform(-20, 20),
                 zx=rng.uniform(0.8, 1.2), zy=rng.uniform(0.8, 1.2))
        flips = dict(flip_horizontal=bool(rng.random() < 0.5), flip_vertical=bool(rng.random() < 0.5))
        keras_matrix = keras_transform_matrix(9, 8, **p)
        np.testing.assert_allclose(augment.keras_matrix(9, 8, **p), keras_matrix, rtol=0, atol=1e-12)
        expected = scipy_keras_transform(x, keras_matrix, fill_mode, 7.0, **flips)
        got = ops.affine_resample(x[None], augment.keras_matrix(9, 8, **p, **flips)[None, :2], FILL_MODES[fill_mode],
                                  7.0, np.empty((1,) + x.shape))[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)


def test_matrices_for_a_batch_are_each_image_s(rng):
    """keras_matrix over arrays (a batch's draws at once) gives each image's own matrix."""
    draws = augment.random_draws(params(rotation_range=30, width_shift_range=0.2, height_shift_range=2,
                                        shear_range=10, zoom_range=[0.3], horizontal_flip=True, vertical_flip=True),
                                 rng, 7, 9, 6)
    keys = ("theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical")
    batch = augment.keras_matrix(9, 6, *(draws[k] for k in keys))
    assert batch.shape == (7, 3, 3)
    for i in range(7):
        np.testing.assert_allclose(batch[i], augment.keras_matrix(9, 6, *(draws[k][i] for k in keys)), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_channel_shift_keeps_the_image_range_and_brightness_scales(rng, backend):
    ops = get_ops(backend)
    x = rng.uniform(10, 20, size=(2, 4, 4, 3))
    out = ops.channel_shift_brightness(x.copy(), np.array([3.0, -50.0]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(out[0], np.clip(x[0] + 3, x[0].min(), x[0].max()))
    np.testing.assert_allclose(out[1], 2 * np.full_like(x[1], x[1].min()))


def image_split(rng, n=20, h=6, w=5):
    return Split(rng.normal(size=(n, h, w, 1)).astype(np.float32), rng.integers(0, 2, n))


def test_batches_are_seeded_by_run_pass_and_sample(rng):
    split = image_split(rng)
    p = params(rotation_range=30, zoom_range=[0.2], horizontal_flip=True, channel_shift_range=0.5)
    augmented = augment.AugmentedSplit(split, p, seed=3, ops=get_ops("cpu"),
                                       standardizer=Standardizer.from_config({"augmentation": p}))

    def epoch(number, resume_at=0):
        order = augmented.order(3, number, True)
        return [x for x, _, _ in augmented.batches(4, augmented.after(order, resume_at, 4))]

    first, again, second = epoch(1), epoch(1), epoch(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], second[0])
    for a, b in zip(epoch(1, resume_at=2), first[2:]):  # resumed mid-pass: the same batches
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], split.x[augmented.order(3, 1, True)[:4]])  # augmented at all


def test_evaluation_reads_the_training_images_as_they_are(tmp_path, augmented_config):
    """The training split's final evaluation (and evaluate --split train) is not augmented."""
    from kerascli.commands import load_spec
    from kerascli.train.session import build_session, load_data

    session = build_session(load_spec(augmented_config, []))
    splits = load_data(session)
    assert isinstance(splits["train"], PrefetchedSplit)  # (augmented batches are made ahead by default)
    assert isinstance(splits["train"].split, augment.AugmentedSplit)
    trainer = session.trainer
    plain = trainer.evaluate(splits["train"].split.split, 16)
    assert trainer.evaluate(splits["train"], 16) == plain


def test_bad_augmentation_settings_are_config_errors(tmp_path):
    config = tmp_path / "c.yaml"
    for bad, expected in [("{zoom_range: [1.2, 0.8]}", "data.augmentation.zoom_range"),
                          ("{fill_mode: mirror}", "data.augmentation.fill_mode"),
                          ("{rotaton_range: 3}", "rotaton_range"),
                          ("{brightness_range: [0.5]}", "data.augmentation.brightness_range")]:
        config.write_text(f"data: {{dataset: digits, augmentation: {bad}}}\nmodel: {{input_shape: [64], layers: "
                          "[{type: Dense, units: 10, activation: softmax}]}\ncompile: {optimizer: adam, loss: "
                          "sparse_categorical_crossentropy}\n")
        result = CliRunner().invoke(cli, ["validate", str(config)])
        assert result.exit_code == 2 and expected in result.output, result.output


AUGMENTED = """
name: aug
seed: 4
data:
  dataset: npz
  path: {path}
  validation_split: 0.2
  augmentation: {{rotation_range: 10, width_shift_range: 0.1, height_shift_range: 1, shear_range: 5,
                  zoom_range: 0.1, horizontal_flip: true, fill_mode: reflect, channel_shift_range: 0.05}}
model:
  input_shape: [8, 8, 1]
  layers:
    - {{type: Conv2D, filters: 6, kernel_size: 3, activation: relu}}
    - {{type: MaxPooling2D, pool_size: 2}}
    - {{type: Flatten}}
    - {{type: Dense, units: 2, activation: softmax}}
compile: {{optimizer: {{type: adam, learning_rate: 0.01}}, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: {epochs}, batch_size: 16, deterministic: true, threads: 1}}
checkpoint: {{every_steps: 1, keep: 3}}
"""


@pytest.fixture(scope="module")
def augmented_config(tmp_path_factory):
    """Bright blobs in the top half (class 1) or the bottom half (class 0) of 8x8 images: left-right flips
    and small shifts keep the class."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("aug")
    y = rng.integers(0, 2, 200)
    x = rng.normal(0, 0.3, (200, 8, 8, 1))
    for i, label in enumerate(y):
        row = rng.integers(0, 3) + (0 if label else 5)
        x[i, row, rng.integers(1, 7), 0] += 3.0
    np.savez(folder / "blobs.npz", x=x.astype(np.float32), y=y)
    path = folder / "aug.yaml"
    path.write_text(AUGMENTED.format(path=folder / "blobs.npz", epochs=6))
    return str(path)


def test_training_with_augmentation_learns_and_resumes_bit_identical(augmented_config, tmp_path):
    runs = tmp_path / "full"
    result = CliRunner().invoke(cli, ["train", augmented_config, "--runs-dir", str(runs), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((runs / "aug" / "summary.json").read_text())
    assert summary["evaluation"]["val"]["accuracy"] > 0.8
    proc = start(augmented_config, tmp_path / "killed")
    # killed mid-way through its third epoch (10 steps an epoch), resumed from its last step checkpoint
    assert wait_for(lambda: any(int(f[5:14]) >= 24 for f in step_files(tmp_path / "killed" / "aug")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resume(augmented_config, tmp_path / "killed")
    assert_identical(final_state(tmp_path / "killed" / "aug"), final_state(runs / "aug"))


def test_standardize_is_keras_s(rng):
    x = rng.uniform(0, 255, (4, 5, 6, 3)).astype(np.float32)
    got = Standardizer.from_config({"augmentation": params(rescale=1 / 255, samplewise_std_normalization=True)}
                                   ).apply(x)
    expected = x / 255
    expected -= expected.mean(axis=(1, 2, 3), keepdims=True)  # Keras: np.mean(x, keepdims=True) of one image
    expected /= expected.std(axis=(1, 2, 3), keepdims=True) + 1e-6
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert Standardizer.from_config({"augmentation": params()}).apply(x) is x  # nothing to do


DIGITS = """
name: {name}
seed: 7
data: {{dataset: npz, path: {path}, validation_split: 0.1, test_split: 0.2{augmentation}}}
model:
  input_shape: [64]
  layers:
    - {{type: Dense, units: 32, activation: relu}}
    - {{type: Dense, units: 10, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: 3, batch_size: 32, threads: 1}}
"""


def test_rescale_applies_to_every_split_and_to_predict(tmp_path):
    """data.augmentation.rescale trains, evaluates and predicts as data rescaled beforehand would (the same
    numbers: the digits' 0..16 times 1/16 are exact)."""
    from kerascli.data.datasets import Digits

    x, y = Digits.load({})
    np.savez(tmp_path / "raw.npz", x=x, y=y)
    np.savez(tmp_path / "scaled.npz", x=x / 16, y=y)
    runner = CliRunner()
    outputs = {}
    for name, data, augmentation in [("scaled", "scaled.npz", ""), ("rescaled", "raw.npz",
                                                                      ", augmentation: {rescale: 0.0625}")]:
        config = tmp_path / f"{name}.yaml"
        config.write_text(DIGITS.format(name=name, path=tmp_path / data, augmentation=augmentation))
        result = runner.invoke(cli, ["train", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
        assert result.exit_code == 0, result.output
        run = tmp_path / "runs" / name
        evaluation = json.loads((run / "summary.json").read_text())["evaluation"]
        np.save(tmp_path / "inputs.npy", x[:50] / 16 if name == "scaled" else x[:50])
        result = runner.invoke(cli, ["predict", str(run), str(tmp_path / "inputs.npy"), "-o", str(run / "p.npy")])
        assert result.exit_code == 0, result.output
        result = runner.invoke(cli, ["evaluate", str(run), "--data", str(tmp_path / data), "--json"])
        assert result.exit_code == 0, result.output
        outputs[name] = (evaluation, np.load(run / "p.npy"), json.loads(result.stdout)["loss"])
    assert outputs["scaled"][0] == outputs["rescaled"][0]
    np.testing.assert_array_equal(outputs["scaled"][1], outputs["rescaled"][1])
    assert outputs["scaled"][2] == outputs["rescaled"][2]
