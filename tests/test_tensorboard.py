"""TensorBoard event files: read back record by record (TFRecord framing with masked CRC-32C, Event protocol
buffers), with Keras' folder layout and names; TensorBoard's own reader where installed."""

import os
import struct
import sys

import pytest
from click.testing import CliRunner
from conftest import SMALL_MLP

from kerascli.cli import cli

tensorboardX = pytest.importorskip("tensorboardX")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(folder) -> list:
    """Every Event in a folder's event files, each record's length and data checked against their CRCs."""
    from tensorboardX.crc32c import crc32c
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for name in sorted(os.listdir(folder)):
        assert name.startswith("events.out.tfevents.")
        data = open(os.path.join(folder, name), "rb").read()
        pos = 0
        while pos < len(data):
            header = data[pos : pos + 8]
            (length,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[pos + 8 : pos + 12])[0] == _masked(crc32c(header))
            body = data[pos + 12 : pos + 12 + length]
            assert struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])[0] == _masked(crc32c(body))
            events.append(Event.FromString(body))
            pos += 16 + length
    return events


def scalars(folder) -> dict:
    out = {}
    for event in read_events(folder):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def histograms(folder) -> dict:
    out = {}
    for event in read_events(folder):
        for value in event.summary.value:
            if value.HasField("histo"):
                out.setdefault(value.tag, []).append((event.step, value.histo))
    return out


def metrics_rows(run):
    import csv

    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_train_tensorboard_writes_keras_scalars(small_config, tmp_path):
    result = invoke("train", small_config, "--runs-dir", tmp_path, "-q", "--set", "train.tensorboard=true",
                    "--set", "train.epochs=3")
    assert result.exit_code == 0, result.output
    run = tmp_path / "small"
    rows = metrics_rows(run)
    train, val = scalars(run / "tensorboard" / "train"), scalars(run / "tensorboard" / "validation")
    assert sorted(train) == ["epoch_accuracy", "epoch_learning_rate", "epoch_loss"]
    assert sorted(val) == ["epoch_accuracy", "epoch_loss"]
    for tag, key, source in (("epoch_loss", "loss", train), ("epoch_accuracy", "val_accuracy", val),
                             ("epoch_learning_rate", "lr", train)):
        assert [s for s, _ in source[tag]] == [0, 1, 2]  # Keras' epochs from 0
        assert [v for _, v in source[tag]] == pytest.approx([float(r[key]) for r in rows], rel=1e-6)


def test_batches_histograms_and_a_resume(write_config, tmp_path):
    config = write_config(SMALL_MLP.replace("train: {epochs: 2, batch_size: 16}", """train: {epochs: 4, batch_size: 16}
callbacks:
  - {type: TensorBoard, log_dir: tb, update_freq: 2, histogram_freq: 2, write_steps_per_second: true}"""))
    first = invoke("train", config, "--runs-dir", tmp_path, "-q", "--set", "train.epochs=2")
    assert first.exit_code == 0, first.output
    run = tmp_path / "small"
    resumed = invoke("resume", run, "-q", "--set", "train.epochs=4")
    assert resumed.exit_code == 0, resumed.output
    train = scalars(run / "tb" / "train")
    steps_per_epoch = 72 // 16 + 1  # 72 training samples
    assert [s for s, _ in train["batch_loss"]] == list(range(2, 4 * steps_per_epoch + 1, 2))  # on across the resume
    assert [s for s, _ in train["epoch_loss"]] == [0, 1, 2, 3]
    assert all(v > 0 for _, v in train["epoch_steps_per_second"])
    hist = histograms(run / "tb" / "train")
    assert sorted(hist) == ["dense/bias/histogram", "dense/kernel/histogram", "dense_1/bias/histogram",
                            "dense_1/kernel/histogram"]
    assert [s for s, _ in hist["dense/kernel/histogram"]] == [1, 3]  # epochs 2 and 4
    assert hist["dense/kernel/histogram"][0][1].num == 6 * 8


def test_tensorboards_own_reader(small_config, tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    assert invoke("train", small_config, "--runs-dir", tmp_path, "-q", "--set", "train.tensorboard=true").exit_code == 0
    acc = accumulator.EventAccumulator(str(tmp_path / "small" / "tensorboard" / "train"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("epoch_loss")] == [0, 1]


def test_without_tensorboardx_nothing_is_made(small_config, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    result = invoke("train", small_config, "--runs-dir", tmp_path / "runs", "--set", "train.tensorboard=true")
    assert result.exit_code == 2
    assert "TensorBoard event files need tensorboardX: pip install 'kerascli[tensorboard]'" in result.output
    assert not (tmp_path / "runs").exists()


def test_update_freq_is_keras(write_config, tmp_path):
    config = write_config(SMALL_MLP + "callbacks: [{type: TensorBoard, update_freq: sometimes}]\n")
    result = invoke("train", config, "--runs-dir", tmp_path)
    assert result.exit_code == 2
    assert "expected 'epoch' or 'batch' or a number of batches" in result.output
