"""Datasets given batch by batch (Keras' PyDataset protocol): they train as the same arrays would, hold out
whole batches for validation, resume bit for bit, run on_epoch_end once per epoch, may give their own
splits, and every mistake in one is one line, exit 2."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from compare_runs import assert_same_last_checkpoint
from conftest import ROOT

from kerascli.cli import cli

PLUGIN = '''
import numpy as np
from kerascli.api import Dataset, Param, PyDataset, register_dataset


def points(batches, batch_size):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(batches * batch_size, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, y


class Slices(PyDataset):
    def __init__(self, x, y, batch_size, log, fault):
        self.x, self.y, self.batch_size, self.log, self.fault = x, y, batch_size, log, fault

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        x, y = self.x[part].copy(), self.y[part]
        if i == 3 and self.fault == "nan":
            x[1, 2] = np.nan
        if i == 3 and self.fault == "raise":
            raise ValueError("no such shard")
        if self.fault == "list":
            return [x, y]
        if self.fault == "big":
            return np.concatenate([x, x]), np.concatenate([y, y])
        return x, y

    def on_epoch_end(self):
        if self.log:
            with open(self.log, "a") as f:
                f.write("end\\n")


@register_dataset("slices")
class SliceData(Dataset):
    PARAMS = {"form": Param("str", "batches", choices=("arrays", "batches", "splits", "undeclared")),
              "batches": Param("int", 10), "size": Param("int", 8), "log": Param("str", ""),
              "fault": Param("str", "")}

    @staticmethod
    def load(p):
        x, y = points(p["batches"], p["size"])
        if p["form"] == "arrays":
            return x, y
        seq = Slices(x, y, p["size"], p["log"], p["fault"])
        return {"train": seq} if p["form"] == "undeclared" else seq


@register_dataset("slice_splits")
class SliceSplits(Dataset):
    PARAMS = {"size": Param("int", 8)}
    SPLITS = ("train", "val", "test")

    @staticmethod
    def load(p):
        x, y = points(12, p["size"])
        n = 8 * p["size"]
        return {"train": Slices(x[:n], y[:n], p["size"], "", ""),
                "val": Slices(x[n:], y[n:], p["size"], "", ""), "test": (x[n:], y[n:])}
'''

CONFIG = """
name: {name}
seed: 3
plugins: [{plugin}]
data: {{dataset: slices, form: {form}, shuffle: false, validation_split: 0.2}}
model:
  input_shape: [4]
  layers:
    - {{type: Dense, units: 16, activation: relu}}
    - {{type: Dropout, rate: 0.2}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy, metrics: [accuracy]}}
train: {{epochs: 3, batch_size: 8, shuffle: {shuffle}, deterministic: true, threads: 1}}
checkpoint: {{every_steps: 1, keep: 100}}
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """One file for the whole module: a process registers a plugin's names once, from one path."""
    path = tmp_path_factory.mktemp("plugin") / "slices.py"
    path.write_text(PLUGIN)
    return path


@pytest.fixture
def make(tmp_path, plugin):
    def write(name="run", form="batches", shuffle="false", sets=()):
        text = CONFIG.format(name=name, plugin=plugin, form=form, shuffle=shuffle)
        for old, new in sets:
            assert old in text
            text = text.replace(old, new)
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        return str(path)

    return write


def train(config, runs, *extra):
    return CliRunner().invoke(cli, ["train", config, "--runs-dir", str(runs), "-q", *map(str, extra)])


def metrics_without_seconds(run):
    return [row.rsplit(",", 1)[0] for row in (run / "metrics.csv").read_text().splitlines()]


def test_batches_train_exactly_as_the_same_arrays(make, tmp_path):
    """Unshuffled, 10 batches of 8 with validation_split 0.2: the arrays' 16 validation samples are the
    first two batches, which is what holding out 2 of 10 batches takes."""
    runs = tmp_path / "runs"
    for form in ("arrays", "batches"):
        result = train(make(form, form), runs)
        assert result.exit_code == 0, result.output
    assert_same_last_checkpoint(runs / "arrays", runs / "batches")
    assert metrics_without_seconds(runs / "arrays") == metrics_without_seconds(runs / "batches")
    summaries = [json.loads((runs / f / "summary.json").read_text()) for f in ("arrays", "batches")]
    for split in ("train", "val"):  # evaluated in batches of 256 samples, or of the dataset's 8: other sums
        for key, value in summaries[0]["evaluation"][split].items():
            assert summaries[1]["evaluation"][split][key] == pytest.approx(value, rel=1e-6)
    assert summaries[1]["train_samples_per_second"] > 0  # the samples of the batches, counted as they came


def test_the_sizes_printed_are_batches(make, tmp_path):
    result = CliRunner().invoke(cli, ["train", make(), "--runs-dir", str(tmp_path), "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    assert "samples: train 8 batches, val 2 batches" in result.output


def test_a_resumed_batch_run_is_bit_identical(make, tmp_path):
    config = make(shuffle="true")
    runs = tmp_path / "runs"
    assert train(config, runs).exit_code == 0
    full, cut = runs / "run", tmp_path / "cut" / "run"
    shutil.copytree(full, cut)
    # keep only what a run killed in epoch 2 after its 3rd batch (global step 11) would have left
    for name in os.listdir(cut / "checkpoints"):
        if not name.startswith("step-") or int(name[5:14]) > 11:
            os.remove(cut / "checkpoints" / name)
    os.remove(cut / "summary.json")
    result = CliRunner().invoke(cli, ["resume", str(cut), "-q"])
    assert result.exit_code == 0, result.output
    assert_same_last_checkpoint(full, cut)


def test_shuffling_reorders_the_batches_each_epoch(make, tmp_path):
    runs = tmp_path / "runs"
    assert train(make("fixed", shuffle="false"), runs).exit_code == 0
    assert train(make("shuffled", shuffle="true"), runs).exit_code == 0
    fixed, shuffled = metrics_without_seconds(runs / "fixed"), metrics_without_seconds(runs / "shuffled")
    assert fixed[1] != shuffled[1]  # the same batches, in another order, end elsewhere


def test_on_epoch_end_runs_once_per_training_epoch(make, tmp_path):
    log = tmp_path / "ends.txt"
    result = train(make(sets=[("form: batches", f"form: batches, log: '{log}'")]), tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert log.read_text().splitlines() == ["end"] * 3


def test_a_dataset_gives_its_own_splits(make, tmp_path):
    config = make(sets=[("dataset: slices, form: batches, shuffle: false, validation_split: 0.2",
                         "dataset: slice_splits")])
    runs = tmp_path / "runs"
    result = train(config, runs)
    assert result.exit_code == 0, result.output
    summary = json.loads((runs / "run" / "summary.json").read_text())
    assert set(summary["evaluation"]) == {"checkpoint", "train", "val", "test"}
    assert summary["monitor"] == "val_loss"  # a split the dataset gives counts as a validation split
    # the val batches and the test arrays hold the same samples
    assert summary["evaluation"]["val"]["loss"] == pytest.approx(summary["evaluation"]["test"]["loss"], rel=1e-6)
    evaluated = subprocess.run([sys.executable, "-m", "kerascli", "evaluate", str(runs / "run"), "--split", "val",
                                "--json"], capture_output=True, text=True, cwd=ROOT)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["loss"] == pytest.approx(summary["evaluation"]["val"]["loss"])


BAD = {
    "nan": ([("form: batches", "form: batches, fault: nan")], "batch 3: features contain NaN or Inf (first in "
            "sample 1)"),
    "raises": ([("form: batches", "form: batches, fault: raise")], "batch 3: ValueError: no such shard"),
    "not a tuple": ([("form: batches", "form: batches, fault: list")],
                    "a batch must be a tuple (x, y) or (x, y, sample_weight), got list"),
    "too large": ([("form: batches", "form: batches, fault: big")],
                  "16 samples, more than train.batch_size 8"),
    "undeclared splits": ([("form: batches", "form: undeclared")],
                          "load() returned the splits 'train' but the dataset declares no SPLITS"),
    "no batches": ([("form: batches", "form: batches, batches: 0")], "its batch sequence has no batches"),
    "split given twice": ([("dataset: slices, form: batches", "dataset: slice_splits")],
                          "data.validation_split: dataset 'slice_splits' gives its own 'val' split; remove "
                          "data.validation_split"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_batch_dataset_is_one_line_and_exit_2(make, tmp_path, case):
    sets, message = BAD[case]
    config = make(sets=sets)
    # an explicit thread count: no note about other kerascli processes (tests beside this one start some)
    result = subprocess.run([sys.executable, "-m", "kerascli", "train", config, "--runs-dir", str(tmp_path / "runs"),
                             "-q", "--threads", "1"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
