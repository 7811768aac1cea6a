"""EarlyStopping and ReduceLROnPlateau: Keras 3's callbacks as the oracle on the same sequences of epoch
values, then through training, a resume in the middle, and bad configs."""

import os

import numpy as np
import pytest

from kerascli.cli import cli
from kerascli.registry import CALLBACKS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

SEQUENCES = [
    [1.0, 0.9, 0.95, 0.96, 0.97, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85],
    [1.0, 1.0, 1.0, 0.99995, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9],
    [0.5, 0.6, 0.4, 0.3, 0.31, 0.32, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3],
]


def ours(name, **config):
    cls = CALLBACKS.get(name)
    full = {k: p.default for k, p in cls.PARAMS.items() if not p.required}
    full.update(config)
    return cls(full)


class Host:
    """What a Keras callback reaches through self.model: stop_training and the optimizer."""

    def __init__(self, optimizer=None):
        self.stop_training = False
        self.optimizer = optimizer


@pytest.mark.parametrize("sequence", SEQUENCES)
@pytest.mark.parametrize("config", [{}, {"patience": 2}, {"patience": 3, "min_delta": 0.05},
                                    {"patience": 1, "baseline": 0.85}, {"patience": 2, "start_from_epoch": 3},
                                    {"monitor": "val_accuracy", "patience": 2}])
def test_early_stopping_matches_keras(sequence, config):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    monitor = config.get("monitor", "val_loss")
    values = [1 - v for v in sequence] if "accuracy" in monitor else sequence
    theirs = keras.callbacks.EarlyStopping(**{"mode": "max" if "accuracy" in monitor else "auto", **config})
    theirs.set_model(Host())
    mine = ours("EarlyStopping", **config)
    mine.model = Host()
    theirs.on_train_begin()
    mine.on_train_begin()
    for epoch, value in enumerate(values):
        theirs.on_epoch_end(epoch, {monitor: value})
        mine.on_epoch_end(epoch + 1, {monitor: value})
        assert mine.stop_training == theirs.model.stop_training, epoch
        if mine.stop_training:
            break


class FakeOptimizer:
    def __init__(self, rate):
        self.learning_rate = rate

    def set_learning_rate(self, value):
        self.learning_rate = value


@pytest.mark.parametrize("sequence", SEQUENCES)
@pytest.mark.parametrize("config", [{"patience": 1}, {"patience": 2, "factor": 0.5, "cooldown": 1},
                                    {"patience": 1, "min_lr": 0.003, "min_delta": 0.05}])
def test_reduce_lr_on_plateau_matches_keras(sequence, config):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    theirs = keras.callbacks.ReduceLROnPlateau(**config)
    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    theirs.set_model(Host(optimizer))
    mine = ours("ReduceLROnPlateau", **config)
    mine.model = Host(FakeOptimizer(0.01))
    theirs.on_train_begin()
    mine.on_train_begin()
    for epoch, value in enumerate(sequence):
        theirs.on_epoch_end(epoch, {"val_loss": value})
        mine.on_epoch_end(epoch + 1, {"val_loss": value})
        expected = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        assert mine.model.optimizer.learning_rate == pytest.approx(expected, rel=1e-6), epoch


def invoke(*args):
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


CONFIG = """
name: {name}
seed: 4
data: {{dataset: synthetic_classification, samples: 60, features: 4, classes: 3, validation_split: 0.25}}
model:
  input_shape: [4]
  layers:
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: {{type: sgd, learning_rate: 0.01}}, loss: sparse_categorical_crossentropy}}
train: {{epochs: {epochs}, batch_size: 15}}
callbacks: {callbacks}
"""
# min_delta 100: after the first epoch nothing counts as an improvement, so the counters decide alone
NEVER_BETTER = "{type: EarlyStopping, monitor: loss, min_delta: 100, patience: 2}"


def epochs_in(run):
    return len((run / "metrics.csv").read_text().split()) - 1


def test_early_stopping_stops_training_and_a_resume_keeps_its_count(tmp_path, write_config):
    runs = tmp_path / "runs"
    whole = write_config(CONFIG.format(name="whole", epochs=10, callbacks=f"[{NEVER_BETTER}]"), "a.yaml")
    assert invoke("train", whole, "--runs-dir", runs, "--quiet").exit_code == 0
    assert epochs_in(runs / "whole") == 3  # Keras: best at the first epoch, then 2 epochs of patience
    split = write_config(CONFIG.format(name="split", epochs=2, callbacks=f"[{NEVER_BETTER}]"), "b.yaml")
    assert invoke("train", split, "--runs-dir", runs, "--quiet").exit_code == 0
    assert invoke("resume", runs / "split", "--set", "train.epochs=10", "--quiet").exit_code == 0
    assert epochs_in(runs / "split") == 3  # the counter went on from the checkpoint, not from zero


def test_reduce_lr_on_plateau_lowers_the_rate(tmp_path, write_config):
    runs = tmp_path / "runs"
    callback = "{type: ReduceLROnPlateau, monitor: loss, min_delta: 100, patience: 1, factor: 0.5}"
    config = write_config(CONFIG.format(name="plateau", epochs=4, callbacks=f"[{callback}]"))
    assert invoke("train", config, "--runs-dir", runs, "--quiet").exit_code == 0
    lines = (runs / "plateau" / "metrics.csv").read_text().split()
    column = lines[0].split(",").index("lr")
    # each row: the rate at the end of the epoch, before the callback lowers it for the next
    assert [float(row.split(",")[column]) for row in lines[1:]] == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    with np.load(runs / "plateau" / "checkpoints" / "last.npz") as ckpt:
        assert float(ckpt["_optimizer/learning_rate"]) == pytest.approx(0.00125)


@pytest.mark.parametrize("callbacks,message", [
    ("[{type: EarlyStopping, monitor: val_acuracy}]", "cannot monitor 'val_acuracy'"),
    ("[{type: ReduceLROnPlateau, factor: 1.5}]", "must be <= 0.999999"),
    ("[{type: EarlyStoping}]", "did you mean 'EarlyStopping'"),
])
def test_bad_callbacks_name_the_key(tmp_path, write_config, callbacks, message):
    result = invoke("train", write_config(CONFIG.format(name="bad", epochs=1, callbacks=callbacks)),
                    "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and message in result.output and "callbacks[0]" in result.output, result.output


def test_reduce_lr_on_plateau_refuses_a_schedule(tmp_path, write_config):
    text = CONFIG.format(name="sched", epochs=1, callbacks="[ReduceLROnPlateau]").replace(
        "learning_rate: 0.01", "learning_rate: {type: CosineDecay, initial_learning_rate: 0.1, decay_steps: 10}")
    result = invoke("train", write_config(text), "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "schedule" in result.output


def test_restore_best_weights_means_best_npz_by_the_same_monitor(tmp_path, write_config):
    stop = "{type: EarlyStopping, monitor: loss, patience: 1, restore_best_weights: true}"
    bad = write_config(CONFIG.format(name="rb", epochs=2, callbacks=f"[{stop}]"), "bad.yaml")
    result = invoke("train", bad, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and "set checkpoint.monitor to 'loss'" in result.output, result.output
    good = write_config(CONFIG.format(name="rb", epochs=2, callbacks=f"[{stop}]") + "checkpoint: {monitor: loss}\n",
                        "good.yaml")
    assert invoke("train", good, "--runs-dir", tmp_path / "runs", "--quiet").exit_code == 0


def test_learning_rate_scheduler_sets_each_epochs_rate(tmp_path, write_config):
    """Keras' epoch index from 0: boundaries [1] keep the first rate for epochs 1 and 2."""
    runs = tmp_path / "runs"
    callback = "{type: LearningRateScheduler, schedule: {type: PiecewiseConstantDecay, boundaries: [1], " \
               "values: [0.1, 0.01]}}"
    config = write_config(CONFIG.format(name="sched", epochs=4, callbacks=f"[{callback}]"))
    assert invoke("train", config, "--runs-dir", runs, "--quiet").exit_code == 0
    lines = (runs / "sched" / "metrics.csv").read_text().split()
    column = lines[0].split(",").index("lr")
    assert [float(row.split(",")[column]) for row in lines[1:]] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    bad = write_config(CONFIG.format(name="bad", epochs=1, callbacks="[{type: LearningRateScheduler, schedule: "
                                     "{type: ExponentialDecay, initial_learning_rate: 0.1, decay_step: 1, "
                                     "decay_rate: 0.5}}]"), "bad.yaml")
    result = invoke("train", bad, "--runs-dir", runs)
    assert result.exit_code == 2 and "callbacks[0].schedule.decay_step" in result.output, result.output
    missing = write_config(CONFIG.format(name="bad", epochs=1, callbacks="[LearningRateScheduler]"), "m.yaml")
    result = invoke("train", missing, "--runs-dir", runs)
    assert result.exit_code == 2 and "missing required key 'schedule'" in result.output, result.output


# ---------------------------------------------------------------- ModelCheckpoint, CSVLogger, TerminateOnNaN
def val_losses(run):
    lines = (run / "metrics.csv").read_text().split()
    column = lines[0].split(",").index("val_loss")
    return [float(row.split(",")[column]) for row in lines[1:]]


def test_model_checkpoint_writes_formatted_names_inside_the_run(tmp_path, write_config):
    from kerascli.runs.checkpoint import load_checkpoint

    runs = tmp_path / "runs"
    callbacks = ("[{type: ModelCheckpoint, filepath: 'keep/e{epoch:02d}-{val_loss:.4f}.npz'}, "
                 "{type: ModelCheckpoint, filepath: best.npz, save_best_only: true, save_weights_only: true}]")
    config = write_config(CONFIG.format(name="mc", epochs=3, callbacks=callbacks))
    assert invoke("train", config, "--runs-dir", runs, "--quiet").exit_code == 0
    run = runs / "mc"
    losses = val_losses(run)
    assert sorted(os.listdir(run / "keep")) == [f"e{i + 1:02d}-{v:.4f}.npz" for i, v in enumerate(losses)]
    epoch_two = load_checkpoint(str(run / "keep" / f"e02-{losses[1]:.4f}.npz"))
    assert epoch_two.epoch == 2 and "_optimizer/iterations" in epoch_two.arrays
    best = load_checkpoint(str(run / "best.npz"))
    assert best.epoch == 1 + losses.index(min(losses))
    assert "_optimizer/iterations" not in best.arrays  # weights only
    out = invoke("evaluate", run / "best.npz", "--split", "val", "--json")  # a checkpoint evaluate reads
    assert out.exit_code == 0, out.output


def test_model_checkpoint_every_few_batches_and_across_a_resume(tmp_path, write_config):
    runs = tmp_path / "runs"
    callback = "[{type: ModelCheckpoint, filepath: 's{epoch}-{batch}.npz', save_freq: 2}]"
    whole = write_config(CONFIG.format(name="whole", epochs=3, callbacks=callback), "a.yaml")
    assert invoke("train", whole, "--runs-dir", runs, "--quiet").exit_code == 0
    split = write_config(CONFIG.format(name="split", epochs=2, callbacks=callback), "b.yaml")
    assert invoke("train", split, "--runs-dir", runs, "--quiet").exit_code == 0
    assert invoke("resume", runs / "split", "--set", "train.epochs=3", "--quiet").exit_code == 0
    # 3 batches an epoch, every 2nd batch counted across epochs: steps 2, 4, 6, 8
    names = {"s1-2.npz", "s2-1.npz", "s2-3.npz", "s3-2.npz"}
    assert {n for n in os.listdir(runs / "whole") if n.endswith(".npz")} == names
    assert {n for n in os.listdir(runs / "split") if n.endswith(".npz")} == names


@pytest.mark.parametrize("filepath,message", [
    ("e{epoch}-{val_acc}.npz", "{val_acc} is not a logged value"),
    ("e{epoch.real}.npz", "{epoch.real} is not a plain field name"),
    ("e{epoch}.keras", "kerascli checkpoints are .npz files"),
])
def test_model_checkpoint_refuses_a_bad_filepath(tmp_path, write_config, filepath, message):
    config = write_config(CONFIG.format(name="bad", epochs=1,
                                        callbacks=f"[{{type: ModelCheckpoint, filepath: '{filepath}'}}]"))
    result = invoke("train", config, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and message in result.output, result.output
    assert "callbacks[0].filepath" in result.output


def test_csv_logger_writes_keras_rows_once_each_across_a_resume(tmp_path, write_config):
    runs = tmp_path / "runs"
    old = tmp_path / "log.csv"
    old.write_text("epoch;earlier\n")
    callbacks = f"[{{type: CSVLogger, filename: {old}, separator: ';', append: true}}, " \
                "{type: CSVLogger, filename: training.csv}]"
    config = write_config(CONFIG.format(name="csv", epochs=2, callbacks=callbacks))
    assert invoke("train", config, "--runs-dir", runs, "--quiet").exit_code == 0
    assert invoke("resume", runs / "csv", "--set", "train.epochs=3", "--quiet").exit_code == 0
    rows = (runs / "csv" / "training.csv").read_text().splitlines()
    assert rows[0] == "epoch,accuracy,loss,lr,seconds,val_accuracy,val_loss" if "accuracy" in rows[0] else \
        rows[0] == "epoch,loss,lr,seconds,val_loss"
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]  # Keras counts epochs from 0
    kept = old.read_text().splitlines()
    assert kept[0] == "epoch;earlier" and [r.split(";")[0] for r in kept[1:]] == ["0", "1", "2"]
    losses = [float(r.split(",")[rows[0].split(",").index("val_loss")]) for r in rows[1:]]
    assert losses == pytest.approx(val_losses(runs / "csv"))


DIVERGES = ("{type: sgd, learning_rate: {type: PiecewiseConstantDecay, boundaries: [3], "
            "values: [0.01, 1.0e+30]}}")  # fine for the first epoch (3 batches), then the loss overflows
HIDDEN = ("    - {type: Dense, units: 3, activation: softmax}",
          "    - {type: Dense, units: 8, activation: relu}\n    - {type: Dense, units: 3, activation: softmax}")


def test_terminate_on_nan_ends_training_cleanly(tmp_path, write_config):
    import json

    runs = tmp_path / "runs"
    text = CONFIG.format(name="nan", epochs=5, callbacks="[TerminateOnNaN]").replace(
        "{type: sgd, learning_rate: 0.01}", DIVERGES).replace(*HIDDEN)
    result = invoke("train", write_config(text), "--runs-dir", runs, "--quiet")
    assert result.exit_code == 0, result.output
    summary = json.loads((runs / "nan" / "summary.json").read_text())
    assert summary["epochs"] == 1 and "loss became" in summary["terminated"]
    assert summary["evaluation"]["checkpoint"] in ("best", "last")
    without = write_config(text.replace("name: nan", "name: plain").replace("callbacks: [TerminateOnNaN]",
                                                                            "callbacks: []"), "b.yaml")
    assert invoke("train", without, "--runs-dir", runs, "--quiet").exit_code == 1  # the default: an error


def test_terminate_on_nan_with_nothing_to_end_with_and_with_rollback(tmp_path, write_config):
    runs = tmp_path / "runs"
    text = CONFIG.format(name="early", epochs=2, callbacks="[TerminateOnNaN]").replace(
        "{type: sgd, learning_rate: 0.01}", "{type: sgd, learning_rate: 1.0e+30}").replace(*HIDDEN)
    result = invoke("train", write_config(text), "--runs-dir", runs, "--quiet")
    assert result.exit_code == 1 and "nothing to end with" in result.output
    both = write_config(text.replace("train: {", "train: {on_nan: rollback, "), "b.yaml")
    result = invoke("train", both, "--runs-dir", runs)
    assert result.exit_code == 2 and "TerminateOnNaN ends training at a NaN loss" in result.output


def test_validation_freq_and_initial_epoch(tmp_path, write_config):
    runs = tmp_path / "runs"
    text = CONFIG.format(name="freq", epochs=4, callbacks="[]").replace("batch_size: 15", "batch_size: 15, "
                                                                        "validation_freq: 2")
    assert invoke("train", write_config(text), "--runs-dir", runs, "--quiet").exit_code == 0
    rows = [r.split(",") for r in (runs / "freq" / "metrics.csv").read_text().split()]
    column = rows[0].index("val_loss")
    assert [bool(r[column]) for r in rows[1:]] == [False, True, False, True]  # epochs 2 and 4, as Keras
    text = CONFIG.format(name="later", epochs=4, callbacks="[]").replace("batch_size: 15", "batch_size: 15, "
                                                                         "initial_epoch: 2")
    assert invoke("train", write_config(text, "b.yaml"), "--runs-dir", runs, "--quiet").exit_code == 0
    assert [r.split(",")[0] for r in (runs / "later" / "metrics.csv").read_text().split()[1:]] == ["3", "4"]
    bad = write_config(text.replace("initial_epoch: 2", "initial_epoch: 4"), "c.yaml")
    result = invoke("train", bad, "--runs-dir", runs)
    assert result.exit_code == 2 and "train.initial_epoch: 4 leaves nothing to train" in result.output


STREAM = """
name: {name}
seed: 6
data: {{dataset: synthetic_classification, samples: 60, features: 4, classes: 3, validation_split: 0.2}}
model:
  input_shape: [4]
  layers:
    - {{type: Dense, units: 6, activation: relu}}
    - {{type: Dropout, rate: 0.2}}
    - {{type: Dense, units: 3, activation: softmax}}
compile: {{optimizer: adam, loss: sparse_categorical_crossentropy}}
train: {{epochs: {epochs}, batch_size: 8, steps_per_epoch: {steps}}}
"""  # 48 training samples: 6 batches a pass


@pytest.mark.parametrize("steps,epochs,passes", [(3, 4, 2), (9, 2, 3)])
def test_steps_per_epoch_walks_the_same_passes(tmp_path, write_config, steps, epochs, passes):
    """Epochs of steps_per_epoch batches take the data pass after pass, each pass in its own order (as
    Keras continues its iterator): they train exactly as whole passes would, also across a resume."""
    from compare_runs import assert_same_last_checkpoint

    runs = tmp_path / "runs"
    whole = write_config(STREAM.format(name="passes", epochs=passes, steps="null"), "a.yaml")
    stepped = write_config(STREAM.format(name="stepped", epochs=epochs, steps=steps), "b.yaml")
    split = write_config(STREAM.format(name="split", epochs=1, steps=steps), "c.yaml")
    for config in (whole, stepped, split):
        assert invoke("train", config, "--runs-dir", runs, "--quiet").exit_code == 0
    assert invoke("resume", runs / "split", "--set", f"train.epochs={epochs}", "--quiet").exit_code == 0
    assert_same_last_checkpoint(runs / "passes", runs / "stepped",  # (epoch numbers differ, nothing else)
                                skip=("_config", "_checksum", "_state", "_rng", "_epoch"))
    assert_same_last_checkpoint(runs / "stepped", runs / "split")
    assert len((runs / "stepped" / "metrics.csv").read_text().split()) == epochs + 1


def test_validation_steps_validates_on_the_first_batches(tmp_path, write_config):
    from kerascli.config import load_config_file, resolve_config
    from kerascli.runs.checkpoint import apply_weights, load_checkpoint
    from kerascli.train.session import build_session, load_data

    config = write_config(STREAM.format(name="vs", epochs=2, steps="null").replace(
        "steps_per_epoch: null", "validation_steps: 1"))
    assert invoke("train", config, "--runs-dir", tmp_path, "--quiet").exit_code == 0
    rows = (tmp_path / "vs" / "metrics.csv").read_text().split()
    logged = float(rows[-1].split(",")[rows[0].split(",").index("val_loss")])
    session = build_session(resolve_config(load_config_file(config)))
    splits = load_data(session)
    apply_weights(session.model, load_checkpoint(str(tmp_path / "vs" / "checkpoints" / "last.npz")).weights(), "last")
    first = session.trainer.evaluate(splits["val"].head(1, 8), 8)["loss"]
    assert logged == pytest.approx(first, rel=1e-6)
    assert logged != pytest.approx(session.trainer.evaluate(splits["val"], 8)["loss"], rel=1e-6)
