"""Every example config in configs/ trains (shortened to one epoch); the default reaches its accuracy."""

import json
import os

import pytest
from click.testing import CliRunner
from conftest import CONFIGS

from kerascli.cli import cli


def downloads(name: str) -> bool:
    """Whether the example's data is downloaded (tests/test_download.py and test_keras_datasets.py train those
    on a stand-in served locally)."""
    import yaml

    from kerascli.data.catalog import downloadable

    with open(os.path.join(CONFIGS, name)) as f:
        return yaml.safe_load(f)["data"]["dataset"] in downloadable()


EXAMPLES = sorted(f for f in os.listdir(CONFIGS) if f.endswith(".yaml") and not downloads(f))


def test_the_documented_examples_exist():
    assert {"digits_mlp.yaml", "digits_cnn.yaml", "functional_branches.yaml"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_trains_for_an_epoch(name, tmp_path):
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, name), "--set", "train.epochs=1",
                                      "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = os.listdir(tmp_path)
    summary = json.loads(open(os.path.join(tmp_path, run, "summary.json")).read())
    assert summary["epochs"] == 1 and summary["evaluation"]["test"]["accuracy"] > 0.2  # chance is 0.1


def test_default_config_reaches_095_test_accuracy(tmp_path):
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, "digits_mlp.yaml"), "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(open(os.path.join(tmp_path, "digits-mlp", "summary.json")).read())
    assert summary["evaluation"]["test"]["accuracy"] >= 0.95


@pytest.mark.parametrize("name,floor", [("sequence_lstm.yaml", 0.9), ("sequence_gru.yaml", 0.9),
                                        ("transformer_block.yaml", 0.9)])
def test_sequence_examples_learn_far_above_chance(name, floor, tmp_path):
    """The LSTM and the Transformer block (4 classes, chance 0.25) and the Embedding + GRU (3 classes, chance
    0.33) examples, trained as they are."""
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, name), "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    (run,) = os.listdir(tmp_path)
    summary = json.loads(open(os.path.join(tmp_path, run, "summary.json")).read())
    assert summary["evaluation"]["test"]["accuracy"] >= floor
    if name != "transformer_block.yaml":  # the recurrent loops' products: the summary names the library
        from kerascli.ops.cpu import blas

        assert summary["backend"] == {"name": "cpu", "kernel_blas": blas.describe()}


def test_separable_cnn_example_learns(tmp_path):
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, "digits_separable.yaml"), "--runs-dir",
                                      str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(open(os.path.join(tmp_path, "digits-separable", "summary.json")).read())
    assert summary["evaluation"]["test"]["accuracy"] >= 0.9


def test_fine_tuning_example_keeps_the_frozen_base(tmp_path):
    """digits_mlp for a few epochs, then digits_finetune from its weights: the frozen first layer ends as it
    started, the head moves, and the result stays far above chance."""
    import numpy as np

    runs = str(tmp_path)
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, "digits_mlp.yaml"), "--set", "train.epochs=8",
                                      "--runs-dir", runs, "-q"])
    assert result.exit_code == 0, result.output
    pretrained = os.path.join(runs, "digits-mlp", "checkpoints", "best.npz")
    result = CliRunner().invoke(cli, ["train", os.path.join(CONFIGS, "digits_finetune.yaml"), "--set",
                                      f"model.weights={pretrained}", "--runs-dir", runs, "-q"])
    assert result.exit_code == 0, result.output
    before = np.load(pretrained)
    after = np.load(os.path.join(runs, "digits-finetune", "checkpoints", "last.npz"))
    np.testing.assert_array_equal(after["dense/kernel"], before["dense/kernel"])
    np.testing.assert_array_equal(after["dense/bias"], before["dense/bias"])
    assert not np.array_equal(after["dense_1/kernel"], before["dense_1/kernel"])
    summary = json.loads(open(os.path.join(runs, "digits-finetune", "summary.json")).read())
    assert summary["evaluation"]["test"]["accuracy"] >= 0.9
